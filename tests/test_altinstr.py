# SPDX-License-Identifier: GPL-2.0
"""struct alt_instr read from the tree's header (tests/data/alt_instr/ fixtures): its offsets
follow the fields and their types, a layout that moved is read where it moved, and one that
cannot be read stops the run naming the header and the cause."""

from __future__ import annotations

from pathlib import Path

import pytest
from elf_fixtures import ALT_7_3, ALT_HEADERS, build_image, header_layout

from harness.data.layouts import load_layouts
from harness.errors import UserError
from harness.guest.altinstr import read_alt_layout
from harness.guest.cstruct import Field, struct_layout
from harness.verdicts.image import alternative_ranges, compare_image

SIZES = load_layouts().type_sizes

# Seven alternatives, each five bytes long, in entries of 18 bytes (the field-added header):
# instr_offset, repl_offset, ft_flags, fixup_offset, instrlen, replacementlen. 7 * 18 bytes
# is 9 entries of 7.3's 14, so a rule with 14 hard-coded reads 9 ranges without a complaint.
ENTRIES = 7
MOVED_ASM = "    .text\n    .globl f\n    .type f, @function\nf:\n    nop\n" + "".join(
    f"a{i}: mov $1, %eax\nb{i}:\n" for i in range(ENTRIES)) + (
    "    ret\n    .size f, . - f\n    .section .altinstructions, \"a\"\n") + "".join(
    f"    .long a{i} - .\n    .long 0\n    .long 0\n    .long 0\n    .byte b{i} - a{i}\n"
    "    .byte 0\n" for i in range(ENTRIES))


def test_the_7_3_header_gives_7_3_numbers() -> None:
    """The numbers that were hard-coded (length at byte 12, entries of 14) now come out of
    the header."""
    assert (ALT_7_3.size, ALT_7_3.offset, ALT_7_3.length) == (14, Field(0, 4), Field(12, 1))


def test_a_field_added_moves_the_length_and_the_entry_size() -> None:
    moved = header_layout("alternative-field-added.h")
    assert (moved.size, moved.offset, moved.length) == (18, Field(0, 4), Field(16, 1))


def test_an_image_built_with_the_moved_layout_is_read_where_it_moved(tmp_path: Path) -> None:
    """The fooled case: an image whose entries have a field more. 7.3's numbers read nine
    ranges of garbage from its seven entries, silently; the header's layout reads the seven
    five-byte alternatives, and a patched byte in one is excused."""
    so = build_image(tmp_path, "vdso64", 64, {}, extra={"f": MOVED_ASM})
    moved = header_layout("alternative-field-added.h")
    ranges = alternative_ranges(so, moved)
    assert len(ranges) == ENTRIES and {e - s for s, e in ranges} == {5}
    assert alternative_ranges(so, ALT_7_3) != ranges
    built = so.read_bytes()
    patched = bytearray(built)
    patched[ranges[3][0]] ^= 0xFF
    counters = compare_image(bytes(patched), so, moved)
    assert (counters["image_mismatch"], counters["alt_patched"]) == (0, 1)


def test_entries_that_do_not_fit_the_header_stop_the_comparison(tmp_path: Path) -> None:
    """Two entries of 18 bytes are no whole number of 7.3's 14: the header read is not the
    one the image was built with."""
    asm = MOVED_ASM.replace(f"a{ENTRIES - 1}: mov", "mov")
    asm = asm.split("    .long a2 - .")[0]
    so = build_image(tmp_path, "vdso64", 64, {}, extra={"f": asm})
    with pytest.raises(UserError, match=r"is 36 bytes in entries of unstated bytes, but "
                       r"struct alt_instr in alternative-7\.3\.h is 14 bytes"):
        alternative_ranges(so, ALT_7_3)


def test_a_header_whose_layout_depends_on_the_config_stops_the_run(tmp_path: Path) -> None:
    header = tmp_path / "arch/x86/include/asm/alternative.h"
    header.parent.mkdir(parents=True)
    header.write_text((ALT_HEADERS / "alternative-ifdef.h").read_text())
    with pytest.raises(UserError, match=rf"cannot read struct alt_instr from {header}: "
                       "struct alt_instr has a preprocessor line inside"):
        read_alt_layout(tmp_path)


def test_a_tree_without_the_header_stops_the_run(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"cannot read struct alt_instr from .*/asm/"
                       "alternative.h: No such file"):
        read_alt_layout(tmp_path)


@pytest.mark.parametrize(("edit", "message"), [
    (("u8  instrlen;", "u8  orig_len;"), "struct alt_instr has no field instrlen; it has: "
     "instr_offset, repl_offset, ft_flags, orig_len, replacementlen"),
    (("s32 repl_offset;", "long repl_offset;"), "a field has type 'long', whose size"),
    (("s32 repl_offset;", "u8 *repl;"), "cannot read the member 'u8 \\* repl'"),
    (("} __packed;", "} __aligned(4);"), "attributes this reader does not know: __aligned"),
    (("struct alt_instr {", "struct alt_entry {"), "no definition of struct alt_instr"),
])
def test_what_cannot_be_read_is_named(tmp_path: Path, edit: tuple[str, str],
                                      message: str) -> None:
    text = (ALT_HEADERS / "alternative-7.3.h").read_text()
    assert edit[0] in text
    header = tmp_path / "arch/x86/include/asm/alternative.h"
    header.parent.mkdir(parents=True)
    header.write_text(text.replace(*edit))
    with pytest.raises(UserError, match=message):
        read_alt_layout(tmp_path)


def test_a_struct_that_is_not_packed_aligns_its_fields() -> None:
    """The numbers are gcc's for the same structs on x86-64."""
    text = "struct s { u8 a; u32 b; u16 c; };"
    layout = struct_layout(text, "s", SIZES)
    assert (layout.size, layout.fields["b"], layout.fields["c"]) == (12, Field(4, 4),
                                                                    Field(8, 2))
    packed = struct_layout(text.replace("};", "} __attribute__((packed));"), "s", SIZES)
    assert (packed.size, packed.fields["b"], packed.fields["c"]) == (7, Field(1, 4),
                                                                    Field(5, 2))


def test_bitfields_cross_a_unit_only_when_packed() -> None:
    """As gcc places them (offsetof and sizeof on x86-64): b starts a new u32 unless packed."""
    text = "struct s { u32 a: 20; u32 b: 20; u8 after; }"
    unpacked = struct_layout(text + ";", "s", SIZES)
    assert (unpacked.fields["after"], unpacked.size) == (Field(7, 1), 8)
    assert struct_layout(text + " __packed;", "s", SIZES).fields["after"] == Field(5, 1)


def test_a_named_union_member_and_an_array() -> None:
    text = "struct s { u16 n[3]; union { u8 x; u32 y; } u; u8 z; };"
    layout = struct_layout(text, "s", SIZES)
    assert layout.fields == {"n": Field(0, 6), "u.x": Field(8, 1), "u.y": Field(8, 4),
                             "z": Field(12, 1)}
    assert layout.size == 16


def test_the_shipped_layouts_file_and_its_errors(tmp_path: Path) -> None:
    spec = load_layouts()
    assert spec.struct("alt_instr").fields == {"offset": "instr_offset", "length": "instrlen"}
    with pytest.raises(UserError, match=r"has no \[structs.nope\]; it has: alt_instr"):
        spec.struct("nope")
    (tmp_path / "l.toml").write_text('[structs.alt_instr]\nstruct = "alt_instr"\n')
    with pytest.raises(UserError, match=r"\[structs.alt_instr\]: give its header and struct"):
        load_layouts(tmp_path / "l.toml")
