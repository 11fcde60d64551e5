// SPDX-License-Identifier: GPL-2.0
#define _GNU_SOURCE
#include "vdso_helpers.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/syscall.h>
#include <sched.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

uintptr_t vdso_base(void)
{
	return (uintptr_t)getauxval(AT_SYSINFO_EHDR);
}

/*
 * The x86 vDSO is mapped as a whole ELF file, section headers included, and is
 * linked at 0, so symbol values are offsets from the mapping base.
 */
int vdso_find(const char *name, struct vdso_func *out)
{
	uintptr_t base = vdso_base();
	const ElfW(Ehdr) *eh = (const ElfW(Ehdr) *)base;
	const ElfW(Shdr) *sh;
	int i;

	if (!base)
		return -ENOENT;
	sh = (const ElfW(Shdr) *)(base + eh->e_shoff);
	for (i = 0; i < eh->e_shnum; i++) {
		const ElfW(Sym) *sym;
		const char *strtab;
		size_t n, j;

		if (sh[i].sh_type != SHT_DYNSYM)
			continue;
		sym = (const ElfW(Sym) *)(base + sh[i].sh_offset);
		strtab = (const char *)(base + sh[sh[i].sh_link].sh_offset);
		n = sh[i].sh_size / sizeof(*sym);
		for (j = 0; j < n; j++) {
			if (strcmp(strtab + sym[j].st_name, name))
				continue;
			out->addr = base + sym[j].st_value;
			out->size = sym[j].st_size;
			return 0;
		}
	}
	return -ENOENT;
}

int vdso_mapping(uintptr_t *start, uintptr_t *end)
{
	FILE *maps = fopen("/proc/self/maps", "r");
	char line[512];
	int found = -ENOENT;

	if (!maps)
		return -errno;
	while (fgets(line, sizeof(line), maps)) {
		unsigned long s, e;

		if (strstr(line, "[vdso]") && sscanf(line, "%lx-%lx", &s, &e) == 2) {
			*start = s;
			*end = e;
			found = 0;
			break;
		}
	}
	fclose(maps);
	return found;
}

static step_cb step_fn;
static void *step_arg;

#ifdef __x86_64__
#define REG_IP REG_RIP
#define REG_DX REG_RDX
#else
#define REG_IP REG_EIP
#define REG_DX REG_EDX
#endif

static void on_trap(int sig, siginfo_t *info, void *uc_void)
{
	ucontext_t *uc = uc_void;
	greg_t *gregs = uc->uc_mcontext.gregs;
	struct step_regs regs = {
		.ip = (uintptr_t)gregs[REG_IP],
		.flags = (unsigned long)gregs[REG_EFL],
		.dx = (uintptr_t)gregs[REG_DX],
	};

	(void)sig;
	(void)info;
	/* The kernel restores TF from this frame on sigreturn; clearing it ends stepping. */
	if (step_fn(&regs, step_arg))
		gregs[REG_EFL] &= ~(greg_t)X86_EFLAGS_TF;
}

/* Not inlined: pushf writes below the stack pointer, so it must not share a red zone. */
static __attribute__((noinline)) void set_trap_flag(void)
{
	__asm__ volatile("pushf\n\t"
			 "orl $0x100, (%%" 
#ifdef __x86_64__
			 "rsp"
#else
			 "esp"
#endif
			 ")\n\t"
			 "popf" ::: "memory", "cc");
}

void single_step(void (*fn)(void *), void *fn_arg, step_cb cb, void *cb_arg)
{
	struct sigaction sa = { .sa_sigaction = on_trap, .sa_flags = SA_SIGINFO };

	step_fn = cb;
	step_arg = cb_arg;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTRAP, &sa, NULL)) {
		perror("sigaction");
		exit(2);
	}
	set_trap_flag();
	fn(fn_arg);
}

#define CHILD_STACK (256 * 1024)

pid_t clone_vm(int (*fn)(void *), void *arg)
{
	char *stack = mmap(NULL, CHILD_STACK, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	pid_t pid;

	if (stack == MAP_FAILED) {
		perror("mmap stack");
		exit(2);
	}
	/* The stack is not freed: the child may be killed at any point while on it. */
	pid = clone(fn, stack + CHILD_STACK, CLONE_VM | SIGCHLD, arg);
	if (pid < 0) {
		perror("clone");
		exit(2);
	}
	return pid;
}

unsigned long parse_ulong(const char *s, const char *what)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || !*s || *end) {
		fprintf(stderr, "bad %s: '%s'\n", what, s);
		exit(2);
	}
	return v;
}

static int set_string(struct test_args *a, const char *k, const char *v)
{
	static const char *const keys[] = { "--check", "--func", "--mode", "--dir", "--out",
					     "--spawn", "--exec-bin" };
	const char **fields[] = { &a->check, &a->func, &a->mode, &a->dir, &a->out, &a->spawn,
				  &a->exec_bin };
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (!strcmp(k, keys[i])) {
			*fields[i] = v;
			return 1;
		}
	}
	return 0;
}

static int set_number(struct test_args *a, const char *k, const char *v)
{
	static const char *const keys[] = { "--cs-start", "--cs-success", "--cs-end",
					     "--win-start", "--win-store", "--iterations",
					     "--rounds", "--seconds", "--min-hits", "--max-seconds" };
	unsigned long *fields[] = { &a->cs_start, &a->cs_success, &a->cs_end, &a->win_start,
				    &a->win_store, &a->count, &a->count, &a->count,
				    &a->min_hits, &a->max_seconds };
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (!strcmp(k, keys[i])) {
			*fields[i] = parse_ulong(v, k);
			return 1;
		}
	}
	if (!strcmp(k, "--pop-width"))
		a->pop_width = (int)parse_ulong(v, k);
	else if (!strcmp(k, "--mremap"))
		a->mremap = (int)parse_ulong(v, k);
	else if (!strcmp(k, "--high-pop"))
		a->high_pop = (int)parse_ulong(v, k);
	else
		return 0;
	return 1;
}

void parse_test_args(int argc, char **argv, struct test_args *a, const char *usage)
{
	int i;

	for (i = 1; i + 1 < argc; i += 2)
		if (!set_string(a, argv[i], argv[i + 1]) && !set_number(a, argv[i], argv[i + 1]))
			break;
	if (i != argc || !a->check) {
		fprintf(stderr, "usage: %s\n", usage);
		exit(2);
	}
}

void parse_entry_args(int argc, char **argv, struct entry_names *names,
		      const char *const *keys, unsigned long *const *vals, size_t n,
		      const char *usage)
{
	unsigned long seen = 0;
	size_t k;
	int i;

	for (i = 1; i + 1 < argc; i += 2) {
		const char **name = !strcmp(argv[i], "--check") ? &names->check :
				    !strcmp(argv[i], "--func64") ? &names->func64 :
				    !strcmp(argv[i], "--func32") ? &names->func32 : NULL;

		if (name) {
			*name = argv[i + 1];
			continue;
		}
		for (k = 0; k < n && strcmp(argv[i], keys[k]); k++)
			;
		if (k == n)
			break;
		*vals[k] = parse_ulong(argv[i + 1], keys[k]);
		seen |= 1UL << k;
	}
	if (i != argc || !names->check || !names->func64 || !names->func32 ||
	    seen != (1UL << n) - 1) {
		fprintf(stderr, "usage: %s\n", usage);
		exit(2);
	}
}

void emit_record(const char *check, const char *first_key, ...)
{
	const char *key = first_key;
	va_list ap;

	printf("{\"check\": \"%s\"", check);
	va_start(ap, first_key);
	while (key) {
		printf(", \"%s\": %lu", key, va_arg(ap, unsigned long));
		key = va_arg(ap, const char *);
	}
	va_end(ap);
	printf("}\n");
	fflush(stdout);
}

void emit_record_array(const char *check, const char *const *keys, const unsigned long *values,
		       size_t n)
{
	size_t i;

	printf("{\"check\": \"%s\"", check);
	for (i = 0; i < n; i++)
		printf(", \"%s\": %lu", keys[i], values[i]);
	printf("}\n");
	fflush(stdout);
}

int record_value(const char *record, const char *key, unsigned long *value)
{
	size_t len = strlen(key);
	const char *p = record;
	char *end;

	/* Match the quoted key, so that "hits" is not found inside "old_hits". */
	while ((p = strchr(p, '"'))) {
		p++;
		if (!strncmp(p, key, len) && !strncmp(p + len, "\": ", 3)) {
			*value = strtoul(p + len + 3, &end, 10);
			return end == p + len + 3 ? -EINVAL : 0;
		}
		p = strchr(p, '"');	/* skip past this string's closing quote */
		if (!p)
			break;
		p++;
	}
	return -ENOENT;
}

#define TRACEFS "/sys/kernel/tracing"
#define PROBE_GROUP "futex_harness"
#define PROBE_EVENT "fixup"
#define PROBE PROBE_GROUP "/" PROBE_EVENT

static int write_file(const char *path, const char *text, int append)
{
	int fd = open(path, O_WRONLY | (append ? O_APPEND : O_TRUNC));
	int ok;

	if (fd < 0)
		return -1;
	ok = write(fd, text, strlen(text)) == (ssize_t)strlen(text);
	close(fd);
	return ok ? 0 : -1;
}

int fixup_probe_arm(void)
{
	struct stat st;

	if (stat(TRACEFS "/kprobe_events", &st))
		mount("tracefs", TRACEFS, "tracefs", 0, NULL);
	/* A probe left behind by an earlier test would keep its count: start afresh. */
	write_file(TRACEFS "/kprobe_events", "-:" PROBE "\n", 1);
	if (write_file(TRACEFS "/kprobe_events", "p:" PROBE " __futex_fixup_robust_unlock\n", 1))
		return 0;
	return !write_file(TRACEFS "/events/" PROBE "/enable", "1\n", 0);
}

/* kprobe_profile: one line per probe, "<event> <hits> <misses>". */
unsigned long fixup_probe_hits(void)
{
	char line[256], name[128];
	unsigned long hits = 0, h;
	FILE *f = fopen(TRACEFS "/kprobe_profile", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "%127s %lu", name, &h) == 2 && !strcmp(name, PROBE_EVENT))
			hits = h;
	if (f)
		fclose(f);
	return hits;
}

void fixup_probe_disarm(void)
{
	write_file(TRACEFS "/events/" PROBE "/enable", "0\n", 0);
	write_file(TRACEFS "/kprobe_events", "-:" PROBE "\n", 1);
}

#define HP_PAGE 4096UL
#define HP_TRIES 16

/* One page at exactly addr, or NULL (taken, or a kernel that ignores NOREPLACE). */
static unsigned char *map_exactly(uintptr_t addr, int map_flags)
{
	void *p = mmap((void *)addr, HP_PAGE, PROT_READ | PROT_WRITE,
		       map_flags | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	if (p != (void *)addr) {
		munmap(p, HP_PAGE);
		return NULL;
	}
	return p;
}

int high_pop_map(struct high_pop *hp, int map_flags)
{
	unsigned int i;

	hp->page = hp->alias = NULL;
	if (sizeof(void *) != 8) {
		fprintf(stderr, "high-pop: a 32-bit process has no pointer above 4 GiB\n");
		return -1;
	}
	/*
	 * The aliases sit near 1.4 GiB, far above a static binary and its heap and
	 * far below the mmap area; the pages at 360 GiB and up. Each try moves both.
	 */
	for (i = 0; i < HP_TRIES; i++) {
		uint64_t alias = 0x5a000000ULL + i * 0x100000ULL;
		uint64_t high = ((uint64_t)(0x5a + i) << 32) | alias;

		hp->alias = map_exactly((uintptr_t)alias, map_flags);
		if (!hp->alias)
			continue;
		hp->page = map_exactly((uintptr_t)high, map_flags);
		if (hp->page) {
			memset(hp->alias, ALIAS_FILL, HP_PAGE);
			return 0;
		}
		munmap(hp->alias, HP_PAGE);
	}
	hp->page = hp->alias = NULL;
	fprintf(stderr, "high-pop: no free page above 4 GiB with a free alias page\n");
	return -1;
}

unsigned long high_pop_alias_touched(const struct high_pop *hp)
{
	unsigned long n = 0;
	size_t i;

	for (i = 0; i < HP_PAGE; i++)
		n += ((volatile unsigned char *)hp->alias)[i] != ALIAS_FILL;
	return n;
}

long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

void nap_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

void poll_pause(unsigned int *turns)
{
	if ((*turns)++ < POLL_YIELDS)
		sched_yield();
	else
		nap_ms(1);
}

int wait_flag(volatile int32_t *flag, long timeout_ms)
{
	long deadline = now_ms() + timeout_ms;
	unsigned int turns = 0;

	while (!__atomic_load_n(flag, __ATOMIC_SEQ_CST)) {
		if (now_ms() >= deadline)
			return 0;
		poll_pause(&turns);
	}
	return 1;
}

int futex_blocked_on(pid_t tid, const void *addr)
{
	char path[64], buf[256];
	unsigned long nr, arg0;
	FILE *f;
	int ok = 0;

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (fgets(buf, sizeof(buf), f) && sscanf(buf, "%lu 0x%lx", &nr, &arg0) == 2) {
		ok = nr == (unsigned long)SYS_futex;
#ifdef SYS_futex_time64
		ok |= nr == (unsigned long)SYS_futex_time64;
#endif
		ok &= arg0 == (unsigned long)(uintptr_t)addr;
	}
	fclose(f);
	return ok;
}

/* The direct map's base with nokaslr (arch/x86/include/asm/page_64_types.h). */
#define PAGE_OFFSET_L4 0xffff888000000000ULL
#define PAGE_OFFSET_L5 0xff11000000000000ULL
/* _text with no KASLR: __START_KERNEL_map + CONFIG_PHYSICAL_START (16 MiB). */
#define TEXT_UNRANDOMIZED 0xffffffff81000000ULL
#define PFN_MASK ((1ULL << 55) - 1)

static uint64_t pagemap_pfn(const void *addr)
{
	uint64_t entry = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY);

	if (fd < 0)
		return 0;
	if (pread(fd, &entry, sizeof(entry), (off_t)((uintptr_t)addr / HP_PAGE * sizeof(entry))) !=
	    sizeof(entry))
		entry = 0;
	close(fd);
	/* bit 63: present; the PFN reads 0 without CAP_SYS_ADMIN */
	return entry >> 63 ? entry & PFN_MASK : 0;
}

static int text_unrandomized(void)
{
	char line[256], type, name[128];
	unsigned long long addr, found = 0;
	FILE *f = fopen("/proc/kallsyms", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "%llx %c %127s", &addr, &type, name) == 3 && !strcmp(name, "_text"))
			found = addr;
	if (f)
		fclose(f);
	return found == TEXT_UNRANDOMIZED;
}

/* A hint above 47 bits is honoured only when the kernel runs 5-level paging. */
static int five_level_paging(void)
{
#if defined(__x86_64__) && defined(__LP64__) /* not x32: its pointers are 32 bits */
	void *p = mmap((void *)(1UL << 50), HP_PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int high = p != MAP_FAILED && (uintptr_t)p >= (1UL << 47);

	if (p != MAP_FAILED)
		munmap(p, HP_PAGE);
	return high;
#else
	return 0;
#endif
}

void direct_alias_find(const void *page, struct direct_alias *out)
{
	uint64_t base;

	out->pfn = pagemap_pfn(page);
	out->kaslr_off = text_unrandomized();
	out->five_level = five_level_paging();
	base = out->five_level ? PAGE_OFFSET_L5 : PAGE_OFFSET_L4;
	/* A 32-bit program cannot name a kernel address: it never gets an alias. */
	out->alias = sizeof(void *) == 8 && out->pfn && out->kaslr_off ?
		     (uintptr_t)(base + (out->pfn << 12)) : 0;
}
