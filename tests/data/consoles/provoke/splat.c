// SPDX-License-Identifier: GPL-2.0
/* Provokes one kind of kernel report on load, to capture real consoles for parser tests. */
#include <linux/module.h>
#include <linux/delay.h>
#include <linux/preempt.h>
#include <linux/bug.h>

static char *action = "warn";
module_param(action, charp, 0);
static char *note = "";
module_param(note, charp, 0);
static unsigned long addr;
module_param(addr, ulong, 0);

static noinline void splat_write(unsigned long where)
{
	*(volatile int *)where = 1;
}

static noinline void splat_sleep_atomic(void)
{
	preempt_disable();
	msleep(20);
	preempt_enable();
}

static noinline void splat_spin(unsigned int seconds)
{
	unsigned int i;

	preempt_disable();
	for (i = 0; i < seconds * 10; i++)
		mdelay(100);
	preempt_enable();
}

static int __init splat_init(void)
{
	if (!strcmp(action, "warn"))
		WARN(1, "splat: provoked warning, note=%s\n", note);
	else if (!strcmp(action, "warn_on"))
		WARN_ON(addr == 0);
	else if (!strcmp(action, "bug"))
		BUG();
	else if (!strcmp(action, "write"))
		splat_write(addr);
	else if (!strcmp(action, "atomic"))
		splat_sleep_atomic();
	else if (!strcmp(action, "spin"))
		splat_spin(addr ? addr : 30);
	else if (!strcmp(action, "panic"))
		panic("splat: provoked panic");
	return -EAGAIN;
}
module_init(splat_init);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Provoke kernel reports for console parser tests");
