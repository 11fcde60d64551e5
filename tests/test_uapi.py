# SPDX-License-Identifier: GPL-2.0
"""The op numbers: read from the built tree's uapi linux/futex.h, cross-checked with the
expectations, and the verdict of a test the expectations or the header leave without one."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_disasm import without_table
from test_guest import BOTH_PASS, BUILT, FACTS, ROLES

from harness.data.expectations import expectation_names, load_expectations
from harness.guest.plan import GuestPlanRequest, make_plan
from harness.guest.uapi import OpNumbers, cross_check, defines, evaluate
from harness.stages.disasm import no_table
from harness.stages.vdso import VdsoResult
from harness.verdicts.checks import Check, Verdict

HEADER = Path(__file__).resolve().parent / "data" / "uapi" / "futex.h"
OPS_TESTS = ("robust-unlock-ops-64", "robust-unlock-ops-list32", "robust-unlock-ops-32bit")


def planned(tmp_path: Path, names: tuple[str, ...], ops: OpNumbers,
            no_windows: str | None = None) -> dict[str, Check]:
    """The verdicts plan() gives these tests before the boot; a test it runs is absent."""
    tests = tuple(t for t in BUILT if t.name in names)
    done = make_plan(GuestPlanRequest(tests, VdsoResult(BOTH_PASS, FACTS, ROLES), tmp_path / "rw",
                                 tmp_path / "logs", 120, ops=ops, no_windows=no_windows))
    return {c.name: c for c in done.skipped}


def test_macros_built_from_other_macros() -> None:
    table = defines("#define A 0x200U /* a flag */\n#define B (1 | \\\n A)\n"
                    "#define MASK ~(A | B)\n#define F(x) (x)\n#define LOOP LOOP\n")
    assert evaluate("B", table) == 513 and evaluate("MASK", table) == ~513
    assert "F" not in table
    with pytest.raises(KeyError):
        evaluate("C", table)
    with pytest.raises(ValueError, match="refers to itself"):
        evaluate("LOOP", table)


@pytest.mark.parametrize("name", [n for n in expectation_names()
                                  if load_expectations(n).ops is not None])
def test_every_ops_table_agrees_with_linux_7_3(name: str) -> None:
    numbers = cross_check(load_expectations(name), HEADER)
    assert numbers.problems == {}
    assert numbers.values == load_expectations(name).ops


def test_a_number_the_built_tree_disagrees_with_is_an_error(tmp_path: Path) -> None:
    """A revision renumbered FUTEX_ROBUST_UNLOCK; the expectations still say 512. The test
    used to run with the file's numbers, against a kernel that reads them differently."""
    header = tmp_path / "futex.h"
    header.write_text(HEADER.read_text().replace("FUTEX_ROBUST_UNLOCK\t512",
                                                 "FUTEX_ROBUST_UNLOCK\t2048"))
    numbers = cross_check(load_expectations("upstream"), header)
    assert numbers.problems["unlock_wake_list64"] == (
        f"op unlock_wake_list64: {load_expectations('upstream').path} says 513, the built "
        f"tree's {header} has FUTEX_UNLOCK_WAKE_LIST64 = 2049")
    checks = planned(tmp_path, OPS_TESTS, numbers)
    assert {c.verdict for c in checks.values()} == {Verdict.ERROR}
    assert "says 513" in checks["robust-unlock-ops-64"].detail
    assert "says 1537" in checks["robust-unlock-ops-list32"].detail
    assert "FUTEX_UNLOCK_WAKE_LIST32 = 3073" in checks["robust-unlock-ops-list32"].detail


def test_a_macro_the_built_tree_lacks_is_an_error(tmp_path: Path) -> None:
    header = tmp_path / "futex.h"
    header.write_text(HEADER.read_text().replace("#define FUTEX_ROBUST_LIST32", "#define X"))
    numbers = cross_check(load_expectations("upstream"), header)
    assert "has no FUTEX_ROBUST_LIST32" in numbers.problems["robust_list32"]
    assert "unlock_wake_list64" in numbers.values
    checks = planned(tmp_path, OPS_TESTS, numbers)
    assert {c.verdict for c in checks.values()} == {Verdict.ERROR}


def test_expectations_without_an_ops_table_are_an_error(tmp_path: Path) -> None:
    """Used to be a quiet N/A: the contended path went untested and the run passed."""
    path = without_table(tmp_path, "ops")
    numbers = cross_check(load_expectations("no-ops", tmp_path), HEADER)
    checks = planned(tmp_path, OPS_TESTS, numbers)
    assert {c.verdict for c in checks.values()} == {Verdict.ERROR}
    assert checks["robust-unlock-ops-64"].detail == (
        f"not run: {path} has no [ops] table, which gives the op numbers")


def test_expectations_without_a_disasm_table_leave_no_window_to_judge(tmp_path: Path) -> None:
    """The single-step tests used to fall back to the labels, which the disassembly is
    there to check; they are not run."""
    without_table(tmp_path, "disasm")
    why = no_table(load_expectations("no-disasm", tmp_path))
    checks = planned(tmp_path, ("cs-fixup-singlestep-64", "unlock-semantics-64"),
                     OpNumbers(), no_windows=why)
    assert checks["cs-fixup-singlestep-64"].verdict == Verdict.ERROR
    assert checks["cs-fixup-singlestep-64"].detail == f"not run: {why}"
    assert "unlock-semantics-64" not in checks  # it takes no window: it runs


def test_the_headers_are_installed_once_per_built_tree(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Both callers of a run, and a re-run, share one install; a new build (another tree or
    config: another stamp) installs again, and a build without a stamp always does."""
    from harness.kselftest import programs
    from harness.stages import build

    makes: list[str] = []
    monkeypatch.setattr(programs, "run", lambda argv, **_: makes.append(argv[-1]))
    build_dir = tmp_path / "build"
    (build_dir / programs.HEADERS_DIR).mkdir(parents=True)

    def install_twice() -> None:
        for _ in range(2):
            programs.install_headers(tmp_path / "tree", build_dir, tmp_path / "log", 60)

    (build_dir / build.STAMP).write_text("tree-a config make\n")
    install_twice()
    assert len(makes) == 1
    (build_dir / build.STAMP).write_text("tree-b config make\n")
    install_twice()
    assert len(makes) == 2
    (build_dir / build.STAMP).unlink()
    install_twice()
    assert len(makes) == 4
