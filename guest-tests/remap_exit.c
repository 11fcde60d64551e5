// SPDX-License-Identifier: GPL-2.0
/*
 * remap-exit: the race the series closes, made deterministic.
 *
 * A child task shares our memory (CLONE_VM) but has its own TID and robust list.
 * It holds a robust mutex that lives in a MAP_SHARED page and unlocks it:
 *   - vdso mode: through the vDSO try_unlock entry, single-stepped, and it parks
 *     itself in the SIGTRAP handler when it stops at cs_start or cs_success with
 *     ZF set, i.e. after the cmpxchg succeeded and before its own pop store;
 *   - legacy mode: the classic user-space unlock, a cmpxchg and then (never) the
 *     store that clears list_op_pending.
 * While it is parked, we unmap the page and map a different object at the same
 * address, whose word at the lock offset equals the child's TID. Then we SIGKILL
 * the child. At its exit the kernel walks list_op_pending: if the pointer was
 * not cleared, it finds "its" TID in the new object and writes FUTEX_OWNER_DIED
 * there. Any change to the new object is corruption.
 *
 * With the series, the SIGTRAP that stopped the child inside the critical range
 * made the kernel clear pop before delivering the signal, so vdso mode must see
 * no corruption. Legacy mode is the positive control: it must see corruption,
 * or this test cannot detect the bug at all. And it must be the kernel's own
 * write, the one handle_futex_death() makes: (uval & FUTEX_WAITERS) |
 * FUTEX_OWNER_DIED, which for our waiter-less TID is FUTEX_OWNER_DIED alone
 * (the TID bits cleared), at the lock offset and nowhere else (owner_died);
 * any other change is something else writing there (wrong_values).
 *
 * Every mapping kind (file, memfd, shared anonymous) is tried, and in vdso mode
 * both stop points. Counters go out as one JSON record.
 */
#define _GNU_SOURCE
#include "vdso_helpers.h"

#include <fcntl.h>
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
#define FILL 0xa5a5a5a5U
#define WAIT_MS 10000


enum mapping { MAP_FILE_BACKED, MAP_MEMFD, MAP_SHMEM, MAP_KINDS };
static const char *const mapping_names[MAP_KINDS] = { "file", "memfd", "shmem" };

/* Shared with the child through CLONE_VM. */
static struct robust_list_head head;
static volatile int child_stopped, child_zf;
static char *page;
static try_unlock_fn unlock_fn;
static uintptr_t stop_ip;

struct counters {
	unsigned long rounds, window_hits, not_reached, zf_clear_stops, corruptions;
	unsigned long owner_died, wrong_values, last_value, first_corrupt_variant;
};

static int is_legacy(const struct test_args *o)
{
	return !strcmp(o->mode, "legacy");
}

static void park(void)
{
	child_stopped = 1;
	for (;;)
		syscall(SYS_pause);
}

static void register_robust_list(uint32_t **lock, uint32_t *tid)
{
	*tid = (uint32_t)syscall(SYS_gettid);
	*lock = (uint32_t *)(page + LOCK_OFF);
	head.list.next = &head.list;
	head.futex_offset = LOCK_OFF - ENTRY_OFF;
	head.list_op_pending = NULL;
	if (syscall(SYS_set_robust_list, &head, sizeof(head)))
		syscall(SYS_exit, 2);
	**lock = *tid;			/* we own the mutex */
	head.list_op_pending = (struct robust_list *)(page + ENTRY_OFF);
}

static int legacy_child(void *arg)
{
	uint32_t *lock, tid;

	(void)arg;
	register_robust_list(&lock, &tid);
	if (__sync_bool_compare_and_swap(lock, tid, 0)) {
		child_zf = 1;
		park();		/* killed before list_op_pending = NULL */
	}
	return 1;
}

static int on_child_step(const struct step_regs *r, void *arg)
{
	(void)arg;
	if (r->ip == stop_ip) {
		child_zf = !!(r->flags & X86_EFLAGS_ZF);
		park();
	}
	return 0;
}

struct unlock_call {
	uint32_t *lock;
	uint32_t tid;
};

static void do_unlock(void *arg)
{
	struct unlock_call *c = arg;

	unlock_fn(c->lock, c->tid, (void *)&head.list_op_pending);
}

static int vdso_child(void *arg)
{
	struct unlock_call c;

	(void)arg;
	register_robust_list(&c.lock, &c.tid);
	single_step(do_unlock, &c, on_child_step, NULL);
	return 1;		/* never stopped at stop_ip */
}

static int make_object(enum mapping kind, const char *dir, int round)
{
	char path[256];
	int fd;

	if (kind == MAP_SHMEM)
		return -1;
	if (kind == MAP_MEMFD) {
		fd = (int)syscall(SYS_memfd_create, "remap-exit", 0);
	} else {
		snprintf(path, sizeof(path), "%s/remap-exit-%d-%d", dir, (int)getpid(), round);
		fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
		unlink(path);
	}
	if (fd < 0 || ftruncate(fd, PAGE)) {
		perror("create mapping object");
		exit(2);
	}
	return fd;
}

static char *map_at(void *addr, int fd)
{
	int flags = MAP_SHARED | (addr ? MAP_FIXED : 0) | (fd < 0 ? MAP_ANONYMOUS : 0);
	char *p = mmap(addr, PAGE, PROT_READ | PROT_WRITE, flags, fd, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(2);
	}
	return p;
}

static int wait_stopped(pid_t pid)
{
	struct timespec tick = { 0, 1000 * 1000 };
	int waited_ms = 0, status;

	while (!child_stopped && waited_ms++ < WAIT_MS) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return -1;	/* the child ran to the end without stopping */
		nanosleep(&tick, NULL);
	}
	return child_stopped ? 0 : -1;
}

/* Everything but the lock word still holds the fill: nothing else was written. */
static int page_filled(const char *p)
{
	int i;

	for (i = 0; i < PAGE; i += 4)
		if (i != LOCK_OFF && *(const volatile uint32_t *)(p + i) != FILL)
			return 0;
	return 1;
}

/* One round: child unlocks and parks, we remap under it, kill it, and inspect. */
static void round_once(const struct test_args *o, enum mapping kind, int variant, int round,
		       struct counters *c)
{
	int fd_a = make_object(kind, o->dir, round), fd_b;
	char *new_page;
	uint32_t value;
	pid_t pid;

	page = map_at(NULL, fd_a);
	memset(page, 0, PAGE);
	child_stopped = child_zf = 0;
	pid = clone_vm(is_legacy(o) ? legacy_child : vdso_child, NULL);
	c->rounds++;
	if (wait_stopped(pid)) {
		c->not_reached++;
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		munmap(page, PAGE);
		return;
	}
	if (child_zf)
		c->window_hits++;
	else
		c->zf_clear_stops++;

	/* Someone else's data lands where the mutex was. */
	munmap(page, PAGE);
	fd_b = make_object(kind, o->dir, round + 1000);
	new_page = map_at(page, fd_b);
	memset(new_page, 0xa5, PAGE);
	*(volatile uint32_t *)(new_page + LOCK_OFF) = (uint32_t)pid;

	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);

	value = *(volatile uint32_t *)(new_page + LOCK_OFF);
	if (value != (uint32_t)pid || *(volatile uint32_t *)(new_page + ENTRY_OFF) != FILL) {
		if (!c->corruptions)
			c->first_corrupt_variant = (unsigned long)variant;
		c->corruptions++;
		c->last_value = value;
		if (value == FUTEX_OWNER_DIED && page_filled(new_page))
			c->owner_died++;
		else
			c->wrong_values++;
	}
	munmap(new_page, PAGE);
	if (fd_a >= 0)
		close(fd_a);
	if (fd_b >= 0)
		close(fd_b);
}

#define USAGE "remap-exit --check NAME --mode vdso|legacy [--func SYMBOL " \
	"--cs-start OFF --cs-success OFF --cs-end OFF] [--rounds N] [--dir D]"

static void parse_args(int argc, char **argv, struct test_args *o)
{
	parse_test_args(argc, argv, o, USAGE);
	if (!o->mode || (strcmp(o->mode, "legacy") && (!o->func || !o->cs_end))) {
		fprintf(stderr, "usage: %s\n", USAGE);
		exit(2);
	}
}

int main(int argc, char **argv)
{
	struct test_args o = { .count = 3, .dir = "/tmp" };
	struct counters c = { 0 };
	struct vdso_func f;
	int kind, stop, variant = 0;

	parse_args(argc, argv, &o);
	if (!is_legacy(&o)) {
		if (vdso_find(o.func, &f)) {
			fprintf(stderr, "%s: %s is not exported by the running vDSO\n", o.check, o.func);
			return 3;
		}
		unlock_fn = (try_unlock_fn)f.addr;
	}
	for (kind = 0; kind < MAP_KINDS; kind++) {
		for (stop = 0; stop < (is_legacy(&o) ? 1 : 2); stop++, variant++) {
			unsigned long r;

			stop_ip = vdso_base() + (stop ? o.cs_success : o.cs_start);
			for (r = 0; r < o.count; r++)
				round_once(&o, kind, variant, (int)r, &c);
			fprintf(stderr, "%s: %s stop=%s: %lu corruptions so far\n", o.check,
				mapping_names[kind], is_legacy(&o) ? "after-cmpxchg" : stop ? "success" : "start",
				c.corruptions);
		}
	}
	emit_record(o.check, "rounds", c.rounds, "window_hits", c.window_hits,
		    "not_reached", c.not_reached, "zf_clear_stops", c.zf_clear_stops,
		    "corruptions", c.corruptions, "owner_died", c.owner_died,
		    "wrong_values", c.wrong_values, "last_value", c.last_value,
		    "first_corrupt_variant", c.first_corrupt_variant, NULL);
	return 0;
}
