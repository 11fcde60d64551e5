// SPDX-License-Identifier: GPL-2.0
/*
 * robust-unlock-kernel-pop: a security check at the user/kernel boundary. Every
 * pointer the robust unlock takes from user space (the lock word, and pop, which
 * the kernel clears) must be a user address. One that names kernel memory must
 * give EFAULT, and the kernel must write nothing there: a kernel that clears a
 * pop it did not check hands every task an 8-byte (or 4-byte) zero write into
 * kernel memory.
 *
 * To see a write that should not happen, we aim at memory we can read back. The
 * kernel maps all of RAM at the direct map (page_offset_base), so a page we own
 * has a second address there: page_offset_base + (PFN << 12). We take a
 * MAP_SHARED page filled with a pattern, find its PFN in /proc/self/pagemap (the
 * guest runs us as root; without CAP_SYS_ADMIN the PFN reads as 0) and point the
 * kernel at that alias. Any byte of the page that changes was written by the
 * kernel through the alias. The alias is only known when the direct map is not
 * randomized: the boot passes nokaslr, and we check that the kernel's text sits
 * at its link address (_text in /proc/kallsyms). With nokaslr page_offset_base
 * is the fixed base of 4-level or 5-level paging; which one we learn from
 * whether a mapping above 47 bits of address can exist.
 *
 * Then:
 *   - the ops FUTEX_UNLOCK_{WAKE,BITSET,PI}_LIST{64,32}, private and shared, on a
 *     lock we hold: once with pop at the alias (the kernel unlocks, then must fail
 *     the clear of pop with -EFAULT), once with the lock word at the alias (the
 *     kernel must refuse before it reads it);
 *   - the vDSO fixup: a traced child calls a try_unlock entry; we single-step it
 *     up to its lock cmpxchg, set RDX (where the kernel reads pop from) to the
 *     alias, and step over the cmpxchg. The child stops right after a successful
 *     cmpxchg with a SIGTRAP pending, so the kernel runs its fixup with pop = the
 *     alias (a kprobe on __futex_fixup_robust_unlock counts it). We put RDX back
 *     and let the child finish its unlock. A control call without the alias shows
 *     that this stop does reach the fixup: the kernel clears the real pop there.
 *
 * Counters: kernel_writes (pages changed through the alias) and not_refused (an
 * op that did not fail with EFAULT) fail the check; the alias, KASLR being off,
 * the cases, the window stops, the fixups the probe saw and the control decide
 * whether it reached what it checks.
 */
#define _GNU_SOURCE
#include "vdso_helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096UL
#define PATTERN 0xa5
/* Where in the page the alias points: away from both ends. */
#define TARGET 0x800UL
/* What pop holds before the unlock: fits in 32 bits, so a LIST32 clear leaves all of it 0. */
#define POP_PENDING 0x5a5a5a5aUL
#define MAX_STEPS 200000

struct opts {
	const char *check, *func64, *func32;
	unsigned long rounds, private_flag;
	/* FUTEX_UNLOCK_{WAKE,BITSET,PI}_LIST64, then _LIST32 */
	unsigned long ops[6];
};

struct counters {
	unsigned long alias_found, kaslr_off, five_level, cases, window_stops, alias_fixups,
		fixup_seen, kernel_writes, not_refused, traced_bad;
};

/* The page the kernel must not write, and its direct-map alias at TARGET. */
struct target {
	unsigned char *page;
	uintptr_t alias;
};

/* The traced child's lock and pop, in a MAP_SHARED page we read after each stop. */
struct shared {
	uint32_t lock;
	uint32_t pad;
	uint64_t pop;
};

static struct opts o;
static struct counters c;

static long futex6(void *uaddr, unsigned long op, void *pop)
{
	/* val = 1 (wake one), val3 = all bits (bitset): the success path's arguments. */
	return syscall(SYS_futex, uaddr, op, 1, NULL, pop, ~0U);
}

static void *shared_page(void)
{
	void *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(2);
	}
	memset(p, PATTERN, PAGE);
	/* Pinned in RAM, so its PFN, and the alias, stay valid for the whole test. */
	mlock(p, PAGE);
	return p;
}

static int find_alias(struct target *t)
{
	struct direct_alias da;

	t->page = shared_page();
	direct_alias_find(t->page, &da);
	c.kaslr_off = da.kaslr_off;
	c.five_level = da.five_level;
	c.alias_found = da.pfn != 0;
	t->alias = da.alias + TARGET;
	return c.alias_found && c.kaslr_off;
}

/* Counts a page changed through its alias, and restores the pattern for the next case. */
static void check_page(const struct target *t, const char *what)
{
	unsigned long i, changed = 0;

	for (i = 0; i < PAGE; i++)
		changed += t->page[i] != PATTERN;
	if (!changed)
		return;
	c.kernel_writes++;
	fprintf(stderr, "SECURITY: %s: the kernel wrote %lu bytes at %#lx (first word now %#x)\n",
		what, changed, (unsigned long)t->alias, *(uint32_t *)(t->page + TARGET));
	memset(t->page, PATTERN, PAGE);
}

static void expect_efault(long ret, unsigned long op, const char *what)
{
	c.cases++;
	if (ret == -1 && errno == EFAULT)
		return;
	c.not_refused++;
	fprintf(stderr, "%s, op %#lx: returned %ld (errno %d), not EFAULT\n", what, op, ret, errno);
}

static void op_cases(const struct target *t, struct shared *s, unsigned long op)
{
	s->lock = (uint32_t)gettid();
	s->pop = POP_PENDING;
	expect_efault(futex6(&s->lock, op, (void *)t->alias), op, "pop at a kernel address");
	check_page(t, "an op's pop");
	s->lock = (uint32_t)gettid();
	expect_efault(futex6((void *)t->alias, op, &s->pop), op, "lock at a kernel address");
	check_page(t, "an op's lock word");
}

static void run_ops(const struct target *t, struct shared *s)
{
	size_t i;

	for (i = 0; i < sizeof(o.ops) / sizeof(o.ops[0]); i++) {
		op_cases(t, s, o.ops[i]);
		op_cases(t, s, o.ops[i] | o.private_flag);
	}
}

/* The traced child: one unlock of a lock it holds, through the vDSO entry fn. */
static void child_unlock(struct shared *s, try_unlock_fn fn)
{
	uint32_t tid = (uint32_t)gettid();

	s->lock = tid;
	s->pop = POP_PENDING;
	ptrace(PTRACE_TRACEME, 0, NULL, NULL);
	raise(SIGSTOP);
	fn(&s->lock, tid, &s->pop);
	_exit(s->lock == 0 && s->pop == 0 ? 0 : 1);
}

/* lock cmpxchg, with or without a REX prefix: the instruction before the window. */
static int at_cmpxchg(uintptr_t ip, const struct vdso_func *f)
{
	/* Our vDSO is the child's: fork() mapped the same image at the same address. */
	const unsigned char *b = (const unsigned char *)ip;
	int rex;

	if (ip < f->addr || ip + 4 > f->addr + f->size || b[0] != 0xf0)
		return 0;
	rex = (b[1] & 0xf0) == 0x40;
	return b[1 + rex] == 0x0f && b[2 + rex] == 0xb1;
}

static int step(pid_t pid, struct user_regs_struct *regs)
{
	int status;

	if (ptrace(PTRACE_SINGLESTEP, pid, NULL, NULL) || waitpid(pid, &status, 0) != pid ||
	    !WIFSTOPPED(status) || WSTOPSIG(status) != SIGTRAP)
		return -1;
	return ptrace(PTRACE_GETREGS, pid, NULL, regs) ? -1 : 0;
}

/* Steps the child until its next instruction is the entry's lock cmpxchg. */
static int step_to_cmpxchg(pid_t pid, const struct vdso_func *f, struct user_regs_struct *regs)
{
	int n;

	for (n = 0; n < MAX_STEPS; n++) {
		if (step(pid, regs))
			return -1;
		if (at_cmpxchg(regs->rip, f))
			return 0;
	}
	return -1;
}

static int in_window(const struct user_regs_struct *regs, const struct vdso_func *f)
{
	return regs->rip > f->addr && regs->rip < f->addr + f->size &&
	       (regs->eflags & X86_EFLAGS_ZF);
}

/* Steps over the cmpxchg with RDX at the alias: the kernel's fixup sees pop = alias. */
static int alias_step(pid_t pid, const struct target *t, const struct vdso_func *f,
		      struct user_regs_struct *regs)
{
	unsigned long real = regs->rdx, before = fixup_probe_hits();

	regs->rdx = t->alias;
	if (ptrace(PTRACE_SETREGS, pid, NULL, regs) || step(pid, regs))
		return -1;
	c.alias_fixups += fixup_probe_hits() - before;
	c.window_stops += in_window(regs, f) && regs->rdx == t->alias;
	check_page(t, "the vDSO fixup");
	/* The child's own clearing store must go to its real pop, not fault on the alias. */
	regs->rdx = real;
	return ptrace(PTRACE_SETREGS, pid, NULL, regs) ? -1 : 0;
}

/* Steps over the cmpxchg as it is: the kernel clears the real pop at this stop. */
static int control_step(pid_t pid, const struct shared *s, const struct vdso_func *f,
			struct user_regs_struct *regs)
{
	if (step(pid, regs))
		return -1;
	c.fixup_seen += in_window(regs, f) && s->pop == 0 && s->lock == 0;
	return 0;
}

static int finish(pid_t pid)
{
	int status;

	if (ptrace(PTRACE_CONT, pid, NULL, NULL) || waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static void traced_call(const struct target *t, struct shared *s, const struct vdso_func *f,
			int with_alias)
{
	struct user_regs_struct regs;
	int status, bad;
	pid_t pid = fork();

	if (pid == 0)
		child_unlock(s, (try_unlock_fn)f->addr);
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFSTOPPED(status)) {
		c.traced_bad++;
		return;
	}
	/* 1, 2, 3: the phase that went wrong */
	bad = step_to_cmpxchg(pid, f, &regs) ? 1 :
	      (with_alias ? alias_step(pid, t, f, &regs) : control_step(pid, s, f, &regs)) ? 2 :
	      finish(pid) ? 3 : 0;
	if (bad) {
		fprintf(stderr, "traced %s call at %#lx: the child did not %s\n",
			with_alias ? "alias" : "control", (unsigned long)f->addr,
			bad == 1 ? "reach its cmpxchg" : bad == 2 ? "take the step over it" :
			"finish its unlock and exit 0");
		c.traced_bad++;
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
}

static void run_fixup(const struct target *t, struct shared *s, const char *name)
{
	struct vdso_func f;
	unsigned long r;

	if (vdso_find(name, &f)) {
		fprintf(stderr, "the vDSO does not export %s\n", name);
		c.traced_bad++;
		return;
	}
	for (r = 0; r < o.rounds; r++) {
		traced_call(t, s, &f, 0);
		traced_call(t, s, &f, 1);
	}
}

static void parse_args(int argc, char **argv)
{
	static const char usage[] =
		"robust-kernel-pop --check NAME --func64 SYM --func32 SYM --rounds N "
		"--private-flag N --wake64 N --bitset64 N --pi64 N --wake32 N --bitset32 N --pi32 N";
	const char *const keys[] = { "--wake64", "--bitset64", "--pi64", "--wake32", "--bitset32",
			       "--pi32", "--private-flag", "--rounds" };
	unsigned long *const vals[] = { &o.ops[0], &o.ops[1], &o.ops[2], &o.ops[3], &o.ops[4],
				  &o.ops[5], &o.private_flag, &o.rounds };
	struct entry_names names = { 0 };

	parse_entry_args(argc, argv, &names, keys, vals, sizeof(keys) / sizeof(keys[0]), usage);
	o.check = names.check;
	o.func64 = names.func64;
	o.func32 = names.func32;
}

int main(int argc, char **argv)
{
	struct target t;
	struct shared *s;
	int probe;

	parse_args(argc, argv);
	s = shared_page();
	memset(s, 0, sizeof(*s));
	if (find_alias(&t)) {
		run_ops(&t, s);
		probe = fixup_probe_arm();
		run_fixup(&t, s, o.func64);
		run_fixup(&t, s, o.func32);
		if (probe)
			fixup_probe_disarm();
	}
	emit_record(o.check, "alias_found", c.alias_found, "kaslr_off", c.kaslr_off,
		    "five_level", c.five_level, "cases", c.cases, "window_stops", c.window_stops,
		    "alias_fixups", c.alias_fixups, "fixup_seen", c.fixup_seen,
		    "kernel_writes", c.kernel_writes, "not_refused", c.not_refused,
		    "traced_bad", c.traced_bad, NULL);
	return 0;
}
