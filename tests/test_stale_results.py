# SPDX-License-Identifier: GPL-2.0
"""A reused run directory: results an earlier run left there are never judged as this
boot's. The real guest runner runs shell-script tests under the fake vng."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from plans import FAKEBIN, GOOD, script_plan
from test_vng import request

from harness.backends import vng as boot
from harness.guest import protocol
from harness.verdicts.checks import Verdict
from harness.verdicts.guest import judge_plan

TESTS = ("t1", "t2", "t3", "t4")
# The guest dies while this test runs: it kills the runner, as a panic would end the VM.
KILL_RUNNER = "kill -KILL $PPID; sleep 5\n"


@pytest.fixture(autouse=True)
def fake_vng(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{FAKEBIN}:{os.environ['PATH']}")


def verdicts(tmp_path: Path, scripts: dict[str, str]) -> dict[str, Verdict]:
    plan = script_plan(tmp_path, scripts)
    boot.boot(request(tmp_path, plan))
    images = {"vdso64": tmp_path / "unused"}
    checks = judge_plan(plan, images, protocol.read_outcomes(plan.rwdir))
    return {c.name: c.verdict for c in checks}


def test_guest_killed_after_test_k_of_a_reused_run_dir(tmp_path: Path) -> None:
    everyone = {name: GOOD % name for name in TESTS}
    assert verdicts(tmp_path, everyone) == dict.fromkeys(TESTS, Verdict.PASS)
    again = verdicts(tmp_path, {**everyone, "t3": KILL_RUNNER})
    assert again == {"t1": Verdict.PASS, "t2": Verdict.PASS, "t3": Verdict.ERROR,
                     "t4": Verdict.ERROR}


def test_a_result_file_from_an_earlier_plan_is_an_error(tmp_path: Path) -> None:
    """Even when an old file comes back after the plan was written (a backend copying
    results in), it was not written by this boot."""
    first = script_plan(tmp_path / "old", {"t2": GOOD % "t2"})
    boot.boot(request(tmp_path / "old", first))
    old = protocol.outcome_path(first.rwdir, "t2")
    plan = script_plan(tmp_path, {"t1": KILL_RUNNER, "t2": GOOD % "t2"})
    shutil.copy(old, protocol.outcome_path(plan.rwdir, "t2"))
    boot.boot(request(tmp_path, plan))
    checks = {c.name: c for c in judge_plan(plan, {"vdso64": tmp_path / "unused"},
                                            protocol.read_outcomes(plan.rwdir))}
    assert checks["t1"].verdict == Verdict.ERROR
    assert checks["t2"].verdict == Verdict.ERROR
    assert "left by an earlier plan" in checks["t2"].detail
