// SPDX-License-Identifier: GPL-2.0
/*
 * unlock-semantics: what a try_unlock entry returns and what it leaves behind,
 * called normally (no stepping), in the three cases a robust mutex meets:
 *   - uncontended (lock == TID): returns the TID, lock becomes 0, pop becomes 0;
 *   - contended (lock == TID | FUTEX_WAITERS): the caller must go to the kernel,
 *     so it returns the lock value and leaves lock and pop untouched;
 *   - wrong owner (lock holds another TID): same, nothing changes.
 * A 4-byte pop (the list32 entry) must clear exactly 4 bytes: the 4 bytes next
 * to it hold a canary that must survive.
 */
#define _GNU_SOURCE
#include "vdso_helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>



union pop_slot {
	uint64_t q;
	uint32_t word[2];
};

struct counters {
	unsigned long cases, semantics_bad, canary_bad, first_bad_case;
};

static void one_case(try_unlock_fn fn, int width, uint32_t tid, uint32_t lock_value, int id,
		     struct counters *c)
{
	static volatile union pop_slot pop;
	uint32_t lock = lock_value, ret;
	int success = lock_value == tid;
	uint64_t before, after;

	pop.q = POP_MARK;
	if (width == 4)
		pop.word[1] = CANARY;
	before = width == 8 ? pop.q : pop.word[0];
	ret = fn(&lock, tid, (void *)&pop);
	after = width == 8 ? pop.q : pop.word[0];
	c->cases++;
	if (ret != lock_value || lock != (success ? 0 : lock_value) ||
	    after != (success ? 0 : before)) {
		if (!c->semantics_bad)
			c->first_bad_case = (unsigned long)id;
		c->semantics_bad++;
	}
	if (width == 4 && pop.word[1] != CANARY)
		c->canary_bad++;
}

int main(int argc, char **argv)
{
	struct test_args o = { 0 };
	struct counters c = { 0 };
	struct vdso_func f;
	uint32_t tid;
	int i;

	parse_test_args(argc, argv, &o, "unlock-semantics --check NAME --func SYMBOL "
			"--pop-width 8|4");
	if (!o.func || (o.pop_width != 4 && o.pop_width != 8)) {
		fprintf(stderr, "usage: unlock-semantics --check NAME --func SYMBOL --pop-width 8|4\n");
		return 2;
	}
	if (vdso_find(o.func, &f)) {
		fprintf(stderr, "%s: %s is not exported by the running vDSO\n", o.check, o.func);
		return 3;
	}
	tid = (uint32_t)gettid();
	for (i = 0; i < 100; i++) {
		one_case((try_unlock_fn)f.addr, o.pop_width, tid, tid, 0, &c);
		one_case((try_unlock_fn)f.addr, o.pop_width, tid, tid | FUTEX_WAITERS, 1, &c);
		one_case((try_unlock_fn)f.addr, o.pop_width, tid, tid + 1, 2, &c);
	}
	emit_record(o.check, "cases", c.cases, "semantics_bad", c.semantics_bad,
		    "canary_bad", c.canary_bad, "first_bad_case", c.first_bad_case, NULL);
	return 0;
}
