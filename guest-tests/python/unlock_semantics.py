# SPDX-License-Identifier: GPL-2.0
"""py-unlock-semantics: the try_unlock entries called from Python, no stepping.

The script reads the vDSO the kernel mapped into this very process out of
/proc/self/mem, finds the entries in its .dynsym (vdso_helpers) and calls them
through ctypes, in the cases a robust mutex meets at unlock time:
  1. owned (lock == TID): returns TID, the lock becomes 0, pop becomes 0;
  2. contended (TID | FUTEX_WAITERS): the caller has to go to the kernel, so the
     cmpxchg fails, it returns the lock value and leaves lock and pop alone;
  3. someone else's (another TID): the same, nothing changes;
  4. free (0): the same.
The pending-op slot sits in the middle of a buffer of marked words; only the
pop's own bytes (8 for list64, 4 for list32) may change. For list32 the 4 bytes
right after pop are its canary: an entry that clears 8 bytes wipes them.

An entry named on the command line that the vDSO does not export is counted in
missing_exports (a kernel without COMPAT has no list32 in the 64-bit vDSO: the
host then leaves --func32 out). Output: one JSON record.
"""

from __future__ import annotations

import ctypes
import sys
import threading
from typing import NamedTuple, NoReturn

from vdso_helpers import Unlock, emit, exports, read_vdso, try_unlock

FUTEX_WAITERS = 0x80000000
WORDS = 6                   # 8 bytes of guard, the 8-byte pop slot, 8 bytes of guard
POP_WORD = 2                # pop starts at byte 8: aligned for list64
MARK = [0xA5A50000 | i for i in range(WORDS)]


def one_case(fn: Unlock, width: int, tid: int,
             lock_value: int) -> tuple[bool, bool]:
    """One call; returns (semantics ok, bytes beside pop intact)."""
    lock = ctypes.c_uint32(lock_value)
    buf = (ctypes.c_uint32 * WORDS)(*MARK)
    ret = fn(ctypes.addressof(lock), tid, ctypes.addressof(buf) + 4 * POP_WORD)
    pop_words = range(POP_WORD, POP_WORD + width // 4)
    success = lock_value == tid
    pop_now = [buf[i] for i in pop_words]
    pop_want = [0 if success else MARK[i] for i in pop_words]
    ok = ret == lock_value and lock.value == (0 if success else lock_value) \
        and pop_now == pop_want
    intact = all(buf[i] == MARK[i] for i in range(WORDS) if i not in pop_words)
    return ok, intact


def run_entry(fn: Unlock, width: int, iterations: int,
              counters: dict[str, int]) -> int:
    """Every case, iterations times; returns how many calls were made."""
    tid = threading.get_native_id()
    cases = [tid, tid | FUTEX_WAITERS, (tid + 1) & 0x3FFFFFFF, 0]
    calls = 0
    for _ in range(iterations):
        for case_id, lock_value in enumerate(cases, start=1):
            ok, intact = one_case(fn, width, tid, lock_value)
            calls += 1
            if not ok:
                if not counters["semantics_bad"]:
                    counters["first_bad_case"] = case_id + (0 if width == 8 else 10)
                counters["semantics_bad"] += 1
            if not intact:
                counters["canary_bad"] += 1
    return calls


USAGE = "unlock_semantics.py --check NAME [--func64 F] [--func32 F] [--iterations N]"


class Args(NamedTuple):
    check: str
    func64: str | None
    func32: str | None
    iterations: int


def usage(why: str) -> NoReturn:
    print(f"usage: {USAGE}\n{why}", file=sys.stderr)
    raise SystemExit(2)


def parse_args(argv: list[str]) -> Args:
    """The flags, each followed by its value. Not argparse: it and the re and enum modules
    it loads were a third of this script's start, seconds under TCG."""
    values: dict[str, str] = {}
    pairs = iter(argv)
    for flag in pairs:
        value = next(pairs, None)
        if flag not in ("--check", "--func64", "--func32", "--iterations") or value is None:
            usage(f"bad argument: {flag}")
        values[flag[2:]] = str(value)
    if "check" not in values or not values.get("iterations", "1").isdigit():
        usage("--check NAME is required; --iterations takes a number")
    return Args(values["check"], values.get("func64"), values.get("func32"),
                int(values.get("iterations", "100")))


def main() -> int:
    args = parse_args(sys.argv[1:])
    base, image = read_vdso()
    table = exports(image)
    counters = {"cases": 0, "list64_cases": 0, "list32_cases": 0, "semantics_bad": 0,
                "canary_bad": 0, "first_bad_case": 0, "missing_exports": 0}
    for name, width, key in ((args.func64, 8, "list64_cases"), (args.func32, 4, "list32_cases")):
        if name is None:
            continue
        if name not in table:
            counters["missing_exports"] += 1
            continue
        counters[key] = run_entry(try_unlock(base, table[name]), width, args.iterations, counters)
        counters["cases"] += counters[key]
    emit(args.check, **counters)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
