// SPDX-License-Identifier: GPL-2.0
/*
 * robust-unlock-ops: the slow path of a robust unlock, through the futex
 * syscall. When the vDSO's cmpxchg(lock, TID, 0) fails because FUTEX_WAITERS
 * is set, user space calls futex(lock, OP | FUTEX_ROBUST_UNLOCK, ..., pop)
 * instead, and the kernel must do what the vDSO would have done and more:
 * release the lock, clear robust_list_head.list_op_pending ("pop") and wake.
 *
 * For each of the three ops (unlock+wake, unlock+wake-bitset, unlock-PI), shared
 * and private, we build a really contended lock: another task is asleep in the
 * matching wait (FUTEX_WAIT, FUTEX_WAIT_BITSET, FUTEX_LOCK_PI), which we confirm
 * from /proc/<tid>/syscall (blocked in futex on this word) and, for PI, from
 * FUTEX_WAITERS in the word. Shared waiters are forked processes on a
 * MAP_SHARED page; private ones are threads. Then we unlock and check what
 * kernel/futex/{waitwake,pi,core}.c of the series do:
 *   - wake/bitset: the word is stored 0 (no owner check; val is nr_wake), pop is
 *     cleared, the return is the number woken (1), the waiter returns 0;
 *   - PI: the word is handed to the waiter (FUTEX_WAITERS | its TID), pop is
 *     cleared, the return is 0 and the waiter's FUTEX_LOCK_PI returns 0;
 *   - the waiter must be running again within WAKE_TIMEOUT_MS.
 * Pop is 8 bytes for the LIST64 ops; for LIST32 exactly 4: the next 4 bytes hold
 * a canary, and a guard word sits before pop in both widths.
 * Then the edges, as the source has them:
 *   - wrong owner (the word holds another TID): wake/bitset do not check the
 *     owner and behave as above (word 0, pop cleared, 0 woken); PI refuses with
 *     -EPERM before touching anything, so word and pop stay;
 *   - pop in unmapped memory: wake/bitset store 0 to the word, then fail the
 *     clear and return -EFAULT before waking (the waiter stays asleep: counted
 *     in unmapped_waiter_woken, not judged); PI hands the lock over and wakes
 *     the waiter first, then returns -EFAULT;
 *   - bitset 0: -EINVAL before the unlock, nothing touched;
 *   - the robust bits on FUTEX_WAIT: -ENOSYS, nothing touched.
 * Every op number comes from the command line (the host reads them from the
 * expectations file).
 *
 * --high-pop 1 (64-bit, --width 32): every pop area sits in a page above 4 GiB
 * with a canary page at its 32-bit alias. A LIST32 op that takes the pointer as
 * 32 bits clears the alias instead (alias_touched, checked after every case);
 * high_pop counts the contended unlocks made there, so a run that could not map
 * the pages is inconclusive.
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

#define WAKE_TIMEOUT_MS 5000
#define RELEASE_TIMEOUT_MS 30000
#define GUARD 0x6a6a6a6aU
#define WAIT_BITS 0x2U
#define WAKE_BITS 0x6U
#define MAX_SLOTS 64
#define PAGE 4096

struct opts {
	const char *check;
	unsigned long width, op_wake, op_bitset, op_pi, private_flag;
	unsigned long wait, wait_bitset, lock_pi, unlock_pi, wake;
	/* the flags themselves, for a command the series gives no robust variant */
	unsigned long robust_unlock, robust_list32;
	unsigned long high_pop;
};

enum op_kind { OP_WAKE, OP_BITSET, OP_PI };
static const char *const kind_name[] = { "wake", "bitset", "pi" };

struct counters {
	unsigned long cases, waiters_blocked, waiters_woken, setup_failed;
	unsigned long bad_return, lock_word_bad, pop_not_cleared, canary_bad;
	unsigned long wake_timeouts, waiter_bad;
	unsigned long wrong_owner_bad, unmapped_pop_bad, bitset_zero_bad, bad_command_bad;
	unsigned long unmapped_waiter_woken, cleanup_bad;
	unsigned long high_pop, alias_touched;
};

/* One case's futex word and its waiter's mailbox, in memory shared with forked waiters. */
struct slot {
	uint32_t lock;
	uint32_t wait_op, wait_val, wait_bits, unlock_op;
	int32_t kind;
	volatile int32_t tid, done, ret, release, unlock_ret, finished;
} __attribute__((aligned(128)));

/* pop and what surrounds it: guard | pop (8 bytes, or 4 + canary) | guard */
struct pop_area {
	uint32_t guard_lo;
	uint32_t pad;
	union {
		uint64_t q;
		uint32_t word[2];
	} pop;
	uint32_t guard_hi;
} __attribute__((aligned(8)));

struct waiter {
	struct slot *s;
	int shared;
	pid_t pid;		/* forked waiter */
	pthread_t thread;	/* thread waiter */
};

static struct opts o;
static struct counters c;
static struct slot *slots;
static int nslots;
static pid_t my_tid;
static void *unmapped;
/* --high-pop: the pop area above 4 GiB, and the canary page at its alias */
static struct high_pop hp;
static struct pop_area *high_area;

static long futex6(uint32_t *uaddr, unsigned long op, uint32_t val, void *uaddr2, uint32_t val3)
{
	long r = syscall(SYS_futex, uaddr, (int)op, val, NULL, uaddr2, val3);

	return r == -1 ? -errno : r;
}

static uint32_t load(const uint32_t *p)
{
	return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

/* The waiter: sleep in the wait op, report, and for PI hold the lock until told to unlock. */
static void waiter_body(struct slot *s)
{
	unsigned int turns = 0;
	long r, deadline;

	__atomic_store_n(&s->tid, (int32_t)syscall(SYS_gettid), __ATOMIC_SEQ_CST);
	r = futex6(&s->lock, s->wait_op, s->wait_val, NULL, s->wait_bits);
	__atomic_store_n(&s->ret, (int32_t)r, __ATOMIC_SEQ_CST);
	__atomic_store_n(&s->done, 1, __ATOMIC_SEQ_CST);
	if (s->kind == OP_PI && r == 0) {
		deadline = now_ms() + RELEASE_TIMEOUT_MS;
		while (!__atomic_load_n(&s->release, __ATOMIC_SEQ_CST) && now_ms() < deadline)
			poll_pause(&turns);
		/* FUTEX_WAITERS is set after a handover: only the kernel can unlock it. */
		s->unlock_ret = (int32_t)futex6(&s->lock, s->unlock_op, 0, NULL, 0);
	}
	__atomic_store_n(&s->finished, 1, __ATOMIC_SEQ_CST);
}

static void *waiter_thread(void *arg)
{
	waiter_body(arg);
	return NULL;
}

static struct slot *new_slot(enum op_kind kind, int shared, uint32_t lock)
{
	struct slot *s;
	unsigned long priv = shared ? 0 : o.private_flag;

	if (nslots == MAX_SLOTS) {
		fprintf(stderr, "out of slots\n");
		exit(2);
	}
	s = &slots[nslots++];
	memset(s, 0, sizeof(*s));
	s->lock = lock;
	s->kind = kind;
	s->wait_val = lock;
	s->wait_bits = kind == OP_BITSET ? WAIT_BITS : 0;
	s->wait_op = (kind == OP_WAKE ? o.wait : kind == OP_BITSET ? o.wait_bitset : o.lock_pi) | priv;
	s->unlock_op = o.unlock_pi | priv;
	return s;
}

/* Blocked in futex() on this word: /proc/<tid>/syscall shows the call only while it sleeps. */
static int in_futex_on(const struct waiter *w)
{
	char path[64], buf[256];
	unsigned long nr, arg0, arg1;
	FILE *f;
	int ok = 0;

	if (w->shared)
		snprintf(path, sizeof(path), "/proc/%d/syscall", (int)w->s->tid);
	else
		snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)w->s->tid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (fgets(buf, sizeof(buf), f) && sscanf(buf, "%lu 0x%lx 0x%lx", &nr, &arg0, &arg1) == 3)
		ok = nr == (unsigned long)SYS_futex && arg0 == (unsigned long)(uintptr_t)&w->s->lock &&
		     (uint32_t)arg1 == w->s->wait_op;
	fclose(f);
	return ok;
}

static int waiter_asleep(const struct waiter *w)
{
	if (!in_futex_on(w))
		return 0;
	return w->s->kind != OP_PI || (load(&w->s->lock) & FUTEX_WAITERS);
}

/* Start a waiter and wait until it is really asleep in the kernel; 0 when it never got there. */
static int start_waiter(struct waiter *w, struct slot *s, int shared)
{
	unsigned int turns = 0;
	long deadline = now_ms() + WAKE_TIMEOUT_MS;

	w->s = s;
	w->shared = shared;
	if (shared) {
		w->pid = fork();
		if (w->pid < 0) {
			perror("fork");
			exit(2);
		}
		if (!w->pid) {
			waiter_body(s);
			_exit(0);
		}
	} else if (pthread_create(&w->thread, NULL, waiter_thread, s)) {
		fprintf(stderr, "pthread_create failed\n");
		exit(2);
	}
	while (now_ms() < deadline) {
		if (__atomic_load_n(&s->tid, __ATOMIC_SEQ_CST) && waiter_asleep(w)) {
			c.waiters_blocked++;
			return 1;
		}
		if (__atomic_load_n(&s->done, __ATOMIC_SEQ_CST))
			break;
		poll_pause(&turns);
	}
	fprintf(stderr, "%s: waiter never blocked (done %d ret %d)\n", o.check, (int)s->done,
		(int)s->ret);
	c.setup_failed++;
	return 0;
}

/*
 * Reap a waiter that has finished. One still stuck is left behind: a forked
 * one is killed, a thread stays asleep on its own word until we exit.
 */
static void end_waiter(struct waiter *w, long timeout_ms)
{
	if (!wait_flag(&w->s->finished, timeout_ms)) {
		fprintf(stderr, "%s: abandoning a stuck waiter (tid %d)\n", o.check, (int)w->s->tid);
		c.cleanup_bad++;
		if (w->shared) {
			kill(w->pid, SIGKILL);
			waitpid(w->pid, NULL, 0);
		}
		return;
	}
	if (w->shared)
		waitpid(w->pid, NULL, 0);
	else
		pthread_join(w->thread, NULL);
}

/* Where a case puts pop: its own stack, or the area above 4 GiB. */
static struct pop_area *pop_place(struct pop_area *local)
{
	return high_area ? high_area : local;
}

/* After a case: only pop may have changed, never the alias page; each write counts once. */
static void check_alias(void)
{
	if (high_area && high_pop_alias_touched(&hp)) {
		c.alias_touched++;
		fprintf(stderr, "%s: the alias page of pop %p was written\n", o.check,
			(void *)&high_area->pop);
		memset(hp.alias, ALIAS_FILL, PAGE);
	}
}

static void fill_pop(struct pop_area *p)
{
	p->guard_lo = GUARD;
	p->guard_hi = GUARD;
	p->pop.q = POP_MARK;
	if (o.width == 32)
		p->pop.word[1] = CANARY;
}

static uint64_t pop_value(const struct pop_area *p)
{
	return o.width == 64 ? p->pop.q : p->pop.word[0];
}

static uint64_t pop_mark(void)
{
	return o.width == 64 ? POP_MARK : (uint32_t)POP_MARK;
}

/* Neighbours of pop: only the pop bytes may change, whatever the case. */
static int neighbours_intact(const struct pop_area *p)
{
	return p->guard_lo == GUARD && p->guard_hi == GUARD &&
	       (o.width == 64 || p->pop.word[1] == CANARY);
}

static unsigned long unlock_op(enum op_kind kind, int shared)
{
	unsigned long op = kind == OP_WAKE ? o.op_wake : kind == OP_BITSET ? o.op_bitset : o.op_pi;

	return shared ? op : op | o.private_flag;
}

/* val: nr_wake for wake/bitset (one waiter to wake), ignored by the PI unlock. */
static long do_unlock(struct slot *s, enum op_kind kind, int shared, void *pop, uint32_t bits)
{
	uint32_t val = kind == OP_PI ? (uint32_t)my_tid : 1;

	return futex6(&s->lock, unlock_op(kind, shared), val, pop, bits);
}

static void note(int bad, unsigned long *counter, const char *what, enum op_kind kind, int shared,
		 const char *fmt, long got)
{
	if (!bad)
		return;
	(*counter)++;
	fprintf(stderr, "%s: %s %s %s: ", o.check, kind_name[kind], shared ? "shared" : "private",
		what);
	fprintf(stderr, fmt, got);
	fputc('\n', stderr);
}

/* The contended unlock: a waiter asleep, the op unlocks, clears pop and wakes it. */
static void case_contended(enum op_kind kind, int shared)
{
	uint32_t lock0 = kind == OP_PI ? (uint32_t)my_tid : (uint32_t)my_tid | FUTEX_WAITERS;
	struct slot *s = new_slot(kind, shared, lock0);
	struct pop_area local, *pop = pop_place(&local);
	struct waiter w;
	uint32_t want_lock, lock;
	long ret, want_ret;
	int woken;

	c.cases++;
	if (!start_waiter(&w, s, shared))
		return;
	fill_pop(pop);
	ret = do_unlock(s, kind, shared, &pop->pop, kind == OP_BITSET ? WAKE_BITS : 0);
	lock = load(&s->lock);
	want_ret = kind == OP_PI ? 0 : 1;
	want_lock = kind == OP_PI ? FUTEX_WAITERS | (uint32_t)s->tid : 0;
	note(ret != want_ret, &c.bad_return, "contended return", kind, shared, "%ld", ret);
	note(lock != want_lock, &c.lock_word_bad, "contended lock word", kind, shared, "0x%lx",
	     (long)lock);
	note(pop_value(pop) != 0, &c.pop_not_cleared, "contended pop", kind, shared, "0x%lx",
	     (long)pop_value(pop));
	note(!neighbours_intact(pop), &c.canary_bad, "contended canary", kind, shared, "0x%lx",
	     (long)pop->pop.word[1]);
	c.high_pop += high_area != NULL;
	check_alias();
	woken = wait_flag(&s->done, WAKE_TIMEOUT_MS);
	if (woken) {
		c.waiters_woken++;
		note(s->ret != 0, &c.waiter_bad, "waiter return", kind, shared, "%ld", (long)s->ret);
	}
	note(!woken, &c.wake_timeouts, "waiter not woken in 5 s", kind, shared, "%ld", 0);
	s->release = 1;
	end_waiter(&w, woken ? WAKE_TIMEOUT_MS : 0);
	if (kind == OP_PI && woken && s->finished)
		note(s->unlock_ret != 0 || load(&s->lock) != 0, &c.cleanup_bad, "waiter unlock",
		     kind, shared, "%ld", (long)s->unlock_ret);
}

/* Another TID in the word: only the PI unlock checks the owner. */
static void case_wrong_owner(enum op_kind kind, int shared)
{
	uint32_t other = (uint32_t)getppid();
	uint32_t lock0 = kind == OP_PI ? other : other | FUTEX_WAITERS;
	struct slot *s = new_slot(kind, shared, lock0);
	struct pop_area local, *pop = pop_place(&local);
	long ret;
	int bad;

	c.cases++;
	fill_pop(pop);
	ret = do_unlock(s, kind, shared, &pop->pop, kind == OP_BITSET ? WAKE_BITS : 0);
	if (kind == OP_PI)
		bad = ret != -EPERM || load(&s->lock) != lock0 || pop_value(pop) != pop_mark();
	else
		bad = ret != 0 || load(&s->lock) != 0 || pop_value(pop) != 0;
	note(bad, &c.wrong_owner_bad, "wrong owner (ret, then see lock/pop)", kind, shared, "%ld",
	     ret);
	if (bad)
		fprintf(stderr, "  lock 0x%x pop 0x%llx\n", load(&s->lock),
			(unsigned long long)pop_value(pop));
	note(!neighbours_intact(pop), &c.canary_bad, "wrong owner canary", kind, shared, "0x%lx",
	     (long)pop->pop.word[1]);
	check_alias();
}

/* msync() fails with ENOMEM on an address no mapping covers. */
static int still_unmapped(void)
{
	void *page = (void *)((uintptr_t)unmapped & ~(uintptr_t)(PAGE - 1));

	if (msync(page, PAGE, MS_ASYNC) == -1 && errno == ENOMEM)
		return 1;
	fprintf(stderr, "%s: the pop hole at %p got mapped\n", o.check, unmapped);
	c.setup_failed++;
	return 0;
}

/* pop points at no mapping: the clear faults after the unlock. */
static void case_unmapped_pop(enum op_kind kind, int shared)
{
	uint32_t lock0 = kind == OP_PI ? (uint32_t)my_tid : (uint32_t)my_tid | FUTEX_WAITERS;
	struct slot *s = new_slot(kind, shared, lock0);
	struct waiter w;
	uint32_t lock;
	long ret;
	int bad;

	c.cases++;
	if (!still_unmapped() || !start_waiter(&w, s, shared))
		return;
	ret = do_unlock(s, kind, shared, unmapped, kind == OP_BITSET ? WAKE_BITS : 0);
	lock = load(&s->lock);
	still_unmapped();	/* the waiter's stack must not have filled the hole */
	if (kind == OP_PI) {
		/* Handed over and woken before the clear failed. */
		bad = ret != -EFAULT || lock != (FUTEX_WAITERS | (uint32_t)s->tid) ||
		      !wait_flag(&s->done, WAKE_TIMEOUT_MS) || s->ret != 0;
	} else {
		/* Returned before waking: wake it ourselves, as user space would have to. */
		bad = ret != -EFAULT || lock != 0;
		if (!in_futex_on(&w))
			c.unmapped_waiter_woken++;
		futex6(&s->lock, o.wake | (shared ? 0 : o.private_flag), 1, NULL, 0);
		bad |= !wait_flag(&s->done, WAKE_TIMEOUT_MS);
	}
	note(bad, &c.unmapped_pop_bad, "unmapped pop (ret, then see lock)", kind, shared, "%ld", ret);
	if (bad)
		fprintf(stderr, "  lock 0x%x waiter done %d ret %d\n", lock, (int)s->done,
			(int)s->ret);
	s->release = 1;
	end_waiter(&w, WAKE_TIMEOUT_MS);
}

/* bitset 0 is refused before the unlock: nothing may change. */
static void case_bitset_zero(int shared)
{
	uint32_t lock0 = (uint32_t)my_tid | FUTEX_WAITERS;
	struct slot *s = new_slot(OP_BITSET, shared, lock0);
	struct pop_area local, *pop = pop_place(&local);
	long ret;

	c.cases++;
	fill_pop(pop);
	ret = do_unlock(s, OP_BITSET, shared, &pop->pop, 0);
	note(ret != -EINVAL || load(&s->lock) != lock0 || pop_value(pop) != pop_mark(),
	     &c.bitset_zero_bad, "bitset 0", OP_BITSET, shared, "%ld", ret);
	note(!neighbours_intact(pop), &c.canary_bad, "bitset 0 canary", OP_BITSET, shared,
	     "0x%lx", (long)pop->pop.word[1]);
	check_alias();
}

/*
 * The robust bits on a command that has no unlock (FUTEX_WAIT) are refused with
 * -ENOSYS. The word does not hold val, so a wait wrongly let through returns at
 * once (-EAGAIN) instead of sleeping.
 */
static void case_bad_command(int shared)
{
	uint32_t lock0 = (uint32_t)my_tid | FUTEX_WAITERS;
	struct slot *s = new_slot(OP_WAKE, shared, lock0);
	unsigned long robust_bits = o.robust_unlock | (o.width == 32 ? o.robust_list32 : 0);
	unsigned long op = (o.wait | robust_bits) | (shared ? 0 : o.private_flag);
	struct pop_area local, *pop = pop_place(&local);
	long ret;

	c.cases++;
	fill_pop(pop);
	ret = futex6(&s->lock, op, ~lock0, &pop->pop, 0);
	note(ret != -ENOSYS || load(&s->lock) != lock0 || pop_value(pop) != pop_mark(),
	     &c.bad_command_bad, "wait with robust bits", OP_WAKE, shared, "%ld", ret);
	check_alias();
}

static void parse_args(int argc, char **argv)
{
	static const char usage[] =
		"robust-unlock-ops --check NAME --width 64|32 --op-wake N --op-bitset N --op-pi N "
		"--private-flag N --wait N --wait-bitset N --lock-pi N --unlock-pi N --wake N "
		"--robust-unlock N --robust-list32 N [--high-pop 1 (64-bit, --width 32)]";
	const char *keys[] = { "--width", "--op-wake", "--op-bitset", "--op-pi", "--private-flag",
			       "--wait", "--wait-bitset", "--lock-pi", "--unlock-pi", "--wake",
			       "--robust-unlock", "--robust-list32" };
	unsigned long *vals[] = { &o.width, &o.op_wake, &o.op_bitset, &o.op_pi, &o.private_flag,
				  &o.wait, &o.wait_bitset, &o.lock_pi, &o.unlock_pi, &o.wake,
				  &o.robust_unlock, &o.robust_list32 };
	unsigned int seen = 0, all = (1U << (sizeof(keys) / sizeof(keys[0]))) - 1;
	int i;
	size_t k;

	for (i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--check")) {
			o.check = argv[i + 1];
			continue;
		}
		if (!strcmp(argv[i], "--high-pop")) {
			o.high_pop = parse_ulong(argv[i + 1], argv[i]);
			continue;
		}
		for (k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
			if (!strcmp(argv[i], keys[k]))
				break;
		if (k == sizeof(keys) / sizeof(keys[0]))
			break;
		*vals[k] = parse_ulong(argv[i + 1], keys[k]);
		seen |= 1U << k;
	}
	if (i != argc || !o.check || seen != all || (o.width != 64 && o.width != 32) ||
	    (sizeof(void *) == 4 && o.width == 64) ||
	    (o.high_pop && (o.width != 32 || sizeof(void *) != 8))) {
		fprintf(stderr, "usage: %s\n", usage);
		exit(2);
	}
}

int main(int argc, char **argv)
{
	static const enum op_kind kinds[] = { OP_WAKE, OP_BITSET, OP_PI };
	long start = now_ms();
	char *hole;
	size_t k;
	int shared;

	parse_args(argc, argv);
	my_tid = (pid_t)syscall(SYS_gettid);
	slots = mmap(NULL, MAX_SLOTS * sizeof(struct slot), PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	/*
	 * A one-page hole between two PROT_NONE pages: a lone freed page next to
	 * free space would be reused by the next thread stack.
	 */
	hole = mmap(NULL, 3 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (slots == MAP_FAILED || hole == MAP_FAILED || munmap(hole + PAGE, PAGE)) {
		perror("mmap");
		return 2;
	}
	unmapped = hole + PAGE + 64;
	/* Mid-page, so that a stray write on either side of pop stays in the page. */
	if (o.high_pop && !high_pop_map(&hp, MAP_PRIVATE))
		high_area = (struct pop_area *)(hp.page + PAGE / 2);
	for (shared = 1; shared >= 0; shared--) {
		for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
			case_contended(kinds[k], shared);
			case_wrong_owner(kinds[k], shared);
			case_unmapped_pop(kinds[k], shared);
		}
		case_bitset_zero(shared);
		case_bad_command(shared);
	}
	/* all_set_up 0: some case never got its waiter asleep (or its hole): inconclusive. */
	emit_record(o.check,
		    "cases", c.cases, "all_set_up", (unsigned long)(c.setup_failed == 0), "waiters_blocked", c.waiters_blocked,
		    "waiters_woken", c.waiters_woken, "setup_failed", c.setup_failed,
		    "bad_return", c.bad_return, "lock_word_bad", c.lock_word_bad,
		    "pop_not_cleared", c.pop_not_cleared, "canary_bad", c.canary_bad,
		    "wake_timeouts", c.wake_timeouts, "waiter_bad", c.waiter_bad,
		    "wrong_owner_bad", c.wrong_owner_bad, "unmapped_pop_bad", c.unmapped_pop_bad,
		    "bitset_zero_bad", c.bitset_zero_bad, "bad_command_bad", c.bad_command_bad,
		    "unmapped_waiter_woken", c.unmapped_waiter_woken, "cleanup_bad", c.cleanup_bad,
		    "high_pop", c.high_pop, "alias_touched", c.alias_touched,
		    "elapsed_ms", (unsigned long)(now_ms() - start), NULL);
	return 0;
}
