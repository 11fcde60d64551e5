# SPDX-License-Identifier: GPL-2.0
from __future__ import annotations

from pathlib import Path

import pytest
from elf_fixtures import ALT_7_3, OUTSIDE, build_image, function_asm
from plans import run_runner

from harness.data.expectations import expectation_names, load_expectations
from harness.data.guest_tests import load_guest_tests
from harness.guest import protocol
from harness.guest.plan import GuestPlanRequest, make_plan
from harness.stages.vdso import VdsoRequest, check_vdso, generated_offsets, read_symbols
from harness.verdicts.checks import Verdict
from harness.verdicts.guest import judge_plan

L64 = "__vdso_futex_robust_list64_try_unlock"
L32 = "__vdso_futex_robust_list32_try_unlock"
P64 = "__futex_list64_try_unlock_cs_"
P32 = "__futex_list32_try_unlock_cs_"
CONFIG = {"COMPAT": "y", "IA32_EMULATION": "y"}


def good_tree(tmp_path: Path) -> Path:
    build_image(tmp_path, "vdso64", 64, {L64: P64, L32: P32})
    build_image(tmp_path, "vdso32", 32, {L32: P32})
    return tmp_path


def check(build_dir: Path, config: dict[str, str] | None = None):
    return check_vdso(VdsoRequest(build_dir, load_expectations("upstream"),
                                  CONFIG if config is None else config))


def test_good_images_pass_and_give_offsets(tmp_path: Path) -> None:
    result = check(good_tree(tmp_path))
    assert [(c.name, c.verdict) for c in result.checks] == [
        ("elf-vdso64", Verdict.PASS), ("elf-vdso32", Verdict.PASS),
        ("elf-vdsox32", Verdict.NOT_APPLICABLE)]
    assert result.checks[2].detail == "CONFIG_X86_X32_ABI is not set"
    facts = result.find("vdso64", L64)
    assert facts is not None
    assert facts.offset < facts.start < facts.success < facts.end < facts.offset + facts.size
    assert facts.pop_width == 8
    assert result.find("vdso32", L32) is not None


X32 = {**CONFIG, "X86_X32_ABI": "y"}


def x32_image(build_dir: Path, **kwargs: bool) -> Path:
    """vdsox32.so.dbg where the kernel builds it, next to vdso64: x86-64 code in an ELF32
    file (x32=False links the same code as ELF64, the wrong class)."""
    return build_image(build_dir, "vdsox32", 64, {L64: P64, L32: P32}, directory="vdso64",
                       x32=kwargs.get("x32", True))


def test_x32_image_checked_when_x32_is_on(tmp_path: Path) -> None:
    x32_image(good_tree(tmp_path))
    result = check(tmp_path, X32)
    assert [(c.name, c.verdict) for c in result.checks] == [
        ("elf-vdso64", Verdict.PASS), ("elf-vdso32", Verdict.PASS),
        ("elf-vdsox32", Verdict.PASS)], [c.detail for c in result.checks]
    assert result.checks[2].counters["functions"] == 2
    list64, list32 = result.entry("vdsox32", "list64"), result.entry("vdsox32", "list32")
    assert list64 is not None and list64.pop_width == 8
    assert list32 is not None and list32.pop_width == 4


def test_x32_image_of_the_wrong_class_fails(tmp_path: Path) -> None:
    """The fooled case: an ELF64 file at vdsox32's path with every export and label right.
    Exports and labels alone pass it, yet an x32 process reads its vDSO as ELF32."""
    x32_image(good_tree(tmp_path), x32=False)
    dynsym, _ = read_symbols(tmp_path / "arch/x86/entry/vdso/vdso64/vdsox32.so.dbg")
    assert {L64, L32} <= set(dynsym)  # the fixture is right in everything but its class
    result = check(tmp_path, X32)
    assert result.checks[2].verdict == Verdict.FAIL
    assert result.checks[2].detail == "vdsox32: vdsox32.so.dbg is ELF64, expected ELF32"


def test_x32_image_missing_when_x32_is_on(tmp_path: Path) -> None:
    """X86_X32_ABI set and no vdsox32: a FAIL naming the file, never N/A."""
    result = check(good_tree(tmp_path), X32)
    assert result.checks[2].verdict == Verdict.FAIL
    assert "vdsox32: cannot read" in result.checks[2].detail
    assert "vdso64/vdsox32.so.dbg" in result.checks[2].detail


def test_labels_must_be_local(tmp_path: Path) -> None:
    """check_vdso itself refuses a global label: the README promises LOCAL range labels, and
    a label exported from the vDSO is one user space could take for an entry."""
    labels = tuple(P64 + w for w in ("start", "success", "end"))
    build_image(tmp_path, "vdso64", 64, {L32: P32}, exports=labels,
                extra={L64: function_asm(L64, P64, 64, global_labels=True)})
    build_image(tmp_path, "vdso32", 32, {L32: P32})
    _, symtab = read_symbols(tmp_path / "arch/x86/entry/vdso/vdso64/vdso64.so.dbg")
    assert symtab[P64 + "start"].bind == "STB_GLOBAL"  # the fixture really is the bad case
    result = check(tmp_path)
    assert result.checks[0].verdict == Verdict.FAIL
    assert result.checks[0].counters["problems"] == 3
    assert (f"vdso64: label {P64}start is STB_GLOBAL, expected LOCAL: the range labels are "
            "the kernel's to know, not an export") in result.checks[0].detail
    assert result.checks[1].verdict == Verdict.PASS


def test_exports_are_versioned(tmp_path: Path) -> None:
    result = check(good_tree(tmp_path))
    dynsym, _ = read_symbols(tmp_path / "arch/x86/entry/vdso/vdso64/vdso64.so.dbg")
    assert dynsym[L64].version == "LINUX_2.6" and result.checks[0].verdict == Verdict.PASS


def test_missing_labels_named(tmp_path: Path) -> None:
    build_image(tmp_path, "vdso64", 64, {L32: P32}, extra={L64: OUTSIDE.format(name=L64)})
    build_image(tmp_path, "vdso32", 32, {L32: P32})
    result = check(tmp_path)
    assert result.checks[0].verdict == Verdict.FAIL
    assert f"vdso64: label {P64}start missing from .symtab" in result.checks[0].detail
    assert result.find("vdso64", L64) is None


def test_missing_export_named(tmp_path: Path) -> None:
    build_image(tmp_path, "vdso64", 64, {L64: P64})
    build_image(tmp_path, "vdso32", 32, {L32: P32})
    detail = check(tmp_path).checks[0].detail
    assert f"vdso64: export {L32} missing from .dynsym" in detail


def test_list32_not_required_without_compat(tmp_path: Path) -> None:
    build_image(tmp_path, "vdso64", 64, {L64: P64})
    result = check(tmp_path, {})
    assert result.checks[0].verdict == Verdict.PASS
    assert result.checks[1].verdict == Verdict.NOT_APPLICABLE


def test_wrong_order(tmp_path: Path) -> None:
    swapped = function_asm(L64, P64, 64, order=("success", "start", "end"))
    build_image(tmp_path, "vdso64", 64, {L32: P32}, extra={L64: swapped})
    build_image(tmp_path, "vdso32", 32, {L32: P32})
    detail = check(tmp_path).checks[0].detail
    assert f"vdso64: labels of {L64} out of order" in detail
    assert "expected start < success < end" in detail


def test_label_outside_function(tmp_path: Path) -> None:
    # The end label sits after the .size directive's range: in the next function.
    moved = function_asm(L64, P64, 64).replace(f"{P64}end:\n    ret\n", "    ret\n")
    moved += f"    .globl pad\n    .type pad, @function\npad:\n{P64}end:\n    ret\n"
    moved += "    .size pad, . - pad\n"
    build_image(tmp_path, "vdso64", 64, {L32: P32}, extra={L64: moved})
    build_image(tmp_path, "vdso32", 32, {L32: P32})
    detail = check(tmp_path).checks[0].detail
    assert f"vdso64: label {P64}end at" in detail and f"is outside {L64}" in detail


def test_unversioned_export(tmp_path: Path) -> None:
    build_image(tmp_path, "vdso64", 64, {L64: P64, L32: P32}, version=None)
    build_image(tmp_path, "vdso32", 32, {L32: P32})
    detail = check(tmp_path).checks[0].detail
    assert f"{L64} has version None, expected LINUX_2.6" in detail


def test_vdso2c_disagreement(tmp_path: Path) -> None:
    build_image(tmp_path, "vdso64", 64, {L64: P64, L32: P32}, generated={P64 + "start": 1})
    build_image(tmp_path, "vdso32", 32, {L32: P32})
    detail = check(tmp_path).checks[0].detail
    assert f"vdso2c has {P64}start at 0x1" in detail


def test_32bit_image_missing_is_named(tmp_path: Path) -> None:
    build_image(tmp_path, "vdso64", 64, {L64: P64, L32: P32})
    result = check(tmp_path)
    assert result.checks[1].verdict == Verdict.FAIL
    assert "vdso32: cannot read" in result.checks[1].detail


def test_generated_parser(tmp_path: Path) -> None:
    path = tmp_path / "vdso32-image.c"
    path.write_text("\t.sym_vdso32_sigreturn_landing_pad = 2345,\n\t.sym___x_cs_start = -1,\n")
    assert generated_offsets(path) == {"vdso32_sigreturn_landing_pad": 2345, "__x_cs_start": -1}


@pytest.mark.parametrize("name", expectation_names())
def test_every_expectations_file_loads(name: str) -> None:
    exp = load_expectations(name)
    assert exp.images and all(i.functions for i in exp.images)
    for image in exp.images:
        for f in image.functions:
            assert f.pop_width in (4, 8)


ALT_ASM = """
    .text
    .globl f
    .type f, @function
f:
    nop
    nop
1:  mov $1, %eax
2:  ret
    .size f, . - f
    .section .altinstructions, "a"
    .long 1b - .
    .long 0
    .long 0
    .byte 2b - 1b
    .byte 0
"""


def test_alternatives_may_differ_other_bytes_may_not(tmp_path: Path) -> None:
    from elf_fixtures import ALT_7_3, build_image

    from harness.verdicts.image import alternative_ranges, compare_image

    so = build_image(tmp_path, "vdso64", 64, {}, extra={"f": ALT_ASM})
    ranges = alternative_ranges(so, ALT_7_3)
    assert len(ranges) == 1 and ranges[0][1] - ranges[0][0] == 5
    built = so.read_bytes()
    page = built + bytes(4096 - len(built) % 4096)
    assert compare_image(page, so, ALT_7_3)["image_mismatch"] == 0
    patched = bytearray(page)
    patched[ranges[0][0]] ^= 0xFF
    counters = compare_image(bytes(patched), so, ALT_7_3)
    assert counters["image_mismatch"] == 0 and counters["alt_patched"] == 1
    patched[ranges[0][0] - 1] ^= 0xFF
    patched[-1] = 1
    counters = compare_image(bytes(patched), so, ALT_7_3)
    assert counters["image_mismatch"] == 1 and counters["padding_nonzero"] == 1


def test_pre_series_layout_names_the_missing_exports(tmp_path: Path) -> None:
    # 6.x kernels keep the images one directory up and have no futex exports at all.
    getcpu = OUTSIDE.format(name="__vdso_getcpu")
    for image, bits in (("vdso64", 64), ("vdso32", 32)):
        dbg = build_image(tmp_path / "new", image, bits, {}, extra={"__vdso_getcpu": getcpu})
        old = tmp_path / "arch/x86/entry/vdso"
        old.mkdir(parents=True, exist_ok=True)
        dbg.rename(old / dbg.name)
    result = check_vdso(VdsoRequest(tmp_path, load_expectations("upstream"), CONFIG,
                                    "the tree has no FUTEX_ROBUST_UNLOCK"))
    detail = result.checks[0].detail
    assert detail.startswith("series absent (the tree has no FUTEX_ROBUST_UNLOCK)")
    assert f"vdso64: export {L64} missing from .dynsym" in detail
    assert "cannot read" not in detail


def test_unset_option_gives_the_role_a_reason(tmp_path: Path) -> None:
    build_image(tmp_path, "vdso64", 64, {L64: P64})
    result = check(tmp_path, {})
    assert result.checks[0].verdict == Verdict.PASS
    assert "needs CONFIG_COMPAT, which is not set" in result.not_applicable["vdso64:list32"]
    assert "vdso64:list64" not in result.not_applicable


def nocompat(build_dir: Path):
    return check_vdso(VdsoRequest(build_dir, load_expectations("nocompat"), {}))


def test_nocompat_proves_list32_absent(tmp_path: Path) -> None:
    build_image(tmp_path, "vdso64", 64, {L64: P64})
    result = nocompat(tmp_path)
    elf64, elf32, elfx32 = result.checks
    assert elf64.verdict == Verdict.PASS and elf64.counters["absent"] == 1
    assert f"absent as required: {L32}" in elf64.detail
    assert elf32.verdict == Verdict.NOT_APPLICABLE
    assert (elfx32.verdict, elfx32.detail) == (Verdict.NOT_APPLICABLE,
                                               "CONFIG_X86_X32_ABI is not set")
    assert "CONFIG_COMPAT" in result.not_applicable["vdso64:list32"]


def test_nocompat_list32_export_fails(tmp_path: Path) -> None:
    build_image(tmp_path, "vdso64", 64, {L64: P64, L32: P32})
    elf64 = nocompat(tmp_path).checks[0]
    assert elf64.verdict == Verdict.FAIL
    assert f"vdso64: {L32} is exported, but must be absent" in elf64.detail


def test_an_alternative_inside_a_critical_range_fails(tmp_path: Path) -> None:
    """The kernel may patch an alternative at boot; inside [cs_start, cs_end) that would
    change code the fixup trusts the labels about. The comparison used to excuse the
    patched bytes there like any others; now the overlap FAILs and no byte is excused."""
    alt = (f"    .section .altinstructions, \"a\"\n    .long {P64}start - .\n    .long 0\n"
           "    .long 0\n    .byte 2\n    .byte 0\n    .text\n")
    build_image(tmp_path, "vdso64", 64, {L32: P32},
                extra={L64: function_asm(L64, P64, 64) + alt})
    build_image(tmp_path, "vdso32", 32, {L32: P32})
    elf = check(tmp_path)
    facts = elf.find("vdso64", L64)
    assert facts is not None and elf.checks[0].verdict == Verdict.PASS
    so = tmp_path / "arch/x86/entry/vdso/vdso64/vdso64.so.dbg"
    dump = bytearray(so.read_bytes() + bytes(4096 - so.stat().st_size % 4096))
    dump[facts.start] ^= 0xFF  # the boot-time patch, one byte into the critical range
    (tmp_path / "dump.bin").write_bytes(dump)
    test = next(t for t in load_guest_tests() if t.name == "vdso-runtime-image-64")
    done = make_plan(GuestPlanRequest((test,), elf, tmp_path / "rw", tmp_path / "logs", 120,
                                      alt_layout=ALT_7_3))
    fake = done.rwdir / protocol.BIN / test.name  # the guest's dump, replayed
    fake.write_text(f'#!/bin/sh\ncp {tmp_path / "dump.bin"} "$4"\n'
                    f'echo \'{{"check": "{test.name}", "bytes": {len(dump)}}}\'\n')
    run_runner(done.rwdir)
    [runtime] = judge_plan(done, {"vdso64": so}, protocol.read_outcomes(done.rwdir))
    assert runtime.verdict == Verdict.FAIL, runtime
    assert runtime.counters["alt_in_cs"] == 1 and runtime.counters["image_mismatch"] == 1
    assert runtime.counters["alt_patched"] == 0
