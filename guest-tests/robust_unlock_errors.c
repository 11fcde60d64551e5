// SPDX-License-Identifier: GPL-2.0
/*
 * robust-unlock-errors: a robust unlock that fails must fail cleanly. User
 * space calls futex(lock, FUTEX_UNLOCK_*_LIST* , ..., pop) when the vDSO's
 * cmpxchg found waiters; when the kernel refuses the call, the caller still
 * holds the lock and still has pop pointing at it, and the robust list is its
 * only safety net. So for every case of the data file (a bad pop, a bad lock
 * address, bitset 0, a PI lock that is not ours, the robust flags on a command
 * or syscall that has no robust unlock, ...), shared and private:
 *   - set up a guarded lock word, a guarded pop holding a mark, and a waiter
 *     thread we have seen asleep in FUTEX_WAIT on the word;
 *   - make the call and compare its errno with the one the file gives;
 *   - the word and its neighbours, pop and its guards must be as before (or the
 *     word 0 where the file says the kernel unlocked before failing);
 *   - the waiter must still be queued: our own FUTEX_WAKE must find it;
 *   - get_robust_list(0) must still give the head glibc registered.
 * The cases run in a thread of their own. At the end that thread dies holding
 * a robust mutex while we sleep on its word: the kernel's exit walk of its
 * robust list must mark the word FUTEX_OWNER_DIED and wake us, and glibc then
 * hands us the mutex with EOWNERDEAD. A robust list the error paths dropped or
 * broke would leave us asleep.
 */
#define _GNU_SOURCE
#include "vdso_helpers.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define MAX_CASES 64
#define MAX_OPS 32
#define MAX_SLOTS 512
#define WAKE_TIMEOUT_MS 5000
#define WAIT_BITS 0x6U
#define FILL 0xa5
#define GUARD 0x6a6a6a6aU
#define KERNEL_POP 0xffffffff81000000ULL

struct error_case {
	char name[48], klass[24], command[24], call[24], extra[24];
	char lock[24], uaddr[24], pop[24], val3[16], waiter[16], errno_name[16], lock_after[16];
	char ops[4][16];
	int nops, has_errno, has_ret, abi_mask;
	long ret;
};

struct named { char name[32]; unsigned long value; };

/* The word and its neighbours: the word sits at bytes, or at bytes + 1 when unaligned. */
struct lock_area {
	uint32_t lo;
	uint8_t bytes[8];
	uint32_t hi;
} __attribute__((aligned(64)));

struct pop_area {
	uint32_t guard_lo, pad;
	union { uint64_t q; uint32_t word[2]; } pop;
	uint32_t guard_hi;
} __attribute__((aligned(8)));

struct waiter {
	uint32_t *addr;
	uint32_t val;
	unsigned long op;
	volatile int32_t tid, done, ret;
	pthread_t thread;
};

/* One call to make: the case, the op or flags it takes, shared or private. */
struct run {
	const struct error_case *c;
	const char *op;
	unsigned long bits;
	int shared;
};

static struct error_case cases[MAX_CASES];
static int ncases;
static struct named ops[MAX_OPS], syscalls_[8], futex2[4];
static int nops, nsyscalls, nfutex2;
static const char *check, *cases_path;
static unsigned long width;

static struct lock_area *slots;
static int nslots;
static char *hole;
static struct pop_area *ro_pop;
static pid_t my_tid;
static void *robust_head;

/* Counters: the fixed ones, then one per case name and one per class. */
#define MAX_COUNTERS 160
static const char *counter_keys[MAX_COUNTERS];
static unsigned long counter_values[MAX_COUNTERS];
static int ncounters;

static unsigned long *counter(const char *key)
{
	int i;

	for (i = 0; i < ncounters; i++)
		if (!strcmp(counter_keys[i], key))
			return &counter_values[i];
	if (ncounters == MAX_COUNTERS) {
		fprintf(stderr, "too many counters\n");
		exit(2);
	}
	counter_keys[ncounters] = strdup(key);
	return &counter_values[ncounters++];
}

static void bump(const char *key)
{
	(*counter(key))++;
}

static void bad(const char *key, const struct run *r, const char *fmt, long got)
{
	bump(key);
	fprintf(stderr, "%s: %s %s %s %s: ", check, r->c->name, r->op,
		r->shared ? "shared" : "private", key);
	fprintf(stderr, fmt, got);
	fputc('\n', stderr);
}

/* ---- the data file: the subset of TOML its header describes ---- */

static void die_data(int line, const char *why)
{
	fprintf(stderr, "%s:%d: %s\n", cases_path, line, why);
	exit(2);
}

static void copy_str(char *dst, size_t size, const char *v, int line)
{
	size_t n = strlen(v);

	if (n < 2 || v[0] != '"' || v[n - 1] != '"' || n - 2 >= size)
		die_data(line, "expected a short string");
	memcpy(dst, v + 1, n - 2);
	dst[n - 2] = 0;
}

/* ["a", "b"] or [64, 32]: each item, quotes removed, to fn. */
static void each_item(char *v, int line, void (*fn)(struct error_case *, const char *, int),
		      struct error_case *c)
{
	char *item, *save;
	size_t n = strlen(v);

	if (n < 2 || v[0] != '[' || v[n - 1] != ']')
		die_data(line, "expected a one-line array");
	v[n - 1] = 0;
	for (item = strtok_r(v + 1, ", ", &save); item; item = strtok_r(NULL, ", ", &save)) {
		n = strlen(item);
		if (item[0] == '"' && n >= 2 && item[n - 1] == '"') {
			item[n - 1] = 0;
			item++;
		}
		fn(c, item, line);
	}
}

static void add_op(struct error_case *c, const char *item, int line)
{
	if (c->nops == 4 || strlen(item) >= sizeof(c->ops[0]))
		die_data(line, "too many ops");
	strcpy(c->ops[c->nops++], item);
}

static void add_abi(struct error_case *c, const char *item, int line)
{
	unsigned long abi = parse_ulong(item, "abi");

	if (abi != 64 && abi != 32)
		die_data(line, "abi is 64 or 32");
	c->abi_mask |= (int)abi;
}

static void set_named(struct named *table, int *n, int max, const char *key, const char *v)
{
	if (*n == max || strlen(key) >= sizeof(table->name)) {
		fprintf(stderr, "too many names at %s\n", key);
		exit(2);
	}
	strcpy(table[*n].name, key);
	table[(*n)++].value = parse_ulong(v, key);
}

static void case_key(struct error_case *c, const char *key, char *v, int line)
{
	static const struct { const char *key; size_t off, size; } strs[] = {
#define S(k, f) { k, offsetof(struct error_case, f), sizeof(((struct error_case *)0)->f) }
		S("name", name), S("class", klass), S("command", command), S("call", call),
		S("extra", extra), S("lock", lock), S("uaddr", uaddr), S("pop", pop),
		S("val3", val3), S("waiter", waiter), S("errno", errno_name),
		S("lock_after", lock_after),
#undef S
	};
	size_t i;

	for (i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		if (!strcmp(key, strs[i].key)) {
			copy_str((char *)c + strs[i].off, strs[i].size, v, line);
			c->has_errno |= !strcmp(key, "errno");
			return;
		}
	}
	if (!strcmp(key, "ops"))
		each_item(v, line, add_op, c);
	else if (!strcmp(key, "abi"))
		each_item(v, line, add_abi, c);
	else if (!strcmp(key, "ret")) {
		c->ret = (long)parse_ulong(v, "ret");
		c->has_ret = 1;
	} else if (strcmp(key, "why"))
		die_data(line, "unknown key");
}

static struct error_case *new_case(void)
{
	struct error_case *c;

	if (ncases == MAX_CASES) {
		fprintf(stderr, "too many cases\n");
		exit(2);
	}
	c = &cases[ncases++];
	memset(c, 0, sizeof(*c));
	strcpy(c->call, "futex");
	strcpy(c->extra, "none");
	strcpy(c->uaddr, "aligned");
	strcpy(c->pop, "mark");
	strcpy(c->val3, "bits");
	strcpy(c->waiter, "none");
	strcpy(c->lock_after, "same");
	return c;
}

static char *trim(char *s)
{
	char *end = s + strlen(s);

	while (*s == ' ' || *s == '\t')
		s++;
	while (end > s && (end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
		*--end = 0;
	return s;
}

static void read_cases(void)
{
	char buf[512], *s, *eq;
	enum { NONE, SYSCALLS, FUTEX2, CASES } section = NONE;
	FILE *f = fopen(cases_path, "r");
	int line = 0;

	if (!f) {
		perror(cases_path);
		exit(2);
	}
	while (fgets(buf, sizeof(buf), f)) {
		s = trim(buf);
		line++;
		if (!*s || *s == '#')
			continue;
		if (!strcmp(s, "[syscalls]") || !strcmp(s, "[futex2]")) {
			section = s[1] == 's' ? SYSCALLS : FUTEX2;
			continue;
		}
		if (!strcmp(s, "[[cases]]")) {
			section = CASES;
			new_case();
			continue;
		}
		eq = strstr(s, " = ");
		if (!eq || section == NONE)
			die_data(line, "expected key = value inside a table");
		*eq = 0;
		if (section == SYSCALLS)
			set_named(syscalls_, &nsyscalls, 8, s, eq + 3);
		else if (section == FUTEX2)
			set_named(futex2, &nfutex2, 4, s, eq + 3);
		else
			case_key(&cases[ncases - 1], s, eq + 3, line);
	}
	fclose(f);
}

static unsigned long lookup(const struct named *table, int n, const char *name)
{
	int i;

	for (i = 0; i < n; i++)
		if (!strcmp(table[i].name, name))
			return table[i].value;
	fprintf(stderr, "%s: no number for %s (the data file or --op)\n", check, name);
	exit(2);
}

static unsigned long op(const char *name)
{
	return lookup(ops, nops, name);
}

static long errno_value(const char *name)
{
	static const struct { const char *name; long value; } table[] = {
		{ "EFAULT", EFAULT }, { "EINVAL", EINVAL }, { "ENOSYS", ENOSYS },
		{ "EPERM", EPERM }, { "EAGAIN", EAGAIN }, { "EDEADLK", EDEADLK },
	};
	size_t i;

	for (i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (!strcmp(table[i].name, name))
			return table[i].value;
	fprintf(stderr, "%s: unknown errno %s\n", check, name);
	exit(2);
}

/* ---- the waiter ---- */

static long sys(long nr, long a, long b, long c, long d, long e, long f)
{
	long r = syscall(nr, a, b, c, d, e, f);

	return r == -1 ? -errno : r;
}

static long futex6(void *uaddr, unsigned long fop, uint32_t val, void *uaddr2, uint32_t val3)
{
	return sys(SYS_futex, (long)uaddr, (long)fop, (long)val, 0, (long)uaddr2, (long)val3);
}

static void *waiter_thread(void *arg)
{
	struct waiter *w = arg;

	__atomic_store_n(&w->tid, (int32_t)syscall(SYS_gettid), __ATOMIC_SEQ_CST);
	w->ret = (int32_t)futex6(w->addr, w->op, w->val, NULL, 0);
	__atomic_store_n(&w->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static int start_waiter(struct waiter *w, uint32_t *addr, int shared)
{
	unsigned int turns = 0;
	long deadline = now_ms() + WAKE_TIMEOUT_MS;

	memset(w, 0, sizeof(*w));
	w->addr = addr;
	w->val = __atomic_load_n(addr, __ATOMIC_SEQ_CST);
	w->op = op("wait") | (shared ? 0 : op("private_flag"));
	if (pthread_create(&w->thread, NULL, waiter_thread, w)) {
		fprintf(stderr, "pthread_create failed\n");
		exit(2);
	}
	while (now_ms() < deadline && !w->done) {
		if (w->tid && futex_blocked_on(w->tid, addr))
			return 1;
		poll_pause(&turns);
	}
	fprintf(stderr, "%s: waiter never blocked (ret %d)\n", check, (int)w->ret);
	return 0;
}

/*
 * Where the waiter is now: our FUTEX_WAKE returns 1 only when it was still
 * queued. Then it must leave its wait with 0. One that never does is left.
 */
static void end_waiter(struct waiter *w, const struct run *r)
{
	long woke = futex6(w->addr, op("wake") | (r->shared ? 0 : op("private_flag")), 1, NULL, 0);
	int want_asleep = !strcmp(r->c->waiter, "asleep");

	if (want_asleep && woke != 1)
		bad("waiter_woken", r, "our wake found %ld", woke);
	if (!want_asleep && woke != 0)
		bad("waiter_not_woken", r, "our wake found %ld", woke);
	if (!wait_flag(&w->done, WAKE_TIMEOUT_MS)) {
		fprintf(stderr, "%s: abandoning a stuck waiter (tid %d)\n", check, (int)w->tid);
		bump("setup_failed");
		return;
	}
	pthread_join(w->thread, NULL);
	if (w->ret != 0)
		bad("waiter_woken", r, "the waiter's wait returned %ld", w->ret);
}

/* ---- one call ---- */

static uint32_t lock_value(const char *lock)
{
	if (!strcmp(lock, "mine_waiters"))
		return (uint32_t)my_tid | FUTEX_WAITERS;
	if (!strcmp(lock, "mine"))
		return (uint32_t)my_tid;
	if (!strcmp(lock, "other"))
		return (uint32_t)getppid();
	if (!strcmp(lock, "owner_died"))
		return FUTEX_OWNER_DIED;
	return 0;
}

static void fill_pop(struct pop_area *p)
{
	p->guard_lo = GUARD;
	p->pad = GUARD;
	p->guard_hi = GUARD;
	p->pop.q = POP_MARK;
	if (width == 32)
		p->pop.word[1] = CANARY;
}

static void *pop_address(const char *pop, struct pop_area *mark)
{
	if (!strcmp(pop, "unmapped"))
		return hole + 64;
	if (!strcmp(pop, "readonly"))
		return &ro_pop->pop;
	if (!strcmp(pop, "kernel"))
		return (void *)(uintptr_t)KERNEL_POP;
	return &mark->pop;
}

/* The futex op of an unlock run: the test's op for the kind, plus the case's flags. */
static unsigned long futex_op(const struct run *r)
{
	unsigned long base;

	if (!strcmp(r->op, "command"))
		base = op(r->c->command) | r->bits;
	else
		base = op(!strcmp(r->op, "wake") ? "unlock_wake" :
			  !strcmp(r->op, "bitset") ? "unlock_bitset" : "unlock_pi_robust");
	if (!strcmp(r->c->extra, "clock_realtime"))
		base |= op("clock_realtime");
	return base | (r->shared ? 0 : op("private_flag"));
}

static long futex2_call(const struct run *r, uint32_t *uaddr, uint32_t word, uint32_t bits)
{
	static uint32_t other;
	struct futex_waitv { uint64_t val, uaddr; uint32_t flags, reserved; } w[2];
	unsigned long flags = lookup(futex2, nfutex2, "size_u32") | r->bits |
			      (r->shared ? 0 : lookup(futex2, nfutex2, "private"));
	long nr = (long)lookup(syscalls_, nsyscalls, r->c->call);

	memset(w, 0, sizeof(w));
	w[0] = (struct futex_waitv){ ~word, (uintptr_t)uaddr, (uint32_t)flags, 0 };
	w[1] = (struct futex_waitv){ 0, (uintptr_t)&other, (uint32_t)flags, 0 };
	if (!strcmp(r->c->call, "futex_wake"))
		return sys(nr, (long)uaddr, bits, 1, (long)flags, 0, 0);
	if (!strcmp(r->c->call, "futex_wait"))
		return sys(nr, (long)uaddr, (long)~word, bits, (long)flags, 0, 0);
	if (!strcmp(r->c->call, "futex_waitv"))
		return sys(nr, (long)w, 1, 0, 0, 0, 0);
	return sys(nr, (long)w, 0, 1, 0, 0, 0);
}

/*
 * val: the number to wake for the wake ops; for the other commands a value the
 * word does not hold, so that a wait wrongly let through returns at once.
 */
static long make_call(const struct run *r, uint32_t *uaddr, uint32_t word, void *pop)
{
	uint32_t bits = !strcmp(r->c->val3, "zero") ? 0 : WAIT_BITS;
	int wakes = strcmp(r->op, "command") || !strcmp(r->c->command, "wake") ||
		    !strcmp(r->c->command, "wake_bitset");

	if (strcmp(r->c->call, "futex"))
		return futex2_call(r, uaddr, word, bits);
	return futex6(uaddr, futex_op(r), wakes ? 1 : ~word, pop, bits);
}

static struct lock_area *new_slot(void)
{
	if (nslots == MAX_SLOTS) {
		fprintf(stderr, "out of slots\n");
		exit(2);
	}
	return &slots[nslots++];
}

static void *get_head(void)
{
	void *head = NULL;
	size_t len;

	if (syscall(SYS_get_robust_list, 0, &head, &len))
		return (void *)-1;
	return head;
}

/* The word as the case wants it, and every byte around it as it was. */
static void check_lock(const struct run *r, const struct lock_area *before,
		       const struct lock_area *now, int off)
{
	struct lock_area want = *before, got = *now;
	uint32_t word;

	if (!strcmp(r->c->lock_after, "zero"))
		memset(want.bytes + off, 0, 4);
	memcpy(&word, got.bytes + off, 4);
	if (memcmp(want.bytes + off, got.bytes + off, 4))
		bad("lock_changed", r, "word 0x%lx", (long)word);
	memset(want.bytes + off, 0, 4);
	memset(got.bytes + off, 0, 4);
	if (memcmp(&want, &got, sizeof(want)))
		bad("canary_bad", r, "around the word 0x%lx", (long)got.lo);
}

static void check_pop(const struct run *r, const struct pop_area *mark)
{
	struct pop_area want;
	const struct pop_area *p = !strcmp(r->c->pop, "readonly") ? ro_pop : mark;

	if (!strcmp(r->c->pop, "unmapped") || !strcmp(r->c->pop, "kernel"))
		return;	/* nothing to see: only the errno and the rest tell */
	fill_pop(&want);
	if (p->pop.q != want.pop.q && (width == 64 || p->pop.word[0] != want.pop.word[0]))
		bad("pop_changed", r, "pop 0x%lx", (long)p->pop.word[0]);
	if (p->guard_lo != GUARD || p->guard_hi != GUARD ||
	    (width == 32 && p->pop.word[1] != CANARY))
		bad("canary_bad", r, "around pop 0x%lx", (long)p->pop.word[1]);
}

static void check_ret(const struct run *r, long ret)
{
	long want = r->c->has_errno ? -errno_value(r->c->errno_name) : r->c->ret;

	if (ret != want)
		bad("wrong_errno", r, "returned %ld", ret);
}

static void counted(const struct run *r)
{
	char key[80];

	snprintf(key, sizeof(key), "case_%s", r->c->name);
	for (char *p = key; *p; p++)
		if (*p == '-')
			*p = '_';
	bump(key);
	snprintf(key, sizeof(key), "%s_cases", r->c->klass);
	bump(key);
	bump("cases");
}

static void run_one(const struct run *r)
{
	struct lock_area *area = new_slot(), before;
	int off = !strcmp(r->c->uaddr, "unaligned") ? 1 : 0;
	uint32_t word = lock_value(r->c->lock);
	uint32_t *uaddr = (uint32_t *)(area->bytes + off);
	struct pop_area mark;
	struct waiter w;
	long ret;

	memset(area, FILL, sizeof(*area));
	memcpy(area->bytes + off, &word, 4);
	if (!strcmp(r->c->uaddr, "unmapped"))
		uaddr = (uint32_t *)(hole + 128);
	fill_pop(&mark);
	if (strcmp(r->c->waiter, "none") && !start_waiter(&w, uaddr, r->shared)) {
		bump("setup_failed");
		return;
	}
	before = *area;
	ret = make_call(r, uaddr, word, pop_address(r->c->pop, &mark));
	check_ret(r, ret);
	check_lock(r, &before, area, off);
	check_pop(r, &mark);
	if (strcmp(r->c->waiter, "none"))
		end_waiter(&w, r);
	if (get_head() != robust_head) {
		bad("robust_list_lost", r, "get_robust_list gives 0x%lx", (long)get_head());
		syscall(SYS_set_robust_list, robust_head, sizeof(struct robust_list_head));
	}
	counted(r);
}

/* The flag variants a case runs with: the robust flags, alone or with LIST32. */
static int variants(const struct error_case *c, const char *kind, unsigned long bits[2])
{
	if (strcmp(kind, "command"))
		return bits[0] = 0, 1;
	if (!strcmp(c->extra, "list32_only"))
		return bits[0] = op("robust_list32"), 1;
	if (strcmp(c->call, "futex")) {
		bits[0] = op("robust_unlock");
		bits[1] = op("robust_list32");
		return 2;
	}
	bits[0] = op("robust_unlock");
	bits[1] = op("robust_unlock") | op("robust_list32");
	return 2;
}

static void run_case(const struct error_case *c)
{
	unsigned long bits[2];
	int shared, k, v, n;

	if (!(c->abi_mask & (int)(sizeof(void *) * 8)))
		return;
	for (shared = 1; shared >= 0; shared--) {
		for (k = 0; k < c->nops; k++) {
			n = variants(c, c->ops[k], bits);
			for (v = 0; v < n; v++) {
				struct run r = { c, c->ops[k], bits[v], shared };

				run_one(&r);
			}
		}
	}
}

/* ---- the end: the runner dies holding a robust mutex ---- */

static pthread_mutex_t robust_mutex;
static volatile int32_t holding, main_tid;

static uint32_t *mutex_word(void)
{
	return (uint32_t *)&robust_mutex.__data.__lock;
}

static void *runner(void *arg)
{
	unsigned int turns = 0;
	long deadline;
	int i;

	(void)arg;
	my_tid = (pid_t)syscall(SYS_gettid);
	robust_head = get_head();
	for (i = 0; i < ncases; i++)
		run_case(&cases[i]);
	pthread_mutex_lock(&robust_mutex);
	__atomic_store_n(&holding, my_tid, __ATOMIC_SEQ_CST);
	/* Die only once the main thread sleeps on the word. */
	deadline = now_ms() + WAKE_TIMEOUT_MS;
	while (!futex_blocked_on(main_tid, mutex_word()) && now_ms() < deadline)
		poll_pause(&turns);
	return NULL;	/* exits holding the mutex */
}

/*
 * Sleep on the held mutex as glibc would (FUTEX_WAITERS set, a shared wait: the
 * exit walk wakes with a shared key), then take it: EOWNERDEAD.
 */
static void owner_death(void)
{
	uint32_t *word = mutex_word(), tid, seen;
	struct timespec timeout = { .tv_sec = WAKE_TIMEOUT_MS / 1000 };
	long ret;
	int lock_ret;

	wait_flag(&holding, 60000);
	tid = (uint32_t)holding;
	if (!__atomic_compare_exchange_n(word, &tid, tid | FUTEX_WAITERS, 0, __ATOMIC_SEQ_CST,
					 __ATOMIC_SEQ_CST)) {
		fprintf(stderr, "%s: the mutex word is 0x%x, not the runner's\n", check, tid);
		bump("setup_failed");
		return;
	}
	ret = sys(SYS_futex, (long)word, (long)op("wait"), (long)(tid | FUTEX_WAITERS),
		  (long)&timeout, 0, 0);
	seen = __atomic_load_n(word, __ATOMIC_SEQ_CST);
	lock_ret = pthread_mutex_lock(&robust_mutex);
	*counter("owner_died_checked") = 1;
	if ((ret != 0 && ret != -EAGAIN) || !(seen & FUTEX_OWNER_DIED) || lock_ret != EOWNERDEAD) {
		bump("robust_list_lost");
		fprintf(stderr, "%s: runner died holding the mutex: wait %ld, word 0x%x, lock %d\n",
			check, ret, seen, lock_ret);
	}
	if (lock_ret == EOWNERDEAD)
		pthread_mutex_consistent(&robust_mutex);
	pthread_mutex_unlock(&robust_mutex);
}

/* ---- setup ---- */

static void parse_args(int argc, char **argv)
{
	char *eq;
	int i;

	for (i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--check"))
			check = argv[i + 1];
		else if (!strcmp(argv[i], "--cases"))
			cases_path = argv[i + 1];
		else if (!strcmp(argv[i], "--width"))
			width = parse_ulong(argv[i + 1], "--width");
		else if (!strcmp(argv[i], "--op") && (eq = strchr(argv[i + 1], '='))) {
			*eq = 0;
			set_named(ops, &nops, MAX_OPS, argv[i + 1], eq + 1);
		} else
			break;
	}
	if (i != argc || !check || !cases_path || (width != 64 && width != 32) ||
	    (sizeof(void *) == 4 && width == 64)) {
		fprintf(stderr, "usage: robust-unlock-errors --check NAME --cases FILE "
			"--width 64|32 [--op NAME=NUMBER]...\n");
		exit(2);
	}
}

static void map_memory(void)
{
	char *ro;

	slots = mmap(NULL, MAX_SLOTS * sizeof(*slots), PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	/* A one-page hole between two PROT_NONE pages, which no thread stack will fill. */
	hole = mmap(NULL, 3 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ro = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (slots == MAP_FAILED || hole == MAP_FAILED || ro == MAP_FAILED ||
	    munmap(hole + PAGE, PAGE)) {
		perror("mmap");
		exit(2);
	}
	hole += PAGE;
	ro_pop = (struct pop_area *)ro;
	fill_pop(ro_pop);
	if (mprotect(ro, PAGE, PROT_READ)) {
		perror("mprotect");
		exit(2);
	}
}

static const char *const fixed[] = {
	"cases", "all_set_up", "setup_failed", "owner_died_checked", "wrong_errno",
	"lock_changed", "canary_bad", "pop_changed", "waiter_woken", "waiter_not_woken",
	"robust_list_lost",
};

int main(int argc, char **argv)
{
	pthread_mutexattr_t attr;
	pthread_t thread;
	long start = now_ms();
	size_t i;
	int k;

	parse_args(argc, argv);
	read_cases();
	for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		counter(fixed[i]);
	/* Every class the file names gets its counter, so that one that never ran shows 0. */
	for (k = 0; k < ncases; k++) {
		char key[48];

		snprintf(key, sizeof(key), "%s_cases", cases[k].klass);
		counter(key);
	}
	map_memory();
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(&robust_mutex, &attr);
	main_tid = (int32_t)syscall(SYS_gettid);
	if (pthread_create(&thread, NULL, runner, NULL)) {
		fprintf(stderr, "pthread_create failed\n");
		return 2;
	}
	owner_death();
	pthread_join(thread, NULL);
	*counter("all_set_up") = *counter("setup_failed") == 0;
	*counter("elapsed_ms") = (unsigned long)(now_ms() - start);
	emit_record_array(check, counter_keys, counter_values, (size_t)ncounters);
	return 0;
}
