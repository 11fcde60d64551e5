// SPDX-License-Identifier: GPL-2.0
/*
 * The race of robust_list.c's exit-time tests, with the waiter late on purpose: the holder
 * (this process) takes a robust lock in a shared page and forks a waiter, which sleeps
 * 300 ms before it waits on the lock as the selftest's mutex_lock() does. The holder calls
 * usleep(100) and exits; the kernel's robust-list walk marks the lock FUTEX_OWNER_DIED and
 * wakes a waiter if there is one. Plain, the waiter comes too late and times out; with
 * guest-tests/kselftest/robust_exit_settle.c preloaded, the holder's usleep() waits until
 * the waiter is asleep, and the waiter is woken. The waiter prints "woken" or "timed out".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct lock {
	_Atomic uint32_t word;
	struct robust_list list;
};

static void waiter(struct lock *lock)
{
	struct timespec late = { 0, 300 * 1000 * 1000 }, timeout = { 2, 0 };
	uint32_t seen;
	long ret;

	nanosleep(&late, NULL);
	seen = lock->word | FUTEX_WAITERS;
	lock->word = seen;
	ret = syscall(SYS_futex, &lock->word, FUTEX_WAIT, seen, &timeout, NULL, 0);
	if (ret == 0 && (lock->word & FUTEX_OWNER_DIED))
		printf("woken\n");
	else
		printf("%s\n", errno == ETIMEDOUT ? "timed out" : "failed");
}

int main(void)
{
	static struct robust_list_head head;
	struct lock *lock = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
				 -1, 0);

	if (lock == MAP_FAILED)
		return 2;
	lock->word = getpid();
	head.list.next = &lock->list;
	lock->list.next = &head.list;
	head.futex_offset = -(long)offsetof(struct lock, list);
	if (syscall(SYS_set_robust_list, &head, sizeof(head)))
		return 2;
	/* A forked child starts with no robust list of its own. */
	if (fork() == 0) {
		waiter(lock);
		return 0;
	}
	usleep(100);
	return 0;
}
