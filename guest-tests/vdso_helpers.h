/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the guest tests: find the vDSO and its exports, single-step
 * a call, and print one JSON record per check for the host to judge.
 */
#ifndef VDSO_HELPERS_H
#define VDSO_HELPERS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <ucontext.h>
#include <linux/futex.h>	/* FUTEX_WAITERS, FUTEX_OWNER_DIED, struct robust_list_head */

/* Written around a lock word or a pop slot: a byte changed here was written by mistake. */
#define CANARY 0xc0ffee11U
/* A pop value no kernel path writes: seen after a call, it was left alone. */
#define POP_MARK 0x5a5a5a5a5a5a5a5aULL

/* __vdso_futex_robust_list{64,32}_try_unlock: the lock's old value, 0 on success. */
typedef uint32_t (*try_unlock_fn)(uint32_t *lock, uint32_t tid, void *pop);

#define X86_EFLAGS_ZF 0x40UL
#define X86_EFLAGS_TF 0x100UL

/* An export of the mapped vDSO: its address and size, from .dynsym. */
struct vdso_func {
	uintptr_t addr;
	size_t size;
};

uintptr_t vdso_base(void);
int vdso_find(const char *name, struct vdso_func *out);
/* The [vdso] line of /proc/self/maps: where the image is mapped now. */
int vdso_mapping(uintptr_t *start, uintptr_t *end);

/* Registers a step callback sees; the pointers allow changing the saved state. */
struct step_regs {
	uintptr_t ip;
	unsigned long flags;
	uintptr_t dx;
};

/*
 * Called in the SIGTRAP handler after every instruction of the stepped call.
 * Returning nonzero stops stepping.
 */
typedef int (*step_cb)(const struct step_regs *regs, void *arg);

/* Run fn(arg) with EFLAGS.TF set, calling cb at every trap until it says stop. */
void single_step(void (*fn)(void *), void *fn_arg, step_cb cb, void *cb_arg);

/*
 * Start fn(arg) in a new task that shares our memory (CLONE_VM) but is its own
 * process, with its own TID and robust list, on a stack of its own. The child
 * must stick to raw syscalls: it shares our libc state.
 */
pid_t clone_vm(int (*fn)(void *), void *arg);

unsigned long parse_ulong(const char *s, const char *what);

/* CLOCK_MONOTONIC in milliseconds, and a sleep of that many. */
long now_ms(void);
void nap_ms(long ms);
/*
 * One turn of a loop that polls for another task of ours (a waiter that must block, a
 * thread that must register): *turns counts them, from 0. The first POLL_YIELDS turns
 * yield, the rest nap 1 ms. On one vCPU the task polled for then runs at once; a nap costs
 * a whole tick (4 ms on a kernel with HZ=250 and no high-resolution timers) even when
 * that task needed microseconds. The naps keep a long wait from holding the CPU.
 */
#define POLL_YIELDS 200
void poll_pause(unsigned int *turns);
/* Wait up to timeout_ms for *flag to become nonzero; 0 when it did not. */
int wait_flag(volatile int32_t *flag, long timeout_ms);
/* Thread tid blocked in futex() on addr: /proc shows a call's arguments only while it sleeps. */
int futex_blocked_on(pid_t tid, const void *addr);

/* The options every guest test takes, as "--key value" pairs; each test uses some. */
struct test_args {
	const char *check, *func, *mode, *dir, *out;
	/* --spawn: where the check runs (a list of scenarios); --exec-bin: what to exec */
	const char *spawn, *exec_bin;
	unsigned long cs_start, cs_success, cs_end, win_start, win_store;
	/* --iterations, --rounds or --seconds: how much work the test does */
	unsigned long count;
	/* --min-hits, --max-seconds: a stress test goes on past --seconds, up to
	 * --max-seconds, until it has reached the window --min-hits times */
	unsigned long min_hits, max_seconds;
	int pop_width, mremap;
	/* --high-pop 1: a 64-bit process puts a list32 pop above 4 GiB (struct high_pop) */
	int high_pop;
};

/* Fill a from argv; an unknown key, a missing value or a bad number exits 2 with usage. */
void parse_test_args(int argc, char **argv, struct test_args *a, const char *usage);

/*
 * The options of the tests that call both entries and the ops by number: --check,
 * --func64 and --func32 name them, and each of keys[n] (n <= 32) gives vals[k] an unsigned
 * value. A key left out, an unknown one or a bad number exits 2 with usage: every op
 * number must come from the host, which read it from the tree's uapi header.
 */
struct entry_names {
	const char *check, *func64, *func32;
};
void parse_entry_args(int argc, char **argv, struct entry_names *names,
		      const char *const *keys, unsigned long *const *vals, size_t n,
		      const char *usage);

/* Printed as {"check": name, "k": v, ...}; keys/values alternate, NULL ends. */
void emit_record(const char *check, const char *first_key, ...);

/* The same record from parallel arrays of n keys and values. */
void emit_record_array(const char *check, const char *const *keys, const unsigned long *values,
		       size_t n);

/* The value of key in a record emit_record printed; -ENOENT without it, -EINVAL if not a number. */
int record_value(const char *record, const char *key, unsigned long *value);

/*
 * The kernel's own count of its robust-unlock fixups: a kprobe event on
 * __futex_fixup_robust_unlock through tracefs. The kernel calls that function only
 * for a task with a signal pending that was interrupted inside a critical range.
 * fixup_probe_arm() returns 1 when the probe is armed; fixup_probe_hits() is the
 * count since then; fixup_probe_disarm() removes the probe.
 */
int fixup_probe_arm(void);
unsigned long fixup_probe_hits(void);
void fixup_probe_disarm(void);

/*
 * A 64-bit process may pass the list32 entry and the LIST32 ops a pop above 4 GiB:
 * the pop is 4 bytes wide, its pointer is not. A kernel that takes the pointer as
 * 32 bits writes at its low alias (the address truncated to 32 bits) instead. So
 * high_pop_map() maps a page above 4 GiB for pop (and the lock) and, with
 * MAP_FIXED_NOREPLACE, a canary page at the page's alias, filled with ALIAS_FILL;
 * map_flags is MAP_PRIVATE, or MAP_SHARED when a forked child must write them.
 * Returns 0, or -1 after a message (a 32-bit build, or no free pair of addresses).
 */
#define ALIAS_FILL 0xa7
struct high_pop {
	unsigned char *page;	/* above 4 GiB, zeroed */
	unsigned char *alias;	/* at (uint32_t)page, every byte ALIAS_FILL */
};

int high_pop_map(struct high_pop *hp, int map_flags);
/* The bytes of the alias page that no longer hold ALIAS_FILL. */
unsigned long high_pop_alias_touched(const struct high_pop *hp);

/*
 * The kernel maps all of RAM at the direct map, so a page of ours has a second, kernel
 * address there: page_offset_base + (PFN << 12). The PFN comes from /proc/self/pagemap
 * (0 without CAP_SYS_ADMIN); the base is fixed only with nokaslr, which kaslr_off
 * confirms (_text at its link address), and depends on 4- or 5-level paging. page must
 * stay resident (mlock) for alias to stay valid. alias is 0 unless pfn and kaslr_off.
 */
struct direct_alias {
	uint64_t pfn;
	int kaslr_off, five_level;
	uintptr_t alias;	/* of the page's first byte */
};

void direct_alias_find(const void *page, struct direct_alias *out);

#endif
