// SPDX-License-Identifier: GPL-2.0
/*
 * stress-remap-exit: the remap-exit race with no artificial stop.
 *
 * Several children (CLONE_VM, each its own TID, robust list and mutex page) loop
 * lock -> unlock as fast as they can, through the vDSO entry or the classic
 * user-space unlock. The parent picks a child at a random moment and stops it
 * with SIGSTOP. If the mutex is free at that moment, another task could have
 * taken it and recycled its memory: the parent maps TID-bearing data over the
 * page, SIGKILLs the child and checks that data after the exit. (If the child
 * holds the mutex, nobody else may touch the page; it is resumed instead.) A
 * killed child is replaced by a new one.
 *
 * The lock side does not announce itself in list_op_pending here, so the only
 * way for the pending op to point at a free mutex is the unlock window.
 *
 * Where the child stopped is read from /proc/PID/syscall (the user IP of a task
 * stopped outside a syscall) and from its robust head, lock word and phase:
 *   - window_hits: vdso mode, the IP was inside [cs_start, cs_end); legacy mode,
 *     the cmpxchg had released the lock but list_op_pending was still set;
 *   - unfixed_windows: vdso mode only, the child stopped after its cmpxchg with
 *     list_op_pending still set, i.e. the kernel did not clear it;
 *   - fixups: hits of a kprobe on __futex_fixup_robust_unlock, via tracefs;
 *   - corruptions: the mapped-over data changed at the child's exit.
 *
 * Under plain TCG an interrupt lands only between translation blocks, so the
 * window is almost never hit; the harness runs this under QEMU -singlestep.
 */
#define _GNU_SOURCE
#include "vdso_helpers.h"

#include <linux/futex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define ENTRY_OFF 0x40
#define LOCK_OFF 0x80
#define SLOTS 3

#define WRITE_ONCE(x, v) (*(volatile __typeof__(x) *)&(x) = (v))
#define READ_ONCE(x) (*(volatile __typeof__(x) *)&(x))


enum phase { IDLE, LOCKED, UNLOCKING };

struct slot {
	struct robust_list_head head;
	char *page;
	pid_t pid;
	int phase;
	unsigned long iterations;
};

struct counters {
	unsigned long iterations, stops, kills, window_hits, unfixed_windows, corruptions;
	unsigned long fixups, fixup_probe, first_corruption_ms;
};

#define USAGE "stress-remap-exit --check NAME --mode vdso|legacy [--func F " \
	"--cs-start OFF --cs-end OFF] [--seconds N] [--min-hits N --max-seconds N]"

static struct slot slots[SLOTS];
static try_unlock_fn unlock_fn;
static int legacy;

static int child_loop(void *arg)
{
	struct slot *s = arg;
	uint32_t tid = (uint32_t)syscall(SYS_gettid);
	uint32_t *lock = (uint32_t *)(s->page + LOCK_OFF);
	struct robust_list *entry = (struct robust_list *)(s->page + ENTRY_OFF);

	s->head.list.next = &s->head.list;
	s->head.futex_offset = LOCK_OFF - ENTRY_OFF;
	WRITE_ONCE(s->head.list_op_pending, NULL);
	if (syscall(SYS_set_robust_list, &s->head, sizeof(s->head)))
		syscall(SYS_exit, 2);
	for (;;) {
		while (!__sync_bool_compare_and_swap(lock, 0, tid))
			;
		WRITE_ONCE(s->phase, LOCKED);
		/* unlock: announce, release, drop the announcement */
		WRITE_ONCE(s->head.list_op_pending, entry);
		WRITE_ONCE(s->phase, UNLOCKING);
		if (legacy) {
			__sync_bool_compare_and_swap(lock, tid, 0);
			WRITE_ONCE(s->head.list_op_pending, NULL);
		} else {
			unlock_fn(lock, tid, (void *)&s->head.list_op_pending);
		}
		WRITE_ONCE(s->phase, IDLE);
		WRITE_ONCE(s->iterations, s->iterations + 1);
	}
	return 0;
}

static char *map_page(void *at, uint32_t fill_tid)
{
	int fd = (int)syscall(SYS_memfd_create, "stress-remap-exit", 0);
	char *p;

	if (fd < 0 || ftruncate(fd, PAGE)) {
		perror("memfd");
		exit(2);
	}
	p = mmap(at, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | (at ? MAP_FIXED : 0), fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		perror("mmap");
		exit(2);
	}
	memset(p, fill_tid ? 0xa5 : 0, PAGE);
	if (fill_tid)
		*(uint32_t *)(p + LOCK_OFF) = fill_tid;
	return p;
}

static void start_child(struct slot *s)
{
	s->page = map_page(NULL, 0);
	s->phase = IDLE;
	s->iterations = 0;
	s->pid = clone_vm(child_loop, s);
}

/* The user IP of a task stopped outside a syscall: "-1 SP PC" in /proc/PID/syscall. */
static uintptr_t stopped_ip(pid_t pid)
{
	char path[64], buf[128];
	unsigned long sp, pc;
	long nr;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/syscall", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f) || sscanf(buf, "%ld %lx %lx", &nr, &sp, &pc) != 3)
		pc = 0;
	fclose(f);
	return pc;
}

static unsigned long ms_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (unsigned long)((now.tv_sec - t0->tv_sec) * 1000 +
			       (now.tv_nsec - t0->tv_nsec) / 1000000);
}

static void classify(const struct test_args *o, struct slot *s, struct counters *c)
{
	uint32_t lock = READ_ONCE(*(uint32_t *)(s->page + LOCK_OFF));
	int pending = READ_ONCE(s->head.list_op_pending) != NULL;
	int unlocking = READ_ONCE(s->phase) == UNLOCKING;
	uintptr_t ip = stopped_ip(s->pid), base = vdso_base();

	if (legacy) {
		if (unlocking && lock == 0 && pending)
			c->window_hits++;
		return;
	}
	if (ip >= base + o->cs_start && ip < base + o->cs_end)
		c->window_hits++;
	if (unlocking && lock == 0 && pending)
		c->unfixed_windows++;
}

/* Stop one child at a random moment, remap under it, kill it, check, replace it. */
static void strike(const struct test_args *o, struct slot *s, struct counters *c,
		   const struct timespec *t0, unsigned int *seed)
{
	struct timespec delay = { 0, (long)(rand_r(seed) % 400) * 1000 };
	char *fresh;
	int status;

	nanosleep(&delay, NULL);
	kill(s->pid, SIGSTOP);
	if (waitpid(s->pid, &status, WUNTRACED) != s->pid || !WIFSTOPPED(status)) {
		fprintf(stderr, "%s: child %d did not stop\n", o->check, (int)s->pid);
		exit(2);
	}
	c->stops++;
	if (READ_ONCE(*(uint32_t *)(s->page + LOCK_OFF)) != 0) {
		kill(s->pid, SIGCONT);	/* held: the page is not anybody else's to reuse */
		return;
	}
	classify(o, s, c);
	c->iterations += READ_ONCE(s->iterations);
	munmap(s->page, PAGE);
	fresh = map_page(s->page, (uint32_t)s->pid);
	kill(s->pid, SIGKILL);
	waitpid(s->pid, NULL, 0);
	c->kills++;
	if (READ_ONCE(*(uint32_t *)(fresh + LOCK_OFF)) != (uint32_t)s->pid) {
		if (!c->corruptions)
			c->first_corruption_ms = ms_since(t0);
		c->corruptions++;
	}
	munmap(fresh, PAGE);
	start_child(s);
}

/*
 * Strike for --seconds; then, when fewer than --min-hits kills landed in the window (a
 * host busy enough to slow the guest down), go on until they did or --max-seconds.
 */
static int keep_striking(const struct test_args *o, const struct counters *c,
			 const struct timespec *t0)
{
	unsigned long ms = ms_since(t0);

	if (ms < o->count * 1000)
		return 1;
	return c->window_hits < o->min_hits && ms < o->max_seconds * 1000;
}

int main(int argc, char **argv)
{
	struct test_args o = { .count = 20 };
	struct counters c = { 0 };
	unsigned int seed = (unsigned int)getpid();
	struct timespec t0;
	struct vdso_func f;
	unsigned long elapsed_s;
	int i;

	parse_test_args(argc, argv, &o, USAGE);
	if (!o.mode || (strcmp(o.mode, "legacy") && (!o.func || !o.cs_end))) {
		fprintf(stderr, "usage: %s\n", USAGE);
		return 2;
	}
	legacy = !strcmp(o.mode, "legacy");
	if (!legacy) {
		if (vdso_find(o.func, &f)) {
			fprintf(stderr, "%s: %s is not exported by the running vDSO\n", o.check, o.func);
			return 3;
		}
		unlock_fn = (try_unlock_fn)f.addr;
	}
	c.fixup_probe = (unsigned long)fixup_probe_arm();
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < SLOTS; i++)
		start_child(&slots[i]);
	for (i = 0; keep_striking(&o, &c, &t0); i = (i + 1) % SLOTS)
		strike(&o, &slots[i], &c, &t0, &seed);
	elapsed_s = (ms_since(&t0) + 500) / 1000;
	for (i = 0; i < SLOTS; i++) {
		kill(slots[i].pid, SIGKILL);
		waitpid(slots[i].pid, NULL, 0);
	}
	if (c.fixup_probe) {
		c.fixups = fixup_probe_hits();
		fixup_probe_disarm();
	}
	emit_record(o.check, "seconds", elapsed_s, "iterations", c.iterations, "stops", c.stops,
		    "kills", c.kills,
		    "window_hits", c.window_hits, "unfixed_windows", c.unfixed_windows,
		    "fixups", c.fixups, "fixup_probe", c.fixup_probe,
		    "evidence", c.window_hits + c.fixups, "corruptions", c.corruptions,
		    "first_corruption_ms", c.first_corruption_ms, NULL);
	return 0;
}
