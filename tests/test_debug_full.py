# SPDX-License-Identifier: GPL-2.0
"""Pristine Debian 7.3 on the debug variant (minimal plus KASAN, UBSAN, lockdep with RCU
checking, might_sleep(), list debugging and the hung-task and soft-lockup watchdogs), the
whole default suite, for real: every check passes, the console check included, so none of
the detectors reports anything on the series' paths as released.

In make test-full: a cold build of the debug kernel when it is not cached (the README's
timings) and a boot of the whole suite under KASAN. The run's report and record are kept in
bench/results/debug/. make test runs one debug boot only, with its mutants
(tests/test_debug_e2e.py).

FUTEX_HARNESS_KERNEL_SRC=<tree> runs it on a Linux 7.3 tree of your own instead of Debian's
(test_e2e.kernel_args)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_e2e import kernel_args

ROOT = Path(__file__).resolve().parent.parent
RECORDED = ROOT / "bench" / "results" / "debug"

pytestmark = [pytest.mark.e2e, pytest.mark.full]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    run_dir = tmp_path_factory.mktemp("debug") / "run"
    argv = [sys.executable, "-m", "harness", "run", "--config-variant", "debug",
            "--run-dir", str(run_dir), *kernel_args()]
    done = subprocess.run(argv, cwd=ROOT, timeout=120 * 60)
    record: dict[str, Any] = json.loads((run_dir / "results.json").read_text())
    record["_exit"] = done.returncode
    record["_report"] = (run_dir / "report.txt").read_text()
    RECORDED.mkdir(parents=True, exist_ok=True)
    for name in ("report.txt", "results.json"):
        shutil.copy2(run_dir / name, RECORDED / name)
    return record


def test_the_whole_suite_passes_on_the_debug_kernel(pristine: dict[str, Any]) -> None:
    assert pristine["_exit"] == 0, pristine["_report"]
    (rev,) = pristine["revisions"]
    assert all(s["status"] == "ok" for s in rev["stages"]), rev["stages"]
    found = {c["name"]: c for c in rev["checks"]}
    assert found["console"]["verdict"] == "PASS", found["console"]
    assert found["cs-fixup-singlestep-64"]["counters"]["hits_zf_set"] > 0
    assert found["kill-in-window-64"]["verdict"] == "PASS"
