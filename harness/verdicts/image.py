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


def compare_image(dump: bytes, image: Path) -> dict[str, int]:
    """Counters comparing a guest's mapped vDSO with the built image, file offset = address.

    Bytes inside boot-time alternatives may differ (alt_patched); any other difference,
    and any non-zero byte in the page padding past the file, is a mismatch."""
    built = image.read_bytes()
    alts = alternative_ranges(image)
    mismatch = patched = 0
    for i, (a, b) in enumerate(zip(dump, built, strict=False)):
        if a != b:
            if any(s <= i < e for s, e in alts):
                patched += 1
            else:
                mismatch += 1
    return {"image_bytes": len(built), "dump_bytes": len(dump),
            "image_mismatch": mismatch + max(len(built) - len(dump), 0),
            "alt_patched": patched, "padding_nonzero": sum(1 for x in dump[len(built):] if x)}


def image_comparison(test: GuestTest, rwdir: Path, image: Path) -> dict[str, int]:
    """A dump test's host-side counters: its mapped vDSO against the built image."""
    dump = protocol.extra_path(rwdir, test.name)
    if not test.compare or not dump.is_file():
        return {}
    return compare_image(dump.read_bytes(), image)
