# SPDX-License-Identifier: GPL-2.0
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import sh

from harness.data.expectations import load_expectations
from harness.data.guest_tests import load_guest_tests, param_values
from harness.errors import UserError
from harness.guest import plan
from harness.guest.plan import GuestPlanRequest, make_plan, select
from harness.guest.protocol import read_plan
from harness.guest.uapi import OpNumbers
from harness.stages.vdso import Facts, VdsoResult
from harness.verdicts.checks import Check, Verdict
from harness.verdicts.counters import judge_counters

L64 = "__vdso_futex_robust_list64_try_unlock"
L32 = "__vdso_futex_robust_list32_try_unlock"
FACTS = {
    f"vdso64:{L64}": Facts("vdso64", L64, 0x1440, 14, 0x1448, 0x144A, 0x144D, 8),
    f"vdso64:{L32}": Facts("vdso64", L32, 0x1450, 13, 0x1458, 0x145A, 0x145C, 4),
    f"vdso32:{L32}": Facts("vdso32", L32, 0x1BA0, 28, 0x1BB3, 0x1BB5, 0x1BB7, 4),
    f"vdsox32:{L64}": Facts("vdsox32", L64, 0x1340, 14, 0x1348, 0x134A, 0x134D, 8),
    f"vdsox32:{L32}": Facts("vdsox32", L32, 0x1350, 13, 0x1358, 0x135A, 0x135C, 4),
}
BOTH_PASS = (Check("elf-vdso64", Verdict.PASS), Check("elf-vdso32", Verdict.PASS),
             Check("elf-vdsox32", Verdict.PASS))
ROLES = {"vdso64:list64": L64, "vdso64:list32": L32, "vdso32:list32": L32,
         "vdsox32:list64": L64, "vdsox32:list32": L32}


# The tests built here; the kernel's own selftests need a kernel tree (test_kselftest.py).
BUILT = tuple(t for t in load_guest_tests() if t.kind != "ktap")
OPS = OpNumbers(values=load_expectations("upstream").ops or {})


def make(tmp_path: Path, vdso: VdsoResult, config: dict[str, str] | None = None):
    result = make_plan(GuestPlanRequest(BUILT, vdso, tmp_path / "rw", tmp_path / "logs", 120,
                                   ops=OPS, config=config))
    entries = read_plan(tmp_path / "rw").entries
    return result, {e.name: {"argv": list(e.argv), "timeout": e.timeout} for e in entries}


def test_plan_compiles_every_test_and_fills_in_offsets(tmp_path: Path) -> None:
    result, entries = make(tmp_path, VdsoResult(BOTH_PASS, FACTS, ROLES))
    assert not result.skipped and len(entries) == len(BUILT)
    step = entries["cs-fixup-singlestep-64"]["argv"]
    assert step[1:] == [
        "--check", "cs-fixup-singlestep-64", "--func", L64, "--pop-width", "8",
        "--cs-start", "0x1448", "--cs-success", "0x144a", "--cs-end", "0x144d",
        "--win-start", "0x1448", "--win-store", "0x144a", "--iterations", "100"]
    assert "statically linked" in sh(["file", step[0]])
    assert "ELF 32-bit" in sh(["file", entries["cs-fixup-singlestep-32bit"]["argv"][0]])
    # x32: an ELF32 file of x86-64 code, given the x32 image's offsets and list32's width.
    x32 = entries["cs-fixup-singlestep-x32"]["argv"]
    assert "ELF 32-bit LSB executable, x86-64" in sh(["file", x32[0]])
    assert x32[x32.index("--cs-start") + 1] == "0x1358" and "--pop-width" in x32
    assert x32[x32.index("--pop-width") + 1] == "4"
    dump = entries["vdso-runtime-image-64"]["argv"]
    assert dump[-1] == str(tmp_path / "rw" / "results" / "vdso-runtime-image-64.bin")
    assert result.runner.is_file()
    # The copy of bin/ a guest runs the programs from, made for this plan.
    plan = read_plan(tmp_path / "rw")
    copy = Path(plan.bin_copy)
    assert copy == tmp_path / "rw-bin" and (copy / step[0].rsplit("/", 1)[1]).is_file()
    assert plan.from_bin_copy(tmp_path / "rw").entries[0].argv[0].startswith(f"{copy}/")


def test_32bit_tests_not_applicable_without_ia32(tmp_path: Path) -> None:
    checks = (Check("elf-vdso64", Verdict.PASS),
              Check("elf-vdso32", Verdict.NOT_APPLICABLE, "CONFIG_IA32_EMULATION is not set"))
    result, entries = make(tmp_path, VdsoResult(checks, FACTS, ROLES),
                           {"IA32_EMULATION": "n"})
    skipped = {c.name: c for c in result.skipped}
    assert skipped["cs-fixup-singlestep-32bit"].verdict == Verdict.NOT_APPLICABLE
    # A 32-bit launcher of a 64-bit test needs IA32 emulation too, whatever its image.
    assert skipped["fork-exec-32bit-to-64"].verdict == Verdict.NOT_APPLICABLE
    assert "IA32_EMULATION" in skipped["fork-exec-32bit-to-64"].detail
    assert "cs-fixup-singlestep-64" in entries and "fork-exec-64" in entries


def test_x32_tests_not_applicable_without_x32(tmp_path: Path) -> None:
    """X86_X32_ABI off: the vdsox32 ELF check is N/A, and so is every x32 test, with its
    reason; nothing else changes."""
    checks = (*BOTH_PASS[:2],
              Check("elf-vdsox32", Verdict.NOT_APPLICABLE, "CONFIG_X86_X32_ABI is not set"))
    config = {"64BIT": "y", "IA32_EMULATION": "y", "COMPAT": "y", "X86_X32_ABI": "n"}
    result, entries = make(tmp_path, VdsoResult(checks, FACTS, ROLES), config)
    skipped = {c.name: c for c in result.skipped}
    x32 = {t.name for t in BUILT if t.image == "vdsox32"}
    assert x32 and set(skipped) == x32
    assert {(c.verdict, c.detail) for c in skipped.values()} == {
        (Verdict.NOT_APPLICABLE, "vdsox32: CONFIG_X86_X32_ABI is not set")}
    assert len(entries) == len(BUILT) - len(x32)


def test_missing_op_numbers_are_an_error(tmp_path: Path) -> None:
    ops = OpNumbers("upstream.toml", {"wake": 1})
    result = make_plan(GuestPlanRequest(BUILT, VdsoResult(BOTH_PASS, FACTS, ROLES), tmp_path / "rw",
                                   tmp_path / "logs", 120, ops=ops))
    skipped = {c.name: c for c in result.skipped}
    assert skipped["robust-unlock-ops-64"].verdict == Verdict.ERROR
    assert "upstream.toml gives no unlock_wake_list64 in [ops]" in \
        skipped["robust-unlock-ops-64"].detail


def test_failed_elf_check_is_an_error_not_a_skip(tmp_path: Path) -> None:
    checks = (Check("elf-vdso64", Verdict.FAIL, "export missing"),
              Check("elf-vdso32", Verdict.FAIL, "export missing"))
    result, entries = make(tmp_path, VdsoResult(checks, {}))
    verdicts = {c.verdict for c in result.skipped}
    assert verdicts == {Verdict.ERROR}
    # The legacy control and the exit walk need no vDSO: they still run on a kernel
    # without the series.
    assert set(entries) == {"remap-exit-legacy", "remap-exit-legacy-32bit",
                            "stress-remap-exit-legacy",
                            "py-stress-remap-exit-legacy", "robust-exit-walk-64",
                            "robust-exit-walk-32bit"}


def test_singlestep_binary_reports_absent_function(tmp_path: Path) -> None:
    """An entry the running vDSO does not export ends the test with exit 3 and its name,
    on any host: no vDSO exports this one."""
    _, entries = make(tmp_path, VdsoResult(BOTH_PASS, FACTS, ROLES))
    argv = entries["cs-fixup-singlestep-64"]["argv"]
    argv[argv.index("--func") + 1] = "__vdso_no_such_entry"
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 3 and done.stdout == ""
    assert "__vdso_no_such_entry is not exported by the running vDSO" in done.stderr


def test_legacy_control_reproduces_the_race_on_this_host(tmp_path: Path) -> None:
    # The race is in every kernel's exit path; the host's own kernel shows it too.
    _, entries = make(tmp_path, VdsoResult(BOTH_PASS, FACTS, ROLES))
    argv = entries["remap-exit-legacy"]["argv"]
    argv[argv.index("--rounds") + 1] = "1"
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    record = json.loads(done.stdout)
    assert record["corruptions"] == record["owner_died"] == record["rounds"] == 3
    assert record["wrong_values"] == 0 and record["last_value"] == 0x40000000


@pytest.mark.parametrize("name", ["robust-exit-walk-64", "robust-exit-walk-32bit"])
def test_exit_walk_passes_on_this_host(tmp_path: Path, name: str) -> None:
    # The exit-time walk of a robust list predates the series: the host's kernel has it too.
    _, entries = make(tmp_path, VdsoResult(BOTH_PASS, FACTS, ROLES))
    argv = entries[name]["argv"]
    argv[argv.index("--rounds") + 1] = "1"
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    test = next(t for t in BUILT if t.name == name)
    check = judge_counters(test, {k: v for k, v in json.loads(done.stdout).items()
                                  if k != "check"})
    assert check.verdict == Verdict.PASS, (check, done.stderr)


def test_list32_tests_not_applicable_with_the_reason(tmp_path: Path) -> None:
    checks = (Check("elf-vdso64", Verdict.PASS),
              Check("elf-vdso32", Verdict.NOT_APPLICABLE, "CONFIG_IA32_EMULATION is not set"),
              Check("elf-vdsox32", Verdict.NOT_APPLICABLE, "CONFIG_X86_X32_ABI is not set"))
    facts = {k: v for k, v in FACTS.items() if k == f"vdso64:{L64}"}
    why = {"vdso64:list32": "vdso64 must not export it: no COMPAT"}
    result, entries = make(tmp_path, VdsoResult(checks, facts, {"vdso64:list64": L64}, why))
    skipped = {c.name: c for c in result.skipped}
    for name in ("unlock-semantics-list32", "cs-fixup-singlestep-list32"):
        assert skipped[name].verdict == Verdict.NOT_APPLICABLE
        assert skipped[name].detail == "vdso64 must not export it: no COMPAT"
    assert {c.verdict for c in result.skipped} == {Verdict.NOT_APPLICABLE}
    assert "cs-fixup-singlestep-64" in entries



def test_select_by_pattern_and_unknown_pattern() -> None:
    tests = load_guest_tests()
    assert select(tests, ()) == tests
    chosen = [t.name for t in select(tests, ("remap-exit-*", "vdso-mremap"))]
    assert chosen == ["vdso-mremap", "remap-exit-vdso-64", "remap-exit-vdso-32bit",
                      "remap-exit-legacy", "remap-exit-legacy-32bit"]
    with pytest.raises(UserError, match=r"--only no-such-\* matches no guest test; the "
                                        r"tests are: vdso-runtime-image-64, "):
        select(tests, ("vdso-mremap", "no-such-*"))


def test_a_param_takes_its_default_or_the_environment(tmp_path: Path) -> None:
    """The fuzzer's seed: the data's default, FUTEX_HARNESS_SEED for a replay."""
    fuzz = {t.name: t for t in BUILT}["fuzz-robust-unlock"]
    assert "seed" in fuzz.placeholders
    assert param_values(fuzz, {}) == {"seed": "20261205"}
    assert param_values(fuzz, {"FUTEX_HARNESS_SEED": "42", "SEED": "7"}) == {"seed": "42"}
    argv = plan.test_argv(fuzz, ["fuzz"], FACTS[f"vdso64:{L64}"], None, tmp_path, OPS.values,
                          {"seed": "42"})
    assert argv[argv.index("--seed") + 1] == "42"
    assert argv[argv.index("--func64") + 1] == L64
