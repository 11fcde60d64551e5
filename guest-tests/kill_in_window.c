// SPDX-License-Identifier: GPL-2.0
/*
 * kill-in-window: a task dies of a fatal signal while it is inside the unlock
 * window, with nothing stopping it there on purpose.
 *
 * A child process loops on its robust mutex: take it (lock = TID), announce the
 * unlock (pop = the mutex's list entry), unlock through the vDSO entry. Lock,
 * entry and robust list head live in a MAP_SHARED page, so the parent can read
 * them once the child is gone. The parent sleeps a random while, and then the
 * child dies in one of three ways:
 *   - kill:  the parent sends SIGKILL;
 *   - term:  the parent sends SIGTERM, which has no handler: fatal by default,
 *            the kernel turns it into a group kill;
 *   - group: a sibling thread of the child, after a random sleep of its own,
 *            calls exit_group().
 * With one vCPU the child is never running when the fatal signal is sent: the
 * timer interrupt that woke the killer preempted it at an instruction boundary
 * left to chance. It meets the signal in the exit-to-user loop, and if that
 * boundary lies inside [cs_start, cs_end) after its cmpxchg succeeded, the
 * kernel must clear pop there before the signal kills it.
 *
 * After each death the parent reads lock and pop. Each point of the loop leaves
 * one of three pictures once the exit-time robust-list walk has run:
 *   lock 0, pop 0:               idle, or killed in the window and fixed up
 *   lock TID, pop 0:             taken but not yet announced: nothing to walk
 *   lock OWNER_DIED, pop entry:  announced and still held: the walk marked it
 * Lock 0 with pop still at the entry is a kill after the cmpxchg that nobody
 * cleared pop for: a skipped fixup (skipped_fixups). Anything else is bad_states.
 *
 * The loop also stores to a "twin" page that shares the lock page's slot in
 * QEMU's software TLB (map_twin): under TCG that makes the window's odds per
 * death 2 to 5 times better, and up to 18 times in a bad run; it stops nothing
 * anywhere (see TWIN_DISTANCE).
 *
 * What proves a kill landed in the window is the kernel's own count: a kprobe on
 * __futex_fixup_robust_unlock, which runs only for a task interrupted inside the
 * range with a signal pending. Its hits during each death are that way of
 * dying's window kills ({kill,term,group}_window). Each way of dying goes on
 * until --min-hits deaths landed in the window (fixed or not), or its share of
 * --seconds is spent.
 *
 * --pop-width 8 uses the 64-bit list and entry. --pop-width 4 uses a compat
 * robust list (32-bit pointers): native in a 32-bit build, and in an x32 build,
 * whose set_robust_list is compat_sys_set_robust_list (x32 syscall 530); in a
 * 64-bit build it is registered through int $0x80, the way an emulator running
 * 32-bit code registers it, in memory below 4 GiB. The 4 bytes right after the
 * compat head's pending word hold a canary: a fixup that clears 8 bytes for a
 * 4-byte pop overwrites it (upper_half_touched).
 *
 * --high-pop 1 (64-bit, --pop-width 4): the mixed case. The arena lives in a
 * MAP_SHARED page above 4 GiB, so the list32 entry gets a 4-byte pop behind a
 * 64-bit pointer, and a canary page is mapped at the arena's 32-bit alias: a
 * fixup that takes DX as a 32-bit pointer clears a word there (alias_touched)
 * and leaves pop set (skipped_fixups). The word after pop holds a canary
 * (upper_half_touched: an 8-byte clear). A compat list cannot sit above 4 GiB,
 * and a 64-bit one would read pop as 8 bytes, so no list is registered: there
 * is no exit walk, and announced-but-held deaths stay lock TID, pop entry
 * (announced). high_pop counts the window deaths (kprobe) with the high pop.
 */
#define _GNU_SOURCE
#include "vdso_helpers.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_DELAY_US 1000
#define START_TIMEOUT_MS 5000
#define DEATH_TIMEOUT_S 5
/* __NR_set_robust_list of the i386 syscall table, for int $0x80. */
#define I386_SET_ROBUST_LIST 311

#define WRITE_ONCE(x, v) (*(volatile __typeof__(x) *)&(x) = (v))
#define READ_ONCE(x) (*(volatile __typeof__(x) *)&(x))

/* struct compat_robust_list_head: the robust list of a 32-bit task. */
struct head32 {
	uint32_t next;
	int32_t futex_offset;
	uint32_t pending;
};
_Static_assert(sizeof(struct head32) == 12, "the canary sits right after the compat head");

/* The child's mutex and robust list, in a MAP_SHARED page that outlives it. */
struct arena {
	union {
		struct robust_list_head h64;
		struct head32 h32;
		/* words[3]: the 4 bytes after h32, a canary when the list is h32 */
		uint32_t words[4];
	} head;
	struct robust_list entry __attribute__((aligned(64)));
	uint32_t lock __attribute__((aligned(64)));
	/* --high-pop: pop is pop32[0], and pop32[1] keeps CANARY */
	uint32_t pop32[2] __attribute__((aligned(64)));
	unsigned long iterations;
	unsigned int seed;
};

enum death { KILL, TERM, GROUP, DEATHS };
static const char *const death_names[DEATHS] = { "kill", "term", "group" };

struct counters {
	unsigned long rounds[DEATHS], window[DEATHS];
	unsigned long iterations, idle, held, marked, announced;
	unsigned long skipped_fixups, bad_states, wrong_deaths, stalled;
	unsigned long alias_touched, upper_half_touched;
};

#define USAGE "kill-in-window --check NAME --func F --pop-width 8|4 [--mode kill,term,group] " \
	"[--seconds N] [--min-hits N] [--high-pop 1 (64-bit, --pop-width 4)]"

static try_unlock_fn unlock_fn;
static int width;
/*
 * Under TCG, QEMU takes an interrupt only between translated blocks, and the
 * block it lands after is the one running when the interrupt came: odds that
 * follow each block's host time. The window opens after the vDSO's block from
 * its entry to the jne after the cmpxchg, a few fast instructions beside the
 * caller's block and the vDSO's return (each an indirect jump, looked up in a
 * hash): 1 death in 7 to 20 landed in the window, and 1 in 66 in a bad run,
 * as chance put the lock page's slot in QEMU's softmmu TLB next to a hot page
 * or not. A store to a page whose slot is the lock page's, between the caller's
 * stores and the call, sends the cmpxchg down QEMU's slow path every time, and
 * that block lasts longer: 1 death in 3 or 4 (pristine 7.3, minimal, 2026-12-06,
 * taking turns: kill-in-window-64 needed 54 to 59 deaths for 15 window deaths,
 * against 110 to 288 without, and 991 in the bad run). Pages 2^22 pages (16 GiB)
 * apart share the slot at every TLB size QEMU picks. Under KVM the store is one
 * more store: the odds there are the hardware's.
 */
#define TWIN_DISTANCE (1ULL << 34)
static uint32_t no_twin;
static volatile uint32_t *twin = &no_twin;
static unsigned long twin_mib;	/* how far the twin is, for the record; 0: none */
/* --high-pop: the arena is hp.page, and hp.alias must stay ALIAS_FILL */
static struct high_pop hp;
static int high;

static void nap_us(long us)
{
	struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000 };

	nanosleep(&ts, NULL);
}

/*
 * Sleep a random while, again until the child's loop has turned (or for
 * START_TIMEOUT_MS: a child that never ran counts as stalled). The random sleep
 * is the poll: a kernel without high-resolution timers rounds every sleep up to
 * the next tick, and a poll of its own before the random sleep cost a second
 * tick a death (about half the test's time under TCG). What picks the point of
 * the loop a death lands on is the interrupt that wakes the killer, wherever the
 * child then is, on either kind of kernel.
 */
static void nap_until_running(const struct arena *a, unsigned int *seed)
{
	long deadline = now_ms() + START_TIMEOUT_MS;

	do
		nap_us(rand_r(seed) % MAX_DELAY_US);
	while (!READ_ONCE(a->iterations) && now_ms() < deadline);
}

/* The 4-byte pop of the list32 entry: the compat head's, or pop32 above 4 GiB. */
static uint32_t *pop32(struct arena *a)
{
	return high ? &a->pop32[0] : &a->head.h32.pending;
}

static uint64_t pop_value(struct arena *a)
{
	return width == 8 ? (uint64_t)(uintptr_t)READ_ONCE(a->head.h64.list_op_pending)
			  : READ_ONCE(*pop32(a));
}

/* What announcing writes to pop: the entry's address, in pop's width. */
static uint64_t entry_value(const struct arena *a)
{
	return width == 8 ? (uint64_t)(uintptr_t)&a->entry : (uint32_t)(uintptr_t)&a->entry;
}

static int register_list(struct arena *a)
{
	long ret;

	if (width == 8) {
		a->head.h64.list.next = &a->head.h64.list;
		a->head.h64.futex_offset = (long)offsetof(struct arena, lock) -
					   (long)offsetof(struct arena, entry);
		return (int)syscall(SYS_set_robust_list, &a->head.h64, sizeof(a->head.h64));
	}
	a->head.h32.next = (uint32_t)(uintptr_t)&a->head.h32;
	a->head.h32.futex_offset = (int32_t)(offsetof(struct arena, lock) -
					     offsetof(struct arena, entry));
#if defined(__x86_64__) && !defined(__ILP32__)
	/* A 64-bit task gets a compat robust list only through the 32-bit syscall entry;
	 * an x32 task (__ILP32__) gets one through its own set_robust_list, below. */
	__asm__ volatile("int $0x80"
			 : "=a"(ret)
			 : "a"(I386_SET_ROBUST_LIST), "b"(&a->head.h32), "c"(sizeof(a->head.h32))
			 : "memory", "r8", "r9", "r10", "r11");
#else
	ret = syscall(SYS_set_robust_list, &a->head.h32, sizeof(a->head.h32));
#endif
	return (int)ret;
}

/* Take, announce, unlock, forever; two loops so that neither branches on the width. */
static void __attribute__((noreturn)) unlock_loop(struct arena *a, uint32_t tid)
{
	if (width == 8) {
		for (;;) {
			WRITE_ONCE(a->lock, tid);
			WRITE_ONCE(a->head.h64.list_op_pending, &a->entry);
			*twin = tid;
			unlock_fn(&a->lock, tid, &a->head.h64.list_op_pending);
			WRITE_ONCE(a->iterations, a->iterations + 1);
		}
	}
	uint32_t *pop = pop32(a);

	for (;;) {
		WRITE_ONCE(a->lock, tid);
		WRITE_ONCE(*pop, (uint32_t)(uintptr_t)&a->entry);
		*twin = tid;
		unlock_fn(&a->lock, tid, pop);
		WRITE_ONCE(a->iterations, a->iterations + 1);
	}
}

/* The sibling of the group death: sleep at random until the loop runs, end the group. */
static void *group_killer(void *arg)
{
	struct arena *a = arg;

	nap_until_running(a, &a->seed);
	syscall(SYS_exit_group, 0);
	return NULL;
}

static void __attribute__((noreturn)) child(struct arena *a, enum death how)
{
	pthread_t sibling;
	sigset_t all;

	signal(SIGTERM, SIG_DFL);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	if (!high && register_list(a))
		_exit(3);
	if (how == GROUP && pthread_create(&sibling, NULL, group_killer, a))
		_exit(4);
	unlock_loop(a, (uint32_t)getpid());
}

static pid_t victim;

static void on_alarm(int sig)
{
	(void)sig;
	kill(victim, SIGKILL);
}

/*
 * Reap the child, sleeping until it is gone: with one vCPU it dies only once we
 * sleep. One that outlives DEATH_TIMEOUT_S is killed, and its status says so.
 */
static int reap(pid_t pid)
{
	struct sigaction sa = { .sa_handler = on_alarm };
	int status = 0;

	victim = pid;
	sigaction(SIGALRM, &sa, NULL);	/* no SA_RESTART: the alarm interrupts waitpid */
	alarm(DEATH_TIMEOUT_S);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	alarm(0);
	return status;
}

static int died_as_told(int status, enum death how)
{
	if (how == GROUP)
		return WIFEXITED(status) && WEXITSTATUS(status) == 0;
	return WIFSIGNALED(status) && WTERMSIG(status) == (how == KILL ? SIGKILL : SIGTERM);
}

/* Around a high pop: the word after it and the alias page; each write counts once. */
static void check_neighbours(struct arena *a, struct counters *c)
{
	if (READ_ONCE(a->pop32[1]) != CANARY)
		c->upper_half_touched++;
	if (high_pop_alias_touched(&hp)) {
		c->alias_touched++;
		memset(hp.alias, ALIAS_FILL, 4096);
	}
}

/* What the exit walk left: one of the three legal pictures, or a bug. */
static void classify(struct arena *a, uint32_t tid, struct counters *c)
{
	uint32_t lock = READ_ONCE(a->lock);
	uint64_t pop = pop_value(a), entry = entry_value(a);

	if (high)
		check_neighbours(a, c);
	else if (width == 4 && READ_ONCE(a->head.words[3]) != CANARY)
		c->upper_half_touched++;
	if (high && lock == tid && pop == entry) {
		c->announced++;	/* no list, so no walk marked it */
		return;
	}
	if (lock == 0 && pop == 0) {
		c->idle++;
		return;
	}
	if (lock == tid && pop == 0) {
		c->held++;
		return;
	}
	if (lock == FUTEX_OWNER_DIED && pop == entry) {
		c->marked++;
		return;
	}
	if (lock == 0 && pop == entry)
		c->skipped_fixups++;
	else
		c->bad_states++;
	fprintf(stderr, "after death: lock 0x%x pop 0x%llx (entry 0x%llx, tid %u)\n", lock,
		(unsigned long long)pop, (unsigned long long)entry, tid);
}

/* One child, one death; *fixups is the kprobe's count so far. */
static void one_death(struct arena *a, enum death how, struct counters *c, unsigned int *seed,
		      unsigned long *fixups)
{
	unsigned long now;
	pid_t pid;
	int status;

	memset(a, 0, sizeof(*a));
	a->pop32[1] = CANARY;
	if (width == 4 && !high)
		a->head.words[3] = CANARY;
	a->seed = rand_r(seed);
	pid = fork();
	if (pid < 0) {
		perror("fork");
		exit(2);
	}
	if (!pid)
		child(a, how);
	if (how != GROUP) {
		nap_until_running(a, seed);
		kill(pid, how == KILL ? SIGKILL : SIGTERM);
	}
	status = reap(pid);
	if (!READ_ONCE(a->iterations))
		c->stalled++;
	c->rounds[how]++;
	c->iterations += READ_ONCE(a->iterations);
	if (!died_as_told(status, how)) {
		fprintf(stderr, "%s: child %d status 0x%x\n", death_names[how], (int)pid, status);
		c->wrong_deaths++;
	}
	now = fixup_probe_hits();
	c->window[how] += now != *fixups;
	*fixups = now;
	classify(a, (uint32_t)pid, c);
}

static void die_many(struct arena *a, enum death how, const struct test_args *o, long budget_ms,
		     struct counters *c, unsigned int *seed)
{
	long deadline = now_ms() + budget_ms;
	unsigned long skipped = c->skipped_fixups, fixups = fixup_probe_hits();

	while (now_ms() < deadline &&
	       c->window[how] + (c->skipped_fixups - skipped) < o->min_hits)
		one_death(a, how, c, seed, &fixups);
	fprintf(stderr, "%s: %lu deaths, %lu in the window (kprobe), %lu skipped fixups\n",
		death_names[how], c->rounds[how], c->window[how], c->skipped_fixups - skipped);
}

/*
 * A private page in the lock page's TLB slot, above or below it. 16 GiB away
 * shares the slot at every TLB size; a 32-bit process has no room for that, and
 * 2 GiB shares it at every size up to 2^19 entries (QEMU sizes it by use: an
 * idle guest keeps it far smaller). No free page: the loop stores to no_twin.
 */
static void map_twin(const uint32_t *lock)
{
	static const uint64_t distances[] = { TWIN_DISTANCE, TWIN_DISTANCE >> 3 };
	uint64_t page = (uintptr_t)lock & ~4095ULL;
	unsigned int i, sign;

	for (i = 0; i < sizeof(distances) / sizeof(distances[0]); i++)
		for (sign = 0; sign < 2; sign++) {
			uint64_t at = sign ? page - distances[i] : page + distances[i];
			void *p;

			if (at != (uintptr_t)at || (sign && distances[i] > page))
				continue;	/* beyond this process's pointers */
			p = mmap((void *)(uintptr_t)at, 4096, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
			if (p == (void *)(uintptr_t)at) {
				twin = p;
				twin_mib = (unsigned long)(distances[i] >> 20);
				return;
			}
			if (p != MAP_FAILED)
				munmap(p, 4096);
		}
}

/* Shared with the children; NULL when --high-pop finds no page pair (high_pop stays 0). */
static struct arena *map_arena(void)
{
	int low = width == 4 && sizeof(void *) == 8 ? MAP_32BIT : 0;
	void *p;

	if (high)
		return high_pop_map(&hp, MAP_SHARED) ? NULL : (struct arena *)hp.page;
	p = mmap(NULL, sizeof(struct arena), PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS | low, -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		exit(2);
	}
	return p;
}

static void emit(const struct test_args *o, const struct counters *c, unsigned long probe,
		 long ms)
{
	emit_record(o->check, "seconds", (unsigned long)(ms + 500) / 1000,
		    "iterations", c->iterations, "fixup_probe", probe,
		    "kill_rounds", c->rounds[KILL], "kill_window", c->window[KILL],
		    "term_rounds", c->rounds[TERM], "term_window", c->window[TERM],
		    "group_rounds", c->rounds[GROUP], "group_window", c->window[GROUP],
		    "window_kills", c->window[KILL] + c->window[TERM] + c->window[GROUP],
		    "idle", c->idle, "held", c->held, "marked", c->marked,
		    "announced", c->announced,
		    "skipped_fixups", c->skipped_fixups, "bad_states", c->bad_states,
		    "wrong_deaths", c->wrong_deaths, "stalled", c->stalled,
		    "high_pop", high ? c->window[KILL] + c->window[TERM] + c->window[GROUP] : 0,
		    "alias_touched", c->alias_touched,
		    "upper_half_touched", c->upper_half_touched, "twin_mib", twin_mib, NULL);
}

int main(int argc, char **argv)
{
	struct test_args o = { .count = 8, .min_hits = 10, .mode = "kill,term,group" };
	struct counters c = { 0 };
	unsigned int seed = (unsigned int)getpid();
	long t0 = now_ms();
	struct vdso_func f;
	unsigned long probe;
	struct arena *a;
	int how, modes = 0;

	parse_test_args(argc, argv, &o, USAGE);
	width = o.pop_width;
	high = o.high_pop;
	for (how = 0; how < DEATHS; how++)
		modes += strstr(o.mode, death_names[how]) != NULL;
	if (!o.func || !modes || (width != 8 && width != 4) ||
	    (width == 8 && sizeof(void *) == 4) ||
	    (high && (width != 4 || sizeof(void *) != 8))) {
		fprintf(stderr, "usage: %s\n", USAGE);
		return 2;
	}
	if (vdso_find(o.func, &f)) {
		fprintf(stderr, "%s: %s is not exported by the running vDSO\n", o.check, o.func);
		return 3;
	}
	unlock_fn = (try_unlock_fn)f.addr;
	a = map_arena();
	if (!a) {
		emit(&o, &c, 0, now_ms() - t0);
		return 0;
	}
	map_twin(&a->lock);
	probe = (unsigned long)fixup_probe_arm();
	for (how = 0; how < DEATHS; how++)
		if (strstr(o.mode, death_names[how]))
			die_many(a, how, &o, (long)o.count * 1000 / modes, &c, &seed);
	fixup_probe_disarm();
	emit(&o, &c, probe, now_ms() - t0);
	return 0;
}
