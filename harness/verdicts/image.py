# SPDX-License-Identifier: GPL-2.0
"""The runtime-image rule: the vDSO a guest has mapped against the built image, byte by byte;
only boot-time alternatives may differ."""

from __future__ import annotations

from pathlib import Path

from elftools.elf.elffile import ELFFile

from harness.data.guest_tests import GuestTest
from harness.guest import protocol


def alternative_ranges(image: Path) -> list[tuple[int, int]]:
    """[start, end) of every instruction the kernel may patch at boot (.altinstructions).

    Each entry starts with the s32 offset of the original instruction, relative to the
    entry itself; its length is the byte at offset 12 (struct alt_instr, __packed)."""
    with image.open("rb") as f:
        elf = ELFFile(f)
        sec = elf.get_section_by_name(".altinstructions")
        if sec is None:
            return []
        data, base, size = sec.data(), sec["sh_addr"], sec["sh_entsize"] or 14
    ranges = []
    for off in range(0, len(data) - size + 1, size):
        instr = base + off + int.from_bytes(data[off:off + 4], "little", signed=True)
        ranges.append((instr, instr + data[off + 12]))
    return ranges


def compare_image(dump: bytes, image: Path,
                  critical: tuple[tuple[int, int], ...] = ()) -> dict[str, int]:
    """Counters comparing a guest's mapped vDSO with the built image, file offset = address.

    Bytes inside boot-time alternatives may differ (alt_patched), except in a critical
    range [cs_start, cs_end): the kernel's fixup trusts the labels there, so an
    alternative that overlaps one is counted (alt_in_cs) and its bytes must match too.
    Any other difference, and any non-zero byte in the page padding, is a mismatch."""
    built = image.read_bytes()
    alts = [r for r in alternative_ranges(image) if not _overlaps(r, critical)]
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
            "alt_in_cs": sum(_overlaps(r, critical) for r in alternative_ranges(image))}


def _overlaps(alt: tuple[int, int], ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(alt[0] < end and start < alt[1] for start, end in ranges)


def image_comparison(test: GuestTest, rwdir: Path, image: Path,
                     critical: tuple[tuple[int, int], ...] = ()) -> dict[str, int]:
    """A dump test's host-side counters: its mapped vDSO against the built image, whose
    entries' critical ranges are critical."""
    dump = protocol.extra_path(rwdir, test.name)
    if not test.compare or not dump.is_file():
        return {}
    return compare_image(dump.read_bytes(), image, critical)
