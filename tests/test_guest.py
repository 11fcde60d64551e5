# SPDX-License-Identifier: GPL-2.0
from __future__ import annotations

import json
from pathlib import Path

from conftest import sh

from harness.data import load_guest_tests
from harness.guest import GuestPlanRequest, plan
from harness.results import Verdict
from harness.vdso import Facts, VdsoResult

FACTS = Facts("vdso64", "__vdso_futex_robust_list64_try_unlock", 0x1440, 14,
              0x1448, 0x144A, 0x144D, 8)


def test_plan_compiles_static_tests_and_fills_in_offsets(tmp_path: Path) -> None:
    tests = load_guest_tests()
    vdso = VdsoResult((), {f"vdso64:{FACTS.function}": FACTS})
    result = plan(GuestPlanRequest(tests, vdso, tmp_path / "rw", tmp_path / "logs", 120))
    entries = json.loads((tmp_path / "rw" / "plan.json").read_text())["tests"]
    first = entries[0]
    assert first["name"] == "cs-fixup-singlestep-64"
    assert first["argv"][1:] == [
        "--check", "cs-fixup-singlestep-64", "--func", FACTS.function, "--pop-width", "8",
        "--cs-start", "0x1448", "--cs-success", "0x144a", "--cs-end", "0x144d",
        "--iterations", "100"]
    assert "statically linked" in sh(["file", first["argv"][0]])
    assert result.runner.is_file() and not result.skipped


def test_missing_offsets_are_an_error_not_a_skip(tmp_path: Path) -> None:
    result = plan(GuestPlanRequest(load_guest_tests(), VdsoResult((), {}), tmp_path / "rw",
                                   tmp_path / "logs", 120))
    assert not result.planned
    assert result.skipped[0].verdict == Verdict.ERROR
    assert "no checked offsets" in result.skipped[0].detail


def test_singlestep_binary_reports_absent_function(tmp_path: Path) -> None:
    # The host kernel predates the series, so the export is missing: exit 3, named.
    vdso = VdsoResult((), {f"vdso64:{FACTS.function}": FACTS})
    plan(GuestPlanRequest(load_guest_tests(), vdso, tmp_path / "rw", tmp_path / "logs", 120))
    argv = json.loads((tmp_path / "rw" / "plan.json").read_text())["tests"][0]["argv"]
    import subprocess

    done = subprocess.run(argv, capture_output=True, text=True)
    if "not exported" in done.stderr:
        assert done.returncode == 3 and FACTS.function in done.stderr
    else:  # a host that carries the series runs it for real
        assert json.loads(done.stdout)["check"] == "cs-fixup-singlestep-64"
