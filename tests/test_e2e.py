# SPDX-License-Identifier: GPL-2.0
"""The real thing: Debian's Linux 7.3 built, checked, booted under virtme-ng and tested,
pristine and with every known-bad revision in patches/mutants/, in one comparison run.

The first run on a machine downloads the source and builds it (about 17 minutes on 2
cores); after that each revision is an incremental rebuild of a few files plus a TCG boot
(about a minute). The base is tested first and the tree is left pristine at the end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import kcidb_io
import pytest

from harness.kcidb import check_path
from harness.kselftest import load_spec
from harness.patches import caught_by, mutant_variant

ROOT = Path(__file__).resolve().parent.parent
# The mutants of the default variant; the others run in their own variant's e2e test.
MUTANTS = [p for p in sorted((ROOT / "patches" / "mutants").glob("*.patch"))
           if mutant_variant(p) == (None, None)]

pytestmark = pytest.mark.e2e


def harness_run(run_dir: Path, args: list[str], patches: list[Path],
                timeout: float) -> dict[str, Any]:
    """One real harness run, base plus each patch; its record with the exit code and report."""
    argv = [sys.executable, "-m", "harness", "run", "--run-dir", str(run_dir), *args]
    for patch in patches:
        argv += ["--series", str(patch)]
    done = subprocess.run(argv, cwd=ROOT, timeout=timeout)
    record = json.loads((run_dir / "results.json").read_text())
    record["_exit"] = done.returncode
    record["_report"] = (run_dir / "report.txt").read_text()
    record["_kcidb"] = json.loads((run_dir / "kcidb.json").read_text())
    return dict(record)


@pytest.fixture(scope="module")
def comparison(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return harness_run(tmp_path_factory.mktemp("e2e") / "run", [], MUTANTS, 85 * 60)


def revision(record: dict[str, Any], label: str) -> dict[str, dict[str, Any]]:
    rev = next(r for r in record["revisions"] if r["label"] == label)
    assert all(s["status"] == "ok" for s in rev["stages"]), rev["stages"]
    return {c["name"]: c for c in rev["checks"]}


def test_pristine_passes_everything(comparison: dict[str, Any]) -> None:
    found = revision(comparison, "base")
    # N/A only for the kernel's own subtests that need what this machine lacks (more CPUs,
    # a newer libnuma), each with its reason; never for anything the series brings.
    spec = load_spec()
    not_passed = {n: c for n, c in found.items() if c["verdict"] != "PASS"}
    for name, check in not_passed.items():
        program, subtest = name.removeprefix(f"{spec.suite}/").partition("/")[::2]
        assert name.startswith(f"{spec.suite}/") and check["verdict"] == "N/A", name
        assert check["detail"] and not spec.is_series(program, subtest), check
    assert len(found) > len(not_passed), comparison["_report"]
    step = found["cs-fixup-singlestep-64"]["counters"]
    assert step["hits_zf_set"] > 0 and step["bad_steps"] == 0
    assert found["remap-exit-legacy"]["counters"]["corruptions"] > 0
    assert found["remap-exit-vdso-64"]["counters"]["window_hits"] > 0
    assert comparison["revisions"][0]["accel"] in ("kvm", "tcg")


@pytest.mark.parametrize("patch", MUTANTS, ids=lambda p: p.stem)
def test_mutant_is_caught_by_its_check(comparison: dict[str, Any], patch: Path) -> None:
    check = caught_by(patch)
    found = revision(comparison, patch.stem)
    assert check in found, f"{patch.name} names {check}, which did not run"
    assert found[check]["verdict"] == "FAIL", (check, found[check], comparison["_report"])


def test_removed_fixup_brings_back_the_corruption(comparison: dict[str, Any]) -> None:
    found = revision(comparison, "no-fixup-call")
    assert found["cs-fixup-singlestep-64"]["counters"]["bad_steps"] > 0
    assert found["remap-exit-vdso-64"]["counters"]["corruptions"] > 0
    # The vDSO itself is untouched by this mutant: only the kernel side is wrong.
    assert found["elf-vdso64"]["verdict"] == "PASS"


def test_new_checks_report_their_counters(comparison: dict[str, Any]) -> None:
    found = revision(comparison, "base")
    ops = found["robust-unlock-ops-64"]["counters"]
    assert ops["cases"] > 0 and ops["waiters_woken"] > 0 and ops["pop_not_cleared"] == 0
    fork = found["fork-exec-64"]["counters"]
    assert all(fork[f"{s}_window_stops"] > 0 for s in ("fork", "clonevm", "exec"))
    assert found["py-unlock-semantics-64"]["counters"]["cases"] > 0
    assert any(n.startswith("kselftest-futex/robust_list/vdso_unlock.64") for n in found)


def test_exit_code_says_a_check_failed(comparison: dict[str, Any]) -> None:
    assert comparison["_exit"] == 1


def test_kcidb_json_validates(comparison: dict[str, Any]) -> None:
    """kcidb.json of the real run: valid KCIDB v5.3, a build per revision, a test per check,
    and each mutant's check FAIL there too."""
    doc = comparison["_kcidb"]
    kcidb_io.schema.LATEST.validate(doc)
    assert len(doc["builds"]) == len(comparison["revisions"])
    assert {b["status"] for b in doc["builds"]} == {"PASS"}
    assert len(doc["tests"]) == sum(len(r["checks"]) for r in comparison["revisions"])
    for patch in MUTANTS:
        build = next(b for b in doc["builds"] if b["misc"]["label"] == patch.stem)
        failed = {t["path"] for t in doc["tests"]
                  if t["build_id"] == build["id"] and t["status"] == "FAIL"}
        assert check_path(str(caught_by(patch))) in failed, patch.name
