# SPDX-License-Identifier: GPL-2.0
"""Shared by the Python guest tests: find the mapped vDSO and its exports, call them
through ctypes, and print the one JSON record the host judges.

Stdlib and pyelftools only: the guest runs these with the host venv's interpreter, which it
sees through the 9p root, with -S and pyelftools' directory as PYTHONPATH. Import this from
a script in the same directory.
"""

from __future__ import annotations

import ctypes
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

AT_SYSINFO_EHDR = 33
# __u32 try_unlock(__u32 *lock, __u32 tid, void *pop), both list64 and list32.
TRY_UNLOCK = ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_void_p, ctypes.c_uint32,
                              ctypes.c_void_p)
# What a script holds to call one: (lock address, TID, pop address) -> the lock value.
Unlock = Callable[[int, int, int], int]
_MAPS_LINE = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s+\[vdso\]$", re.M)

LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.getauxval.restype = ctypes.c_ulong
LIBC.getauxval.argtypes = [ctypes.c_ulong]


@dataclass(frozen=True)
class Export:
    """A function the vDSO exports: its offset from the mapping base and its size."""

    name: str
    offset: int
    size: int


def vdso_base() -> int:
    """Where the kernel mapped the vDSO for this process (0 when there is none)."""
    return int(LIBC.getauxval(AT_SYSINFO_EHDR))


def vdso_mapping(maps: str) -> tuple[int, int]:
    """The [vdso] line of a /proc/PID/maps text, as (start, end)."""
    m = _MAPS_LINE.search(maps)
    if not m:
        raise LookupError("no [vdso] line in the maps")
    return int(m.group(1), 16), int(m.group(2), 16)


def read_vdso() -> tuple[int, bytes]:
    """The mapped vDSO image as (base, bytes), read from /proc/self/mem."""
    base = vdso_base()
    start, end = vdso_mapping(Path("/proc/self/maps").read_text())
    if base != start:
        raise LookupError(f"AT_SYSINFO_EHDR {base:#x} is not the [vdso] start {start:#x}")
    with Path("/proc/self/mem").open("rb", buffering=0) as mem:
        mem.seek(base)
        return base, mem.read(end - start)


def exports(image: bytes) -> dict[str, Export]:
    """Every defined FUNC in the image's .dynsym, by name.

    The x86 vDSO is mapped whole, section headers included; offsets are taken from
    the first PT_LOAD so that an image linked away from 0 still works.
    """
    # Imported here: pyelftools costs seconds of startup under TCG, and the legacy
    # stress never needs it.
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    elf = ELFFile(io.BytesIO(image))
    dynsym = elf.get_section_by_name(".dynsym")
    if not isinstance(dynsym, SymbolTableSection):
        raise LookupError("the vDSO image has no .dynsym")
    load = min(seg["p_vaddr"] for seg in elf.iter_segments() if seg["p_type"] == "PT_LOAD")
    found = {}
    for sym in dynsym.iter_symbols():
        if sym["st_info"]["type"] == "STT_FUNC" and sym["st_shndx"] != "SHN_UNDEF":
            found[sym.name] = Export(sym.name, sym["st_value"] - load, sym["st_size"])
    return found


def try_unlock(base: int, export: Export) -> Unlock:
    """A ctypes callable for a try_unlock export mapped at base."""
    fn: Unlock = TRY_UNLOCK(base + export.offset)
    return fn


def emit(check: str, **counters: int) -> None:
    """Print the test's one record: {"check": NAME, counter: int, ...}."""
    print(json.dumps({"check": check, **{k: int(v) for k, v in counters.items()}}), flush=True)
