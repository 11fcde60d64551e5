// SPDX-License-Identifier: GPL-2.0
/*
 * robust-exit-settle: an LD_PRELOAD library for the kernel's robust_list selftest that
 * removes the race its exit-time tests carry, without changing what they check.
 *
 * In test_robustness, test_set_list_op_pending and test_robust_list_multiple_elements a
 * lock holder registers a robust list, takes its locks, meets the waiters at a barrier,
 * calls usleep(100) and exits. The kernel's exit-time robust-list walk must then mark
 * each lock FUTEX_OWNER_DIED and wake its waiter. The test assumes the waiters are
 * asleep in futex_wait() by the end of those 100 us. When one is late, it either sees
 * the word change under it (EAGAIN) or, later still, waits on a lock whose owner is
 * already dead and times out after 3 s (ETIMEDOUT). Both print what a lost wakeup
 * prints, "Expected ret (-1) == 0 (0)", so no rerun rule can tell them apart.
 *
 * This usleep() first waits until the premise holds: every lock on the caller's robust
 * list (and its list_op_pending) has a task of the caller's session asleep in futex()
 * on that lock's word, as /proc/<pid>/syscall shows it. Only then does the caller sleep
 * and exit, so the walk always finds its waiters asleep and every wakeup it must send
 * is observable. A caller with no robust locks sleeps as before. The wait is bounded
 * (SETTLE_MAX_MS, under the waiters' 3 s timeout); when it runs out a line on stderr
 * says so, and the test goes on and judges the kernel as it would have.
 *
 * The holders are CLONE_VM children without TLS of their own, so this code uses raw
 * system calls and stack buffers only: no malloc, no stdio, no opendir.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/futex.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SETTLE_MAX_MS 2000
#define SETTLE_POLL_US 500
/* The robust_list selftest holds at most 10 locks; more is not its list. */
#define MAX_LOCKS 64

struct dirent64_raw {
	uint64_t ino;
	int64_t off;
	unsigned short reclen;
	unsigned char type;
	char name[];
};

static void say(const char *text)
{
	ssize_t unused = write(2, text, strlen(text));

	(void)unused;
}

/* The futex words of the caller's robust list and pending op; how many there are. */
static int robust_words(uintptr_t *words)
{
	struct robust_list_head *head;
	struct robust_list *entry;
	size_t len;
	int n = 0;

	if (syscall(SYS_get_robust_list, 0, &head, &len) || !head)
		return 0;
	for (entry = head->list.next; entry && entry != &head->list && n < MAX_LOCKS;
	     entry = entry->next)
		words[n++] = (uintptr_t)entry + head->futex_offset;
	if (head->list_op_pending && n < MAX_LOCKS)
		words[n++] = (uintptr_t)head->list_op_pending + head->futex_offset;
	return n;
}

static uintptr_t parse_hex(const char *s)
{
	uintptr_t value = 0;

	if (s[0] != '0' || s[1] != 'x')
		return 0;
	for (s += 2; *s; s++) {
		int digit = *s >= 'a' ? *s - 'a' + 10 : *s - '0';

		if (digit < 0 || digit > 15)
			break;
		value = value * 16 + digit;
	}
	return value;
}

/* The futex word pid is asleep on, from /proc/<pid>/syscall; 0 when it is not. */
static uintptr_t asleep_on(const char *pid)
{
	char path[64] = "/proc/", text[256];
	char *space;
	ssize_t got;
	int fd;

	strcat(strcat(path, pid), "/syscall");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	got = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (got <= 0)
		return 0;
	text[got] = '\0';
	/* "202 0x<uaddr> ...": blocked in futex(); a runnable task reads "running". */
	space = strchr(text, ' ');
	if (!space || strncmp(text, "202 ", 4))
		return 0;
	return parse_hex(space + 1);
}

/* Mark each word some task of our session is asleep on; true when all are marked. */
static int all_asleep(const uintptr_t *words, int n)
{
	char buf[4096];
	int seen[MAX_LOCKS] = { 0 }, left = n;
	pid_t session = getsid(0), self = getpid();
	long got;
	int dir = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (dir < 0)
		return 0;
	while (left && (got = syscall(SYS_getdents64, dir, buf, sizeof(buf))) > 0) {
		for (long at = 0; at < got && left;) {
			struct dirent64_raw *d = (struct dirent64_raw *)(buf + at);
			pid_t pid = atoi(d->name);
			uintptr_t word;

			at += d->reclen;
			if (pid <= 0 || pid == self || getsid(pid) != session)
				continue;
			word = asleep_on(d->name);
			for (int i = 0; word && i < n; i++)
				if (words[i] == word && !seen[i]) {
					seen[i] = 1;
					left--;
				}
		}
	}
	close(dir);
	return left == 0;
}

static void sleep_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };

	while (nanosleep(&ts, &ts))
		;
}

int usleep(useconds_t us)
{
	uintptr_t words[MAX_LOCKS];
	int n = robust_words(words), waited = 0;

	while (n && !all_asleep(words, n)) {
		if (waited >= SETTLE_MAX_MS * 1000) {
			say("# robust-exit-settle: a waiter was not asleep in futex() after "
			    "2 s; exiting anyway\n");
			break;
		}
		sleep_us(SETTLE_POLL_US);
		waited += SETTLE_POLL_US;
	}
	sleep_us(us);
	return 0;
}
