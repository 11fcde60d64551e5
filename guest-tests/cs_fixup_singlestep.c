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
 */
#define _GNU_SOURCE
#include "vdso_helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define FUTEX_WAITERS 0x80000000U
#define POP_MARK 0x5a5a0000U
#define CANARY 0xc0ffee11U

typedef uint32_t (*try_unlock_fn)(uint32_t *lock, uint32_t tid, void *pop);

/* pop.word[0] is the pending-op slot for list32; word[1] is its canary. */
union pop_slot {
	uint64_t q;
	uint32_t word[2];
};

struct counters {
	unsigned long steps, hits, hits_zf_set, hits_zf_clear, hits_success_label;
	unsigned long bad_steps, dx_mismatch, semantics_bad, canary_bad, stale_fixups;
	unsigned long window_stops, window_bad;
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
	struct counters *c;
};

static uint64_t read_pop(const struct stepper *s)
{
	return s->width == 8 ? s->pop->q : s->pop->word[0];
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
	uint64_t mark = (uint64_t)(uintptr_t)lock | POP_MARK;

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
}

/* The plain call, no stepping: returns the TID, and lock and pop end at 0. */
static void plain_call(struct stepper *s, try_unlock_fn fn, uint32_t tid)
{
	uint32_t lock = tid;

	arm_pop(s, &lock);
	if (fn(&lock, tid, (void *)s->pop) != tid || lock != 0 || read_pop(s) != 0)
		s->c->semantics_bad++;
}

#define USAGE "cs-fixup-singlestep --check NAME --func SYMBOL --pop-width 8|4 " \
	"--cs-start OFF --cs-success OFF --cs-end OFF [--iterations N] " \
	"[--win-start OFF --win-store OFF] [--mremap 1]"

static void parse_args(int argc, char **argv, struct test_args *o)
{
	parse_test_args(argc, argv, o, USAGE);
	if (!o->win_store) {	/* no disassembly: judge the labels' range only */
		o->win_start = o->cs_start;
		o->win_store = o->cs_success;
	}
	if (!o->func || !o->cs_end || (o->pop_width != 8 && o->pop_width != 4)) {
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

int main(int argc, char **argv)
{
	struct test_args o = { .count = 100 };
	static volatile union pop_slot pop;
	struct counters c = { 0 }, old = { 0 };
	struct vdso_func f;
	struct stepper s;
	uintptr_t old_base, new_base;

	parse_args(argc, argv, &o);
	if (vdso_find(o.func, &f)) {
		fprintf(stderr, "%s: %s is not exported by the running vDSO\n", o.check, o.func);
		return 3;
	}
	s = (struct stepper){ .pop = &pop, .width = o.pop_width, .c = &c, .expect_fixup = 1 };
	if (!o.mremap) {
		aim(&s, &o, &f, vdso_base());
		run_iterations(&s, o.count);
	} else {
		move_vdso(&old_base, &new_base);
		aim(&s, &o, &f, new_base);
		run_iterations(&s, o.count);
		s.c = &old;
		s.expect_fixup = 0;
		aim(&s, &o, &f, old_base);
		run_iterations(&s, o.count);
	}
	emit_record(o.check, "iterations", o.count, "steps", c.steps, "hits", c.hits,
		    "hits_zf_set", c.hits_zf_set, "hits_zf_clear", c.hits_zf_clear,
		    "hits_success_label", c.hits_success_label, "bad_steps", c.bad_steps,
		    "first_bad_offset", c.first_bad_offset, "dx_mismatch", c.dx_mismatch,
		    "semantics_bad", c.semantics_bad, "canary_bad", c.canary_bad,
		    "window_stops", c.window_stops, "window_bad", c.window_bad,
		    "old_hits_zf_set", old.hits_zf_set, "stale_fixups", old.stale_fixups, NULL);
	return 0;
}
