# SPDX-License-Identifier: GPL-2.0
"""The runtime-image rule: the vDSO a guest has mapped against the built image, byte by byte;
only boot-time alternatives may differ."""

from __future__ import annotations

from pathlib import Path

from elftools.elf.elffile import ELFFile

from harness.data.guest_tests import GuestTest
from harness.errors import UserError
from harness.guest import protocol
from harness.guest.altinstr import AltLayout
from harness.guest.cstruct import Field


def alternative_ranges(image: Path, layout: AltLayout) -> list[tuple[int, int]]:
    """[start, end) of every instruction the kernel may patch at boot (.altinstructions).

    Each entry (struct alt_instr, laid out as the tree's header says) holds the signed
    offset of the original instruction, relative to the entry itself, and its length."""
    with image.open("rb") as f:
        elf = ELFFile(f)
        sec = elf.get_section_by_name(".altinstructions")
        if sec is None:
            return []
        data, base, entsize = sec.data(), sec["sh_addr"], sec["sh_entsize"]
    _check_entries(image, len(data), entsize, layout)
    ranges = []
    for off in range(0, len(data), layout.size):
        instr = base + off + _read(data, off, layout.offset, signed=True)
        ranges.append((instr, instr + _read(data, off, layout.length, signed=False)))
    return ranges


def _check_entries(image: Path, length: int, entsize: int, layout: AltLayout) -> None:
    """The section must be whole entries of the header's size: otherwise the header read
    is not the one the image was built with, and every range would be wrong."""
    if (entsize and entsize != layout.size) or length % layout.size:
        raise UserError(f"{image}: .altinstructions is {length} bytes in entries of "
                        f"{entsize or 'unstated'} bytes, but struct alt_instr in "
                        f"{layout.header} is {layout.size} bytes")


def _read(data: bytes, entry: int, field: Field, signed: bool) -> int:
    start = entry + field.offset
    return int.from_bytes(data[start:start + field.size], "little", signed=signed)


def compare_image(dump: bytes, image: Path, layout: AltLayout,
                  critical: tuple[tuple[int, int], ...] = ()) -> dict[str, int]:
    """Counters comparing a guest's mapped vDSO with the built image, file offset = address.

    Bytes inside boot-time alternatives may differ (alt_patched), except in a critical
    range [cs_start, cs_end): the kernel's fixup trusts the labels there, so an
    alternative that overlaps one is counted (alt_in_cs) and its bytes must match too.
    Any other difference, and any non-zero byte in the page padding, is a mismatch."""
    built = image.read_bytes()
    every = alternative_ranges(image, layout)
    alts = [r for r in every if not _overlaps(r, critical)]
    mismatch = patched = 0
    for i, (a, b) in enumerate(zip(dump, built, strict=False)):
        if a != b:
            if any(s <= i < e for s, e in alts):
                patched += 1
            else:
                mismatch += 1
    return {"image_bytes": len(built), "dump_bytes": len(dump),
            "image_mismatch": mismatch + max(len(built) - len(dump), 0),
            "alt_patched": patched, "padding_nonzero": sum(1 for x in dump[len(built):] if x),
            "alt_in_cs": sum(_overlaps(r, critical) for r in every)}


def _overlaps(alt: tuple[int, int], ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(alt[0] < end and start < alt[1] for start, end in ranges)


def image_comparison(test: GuestTest, rwdir: Path, image: Path, layout: AltLayout | None,
                     critical: tuple[tuple[int, int], ...] = ()) -> dict[str, int]:
    """A dump test's host-side counters: its mapped vDSO against the built image, whose
    entries' critical ranges are critical. layout: struct alt_instr as the tree has it."""
    dump = protocol.extra_path(rwdir, test.name)
    if not test.compare or not dump.is_file():
        return {}
    if layout is None:
        raise UserError(f"{test.name}: no struct alt_instr layout was read from the tree, "
                        "so its image cannot be compared")
    return compare_image(dump.read_bytes(), image, layout, critical)
