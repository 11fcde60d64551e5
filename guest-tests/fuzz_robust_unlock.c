// SPDX-License-Identifier: GPL-2.0
/*
 * fuzz-robust-unlock: random calls of the robust unlock, the ops and the vDSO
 * entries, with pointers drawn from a pool of every kind of address the kernel
 * must cope with. The hand-written checks walk the paths someone thought of;
 * this one throws the combinations nobody wrote down (a LIST32 op with a high
 * lock and an unaligned pop across a page end, the clock flag on PI, ...).
 *
 * The pool: a few pages whose every byte we know. A valid page (aligned and
 * unaligned pointers; the unaligned ones may run into the next page), a
 * read-only page, an unmapped hole, a page above 4 GiB and the page at its low
 * 32-bit alias, a kernel text address, and the direct-map alias of a page of
 * ours (its kernel address, found through /proc/self/pagemap; the boot passes
 * nokaslr), whose user view we watch.
 *
 * Each call: pick an op (one of the six FUTEX_UNLOCK_*_LIST{64,32}, private or
 * shared, sometimes with LIST32 flipped, FUTEX_CLOCK_REALTIME or an unknown bit;
 * FUTEX_ROBUST_UNLOCK always stays, so no call can sleep), or a vDSO entry; pick
 * the lock word's and pop's kinds and offsets, val and val3 (or the TID the entry
 * compares); write a lock value and a pop mark where we can; copy every watched
 * page; call; compare. The kernel writes nothing but zeros, and only to the lock
 * word and to pop (4 bytes for LIST32, 8 otherwise), so:
 *   - bytes_changed: a byte outside the call's lock word and pop changed (a write
 *     through a kernel alias shows here, as our view of the aliased page);
 *   - bad_results: a result the 7.3 source rules out: success with a lock word
 *     that is not a writable aligned user word or a pop that is not writable user
 *     memory; success that woke someone (there is no waiter) or left the word or
 *     pop non-zero; a non-zero written into either; EINVAL, ENOSYS or EPERM (all
 *     decided before any write) after a write; an errno no path returns; a vDSO
 *     entry that returned other than the old word, unlocked without clearing pop,
 *     wrote on a failed compare, or faulted on memory it could write.
 * A hang is the harness's timeout; a splat is its console check.
 *
 * The run is seeded (--seed), and bounded by --iterations and --seconds; the
 * record carries the seed and the first bad call, whose kinds and offsets replay
 * it. The list32 entry is used when the vDSO has it (not without COMPAT).
 */
#define _GNU_SOURCE
#include "vdso_helpers.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PAGE 4096UL
/* A kernel text address: with nokaslr, _text. Writes there cannot be seen, only refused. */
#define KERNEL_TEXT 0xffffffff81000000UL
#define POP_BYTE 0x5a
/* How often the watched pages get their fill back, so that a zero written over a zero
 * is rare; the time limit is looked at as often. */
#define REFILL_EVERY 32
#define DETAIL_MAX 512
/* Calls whose detail goes to stderr besides the first one in the record. */
#define LOG_MAX 5

enum kind { VALID, UNALIGNED, UNMAPPED, READONLY, KERNEL, ALIAS, HIGH, LOW, NKINDS };
static const char *const kind_names[NKINDS] = {
	"valid", "unaligned", "unmapped", "readonly", "kernel", "alias", "high", "low",
};

/* The pages we watch, by user address, with the byte each is filled with. */
enum watched { W_VALID, W_READONLY, W_ALIASED, W_HIGH, W_LOW, NWATCHED };
static const char *const watched_names[NWATCHED] = {
	"valid", "readonly", "aliased", "high", "low",
};
static const unsigned char fills[NWATCHED] = { 0xa5, 0x3c, 0x6b, 0xc3, ALIAS_FILL };

struct opts {
	const char *check, *func64, *func32;
	unsigned long seed, iterations, seconds, private_flag, clock_flag, list32_flag;
	/* FUTEX_UNLOCK_{WAKE,BITSET,PI}_LIST64, then _LIST32 */
	unsigned long ops[6];
};

struct pool {
	unsigned char *page[NWATCHED];
	unsigned char *hole;
	uintptr_t alias;	/* the kernel address of page[W_ALIASED], 0 when unknown */
	unsigned char snap[NWATCHED][PAGE];
};

/* One call, as the detail describes it. entry: 0 for the syscall, else 64 or 32. */
struct call {
	unsigned long index, op;
	int entry;
	enum kind lock_kind, pop_kind;
	unsigned long lock_off, pop_off;
	uintptr_t lock, pop;
	unsigned int width;
	uint32_t val, val3, before;
	int wrote_lock;
	long ret;
	int err, faulted;
	/* bytes changed outside the lock word and pop; in them, to a non-zero; in them at all */
	unsigned long outside, nonzero, inside;
	/* the first byte changed outside: its page and offset */
	int first_page;
	unsigned long first_off;
};

struct counters {
	unsigned long calls, syscalls, vdso_calls, vdso32_calls, successes, unlocked,
		vdso_faults, bytes_changed, bad_results, alias_found, all_set_up, elapsed_ms;
	unsigned long kind_calls[NKINDS];
};

static struct opts o;
static struct pool p;
static struct counters c;
static uint64_t rng;
static char first_bad[DETAIL_MAX];

static sigjmp_buf fault_jump;
static volatile sig_atomic_t in_entry;

/* xorshift64*: the whole run follows from --seed. */
static uint64_t next_random(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545f4914f6cdd1dULL;
}

static unsigned long below(unsigned long n)
{
	return (unsigned long)(next_random() % n);
}

/* ---- the pool ---- */

static void *map_pages(size_t n, int flags)
{
	void *m = mmap(NULL, n * PAGE, PROT_READ | PROT_WRITE, flags | MAP_ANONYMOUS, -1, 0);

	if (m == MAP_FAILED) {
		perror("mmap");
		exit(2);
	}
	return m;
}

/*
 * One mapping: valid, read-only, hole, aliased. The hole sits between pages we own, so
 * nothing of ours gets mapped there; an unaligned pointer at a page's end runs into the
 * next page's kind.
 */
static void map_pool(void)
{
	unsigned char *m = map_pages(4, MAP_SHARED);
	struct high_pop hp;
	struct direct_alias da;
	int i;

	p.page[W_VALID] = m;
	p.page[W_READONLY] = m + PAGE;
	p.hole = m + 2 * PAGE;
	p.page[W_ALIASED] = m + 3 * PAGE;
	if (munmap(p.hole, PAGE)) {
		perror("munmap");
		exit(2);
	}
	if (high_pop_map(&hp, MAP_PRIVATE))
		exit(2);
	p.page[W_HIGH] = hp.page;
	p.page[W_LOW] = hp.alias;
	for (i = 0; i < NWATCHED; i++)
		memset(p.page[i], fills[i], PAGE);
	if (mprotect(p.page[W_READONLY], PAGE, PROT_READ)) {
		perror("mprotect");
		exit(2);
	}
	/* Resident for the whole run, so that its PFN, and the alias, stay true. */
	mlock(p.page[W_ALIASED], PAGE);
	direct_alias_find(p.page[W_ALIASED], &da);
	p.alias = da.alias;
	c.alias_found = da.alias != 0;
}

static void refill(void)
{
	int i;

	for (i = 0; i < NWATCHED; i++)
		if (i != W_READONLY)
			memset(p.page[i], fills[i], PAGE);
}

/* Inside one page we can write: the whole span, from its first to its last byte. */
static int writable_byte(uintptr_t a)
{
	int i;

	for (i = 0; i < NWATCHED; i++)
		if (i != W_READONLY && a - (uintptr_t)p.page[i] < PAGE)
			return 1;
	return 0;
}

static int writable(uintptr_t a, unsigned int len)
{
	return writable_byte(a) && writable_byte(a + len - 1);
}

static enum kind pick_kind(void)
{
	enum kind k;

	do
		k = (enum kind)below(NKINDS);
	while (k == ALIAS && !p.alias);
	return k;
}

/*
 * An offset in the kind's page: aligned to width, but for the unaligned kind. An unaligned
 * pop may run into the next page; an unaligned lock word stays inside its cache line, since
 * a locked cmpxchg across two lines is a split lock, which a CPU with split lock detection
 * (KVM) traps on.
 */
static unsigned long pick_offset(enum kind k, unsigned int width, int lock)
{
	unsigned long off = below(PAGE / width) * width;

	if (k != UNALIGNED)
		return off;
	if (lock)
		return (off & ~63UL) + 4 * below(15) + 1 + below(3);
	return (off & ~3UL) + 1 + below(3);
}

static uintptr_t kind_base(enum kind k)
{
	static const int page_of[NKINDS] = {
		[VALID] = W_VALID, [UNALIGNED] = W_VALID, [READONLY] = W_READONLY,
		[HIGH] = W_HIGH, [LOW] = W_LOW,
	};

	switch (k) {
	case UNMAPPED:
		return (uintptr_t)p.hole;
	case KERNEL:
		return (uintptr_t)KERNEL_TEXT;
	case ALIAS:
		return p.alias;
	default:
		return (uintptr_t)p.page[page_of[k]];
	}
}

static void pick_pointers(struct call *cl)
{
	cl->lock_kind = pick_kind();
	cl->lock_off = pick_offset(cl->lock_kind, 4, 1);
	cl->lock = kind_base(cl->lock_kind) + cl->lock_off;
	cl->pop_kind = pick_kind();
	cl->pop_off = pick_offset(cl->pop_kind, cl->width, 0);
	cl->pop = kind_base(cl->pop_kind) + cl->pop_off;
	c.kind_calls[cl->lock_kind]++;
	if (cl->pop_kind != cl->lock_kind)
		c.kind_calls[cl->pop_kind]++;
}

/* The word and pop before the call, where we can write them; pop first, so the word wins. */
static void prepare(struct call *cl, uint32_t tid)
{
	static const uint32_t extra[] = { 0, FUTEX_WAITERS, FUTEX_OWNER_DIED };

	if (writable(cl->pop, cl->width))
		memset((void *)cl->pop, POP_BYTE, cl->width);
	cl->wrote_lock = writable(cl->lock, 4);
	if (cl->wrote_lock) {
		cl->before = below(4) ? tid | extra[below(3)] : (uint32_t)next_random();
		memcpy((void *)cl->lock, &cl->before, 4);
	}
}

static void snapshot(void)
{
	int i;

	for (i = 0; i < NWATCHED; i++)
		memcpy(p.snap[i], p.page[i], PAGE);
}

/* Readable from user space: a watched page, the read-only one included. */
static int readable_byte(uintptr_t a)
{
	int i;

	for (i = 0; i < NWATCHED; i++)
		if (a - (uintptr_t)p.page[i] < PAGE)
			return 1;
	return 0;
}

static int in_span(uintptr_t a, uintptr_t start, unsigned int len)
{
	return a - start < len;
}

/* Every changed byte of the watched pages, sorted into the call's counts. */
static void compare(struct call *cl)
{
	unsigned long j;
	int i;

	for (i = 0; i < NWATCHED; i++) {
		if (!memcmp(p.snap[i], p.page[i], PAGE))
			continue;
		for (j = 0; j < PAGE; j++) {
			uintptr_t a = (uintptr_t)p.page[i] + j;

			if (p.snap[i][j] == p.page[i][j])
				continue;
			if (in_span(a, cl->lock, 4) || in_span(a, cl->pop, cl->width)) {
				cl->inside++;
				cl->nonzero += p.page[i][j] != 0;
			} else if (!cl->outside++) {
				cl->first_page = i;
				cl->first_off = j;
			}
		}
	}
}

static int all_zero(uintptr_t a, unsigned int len)
{
	const unsigned char *b = (const unsigned char *)a;
	unsigned int i;

	for (i = 0; i < len; i++)
		if (b[i])
			return 0;
	return 1;
}

/* ---- the calls ---- */

static void describe(const struct call *cl, const char *why, char *out, size_t size)
{
	char what[96], result[48];

	if (cl->entry)
		snprintf(what, sizeof(what), "vdso list%d tid %#x", cl->entry, cl->val);
	else
		snprintf(what, sizeof(what), "futex op %#lx val %#x val3 %#x", cl->op, cl->val,
			 cl->val3);
	if (cl->faulted)
		snprintf(result, sizeof(result), "SIGSEGV");
	else if (cl->entry)
		snprintf(result, sizeof(result), "ret %#lx", (unsigned long)(uint32_t)cl->ret);
	else
		snprintf(result, sizeof(result), "ret %ld errno %d", cl->ret, cl->err);
	snprintf(out, size,
		 "seed %lu call %lu: %s lock %s+%#lx (word %#x%s) pop %s+%#lx width %u -> %s: %s "
		 "(changed: %lu bytes outside, the first at page %s+%#lx; %lu non-zero in lock/pop)",
		 o.seed, cl->index, what, kind_names[cl->lock_kind], cl->lock_off, cl->before,
		 cl->wrote_lock ? "" : ", not ours", kind_names[cl->pop_kind], cl->pop_off,
		 cl->width, result, why, cl->outside, watched_names[cl->first_page], cl->first_off,
		 cl->nonzero);
}

static void report(const struct call *cl, const char *why)
{
	char line[DETAIL_MAX];

	if (c.bytes_changed + c.bad_results > LOG_MAX)
		return;
	describe(cl, why, line, sizeof(line));
	fprintf(stderr, "%s: %s\n", o.check, line);
	if (!first_bad[0])
		snprintf(first_bad, sizeof(first_bad), "%s", line);
}

static void judge_bytes(const struct call *cl)
{
	if (!cl->outside)
		return;
	c.bytes_changed += cl->outside;
	report(cl, "a byte outside the lock word and pop changed");
}

static void bad_result(const struct call *cl, const char *why)
{
	c.bad_results++;
	report(cl, why);
}

static unsigned long random_op(void)
{
	unsigned long op = o.ops[below(6)];
	unsigned long r = below(16);

	if (below(2))
		op |= o.private_flag;
	/* Now and then a flag of the wrong kind: each must end in an error that writes nothing. */
	if (r == 0)
		op ^= o.list32_flag;
	else if (r == 1)
		op |= o.clock_flag;
	else if (r == 2)
		op |= 1UL << (11 + below(21));
	return op;
}

/* The kernel's answer to a syscall, against what kernel/futex of 7.3 allows. */
static void judge_syscall(const struct call *cl)
{
	int lock_ok = !(cl->lock & 3) && writable(cl->lock, 4);
	int pop_ok = writable(cl->pop, cl->width);

	if (cl->ret >= 0) {
		if (!lock_ok || !pop_ok)
			bad_result(cl, "success with a lock word or pop the kernel cannot write");
		else if (cl->ret != 0)
			bad_result(cl, "woke a waiter that does not exist");
		else if (!all_zero(cl->lock, 4) || !all_zero(cl->pop, cl->width))
			bad_result(cl, "success left the lock word or pop non-zero");
		return;
	}
	if (cl->err != EFAULT && cl->err != EINVAL && cl->err != ENOSYS && cl->err != EPERM)
		bad_result(cl, "an errno no path of the robust unlock returns");
	else if (cl->err != EFAULT && cl->inside)
		bad_result(cl, "an error decided before any write, yet the lock word or pop changed");
}

static void call_syscall(struct call *cl, uint32_t tid)
{
	cl->op = random_op();
	cl->width = cl->op & o.list32_flag ? 4 : 8;
	cl->val = (uint32_t)next_random();
	cl->val3 = below(4) ? ~0U : (uint32_t)next_random() & (uint32_t)next_random();
	pick_pointers(cl);
	prepare(cl, tid);
	snapshot();
	errno = 0;
	cl->ret = syscall(SYS_futex, cl->lock, cl->op, cl->val, NULL, cl->pop, cl->val3);
	cl->err = cl->ret < 0 ? errno : 0;
	c.syscalls++;
	c.successes += cl->ret == 0;
}

static void on_fault(int sig)
{
	if (!in_entry) {
		signal(sig, SIG_DFL);
		return;
	}
	siglongjmp(fault_jump, 1);
}

/* The entry's result, against what its cmpxchg and clearing store can do. */
static void judge_entry(const struct call *cl)
{
	int lock_ok = writable(cl->lock, 4), pop_ok = writable(cl->pop, cl->width);

	if (cl->faulted) {
		if (lock_ok && (cl->before != cl->val || pop_ok))
			bad_result(cl, "the entry faulted on memory it could write");
		return;
	}
	if (!lock_ok) {
		/* A locked cmpxchg writes even when it fails; only no read at all is certain. */
		if (!readable_byte(cl->lock) || !readable_byte(cl->lock + 3))
			bad_result(cl, "the entry returned from a lock word it cannot read");
		return;
	}
	if ((uint32_t)cl->ret != cl->before)
		bad_result(cl, "the entry did not return the old lock word");
	else if (cl->before == cl->val && (!all_zero(cl->lock, 4) || !all_zero(cl->pop, cl->width)))
		bad_result(cl, "the entry unlocked but left the word or pop non-zero");
	else if (cl->before != cl->val && cl->inside)
		bad_result(cl, "the entry's compare failed, yet the word or pop changed");
}

static void call_entry(struct call *cl, uint32_t tid, const struct vdso_func *f, int entry)
{
	try_unlock_fn fn = (try_unlock_fn)f->addr;

	cl->entry = entry;
	cl->width = entry == 64 ? 8 : 4;
	cl->val = below(4) ? tid : (uint32_t)next_random();
	pick_pointers(cl);
	prepare(cl, cl->val);
	snapshot();
	in_entry = 1;
	if (sigsetjmp(fault_jump, 1)) {
		cl->faulted = 1;
		c.vdso_faults++;
	} else {
		cl->ret = fn((uint32_t *)cl->lock, cl->val, (void *)cl->pop);
	}
	in_entry = 0;
	if (entry == 64)
		c.vdso_calls++;
	else
		c.vdso32_calls++;
}

static void one_call(unsigned long index, uint32_t tid, const struct vdso_func *f64,
		     const struct vdso_func *f32)
{
	struct call cl = { .index = index };
	unsigned long r = below(4);

	if (r == 0 && f64->addr)
		call_entry(&cl, tid, f64, 64);
	else if (r == 1 && f32->addr)
		call_entry(&cl, tid, f32, 32);
	else
		call_syscall(&cl, tid);
	compare(&cl);
	judge_bytes(&cl);
	/* The kernel and the entries only ever write zeros. */
	if (cl.nonzero)
		bad_result(&cl, "a non-zero was written into the lock word or pop");
	if (cl.entry)
		judge_entry(&cl);
	else
		judge_syscall(&cl);
	c.unlocked += cl.entry && !cl.faulted && cl.before == cl.val;
	c.calls++;
}

static void find_entry(const char *name, struct vdso_func *f)
{
	f->addr = 0;
	if (vdso_find(name, f))
		fprintf(stderr, "%s: the vDSO does not export %s\n", o.check, name);
}

static void fuzz(void)
{
	struct vdso_func f64, f32;
	struct sigaction sa = { .sa_handler = on_fault };
	uint32_t tid = (uint32_t)gettid();
	long start = now_ms(), limit = start + (long)o.seconds * 1000;
	unsigned long i;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	find_entry(o.func64, &f64);
	find_entry(o.func32, &f32);
	for (i = 0; i < o.iterations; i++) {
		if (i % REFILL_EVERY == 0) {
			refill();
			if (now_ms() > limit)
				break;
		}
		one_call(i, tid, &f64, &f32);
	}
	c.elapsed_ms = (unsigned long)(now_ms() - start);
}

/* The hole must still be a hole, or its calls tested a mapped page. */
static int hole_unmapped(void)
{
	unsigned char v;

	return mincore(p.hole, PAGE, &v) && errno == ENOMEM;
}

/* ---- arguments and the record ---- */

static void parse_args(int argc, char **argv)
{
	static const char usage[] =
		"fuzz-robust-unlock --check NAME --func64 SYM --func32 SYM --seed N "
		"--iterations N --seconds N --private-flag N --clock-realtime N --list32-flag N "
		"--wake64 N --bitset64 N --pi64 N --wake32 N --bitset32 N --pi32 N";
	const char *const keys[] = { "--wake64", "--bitset64", "--pi64", "--wake32", "--bitset32",
			       "--pi32", "--private-flag", "--clock-realtime", "--list32-flag",
			       "--seed", "--iterations", "--seconds" };
	unsigned long *const vals[] = { &o.ops[0], &o.ops[1], &o.ops[2], &o.ops[3], &o.ops[4],
				  &o.ops[5], &o.private_flag, &o.clock_flag, &o.list32_flag,
				  &o.seed, &o.iterations, &o.seconds };
	struct entry_names names = { 0 };

	parse_entry_args(argc, argv, &names, keys, vals, sizeof(keys) / sizeof(keys[0]), usage);
	o.check = names.check;
	o.func64 = names.func64;
	o.func32 = names.func32;
	if (sizeof(void *) != 8) {
		fprintf(stderr, "%s: a 64-bit program\n", o.check);
		exit(2);
	}
}

/* The record: the counters, then the first bad call as its detail (no quotes in it). */
static void emit(void)
{
	const char *keys[] = { "seed", "calls", "syscalls", "successes", "vdso_calls",
			       "vdso32_calls", "unlocked", "vdso_faults", "alias_found",
			       "all_set_up", "elapsed_ms", "bytes_changed", "bad_results" };
	unsigned long vals[] = { o.seed, c.calls, c.syscalls, c.successes, c.vdso_calls,
				 c.vdso32_calls, c.unlocked, c.vdso_faults, c.alias_found,
				 c.all_set_up, c.elapsed_ms, c.bytes_changed, c.bad_results };
	size_t i;
	int k;

	printf("{\"check\": \"%s\"", o.check);
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		printf(", \"%s\": %lu", keys[i], vals[i]);
	for (k = 0; k < NKINDS; k++)
		printf(", \"%s_calls\": %lu", kind_names[k], c.kind_calls[k]);
	printf(", \"detail\": \"%s\"}\n", first_bad);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	rng = o.seed ? o.seed : 1;
	map_pool();
	fuzz();
	c.all_set_up = hole_unmapped();
	emit();
	return 0;
}
