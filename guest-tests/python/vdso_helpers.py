# SPDX-License-Identifier: GPL-2.0
"""Shared by the Python guest tests: find the mapped vDSO and its exports, call them
through ctypes, and print the one JSON record the host judges.

Standard library only, and only what loads fast (no re, argparse, pathlib or dataclasses):
the guest runs these with the host venv's interpreter over the 9p root, with -S, under TCG,
where every module costs. The .dynsym reader is our own, with struct: pyelftools (its
construct and DWARF modules, pdb among them) and those modules made py-unlock-semantics
start in 88 ms on the host against 35 ms now, and take 2 to 3.5 s in the guest. The
host's tests check the reader against pyelftools on each ELF class. Import this from a
script in the same directory.
"""

from __future__ import annotations

import ctypes
import json
import struct
from collections.abc import Callable
from typing import NamedTuple

AT_SYSINFO_EHDR = 33
# __u32 try_unlock(__u32 *lock, __u32 tid, void *pop), both list64 and list32.
TRY_UNLOCK = ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_void_p, ctypes.c_uint32,
                              ctypes.c_void_p)
# What a script holds to call one: (lock address, TID, pop address) -> the lock value.
Unlock = Callable[[int, int, int], int]

LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.getauxval.restype = ctypes.c_ulong
LIBC.getauxval.argtypes = [ctypes.c_ulong]


class Export(NamedTuple):
    """A function the vDSO exports: its offset from the mapping base and its size."""

    name: str
    offset: int
    size: int


def vdso_base() -> int:
    """Where the kernel mapped the vDSO for this process (0 when there is none)."""
    return int(LIBC.getauxval(AT_SYSINFO_EHDR))


def vdso_mapping(maps: str) -> tuple[int, int]:
    """The [vdso] line of a /proc/PID/maps text, as (start, end)."""
    for line in maps.splitlines():
        fields = line.split()  # range, perms, offset, device, inode, path
        if len(fields) == 6 and fields[5] == "[vdso]":
            start, end = fields[0].split("-")
            return int(start, 16), int(end, 16)
    raise LookupError("no [vdso] line in the maps")


def read_vdso() -> tuple[int, bytes]:
    """The mapped vDSO image as (base, bytes), read from /proc/self/mem."""
    base = vdso_base()
    with open("/proc/self/maps") as maps:  # noqa: PTH123 (pathlib loads slowly)
        start, end = vdso_mapping(maps.read())
    if base != start:
        raise LookupError(f"AT_SYSINFO_EHDR {base:#x} is not the [vdso] start {start:#x}")
    with open("/proc/self/mem", "rb", buffering=0) as mem:  # noqa: PTH123
        mem.seek(base)
        return base, mem.read(end - start)


def exports(image: bytes) -> dict[str, Export]:
    """Every defined FUNC in the image's .dynsym, by name.

    The x86 vDSO is mapped whole, section headers included; offsets are taken from
    the first PT_LOAD so that an image linked away from 0 still works.
    """
    elf = _Elf.of(image)
    load = min(vaddr for kind, vaddr in elf.segments(image) if kind == PT_LOAD)
    found = {}
    for name, value, size, info, shndx in elf.dynsym(image):
        if info & 0xF == STT_FUNC and shndx != SHN_UNDEF:
            found[name] = Export(name, value - load, size)
    return found


PT_LOAD = 1
SHT_DYNSYM = 11
STT_FUNC = 2
SHN_UNDEF = 0


class _Elf(NamedTuple):
    """Where an ELF file's tables are, and the layouts of its class (32 or 64 bits)."""

    phoff: int
    phentsize: int
    phnum: int
    shoff: int
    shentsize: int
    shnum: int
    wide: bool

    @classmethod
    def of(cls, image: bytes) -> _Elf:
        if image[:4] != b"\x7fELF" or image[5] != 1:
            raise LookupError("the vDSO image is not a little-endian ELF file")
        wide = image[4] == 2
        layout = "<16xHHIQQQIHHHHHH" if wide else "<16xHHIIIIIHHHHHH"
        (_, _, _, _, phoff, shoff, _, _, phentsize, phnum, shentsize, shnum,
         _) = struct.unpack_from(layout, image)
        return cls(phoff, phentsize, phnum, shoff, shentsize, shnum, wide)

    def segments(self, image: bytes) -> list[tuple[int, int]]:
        """(p_type, p_vaddr) of each program header."""
        layout = "<I4x8xQ" if self.wide else "<I4xI"
        return [struct.unpack_from(layout, image, self.phoff + i * self.phentsize)
                for i in range(self.phnum)]

    def sections(self, image: bytes) -> list[tuple[int, int, int, int, int]]:
        """(sh_type, sh_offset, sh_size, sh_link, sh_entsize) of each section header."""
        layout = "<4xI8x8xQQI4x8xQ" if self.wide else "<4xI4x4xIII4x4xI"
        return [struct.unpack_from(layout, image, self.shoff + i * self.shentsize)
                for i in range(self.shnum)]

    def dynsym(self, image: bytes) -> list[tuple[str, int, int, int, int]]:
        """(name, st_value, st_size, st_info, st_shndx) of each .dynsym entry."""
        sections = self.sections(image)
        table = [s for s in sections if s[0] == SHT_DYNSYM]
        if not table:
            raise LookupError("the vDSO image has no .dynsym")
        _, offset, size, link, entsize = table[0]
        strings = sections[link][1]
        layout = "<IBxHQQ" if self.wide else "<IIIBxH"
        symbols = []
        for at in range(offset, offset + size, entsize):
            if self.wide:
                name, info, shndx, value, sym_size = struct.unpack_from(layout, image, at)
            else:
                name, value, sym_size, info, shndx = struct.unpack_from(layout, image, at)
            end = image.index(b"\0", strings + name)
            symbols.append((image[strings + name:end].decode(), value, sym_size, info, shndx))
        return symbols


def try_unlock(base: int, export: Export) -> Unlock:
    """A ctypes callable for a try_unlock export mapped at base."""
    fn: Unlock = TRY_UNLOCK(base + export.offset)
    return fn


def emit(check: str, **counters: int) -> None:
    """Print the test's one record: {"check": NAME, counter: int, ...}."""
    print(json.dumps({"check": check, **{k: int(v) for k, v in counters.items()}}), flush=True)
