// SPDX-License-Identifier: GPL-2.0
/*
 * robust-exit-walk: what the kernel does with a dying thread's robust list and
 * its pending op. At exit it walks the list (exit_robust_list, or
 * compat_exit_robust_list for a 32-bit task), calls handle_futex_death on each
 * entry, skipping the pending one, and then on the pending one: a lock whose
 * word holds the dead thread's TID gets FUTEX_OWNER_DIED and one waiter is woken;
 * any other word is left alone, but a pending op still wakes a waiter there, so
 * that a wake-up the thread died before sending is not lost.
 *
 * Each round a thread registers a robust list and waits. The main thread then
 * writes, in that thread's name, what a mutex implementation would have left in
 * memory (the exit walk reads nothing but memory), starts waiters, checks in
 * /proc that they sleep in the kernel on their words, and lets the thread return.
 * pthread_join() returns after the walk: the kernel clears the thread's TID word
 * only once the robust list has been handled.
 *
 * The scenarios, by what pop points at when the thread dies:
 *   held:            a lock it holds that is not on the list, while two held
 *                    locks are; all three must end up with FUTEX_OWNER_DIED.
 *                    A robust pthread mutex waiter on pop's lock gets EOWNERDEAD,
 *                    a raw FUTEX_WAIT waiter on a listed lock wakes to the bit.
 *   listed:          a held lock that is on the list too (between two others):
 *                    the list walk skips it so that the pending op handles it,
 *                    once; its raw waiter wakes to the bit.
 *   released:        a lock it released (0) without waking the waiter that went
 *                    to sleep while it held the lock: the word stays 0, and the
 *                    pending op's death wakes that waiter.
 *   released-listed: a released lock still on the list: the word stays 0.
 *   other-owner:     a lock that another thread took after the release: its
 *                    word (that thread's TID) stays.
 * Each held lock without a waiter must read exactly FUTEX_OWNER_DIED. Counters:
 * each scenario's name counts its rounds that were set up as planned; marked,
 * kept, eownerdead, raw_woken and free_woken what came out right; unmarked,
 * touched, not_woken and wrong_wake what came out wrong (stderr says where).
 *
 * The width of the list is the program's: 64-bit pointers in a 64-bit build, a
 * compat list in a 32-bit one.
 */
#define _GNU_SOURCE
#include "vdso_helpers.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SLOTS 3
#define WAKE_TIMEOUT_MS 5000
#define ASLEEP_TIMEOUT_MS 5000

#define READ_ONCE(x) (*(volatile __typeof__(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile __typeof__(x) *)&(x) = (v))

/* What a lock word holds when the thread dies, and who waits on it. */
enum word { UNUSED, HELD, RELEASED, OTHER };
enum waiter { NONE, RAW, MUTEX };

struct lock_plan {
	enum word word;
	enum waiter waiter;
	int listed;
};

struct scenario {
	const char *name;
	int pending;			/* the slot pop points at */
	struct lock_plan lock[SLOTS];
};

static const struct scenario scenarios[] = {
	{ "held", 2, { { HELD, RAW, 1 }, { HELD, NONE, 1 }, { HELD, MUTEX, 0 } } },
	{ "listed", 1, { { HELD, NONE, 1 }, { HELD, RAW, 1 }, { HELD, NONE, 1 } } },
	{ "released", 1, { { HELD, NONE, 1 }, { RELEASED, RAW, 0 } } },
	{ "released_listed", 0, { { RELEASED, NONE, 1 }, { HELD, NONE, 1 } } },
	{ "other_owner", 0, { { OTHER, NONE, 0 } } },
};
#define SCENARIOS (sizeof(scenarios) / sizeof(scenarios[0]))

/* A robust mutex and its list entry; the futex word is the mutex's __lock. */
struct slot {
	struct robust_list entry;
	pthread_mutex_t m;
	/* the waiter's mailbox */
	pthread_t waiter;
	pid_t waiter_tid;
	int done, ret;
	uint32_t seen;
};

/* One round: the dying thread's list head and the locks it leaves behind. */
static struct round {
	struct robust_list_head head;
	struct slot slot[SLOTS];
	pthread_t thread;
	pid_t tid;
	int registered, die;
} r;

struct counters {
	unsigned long reached[SCENARIOS];
	unsigned long marked, kept, eownerdead, raw_woken, free_woken;
	unsigned long unmarked, touched, not_woken, wrong_wake, setup_failed;
};

static struct counters c;
static const char *check;

static uint32_t *word_of(struct slot *s)
{
	return (uint32_t *)&s->m.__data.__lock;
}

static void *dying_thread(void *arg)
{
	unsigned int turns = 0;
	(void)arg;
	WRITE_ONCE(r.tid, (pid_t)syscall(SYS_gettid));
	if (syscall(SYS_set_robust_list, &r.head, sizeof(r.head))) {
		WRITE_ONCE(r.registered, -1);
		return NULL;
	}
	WRITE_ONCE(r.registered, 1);
	while (!READ_ONCE(r.die))
		poll_pause(&turns);
	return NULL;	/* the thread exits: the kernel walks its list */
}

/* A raw waiter as a robust mutex's slow path has it: set FUTEX_WAITERS, then sleep. */
static void *raw_waiter(void *arg)
{
	struct slot *s = arg;
	uint32_t *w = word_of(s), val = __atomic_or_fetch(w, FUTEX_WAITERS, __ATOMIC_SEQ_CST);
	struct timespec timeout = { WAKE_TIMEOUT_MS / 1000, 0 };
	long ret;

	WRITE_ONCE(s->waiter_tid, (pid_t)syscall(SYS_gettid));
	/* Shared, never private: handle_futex_death wakes with a shared key. */
	ret = syscall(SYS_futex, w, FUTEX_WAIT, val, &timeout, NULL, 0);
	s->ret = ret ? errno : 0;
	s->seen = __atomic_load_n(w, __ATOMIC_SEQ_CST);
	WRITE_ONCE(s->done, 1);
	return NULL;
}

static void *mutex_waiter(void *arg)
{
	struct slot *s = arg;
	struct timespec until;

	WRITE_ONCE(s->waiter_tid, (pid_t)syscall(SYS_gettid));
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += WAKE_TIMEOUT_MS / 1000;
	s->ret = pthread_mutex_timedlock(&s->m, &until);
	if (s->ret == EOWNERDEAD) {
		pthread_mutex_consistent(&s->m);
		pthread_mutex_unlock(&s->m);
	} else if (s->ret == 0) {
		pthread_mutex_unlock(&s->m);
	}
	WRITE_ONCE(s->done, 1);
	return NULL;
}

/* The state letter of a thread, from /proc/self/task/<tid>/stat; 0 when unreadable. */
static char thread_state(pid_t tid)
{
	char path[80], buf[512], *paren;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	paren = strrchr(buf, ')');
	return paren && paren[1] == ' ' ? paren[2] : 0;
}

/*
 * Queued in futex() on this word: /proc/<tid>/syscall shows the call only while
 * the thread sleeps, and the sleep is the futex wait itself only when it is
 * interruptible ('S'): on its way there, futex() can block uninterruptibly
 * ('D') before it has read the word and queued itself.
 */
static int asleep_on(const struct slot *s)
{
	pid_t tid = READ_ONCE(s->waiter_tid);

	return futex_blocked_on(tid, word_of((struct slot *)s)) && thread_state(tid) == 'S';
}

static int start_waiter(struct slot *s, enum waiter kind)
{
	unsigned int turns = 0;
	long deadline = now_ms() + ASLEEP_TIMEOUT_MS;

	if (pthread_create(&s->waiter, NULL, kind == RAW ? raw_waiter : mutex_waiter, s)) {
		fprintf(stderr, "pthread_create failed\n");
		exit(2);
	}
	while (now_ms() < deadline && !READ_ONCE(s->done)) {
		if (READ_ONCE(s->waiter_tid) && asleep_on(s))
			return 1;
		poll_pause(&turns);
	}
	fprintf(stderr, "%s: a waiter never slept on its word\n", check);
	return 0;
}

static void init_round(void)
{
	pthread_mutexattr_t attr;
	int i;

	memset(&r, 0, sizeof(r));
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
	for (i = 0; i < SLOTS; i++)
		pthread_mutex_init(&r.slot[i].m, &attr);
	pthread_mutexattr_destroy(&attr);
	r.head.list.next = &r.head.list;
	r.head.futex_offset = (long)offsetof(struct slot, m.__data.__lock) -
			      (long)offsetof(struct slot, entry);
}

/* Link the listed slots in order, and point pop at the pending one. */
static void build_list(const struct scenario *sc)
{
	struct robust_list *tail = &r.head.list;
	int i;

	for (i = 0; i < SLOTS; i++) {
		if (!sc->lock[i].listed)
			continue;
		tail->next = &r.slot[i].entry;
		tail = tail->next;
	}
	tail->next = &r.head.list;
	r.head.list_op_pending = &r.slot[sc->pending].entry;
}

/* Words as the thread holds them, waiters asleep, then the released ones let go. */
static int set_words(const struct scenario *sc, uint32_t other)
{
	int i;

	for (i = 0; i < SLOTS; i++) {
		const struct lock_plan *l = &sc->lock[i];

		if (l->word != UNUSED)
			*word_of(&r.slot[i]) = l->word == OTHER ? other : (uint32_t)r.tid;
		if (l->waiter != NONE && !start_waiter(&r.slot[i], l->waiter))
			return 0;
	}
	/* Released without the FUTEX_WAKE: the thread dies before it sends one. */
	for (i = 0; i < SLOTS; i++)
		if (sc->lock[i].word == RELEASED)
			__atomic_store_n(word_of(&r.slot[i]), 0, __ATOMIC_SEQ_CST);
	return 1;
}

/* Count a finding; a bad one is also told on stderr. */
static void tally(int good, unsigned long *good_count, unsigned long *bad_count,
		  const struct scenario *sc, int i, const char *bad_what, uint32_t word)
{
	if (good) {
		(*good_count)++;
		return;
	}
	(*bad_count)++;
	fprintf(stderr, "%s: %s: slot %d%s: %s (0x%x)\n", check, sc->name, i,
		i == sc->pending ? " (pending)" : "", bad_what, word);
}

/* A waiter's outcome: woken in time, and by what the walk promises. */
static void judge_waiter(const struct scenario *sc, int i, struct slot *s)
{
	unsigned int turns = 0;
	const struct lock_plan *l = &sc->lock[i];
	long deadline = now_ms() + WAKE_TIMEOUT_MS + 1000;
	int marked;

	while (!READ_ONCE(s->done) && now_ms() < deadline)
		poll_pause(&turns);
	marked = s->ret == 0 && (s->seen & FUTEX_OWNER_DIED);
	if (!READ_ONCE(s->done) || s->ret == ETIMEDOUT)
		tally(0, NULL, &c.not_woken, sc, i, "waiter not woken", *word_of(s));
	else if (l->waiter == MUTEX)
		tally(s->ret == EOWNERDEAD, &c.eownerdead, &c.wrong_wake, sc, i,
		      "pthread_mutex_timedlock did not return EOWNERDEAD but", (uint32_t)s->ret);
	else if (l->word == HELD)
		tally(marked, &c.raw_woken, &c.wrong_wake, sc, i,
		      "the raw waiter's FUTEX_WAIT failed, or it saw no FUTEX_OWNER_DIED", s->seen);
	else
		tally(s->ret == 0 && s->seen == 0, &c.free_woken, &c.wrong_wake, sc, i,
		      "the raw waiter's FUTEX_WAIT failed, or it woke to a word not 0", s->seen);
	if (l->waiter == RAW && s->ret && s->ret != ETIMEDOUT)
		fprintf(stderr, "%s: %s: slot %d: FUTEX_WAIT: %s\n", check, sc->name, i,
			strerror(s->ret));
	c.marked += l->word == HELD && (s->ret == EOWNERDEAD || marked);
	pthread_join(s->waiter, NULL);
}

/* A word with no waiter: held ones marked, the others as they were. */
static void judge_word(const struct scenario *sc, int i, uint32_t other)
{
	const struct lock_plan *l = &sc->lock[i];
	uint32_t word = *word_of(&r.slot[i]);

	if (l->word == HELD)
		tally(word == FUTEX_OWNER_DIED, &c.marked, &c.unmarked, sc, i,
		      "the held lock was not marked", word);
	else
		tally(word == (l->word == OTHER ? other : 0), &c.kept, &c.touched, sc, i,
		      "the word changed", word);
}

static void run_scenario(const struct scenario *sc, size_t index)
{
	unsigned int turns = 0;
	uint32_t other = (uint32_t)getpid();
	long deadline = now_ms() + ASLEEP_TIMEOUT_MS;
	int i, ready;

	init_round();
	pthread_create(&r.thread, NULL, dying_thread, NULL);
	while (!READ_ONCE(r.registered) && now_ms() < deadline)
		poll_pause(&turns);
	build_list(sc);
	ready = READ_ONCE(r.registered) == 1 && set_words(sc, other);
	WRITE_ONCE(r.die, 1);
	pthread_join(r.thread, NULL);
	for (i = 0; i < SLOTS; i++) {
		if (sc->lock[i].waiter != NONE)
			judge_waiter(sc, i, &r.slot[i]);
		else if (sc->lock[i].word != UNUSED)
			judge_word(sc, i, other);
	}
	c.reached[index] += ready;
	c.setup_failed += !ready;
}

static void emit(void)
{
	const char *keys[SCENARIOS + 10] = { "marked", "kept", "eownerdead", "raw_woken",
					      "free_woken", "unmarked", "touched", "not_woken",
					      "wrong_wake", "setup_failed" };
	unsigned long values[SCENARIOS + 10] = { c.marked, c.kept, c.eownerdead, c.raw_woken,
						 c.free_woken, c.unmarked, c.touched,
						 c.not_woken, c.wrong_wake, c.setup_failed };
	size_t i;

	for (i = 0; i < SCENARIOS; i++) {
		keys[10 + i] = scenarios[i].name;
		values[10 + i] = c.reached[i];
	}
	emit_record_array(check, keys, values, SCENARIOS + 10);
}

int main(int argc, char **argv)
{
	struct test_args o = { .count = 3 };
	unsigned long round;
	size_t i;

	parse_test_args(argc, argv, &o, "robust-exit-walk --check NAME [--rounds N]");
	check = o.check;
	for (round = 0; round < o.count; round++)
		for (i = 0; i < SCENARIOS; i++)
			run_scenario(&scenarios[i], i);
	emit();
	return 0;
}
