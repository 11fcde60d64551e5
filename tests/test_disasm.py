# SPDX-License-Identifier: GPL-2.0
"""The capstone check on tiny gcc-built vDSO look-alikes, and on the real images when built."""

from __future__ import annotations

from pathlib import Path

import pytest
from elf_fixtures import build_image, function_asm

from harness.data import EXPECTATIONS
from harness.data.expectations import load_expectations
from harness.stages.disasm import Window, check_disasm, check_function, decode, read_code
from harness.stages.vdso import Facts, VdsoRequest, VdsoResult, check_vdso, read_symbols
from harness.verdicts.checks import Check, Verdict

L64 = "__vdso_futex_robust_list64_try_unlock"
L32 = "__vdso_futex_robust_list32_try_unlock"
P64 = "__futex_list64_try_unlock_cs_"
P32 = "__futex_list32_try_unlock_cs_"
CONFIG = {"COMPAT": "y", "IA32_EMULATION": "y", "X86_X32_ABI": "y"}
# Read at import, before the autouse fixture points HOME into tmp_path.
def tree(tmp_path: Path, list64: str | None = None, vdso32: str | None = None,
         x32: str | None = None) -> Path:
    """A build dir with upstream entries, except list64 in vdso64, list32 in vdso32 and
    list32 in vdsox32 (x86-64 code in an ELF32 file, next to vdso64 as the kernel builds it)."""
    build_image(tmp_path, "vdso64", 64, {L32: P32} if list64 else {L64: P64, L32: P32},
                extra={L64: list64} if list64 else None)
    build_image(tmp_path, "vdso32", 32, {} if vdso32 else {L32: P32},
                extra={L32: vdso32} if vdso32 else None)
    build_image(tmp_path, "vdsox32", 64, {L64: P64} if x32 else {L64: P64, L32: P32},
                extra={L32: x32} if x32 else None, directory="vdso64", x32=True)
    return tmp_path


def run(build_dir: Path, config: dict[str, str] | None = None,
        ) -> tuple[VdsoResult, dict[str, Check], dict[str, Window]]:
    exp = load_expectations("upstream")
    elf = check_vdso(VdsoRequest(build_dir, exp, CONFIG if config is None else config))
    checks, windows = check_disasm(build_dir, exp, elf)
    return elf, {c.name: c for c in checks}, windows


def assert_windows_match_labels(elf: VdsoResult, windows: dict[str, Window]) -> None:
    assert set(windows) == set(elf.facts)
    for key, facts in elf.facts.items():
        assert windows[key] == Window(facts.start, facts.success, facts.end)


def test_upstream_layout_passes(tmp_path: Path) -> None:
    elf, checks, windows = run(tree(tmp_path))
    assert checks["disasm-vdso64"].verdict == Verdict.PASS, checks["disasm-vdso64"].detail
    assert checks["disasm-vdso32"].verdict == Verdict.PASS, checks["disasm-vdso32"].detail
    assert checks["disasm-vdsox32"].verdict == Verdict.PASS, checks["disasm-vdsox32"].detail
    assert checks["disasm-vdso64"].counters["functions"] == 2
    assert checks["disasm-vdsox32"].counters["functions"] == 2
    assert_windows_match_labels(elf, windows)


def test_x32_code_is_decoded_as_x86_64(tmp_path: Path) -> None:
    """The fooled case of decoding by ELF class: vdsox32 is an ELF32 file of x86-64 code.
    Its list32 entry here clears 8 bytes (`movq %rcx, (%rdx)`, REX.W 48 89 0a). Read as
    i386 code, 48 is `dec eax` and the store a 4-byte `mov [edx], ecx`: the right width. By
    code_bits the check decodes x86-64, sees the 8-byte store and fails it."""
    wide = function_asm(L32, P32, 64, store="movq %rcx, (%rdx)")
    elf, checks, _ = run(tree(tmp_path, x32=wide))
    facts = elf.find("vdsox32", L32)
    assert facts is not None and elf.checks[2].verdict == Verdict.PASS
    exp = load_expectations("upstream")
    assert exp.disasm is not None
    so = tmp_path / "arch/x86/entry/vdso/vdso64/vdsox32.so.dbg"
    code = read_code(so, facts.offset, facts.size)
    as_i386 = decode(code, facts.offset, 32, exp.disasm.hidden_writes)
    assert [i.text for i in as_i386 if i.address == facts.success + 1] == [
        "mov dword ptr [edx], ecx"]  # what a check decoding by elf_class 32 would see
    assert checks["disasm-vdsox32"].verdict == Verdict.FAIL
    assert checks["disasm-vdsox32"].detail == (
        f"vdsox32:{L32} {facts.success:#x} `mov qword ptr [rdx], rcx`: the store that clears "
        "pop writes 8 bytes; expected 4 (pop_width)")
    assert checks["disasm-vdso64"].verdict == checks["disasm-vdso32"].verdict == Verdict.PASS


def facts_from_symtab(build_dir: Path, image: str, func: str, prefix: str,
                      pop_width: int) -> VdsoResult:
    """Facts read straight from .symtab, for layouts the ELF check rightly refuses."""
    dynsym, symtab = read_symbols(build_dir / f"arch/x86/entry/vdso/{image}/{image}.so.dbg")
    start, success, end = (symtab[prefix + w].value for w in ("start", "success", "end"))
    facts = Facts(image, func, dynsym[func].value, dynsym[func].size, start, success, end,
                  pop_width)
    return VdsoResult((Check(f"elf-{image}", Verdict.FAIL),), {f"{image}:{func}": facts})


def test_end_label_before_store(tmp_path: Path) -> None:
    build = tree(tmp_path, list64=function_asm(L64, P64, 64, slots={"end": "before_store"}))
    elf, checks, _ = run(build)
    # cs_success == cs_end: the ELF order check catches this layout and gives no facts,
    # and the disassembly check says which entry it could not look at.
    assert "labels of __vdso_futex_robust_list64_try_unlock out of order" in elf.checks[0].detail
    assert checks["disasm-vdso64"].detail == f"not checked, no facts from elf-vdso64: {L64}"
    elf = facts_from_symtab(build, "vdso64", L64, P64, 8)
    facts = elf.facts[f"vdso64:{L64}"]
    found, windows = check_disasm(build, load_expectations("upstream"), elf)
    detail = found[0].detail
    assert found[0].verdict == Verdict.FAIL
    # The window comes from the code, not from the labels: it still ends after the store.
    window = windows[f"vdso64:{L64}"]
    assert window.success == facts.end and window.end == facts.end + 3
    assert (f"vdso64:{L64} {facts.end:#x} `mov qword ptr [rdx], rcx`: the cs_end label; "
            f"expected {window.end:#x}, right after `mov qword ptr [rdx], rcx`") in detail
    # jnz cs_end now lands on the store: a failed unlock would clear pop.
    assert (f"vdso64:{L64} {facts.start:#x} `jne {facts.end:#x}`: a failed cmpxchg goes to "
            f"{facts.end:#x} and can run the store at {facts.end:#x}; expected `jne` to cs_end, "
            f"at or after {window.end:#x}") in detail


def test_start_label_before_cmpxchg_only_disasm_sees(tmp_path: Path) -> None:
    moved = function_asm(L64, P64, 64, slots={"start": "before_cmpxchg"})
    elf, checks, windows = run(tree(tmp_path, list64=moved))
    facts = elf.find("vdso64", L64)
    assert facts is not None
    assert [c.verdict for c in elf.checks] == [Verdict.PASS] * 3
    assert checks["disasm-vdso64"].verdict == Verdict.FAIL
    assert (f"vdso64:{L64} {facts.start:#x} `lock cmpxchg dword ptr [rdi], ecx`: the cs_start "
            f"label; expected {facts.start + 4:#x}, right after") in checks["disasm-vdso64"].detail
    assert windows[f"vdso64:{L64}"].start == facts.start + 4


def test_store_through_wrong_register(tmp_path: Path) -> None:
    elf, checks, windows = run(tree(tmp_path, list64=function_asm(
        L64, P64, 64, store="movq %rcx, (%rsi)")))
    facts = elf.find("vdso64", L64)
    assert facts is not None
    assert checks["disasm-vdso64"].detail == (
        f"vdso64:{L64} {facts.success:#x} `mov qword ptr [rsi], rcx`: at cs_success, and no "
        f"store clears pop; expected a `mov` of 8 bytes to [rdx] after the cmpxchg at "
        f"{facts.start - 4:#x}")
    assert f"vdso64:{L64}" not in windows and f"vdso64:{L32}" in windows


def test_4_byte_store_in_list64(tmp_path: Path) -> None:
    elf, checks, windows = run(tree(tmp_path, list64=function_asm(
        L64, P64, 64, store="movl %ecx, (%rdx)")))
    facts = elf.find("vdso64", L64)
    assert facts is not None
    assert checks["disasm-vdso64"].detail == (
        f"vdso64:{L64} {facts.success:#x} `mov dword ptr [rdx], ecx`: the store that clears "
        "pop writes 4 bytes; expected 8 (pop_width)")
    assert windows[f"vdso64:{L64}"] == Window(facts.start, facts.success, facts.end)


def test_two_cmpxchg(tmp_path: Path) -> None:
    elf, checks, _ = run(tree(tmp_path, list64=function_asm(
        L64, P64, 64, after="lock cmpxchgl %ecx, (%rdi)")))
    facts = elf.find("vdso64", L64)
    assert facts is not None
    assert checks["disasm-vdso64"].detail == (
        f"vdso64:{L64} {facts.end:#x} `lock cmpxchg dword ptr [rdi], ecx`: another "
        f"`lock cmpxchg` besides the one at {facts.start - 4:#x}; expected exactly one "
        "`lock cmpxchg` of 4 bytes at [rdi]")


@pytest.mark.parametrize(("extra", "text"), [
    ("addq $1, 8(%rdx)", "add qword ptr [rdx + 8], 1"),
    # capstone calls this operand read-only: hidden_writes in the data file says otherwise.
    ("cmpxchgl %ecx, (%rdx)", "cmpxchg dword ptr [rdx], ecx"),
    ("movl %ecx, (%rax,%rdx)", "mov dword ptr [rax + rdx], ecx"),
])
def test_extra_write_through_pop(tmp_path: Path, extra: str, text: str) -> None:
    elf, checks, _ = run(tree(tmp_path, list64=function_asm(L64, P64, 64, after=extra)))
    facts = elf.find("vdso64", L64)
    assert facts is not None
    assert checks["disasm-vdso64"].detail == (
        f"vdso64:{L64} {facts.end:#x} `{text}`: writes through the pop register; expected "
        f"only the store at {facts.success:#x} to write through rdx")


def test_read_through_pop_is_not_a_write(tmp_path: Path) -> None:
    _, checks, _ = run(tree(tmp_path, list64=function_asm(
        L64, P64, 64, after="cmpq $0, (%rdx)")))
    assert checks["disasm-vdso64"].verdict == Verdict.PASS


def test_32bit_image_store_through_wrong_register(tmp_path: Path) -> None:
    elf, checks, _ = run(tree(tmp_path, vdso32=function_asm(
        L32, P32, 32, store="movl %ecx, (%eax)")))
    facts = elf.find("vdso32", L32)
    assert facts is not None
    assert checks["disasm-vdso64"].verdict == Verdict.PASS
    assert checks["disasm-vdso32"].detail.startswith(
        f"vdso32:{L32} {facts.success:#x} `mov dword ptr [eax], ecx`: at cs_success")
    assert "expected a `mov` of 4 bytes to [edx]" in checks["disasm-vdso32"].detail


def test_not_applicable_follows_elf_check(tmp_path: Path) -> None:
    build_image(tmp_path, "vdso64", 64, {L64: P64})
    _, checks, windows = run(tmp_path, {})
    assert checks["disasm-vdso64"].verdict == Verdict.PASS
    assert checks["disasm-vdso32"].verdict == Verdict.NOT_APPLICABLE
    assert list(windows) == [f"vdso64:{L64}"]


def test_image_without_entries_fails(tmp_path: Path) -> None:
    build_image(tmp_path, "vdso64", 64, {L64: P64, L32: P32})
    _, checks, _ = run(tmp_path)
    assert checks["disasm-vdso32"].verdict == Verdict.FAIL
    assert "elf-vdso32 found no try_unlock entry" in checks["disasm-vdso32"].detail


def without_table(tmp_path: Path, table: str) -> Path:
    """upstream.toml without one of its tables ([disasm] with its registers, or [ops])."""
    text = (EXPECTATIONS / "upstream.toml").read_text()
    start = text.index("\n# Disassembly check" if table == "disasm" else "\n# The futex ops")
    end = text.index("\n# The futex ops") if table == "disasm" else len(text)
    (tmp_path / f"no-{table}.toml").write_text(text[:start] + text[end:] + "\n")
    return tmp_path / f"no-{table}.toml"


def test_expectations_without_disasm_table_are_an_error(tmp_path: Path) -> None:
    """Nothing says what the code must be: an ERROR row per image that names the table,
    where the check used to be dropped from the report."""
    path = without_table(tmp_path, "disasm")
    exp = load_expectations("no-disasm", tmp_path)
    assert exp.disasm is None and exp.ops
    elf = check_vdso(VdsoRequest(tree(tmp_path / "build"), exp, CONFIG))
    checks, windows = check_disasm(tmp_path / "build", exp, elf)
    assert [(c.name, c.verdict) for c in checks] == [("disasm-vdso64", Verdict.ERROR),
                                                     ("disasm-vdso32", Verdict.ERROR),
                                                     ("disasm-vdsox32", Verdict.ERROR)]
    assert checks[0].detail == f"{path} has no [disasm] table, so no unlock window was checked"
    assert windows == {}


def test_window_for_one_function(tmp_path: Path) -> None:
    build = tree(tmp_path, list64=function_asm(L64, P64, 64, slots={"start": "before_cmpxchg"}))
    exp = load_expectations("upstream")
    elf = check_vdso(VdsoRequest(build, exp, CONFIG))
    facts = elf.find("vdso64", L64)
    assert facts is not None and exp.disasm is not None
    # The labels disagree with the code; the window is the code's.
    window, _ = check_function(build, exp.images[0], facts, exp.disasm)
    assert window == Window(facts.start + 4, facts.success, facts.end)
