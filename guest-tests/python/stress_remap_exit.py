# SPDX-License-Identifier: GPL-2.0
"""py-stress-remap-exit-{vdso,legacy}: the remap-exit race with no artificial stop, from Python.

Each child comes from os.fork(), so it has its own TID, robust list and address space.
It maps a one-page memfd MAP_SHARED (the page its robust mutex lives in), registers a
robust list whose head sits in a shared control page the parent can read, and loops:
take the mutex (lock = TID), announce the unlock in list_op_pending, release, drop the
announcement:
  - vdso mode: release and drop in one call of the vDSO try_unlock entry (ctypes);
  - legacy mode: lock = 0 through the mapping, then, in a later and separate Python
    store, list_op_pending = 0: the classic user-space unlock, with a wide window.
In this loop the lock is free while list_op_pending is set only inside that window.

The parent sleeps a random while and stops a child with SIGSTOP. The stop is where an
interrupt last caught the child, and the kernel ran its fixup there (a signal was
pending). If the child is in its unlock with the mutex free (legacy: pop still set;
vdso: stopped inside the entry, or pop still set), the memory could already be someone
else's, so the parent recycles it under the child: it truncates the memfd, which drops
the page from every mapping (the child's too), and writes a new page whose word at the
lock offset is the child's TID. The child's mapping now shows that page, as a remap in
its own address space would (a parent cannot remap another mm). Then it SIGKILLs the
child. At exit the kernel walks list_op_pending: left set, it finds the TID and writes
FUTEX_OWNER_DIED (0x40000000) into the new data. Any other stop cannot leave a pending
op on a free lock, so the child is resumed: a kill and a fresh fork cost tens of ms of
Python under TCG, where stops are the samples that count.

Counters, as stress_remap_exit.c:
  - window_hits: vdso mode, the child stopped at an IP in [cs_start, cs_end) (read from
    /proc/PID/syscall); legacy mode, it stopped with the lock free and pop still set;
  - unfixed_windows (vdso mode): the lock free and pop still set, i.e. the kernel did
    not clear it;
  - fixups: hits of a kprobe on __futex_fixup_robust_unlock, read from tracefs;
  - corruptions: the recycled page changed at the child's exit.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import platform
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from vdso_helpers import LIBC, Unlock, emit, exports, read_vdso, try_unlock, vdso_base

PAGE = 4096
ENTRY_OFF = 0x40
LOCK_OFF = 0x80
SYS_SET_ROBUST_LIST = 273           # x86_64
HEAD_SIZE = 24                      # struct robust_list_head: next, futex_offset, pending
PENDING_OFF, ITER_OFF = 16, 64      # in the control page
FILL = 0xA5
TRACEFS = Path("/sys/kernel/tracing")
PROBE_GROUP, PROBE_EVENT = "futex_harness_py", "py_fixup"

PROT_RW, MAP_SHARED, MAP_ANONYMOUS = 0x3, 0x01, 0x20
LIBC.mmap.restype = ctypes.c_void_p
LIBC.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
LIBC.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_void_p]


def map_shared(fd: int) -> int:
    """One page MAP_SHARED: of fd, or anonymous (still shared across fork) when fd < 0."""
    flags = MAP_SHARED | (MAP_ANONYMOUS if fd < 0 else 0)
    addr = LIBC.mmap(None, PAGE, PROT_RW, flags, fd, 0)
    if addr in (None, ctypes.c_void_p(-1).value):
        raise OSError(ctypes.get_errno(), "mmap")
    return int(addr)


def u32(addr: int) -> ctypes.c_uint32:
    return ctypes.c_uint32.from_address(addr)


def u64(addr: int) -> ctypes.c_uint64:
    return ctypes.c_uint64.from_address(addr)


def child_loop(ctl: int, fd: int, unlock: Unlock | None) -> None:
    """Lock, announce, unlock, forever; the parent ends it with SIGKILL."""
    tid = os.getpid()               # the only thread of a forked child
    page = map_shared(fd)
    u64(ctl).value = ctl            # an empty list: head.next = &head
    ctypes.c_int64.from_address(ctl + 8).value = LOCK_OFF - ENTRY_OFF
    pending, count = u64(ctl + PENDING_OFF), u64(ctl + ITER_OFF)
    pending.value = 0
    if LIBC.syscall(ctypes.c_long(SYS_SET_ROBUST_LIST), ctypes.c_void_p(ctl),
                    ctypes.c_size_t(HEAD_SIZE)):
        os._exit(2)
    lock, lock_addr, entry, pop_addr = u32(page + LOCK_OFF), page + LOCK_OFF, \
        page + ENTRY_OFF, ctl + PENDING_OFF
    # Few statements per round: every one dilutes the share of time spent in the window.
    if unlock is None:
        while True:
            lock.value = tid        # nobody else ever takes this mutex
            pending.value = entry
            lock.value = 0
            pending.value = 0       # the window: between these two stores
            count.value += 1
    while True:
        lock.value = tid
        pending.value = entry
        unlock(lock_addr, tid, pop_addr)
        count.value += 1


@dataclass
class Child:
    ctl: int                        # shared control page: robust head, iteration count
    pid: int = 0
    fd: int = -1


@dataclass
class Counters:
    iterations: int = 0
    stops: int = 0
    kills: int = 0
    window_hits: int = 0
    unfixed_windows: int = 0
    corruptions: int = 0
    first_corruption_ms: int = 0


def start_child(c: Child, unlock: Unlock | None) -> None:
    c.fd = os.memfd_create("py-stress-remap-exit")
    os.ftruncate(c.fd, PAGE)
    ctypes.memset(c.ctl, 0, PAGE)
    c.pid = os.fork()
    if c.pid == 0:
        try:
            child_loop(c.ctl, c.fd, unlock)
        finally:
            os._exit(2)


def end_child(c: Child, k: Counters) -> None:
    os.kill(c.pid, signal.SIGKILL)
    os.waitpid(c.pid, 0)
    k.iterations += u64(c.ctl + ITER_OFF).value


def stop_child(c: Child) -> None:
    os.kill(c.pid, signal.SIGSTOP)
    _, status = os.waitpid(c.pid, os.WUNTRACED)
    if not os.WIFSTOPPED(status):
        raise RuntimeError(f"child {c.pid} did not stop (status {status:#x})")


def stopped_ip(pid: int) -> int:
    """The user IP of a task stopped outside a syscall: "-1 SP PC" in /proc/PID/syscall."""
    try:
        fields = Path(f"/proc/{pid}/syscall").read_text().split()
    except OSError:
        return 0
    return int(fields[2], 16) if len(fields) == 3 and fields[0] == "-1" else 0


def in_unlock(args: argparse.Namespace, c: Child, k: Counters) -> bool:
    """Count what the stop shows; True when the child stopped in its unlock."""
    pending = u64(c.ctl + PENDING_OFF).value != 0
    if args.mode == "legacy":
        k.window_hits += pending
        return pending
    ip = stopped_ip(c.pid) - vdso_base()
    in_range = args.cs_start <= ip < args.cs_end
    k.window_hits += in_range
    k.unfixed_windows += pending
    return pending or args.func_start <= ip < args.func_end


def lock_word(fd: int) -> int:
    return int.from_bytes(os.pread(fd, 4, LOCK_OFF), "little")


def strike(args: argparse.Namespace, c: Child, k: Counters, t0: float, rng: random.Random,
           unlock: Unlock | None) -> None:
    """Stop one child at a random moment; caught in its unlock: recycle, kill, inspect."""
    time.sleep(rng.randrange(400) / 1e6)
    stop_child(c)
    k.stops += 1
    # A held mutex's page is nobody else's to reuse; elsewhere nothing can go wrong.
    if lock_word(c.fd) != 0 or not in_unlock(args, c, k):
        os.kill(c.pid, signal.SIGCONT)
        return
    fresh = bytearray([FILL]) * PAGE
    fresh[LOCK_OFF:LOCK_OFF + 4] = c.pid.to_bytes(4, "little")
    os.ftruncate(c.fd, 0)                   # the child's page is gone from its mapping
    os.ftruncate(c.fd, PAGE)
    os.pwrite(c.fd, fresh, 0)
    end_child(c, k)
    k.kills += 1
    if os.pread(c.fd, PAGE, 0) != fresh:
        if not k.corruptions:
            k.first_corruption_ms = int((time.monotonic() - t0) * 1000)
        k.corruptions += 1
    os.close(c.fd)
    start_child(c, unlock)


def going_on(args: argparse.Namespace, k: Counters, elapsed: float) -> bool:
    """Strike for --seconds; then, with fewer than --min-hits window hits (the window is a
    few instructions in a Python loop, so a run can see none), go on until it has them or
    --max-seconds, as stress_remap_exit.c does."""
    if elapsed < args.seconds:
        return True
    return k.window_hits < args.min_hits and elapsed < args.max_seconds


def tracefs_write(name: str, text: str, append: bool = False) -> None:
    """os.write, not open(): Python's append mode seeks to the end, which tracefs refuses."""
    fd = os.open(TRACEFS / name, os.O_WRONLY | (os.O_APPEND if append else os.O_TRUNC))
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def probe_setup() -> bool:
    """A kprobe on __futex_fixup_robust_unlock; False when tracefs or kprobes are missing."""
    try:
        if not (TRACEFS / "kprobe_events").exists():
            LIBC.mount(b"tracefs", bytes(TRACEFS), b"tracefs", 0, None)
        probe_remove()
        tracefs_write("kprobe_events",
                      f"p:{PROBE_GROUP}/{PROBE_EVENT} __futex_fixup_robust_unlock\n", True)
        tracefs_write(f"events/{PROBE_GROUP}/{PROBE_EVENT}/enable", "1\n")
    except OSError:
        return False
    return True


def probe_remove() -> None:
    with contextlib.suppress(OSError):      # not there: nothing to remove
        tracefs_write("kprobe_events", f"-:{PROBE_GROUP}/{PROBE_EVENT}\n", True)


def probe_hits() -> int:
    """The probe's hit count from kprobe_profile, then the probe is removed."""
    hits = 0
    for line in (TRACEFS / "kprobe_profile").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] in (PROBE_EVENT, f"{PROBE_GROUP}/{PROBE_EVENT}"):
            hits = int(fields[1])
    tracefs_write(f"events/{PROBE_GROUP}/{PROBE_EVENT}/enable", "0\n")
    probe_remove()
    return hits


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", required=True)
    ap.add_argument("--mode", choices=("vdso", "legacy"), required=True)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--min-hits", type=int, default=0,
                    help="after --seconds, go on until this many window hits ...")
    ap.add_argument("--max-seconds", type=int, default=0, help="... or this many seconds")
    ap.add_argument("--children", type=int, default=1,
                    help="looping children (default 1: on one CPU, a second child is often "
                    "stopped before it ran again, a stale sample)")
    ap.add_argument("--func", help="vdso mode: the try_unlock entry (8-byte pop)")
    ap.add_argument("--cs-start", type=lambda s: int(s, 0), help="offset from the vDSO base")
    ap.add_argument("--cs-end", type=lambda s: int(s, 0), help="offset from the vDSO base")
    ap.add_argument("--probe", action=argparse.BooleanOptionalAction, default=True,
                    help="count fixups with a kprobe (mounts tracefs if needed)")
    args = ap.parse_args()
    if args.mode == "vdso" and (args.func is None or args.cs_start is None
                                or args.cs_end is None):
        ap.error("vdso mode needs --func, --cs-start and --cs-end")
    if platform.machine() != "x86_64":
        ap.error("x86_64 only (set_robust_list syscall number, 8-byte pop)")
    return args


def main() -> int:
    args = parse_args()
    unlock = None
    if args.mode == "vdso":
        base, image = read_vdso()
        table = exports(image)
        if args.func not in table:
            raise SystemExit(f"{args.check}: {args.func} is not exported by the running vDSO")
        unlock = try_unlock(base, table[args.func])
        args.func_start = table[args.func].offset
        args.func_end = args.func_start + table[args.func].size
    fixup_probe = args.probe and probe_setup()
    rng = random.Random(os.getpid())
    k = Counters()
    children = [Child(map_shared(-1)) for _ in range(args.children)]
    t0 = time.monotonic()
    for c in children:
        start_child(c, unlock)
    i = 0
    while going_on(args, k, time.monotonic() - t0):
        strike(args, children[i], k, t0, rng, unlock)
        i = (i + 1) % len(children)
    seconds = round(time.monotonic() - t0)
    for c in children:
        end_child(c, k)
    fixups = probe_hits() if fixup_probe else 0
    emit(args.check, seconds=seconds, children=len(children), iterations=k.iterations,
         stops=k.stops, kills=k.kills, window_hits=k.window_hits,
         unfixed_windows=k.unfixed_windows, fixups=fixups, fixup_probe=fixup_probe,
         evidence=k.window_hits + fixups, corruptions=k.corruptions,
         first_corruption_ms=k.first_corruption_ms)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
