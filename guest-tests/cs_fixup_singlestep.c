// SPDX-License-Identifier: GPL-2.0
/*
 * cs-fixup-singlestep: stop at every instruction of a vDSO try_unlock entry and
 * look at the pending-op word (pop) from the SIGTRAP handler.
 *
 * The series promises: once the lock cmpxchg has succeeded (ZF set), any entry
 * into the kernel from inside [cs_start, cs_end) with a signal pending finds pop
 * cleared by the kernel before the signal is delivered. A trap is exactly such
 * an entry, so at each stop inside the range:
 *   - ZF set:   pop must already read 0, although the vDSO store may not have run;
 *   - ZF clear: the cmpxchg failed, and pop must hold its old value.
 * DX must point at pop inside the range, since that is where the kernel looks.
 *
 * The labels are the series' own claim. The host also hands over the window the
 * code really has, from its disassembly: from right after the lock cmpxchg up to
 * and including the clearing store (which has not run yet when we stop on it).
 * Every stop there with ZF set must find pop cleared too (window_bad), labels or
 * not, so a revision that places the labels wrong cannot pass by looking away.
 *
 * The range offsets come from the host, read from the .symtab of the built
 * vdso .so.dbg; the stripped runtime image has no local labels.
 *
 * Each call is made twice per iteration: with lock == TID (uncontended, the
 * cmpxchg succeeds) and with FUTEX_WAITERS set (it fails). One JSON record with
 * the counters goes to stdout; the host turns the counters into a verdict.
 *
 * With --mremap 1 the vDSO is first moved with mremap(), and the check runs at
 * the new address: the kernel must have moved the critical range with it. Then
 * a copy of the code is mapped at the old address and stepped too: that is no
 * longer the vDSO, so a stop there with ZF set must find pop untouched. A clear
 * there would mean the kernel still honours the stale range (stale_fixups).
 *
 * The ranges are kept per mm, so a new mm must get them too. With --spawn the
 * same check runs in other tasks instead, one after another:
 *   fork     a fork()ed child: a copy of our mm, ranges inherited;
 *   clonevm  a CLONE_VM child on a stack of its own: our mm, shared;
 *   exec     a child that execve()s this binary: a fresh mm, fresh ranges;
 *   xexec    a child that execve()s --exec-bin, the test built for the other
 *            bitness: the offsets we were given are that binary's vDSO's.
 * Each child's counters come back to us (through a pipe, or in shared memory
 * for the CLONE_VM child), and we print the one record: each scenario's
 * counters under its prefix (fork_bad_steps, ...), and their sums under the
 * plain names, so the host can demand that every scenario reached the window.
 *
 * With --high-pop 1 (a 64-bit process on the list32 entry) the iterations run
 * a second time with pop in a page above 4 GiB. The pop is 4 bytes, its pointer
 * 64 bits: a kernel that takes DX as a 32-bit pointer clears the pop's alias (the
 * address truncated to 32 bits) instead, where a canary page waits
 * (alias_touched, checked at every stop in the range and after every call); one
 * that clears 8 bytes hits the word after pop (upper_half_touched, at every such
 * stop). high_pop counts the ZF-set stops in the range made with the high pop,
 * so a run that never got there is inconclusive.
 */
#define _GNU_SOURCE
#include "vdso_helpers.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

/* Or'ed into the lock's address as pop's value before each call: a non-zero pop that
 * the kernel's clear (or a stray store) visibly changes. */
#define POP_TAG 0x5a5a0000U

/* pop.word[0] is the pending-op slot for list32; word[1] is its canary. */
union pop_slot {
	uint64_t q;
	uint32_t word[2];
};

struct counters {
	unsigned long steps, hits, hits_zf_set, hits_zf_clear, hits_success_label;
	unsigned long bad_steps, dx_mismatch, semantics_bad, canary_bad, stale_fixups;
	unsigned long window_stops, window_bad;
	unsigned long high_pop, alias_touched, upper_half_touched;
	unsigned long first_bad_offset;
};

struct stepper {
	uintptr_t func, func_end, cs_start, cs_success, cs_end, win_start, win_store, base;
	volatile union pop_slot *pop;
	uint64_t pop_before;
	int width;
	int entered;
	/* 0 for code that is not the vDSO: the kernel must leave pop alone there. */
	int expect_fixup;
	/* --high-pop: pop lies in hp->page, and nothing may write hp->alias */
	const struct high_pop *hp;
	struct counters *c;
};

static uint64_t read_pop(const struct stepper *s)
{
	return s->width == 8 ? s->pop->q : s->pop->word[0];
}

/* Count a write to the alias page, then restore it so that each write counts once. */
static void check_alias(struct stepper *s)
{
	if (s->hp && high_pop_alias_touched(s->hp)) {
		s->c->alias_touched++;
		memset(s->hp->alias, ALIAS_FILL, 4096);
	}
}

static void note_bad(struct stepper *s, uintptr_t ip)
{
	if (!s->c->bad_steps)
		s->c->first_bad_offset = ip - s->base;
	s->c->bad_steps++;
}

static int on_step(const struct step_regs *r, void *arg)
{
	struct stepper *s = arg;
	uint64_t pop;

	if (r->ip < s->func || r->ip >= s->func_end)
		return s->entered;	/* stop once the call has returned */
	s->entered = 1;
	s->c->steps++;
	if (s->expect_fixup && (r->flags & X86_EFLAGS_ZF) &&
	    r->ip >= s->win_start && r->ip <= s->win_store) {
		s->c->window_stops++;
		if (read_pop(s) != 0)
			s->c->window_bad++;
	}
	if (r->ip < s->cs_start || r->ip >= s->cs_end)
		return 0;

	s->c->hits++;
	if (r->ip == s->cs_success)
		s->c->hits_success_label++;
	if (r->dx != (uintptr_t)s->pop)
		s->c->dx_mismatch++;
	if (s->width == 4 && s->pop->word[1] != CANARY)
		s->c->upper_half_touched++;
	if (s->hp && s->expect_fixup && (r->flags & X86_EFLAGS_ZF))
		s->c->high_pop++;
	check_alias(s);
	pop = read_pop(s);
	if ((r->flags & X86_EFLAGS_ZF) && !s->expect_fixup) {
		s->c->hits_zf_set++;
		if (pop != s->pop_before)
			s->c->stale_fixups++;
	} else if (r->flags & X86_EFLAGS_ZF) {
		s->c->hits_zf_set++;
		if (pop != 0)
			note_bad(s, r->ip);
	} else {
		s->c->hits_zf_clear++;
		if (pop != s->pop_before)
			note_bad(s, r->ip);
	}
	return 0;
}

struct call {
	try_unlock_fn fn;
	uint32_t *lock;
	uint32_t tid;
	volatile union pop_slot *pop;
	uint32_t ret;
};

static void do_call(void *arg)
{
	struct call *c = arg;

	c->ret = c->fn(c->lock, c->tid, (void *)c->pop);
}

static void arm_pop(struct stepper *s, uint32_t *lock)
{
	uint64_t mark = (uint64_t)(uintptr_t)lock | POP_TAG;

	if (s->width == 8) {
		s->pop->q = mark;
	} else {
		s->pop->word[0] = (uint32_t)mark;
		s->pop->word[1] = CANARY;
	}
	s->pop_before = read_pop(s);
}

/* One stepped call; lock_value decides whether the cmpxchg can succeed. */
static void stepped_call(struct stepper *s, try_unlock_fn fn, uint32_t tid, uint32_t lock_value)
{
	uint32_t lock = lock_value;
	struct call c = { .fn = fn, .lock = &lock, .tid = tid, .pop = s->pop };
	int success = lock_value == tid;

	arm_pop(s, &lock);
	s->entered = 0;
	single_step(do_call, &c, on_step, s);

	if (c.ret != lock_value)
		s->c->semantics_bad++;
	if (success && (lock != 0 || read_pop(s) != 0))
		s->c->semantics_bad++;
	if (!success && (lock != lock_value || read_pop(s) != s->pop_before))
		s->c->semantics_bad++;
	if (s->width == 4 && s->pop->word[1] != CANARY)
		s->c->canary_bad++;
	check_alias(s);
}

/* The plain call, no stepping: returns the TID, and lock and pop end at 0. */
static void plain_call(struct stepper *s, try_unlock_fn fn, uint32_t tid)
{
	uint32_t lock = tid;

	arm_pop(s, &lock);
	if (fn(&lock, tid, (void *)s->pop) != tid || lock != 0 || read_pop(s) != 0)
		s->c->semantics_bad++;
	check_alias(s);
}

#define USAGE "cs-fixup-singlestep --check NAME --func SYMBOL --pop-width 8|4 " \
	"--cs-start OFF --cs-success OFF --cs-end OFF [--iterations N] " \
	"[--win-start OFF --win-store OFF] [--mremap 1 | --spawn fork,clonevm,exec,xexec " \
	"[--exec-bin PATH] | --high-pop 1 (64-bit, --pop-width 4)]"

static void parse_args(int argc, char **argv, struct test_args *o)
{
	parse_test_args(argc, argv, o, USAGE);
	if (!o->win_store) {	/* no disassembly: judge the labels' range only */
		o->win_start = o->cs_start;
		o->win_store = o->cs_success;
	}
	if (!o->func || !o->cs_end || (o->pop_width != 8 && o->pop_width != 4) ||
	    (o->spawn && o->mremap) ||
	    (o->high_pop && (o->spawn || o->mremap || o->pop_width != 4 ||
			     sizeof(void *) != 8))) {
		fprintf(stderr, "usage: %s\n", USAGE);
		exit(2);
	}
}

/* Point the stepper at an image mapped at base; offsets are the same in any copy. */
static void aim(struct stepper *s, const struct test_args *o, const struct vdso_func *f,
		uintptr_t base)
{
	s->func = base + (f->addr - vdso_base());
	s->func_end = s->func + f->size;
	s->base = base;
	s->cs_start = base + o->cs_start;
	s->cs_success = base + o->cs_success;
	s->cs_end = base + o->cs_end;
	s->win_start = base + o->win_start;
	s->win_store = base + o->win_store;
}

static void run_iterations(struct stepper *s, unsigned long n)
{
	try_unlock_fn fn = (try_unlock_fn)s->func;
	uint32_t tid = (uint32_t)gettid();
	unsigned long i;

	for (i = 0; i < n; i++) {
		plain_call(s, fn, tid);
		stepped_call(s, fn, tid, tid);
		stepped_call(s, fn, tid, tid | FUTEX_WAITERS);
	}
}

/* mremap the vDSO elsewhere; then put a plain copy of its code where it was. */
static void move_vdso(uintptr_t *old_base, uintptr_t *new_base)
{
	uintptr_t start, end;
	void *dst, *copy;

	if (vdso_mapping(&start, &end)) {
		fprintf(stderr, "no [vdso] in /proc/self/maps\n");
		exit(2);
	}
	dst = mmap(NULL, end - start, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (dst == MAP_FAILED ||
	    mremap((void *)start, end - start, end - start, MREMAP_MAYMOVE | MREMAP_FIXED, dst)
	    == MAP_FAILED) {
		perror("mremap vdso");
		exit(2);
	}
	copy = mmap((void *)start, end - start, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (copy == MAP_FAILED) {
		perror("mmap old vdso address");
		exit(2);
	}
	memcpy(copy, dst, end - start);
	if (mprotect(copy, end - start, PROT_READ | PROT_EXEC)) {
		perror("mprotect");
		exit(2);
	}
	*old_base = start;
	*new_base = (uintptr_t)dst;
}

static volatile union pop_slot pop;

/* The check in the calling task, against the vDSO where it is mapped now. */
static void run_check(const struct test_args *o, const struct vdso_func *f, struct counters *c)
{
	struct stepper s = { .pop = &pop, .width = o->pop_width, .c = c, .expect_fixup = 1 };

	aim(&s, o, f, vdso_base());
	run_iterations(&s, o->count);
}

/* The check again with pop above 4 GiB; a page pair we cannot map leaves high_pop 0. */
static void run_high_check(const struct test_args *o, const struct vdso_func *f,
			   struct counters *c)
{
	struct high_pop hp;
	struct stepper s = { .width = o->pop_width, .c = c, .expect_fixup = 1, .hp = &hp };

	if (high_pop_map(&hp, MAP_PRIVATE))
		return;
	/* Mid-page, so that a stray write on either side of pop stays in the page. */
	s.pop = (volatile union pop_slot *)(hp.page + 2048);
	aim(&s, o, f, vdso_base());
	run_iterations(&s, o->count);
}

static int find_func(const struct test_args *o, struct vdso_func *f)
{
	if (vdso_find(o->func, f)) {
		fprintf(stderr, "%s: %s is not exported by the running vDSO\n", o->check, o->func);
		return 3;
	}
	return 0;
}

/* The check as it always was: here, or at a moved vDSO; prints its record. */
static int plain_check(const struct test_args *o)
{
	struct counters c = { 0 }, old = { 0 };
	struct vdso_func f;

	if (find_func(o, &f))
		return 3;
	if (!o->mremap) {
		run_check(o, &f, &c);
		if (o->high_pop)
			run_high_check(o, &f, &c);
	} else {
		struct stepper s = { .pop = &pop, .width = o->pop_width, .c = &c,
				     .expect_fixup = 1 };
		uintptr_t old_base, new_base;

		move_vdso(&old_base, &new_base);
		aim(&s, o, &f, new_base);
		run_iterations(&s, o->count);
		s.c = &old;
		s.expect_fixup = 0;
		aim(&s, o, &f, old_base);
		run_iterations(&s, o->count);
	}
	emit_record(o->check, "iterations", o->count, "steps", c.steps, "hits", c.hits,
		    "hits_zf_set", c.hits_zf_set, "hits_zf_clear", c.hits_zf_clear,
		    "hits_success_label", c.hits_success_label, "bad_steps", c.bad_steps,
		    "first_bad_offset", c.first_bad_offset, "dx_mismatch", c.dx_mismatch,
		    "semantics_bad", c.semantics_bad, "canary_bad", c.canary_bad,
		    "window_stops", c.window_stops, "window_bad", c.window_bad,
		    "old_hits_zf_set", old.hits_zf_set, "stale_fixups", old.stale_fixups,
		    "high_pop", c.high_pop, "alias_touched", c.alias_touched,
		    "upper_half_touched", c.upper_half_touched, NULL);
	return 0;
}

/*
 * The counters a spawned check reports, by their names in the record; all but the
 * last are summed over the scenarios.
 */
#define COUNTER(field) { #field, offsetof(struct counters, field) }
static const struct {
	const char *name;
	size_t offset;
} counter_keys[] = {
	COUNTER(steps), COUNTER(hits), COUNTER(hits_zf_set), COUNTER(hits_zf_clear),
	COUNTER(hits_success_label), COUNTER(window_stops), COUNTER(bad_steps),
	COUNTER(window_bad), COUNTER(dx_mismatch), COUNTER(semantics_bad), COUNTER(canary_bad),
	COUNTER(first_bad_offset),
};
#define N_COUNTERS (sizeof(counter_keys) / sizeof(counter_keys[0]))
#define N_SUMMED (N_COUNTERS - 1)

static unsigned long *counter(struct counters *c, size_t i)
{
	return (unsigned long *)((char *)c + counter_keys[i].offset);
}

enum scenario { SC_FORK, SC_CLONEVM, SC_EXEC, SC_XEXEC, N_SCENARIOS };
static const char *const scenario_names[N_SCENARIOS] = { "fork", "clonevm", "exec", "xexec" };

/* What came back from one spawned check. */
struct outcome {
	struct counters c;
	/* 1 when the child died by a signal or ended without a whole record */
	unsigned long failed;
	/* the child exited non-zero: it could not run (bad arguments, nothing to exec) */
	int could_not_run;
};

/* Read a child's stdout to the end and take the counters from its record. */
static void collect_record(int fd, struct outcome *r)
{
	static char buf[8192];
	size_t len = 0, i;
	ssize_t n;

	while (len < sizeof(buf) - 1 && (n = read(fd, buf + len, sizeof(buf) - 1 - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	close(fd);
	for (i = 0; i < N_COUNTERS; i++)
		if (record_value(buf, counter_keys[i].name, counter(&r->c, i)))
			r->failed = 1;
}

static void judge_exit(pid_t pid, const char *what, struct outcome *r)
{
	int status;

	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			perror("waitpid");
			exit(2);
		}
	}
	if (WIFSIGNALED(status)) {
		fprintf(stderr, "%s child killed by signal %d\n", what, WTERMSIG(status));
		r->failed = 1;
	} else if (WEXITSTATUS(status)) {
		fprintf(stderr, "%s child exited %d\n", what, WEXITSTATUS(status));
		r->could_not_run = 1;
		r->failed = 0;	/* no record is expected from a check that never ran */
	}
}

/* Start a child with its stdout on a pipe; returns its pid, the read end in *fd. */
static pid_t fork_piped(int *fd)
{
	int p[2];
	pid_t pid;

	if (pipe(p)) {
		perror("pipe");
		exit(2);
	}
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		perror("fork");
		exit(2);
	}
	if (!pid) {
		close(p[0]);
		if (dup2(p[1], STDOUT_FILENO) < 0)
			_exit(2);
		close(p[1]);
		return 0;
	}
	close(p[1]);
	*fd = p[0];
	return pid;
}

/* fork: the child's mm is a copy of ours and must carry our ranges. */
static void in_fork(const struct test_args *o, struct outcome *r)
{
	int fd;
	pid_t pid = fork_piped(&fd);

	if (!pid) {
		int ret = plain_check(o);

		fflush(stdout);
		_exit(ret);
	}
	collect_record(fd, r);
	judge_exit(pid, "fork", r);
}

struct clone_job {
	const struct test_args *o;
	const struct vdso_func *f;
	struct counters *c;
};

/* Runs in the CLONE_VM child: our memory, its own stack; no stdio (it shares ours). */
static int clone_child(void *arg)
{
	struct clone_job *job = arg;

	run_check(job->o, job->f, job->c);
	return 0;
}

/* clonevm: the same mm, so the same ranges; the child writes our counters directly. */
static void in_clone_vm(const struct test_args *o, struct outcome *r)
{
	struct vdso_func f;
	struct clone_job job = { .o = o, .f = &f, .c = &r->c };

	if (find_func(o, &f)) {
		r->could_not_run = 1;
		return;
	}
	judge_exit(clone_vm(clone_child, &job), "clonevm", r);
}

/* exec, xexec: the child execve()s a plain check; a fresh mm maps the vDSO anew. */
static void in_exec(const struct test_args *o, const char *path, const char *what,
		    struct outcome *r)
{
	char num[7][32];
	const unsigned long vals[7] = { (unsigned long)o->pop_width, o->cs_start, o->cs_success,
					o->cs_end, o->win_start, o->win_store, o->count };
	char *argv[] = { (char *)path, "--check", (char *)o->check, "--func", (char *)o->func,
			 "--pop-width", num[0], "--cs-start", num[1], "--cs-success", num[2],
			 "--cs-end", num[3], "--win-start", num[4], "--win-store", num[5],
			 "--iterations", num[6], NULL };
	int fd, i;
	pid_t pid;

	for (i = 0; i < 7; i++)
		snprintf(num[i], sizeof(num[i]), "%#lx", vals[i]);
	pid = fork_piped(&fd);
	if (!pid) {
		execv(path, argv);
		fprintf(stderr, "%s: execv %s: %s\n", what, path, strerror(errno));
		_exit(127);
	}
	collect_record(fd, r);
	judge_exit(pid, what, r);
}

static void run_scenario(const struct test_args *o, enum scenario sc, struct outcome *r)
{
	switch (sc) {
	case SC_FORK:
		in_fork(o, r);
		break;
	case SC_CLONEVM:
		in_clone_vm(o, r);
		break;
	case SC_EXEC:
		in_exec(o, "/proc/self/exe", "exec", r);
		break;
	default:
		in_exec(o, o->exec_bin, "xexec", r);
		break;
	}
}

/* "fork,clonevm,exec" to the scenarios in that order; anything else is a usage error. */
static size_t parse_scenarios(const struct test_args *o, enum scenario *out)
{
	char list[128], *save = NULL, *name;
	size_t n = 0, i;
	int sc;

	snprintf(list, sizeof(list), "%s", o->spawn);
	for (name = strtok_r(list, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
		for (sc = 0; sc < N_SCENARIOS && strcmp(name, scenario_names[sc]); sc++)
			;
		for (i = 0; i < n && out[i] != (enum scenario)sc; i++)
			;
		if (sc == N_SCENARIOS || i < n || (sc == SC_XEXEC && !o->exec_bin)) {
			fprintf(stderr, "bad --spawn '%s': each of %s, %s, %s, %s at most once "
				"(xexec needs --exec-bin)\nusage: %s\n", o->spawn, scenario_names[0],
				scenario_names[1], scenario_names[2], scenario_names[3], USAGE);
			exit(2);
		}
		out[n++] = (enum scenario)sc;
	}
	return n;
}

/* iterations, each scenario's counters and failed, the sums, spawn_failed */
#define MAX_KEYS (1 + N_SCENARIOS * (N_COUNTERS + 1) + N_SUMMED + 1)

/* Run each scenario in turn, then print one record: per-scenario counters, then sums. */
static int spawned_check(const struct test_args *o)
{
	static char names[MAX_KEYS][48];
	static const char *keys[MAX_KEYS];
	static unsigned long vals[MAX_KEYS];
	static struct outcome out[N_SCENARIOS];
	struct counters sum = { 0 };
	enum scenario scs[N_SCENARIOS];
	size_t n_sc = parse_scenarios(o, scs), k = 0, i, j;
	unsigned long failed = 0;
	int could_not_run = 0;

#define KEY(value, ...) do { \
		snprintf(names[k], sizeof(names[k]), __VA_ARGS__); \
		keys[k] = names[k]; \
		vals[k++] = (value); \
	} while (0)

	KEY(o->count, "iterations");
	for (i = 0; i < n_sc; i++) {
		const char *prefix = scenario_names[scs[i]];
		struct outcome *r = &out[i];

		run_scenario(o, scs[i], r);
		for (j = 0; j < N_COUNTERS; j++)
			KEY(*counter(&r->c, j), "%s_%s", prefix, counter_keys[j].name);
		for (j = 0; j < N_SUMMED; j++)
			*counter(&sum, j) += *counter(&r->c, j);
		KEY(r->failed, "%s_failed", prefix);
		failed += r->failed;
		could_not_run |= r->could_not_run;
	}
	for (j = 0; j < N_SUMMED; j++)
		KEY(*counter(&sum, j), "%s", counter_keys[j].name);
	KEY(failed, "spawn_failed");
#undef KEY
	emit_record_array(o->check, keys, vals, k);
	return could_not_run ? 2 : 0;
}

int main(int argc, char **argv)
{
	struct test_args o = { .count = 100 };

	parse_args(argc, argv, &o);
	return o.spawn ? spawned_check(&o) : plain_check(&o);
}
