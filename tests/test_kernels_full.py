# SPDX-License-Identifier: GPL-2.0
"""Every Debian kernel as an input, for real, in one run on the default variant: pristine
7.2 (the first release with the series) and the 7.3 release candidate in experimental pass
everything; 6.12 (before the series) exits 1, its series checks FAIL or N/A with a reason
and the legacy race control still PASS.

In make test-full: three cold builds of the minimal config (about 5 minutes of 2 cores
each), then a boot each. The run's report and record are kept in bench/results/kernels/."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
RECORDED = ROOT / "bench" / "results" / "kernels"
# The releases with the series, and the one before it.
WITH_SERIES = ("7.2", "7.3~rc7-1~exp1")
BEFORE_SERIES = "6.12"
# Checks that are the series itself: on a kernel without it each must FAIL or be N/A.
SERIES_PREFIXES = ("elf-", "disasm-", "cs-", "unlock-semantics", "robust-ops", "kill-in-window",
                   "remap-exit-vdso", "py-unlock-semantics", "uapi-")
# The control that does not need the series: the old unlock still corrupts everywhere.
LEGACY = "remap-exit-legacy"

pytestmark = [pytest.mark.e2e, pytest.mark.full]


@pytest.fixture(scope="module")
def kernels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    run_dir = tmp_path_factory.mktemp("kernels") / "run"
    argv = [sys.executable, "-m", "harness", "run", "--run-dir", str(run_dir)]
    for kernel in (*WITH_SERIES, BEFORE_SERIES):
        argv += ["--debian", kernel]
    done = subprocess.run(argv, cwd=ROOT, timeout=120 * 60)
    record: dict[str, Any] = json.loads((run_dir / "results.json").read_text())
    record["_exit"] = done.returncode
    record["_report"] = (run_dir / "report.txt").read_text()
    keep(run_dir)
    return record


def keep(run_dir: Path) -> None:
    """The run's report and record go under bench/results/, to be committed."""
    RECORDED.mkdir(parents=True, exist_ok=True)
    for name in ("report.txt", "results.json"):
        shutil.copy2(run_dir / name, RECORDED / name)


def checks_of(record: dict[str, Any], kernel: str) -> dict[str, dict[str, Any]]:
    rev = next(r for r in record["revisions"] if r["job"].startswith(f"{kernel}:"))
    assert all(s["status"] == "ok" for s in rev["stages"]), (kernel, rev["stages"])
    return {c["name"]: c for c in rev["checks"]}


def test_the_run_exits_1_for_the_kernel_without_the_series(kernels: dict[str, Any]) -> None:
    assert kernels["_exit"] == 1, kernels["_report"]


@pytest.mark.parametrize("kernel", WITH_SERIES)
def test_a_kernel_with_the_series_passes_everything(kernels: dict[str, Any],
                                                    kernel: str) -> None:
    found = checks_of(kernels, kernel)
    bad = {n: (c["verdict"], c["detail"]) for n, c in found.items()
           if c["verdict"] not in ("PASS", "N/A")}
    assert not bad, (kernel, bad)
    assert found["cs-fixup-singlestep-64"]["verdict"] == "PASS"


def test_the_kernel_before_the_series_fails_its_checks_with_reasons(
        kernels: dict[str, Any]) -> None:
    found = checks_of(kernels, BEFORE_SERIES)
    series = {n: c for n, c in found.items() if n.startswith(SERIES_PREFIXES)}
    assert series, found.keys()
    for name, check in series.items():
        assert check["verdict"] in ("FAIL", "N/A"), (name, check)
        assert check["detail"], f"{name} is {check['verdict']} without a reason"
    assert found[LEGACY]["verdict"] == "PASS", found[LEGACY]
    assert found[LEGACY]["counters"]["corruptions"] > 0, found[LEGACY]
