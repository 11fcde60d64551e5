# SPDX-License-Identifier: GPL-2.0
"""The real thing: Debian's Linux 7.3 built, checked, booted under virtme-ng and tested,
pristine and with every known-bad revision in patches/mutants/: the base and three mutants in
one comparison run, the same request again as three shards merged, and the other mutants in
a run of their own.

The first run on a machine downloads the source and builds it (about 17 minutes on 2
cores); after that each revision is an incremental rebuild of a few files plus a TCG boot
(about a minute). The base is tested first and the tree is left pristine at the end.

FUTEX_HARNESS_KERNEL_SRC=<tree> runs this and every e2e test built on harness_run on a Linux
7.3 tree of your own (--kernel-src) instead of Debian's: one harness run at a time holds a
tree's lock, so two sessions on one machine each need their own tree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import kcidb_io
import pytest

from harness.kselftest.spec import load_spec
from harness.outputs.kcidb import check_path
from harness.stages.patches import caught_by, mutant_variant

ROOT = Path(__file__).resolve().parent.parent
# The mutants of the default variant; the others run in their own variant's e2e test.
MUTANTS = [p for p in sorted((ROOT / "patches" / "mutants").glob("*.patch"))
           if mutant_variant(p) == (None, None)]
# The request that is also run as three shards: one mutant per shard.
SHARDED = [p for p in MUTANTS if p.stem in ("no-fixup-call", "zf-inverted", "mremap-no-update")]
REST = [p for p in MUTANTS if p not in SHARDED]
# A kernel tree of your own for every e2e run, instead of Debian's (kernel_args).
KERNEL_SRC_ENV = "FUTEX_HARNESS_KERNEL_SRC"

pytestmark = pytest.mark.e2e


def kernel_args() -> list[str]:
    """The kernel tree of the e2e runs: $FUTEX_HARNESS_KERNEL_SRC (a Linux 7.3 tree of your
    own, never written to, e.g. while another run holds the lock of the Debian one), else
    the harness's default, Debian's linux-source."""
    tree = os.environ.get(KERNEL_SRC_ENV)
    return ["--kernel-src", tree] if tree else []


def harness_run(run_dir: Path, args: list[str], patches: list[Path],
                timeout: float, command: str = "run") -> dict[str, Any]:
    """One real harness run, base plus each patch; its record with the exit code and report."""
    argv = [sys.executable, "-m", "harness", command, "--run-dir", str(run_dir), *args]
    if command != "merge":  # a merge reads shards' run dirs, no kernel tree
        argv += kernel_args()
    for patch in patches:
        argv += ["--series", str(patch)]
    done = subprocess.run(argv, cwd=ROOT, timeout=timeout)
    record = json.loads((run_dir / "results.json").read_text())
    record["_exit"] = done.returncode
    record["_report"] = (run_dir / "report.txt").read_text()
    record["_kcidb"] = json.loads((run_dir / "kcidb.json").read_text())
    record["_dir"] = run_dir
    return dict(record)


@pytest.fixture(scope="module")
def comparison(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return harness_run(tmp_path_factory.mktemp("e2e") / "run", [], SHARDED, 30 * 60)


@pytest.fixture(scope="module")
def rest(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return harness_run(tmp_path_factory.mktemp("e2e") / "rest", ["--no-base"], REST, 60 * 60)


@pytest.fixture(scope="module")
def merged(comparison: dict[str, Any],
           tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The comparison's request again, as three shard processes and their merge."""
    top = tmp_path_factory.mktemp("shards")
    shards = [harness_run(top / f"shard{i}", ["--shard", f"{i}/3"], SHARDED, 20 * 60)
              for i in (1, 2, 3)]
    return harness_run(top / "merged", [str(s["_dir"]) for s in shards], [], 120, "merge")


def table(record: dict[str, Any]) -> list[tuple[str, str, list[tuple[str, str]]]]:
    return [(r["label"], r["job"], [(c["name"], c["verdict"]) for c in r["checks"]])
            for r in record["revisions"]]


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
def test_mutant_is_caught_by_its_check(comparison: dict[str, Any], rest: dict[str, Any],
                                       patch: Path) -> None:
    check = caught_by(patch)
    run = comparison if patch in SHARDED else rest
    found = revision(run, patch.stem)
    assert check in found, f"{patch.name} names {check}, which did not run"
    assert found[check]["verdict"] == "FAIL", (check, found[check], run["_report"])


def test_three_shards_merged_equal_the_single_run(comparison: dict[str, Any],
                                                  merged: dict[str, Any]) -> None:
    assert table(merged) == table(comparison), merged["_report"]
    assert merged["_exit"] == comparison["_exit"] == 1
    assert merged["request"] == comparison["request"]
    assert "== comparison" in merged["_report"]


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


def test_exit_code_says_a_check_failed(comparison: dict[str, Any],
                                       rest: dict[str, Any]) -> None:
    assert comparison["_exit"] == rest["_exit"] == 1


@pytest.mark.parametrize("which", ["comparison", "rest", "merged"])
def test_kcidb_json_validates(which: str, request: pytest.FixtureRequest) -> None:
    """kcidb.json of each real run and of the merge: valid KCIDB v5.3, a build per revision,
    a test per check, and each mutant's check FAIL there too."""
    run = request.getfixturevalue(which)
    doc = run["_kcidb"]
    kcidb_io.schema.LATEST.validate(doc)
    assert len(doc["builds"]) == len(run["revisions"])
    assert {b["status"] for b in doc["builds"]} == {"PASS"}
    assert len(doc["tests"]) == sum(len(r["checks"]) for r in run["revisions"])
    labels = {r["label"] for r in run["revisions"]}
    for patch in (p for p in MUTANTS if p.stem in labels):
        build = next(b for b in doc["builds"] if b["misc"]["label"] == patch.stem)
        failed = {t["path"] for t in doc["tests"]
                  if t["build_id"] == build["id"] and t["status"] == "FAIL"}
        assert check_path(str(caught_by(patch))) in failed, patch.name
