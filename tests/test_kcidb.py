# SPDX-License-Identifier: GPL-2.0
"""kcidb.json: every document the harness writes validates against kcidb-io's schema v5.3,
and says what the run record says."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import kcidb_io
import pytest
from fake_tree import fake_tree, fragment
from plans import FAKEBIN

from harness.cli import main
from harness.errors import UserError
from harness.outputs import kcidb
from harness.outputs.record import Revision, Run, Stage
from harness.outputs.report import write_reports
from harness.stages.patches import PatchResult
from harness.verdicts.checks import Check, Verdict

HERE = Path(__file__).resolve().parent
CAPTURED = HERE / "data" / "results" / "stress-00.json"
SCHEMA = kcidb_io.schema.LATEST
PATH_RULE = re.compile(SCHEMA.json["$defs"]["path"]["pattern"])
STATUS_TABLE = tomllib.loads(kcidb.KCIDB_TOML.read_text())["status"]
# What the issue asks for, written out once more so a change of the data file shows here.
ISSUE_STATUSES = {"PASS": "PASS", "FAIL": "FAIL", "INCONCLUSIVE": "FAIL", "ERROR": "ERROR",
                  "TIMEOUT": "ERROR", "N/A": "SKIP"}
HASH = "903638c087335b10293663c682b9aa0076f9f7be478a8e7828bc22e12d301b42"
STARTED = "2026-11-30T10:00:00+0000"


def valid(doc: dict[str, Any]) -> dict[str, Any]:
    """The document, after kcidb-io's validation and a check that every link resolves and
    every id is unique within its kind."""
    SCHEMA.validate(doc)
    for kind in ("checkouts", "builds", "tests"):
        ids = [o["id"] for o in doc[kind]]
        assert len(ids) == len(set(ids)), kind
    checkouts = {c["id"] for c in doc["checkouts"]}
    builds = {b["id"] for b in doc["builds"]}
    assert all(b["checkout_id"] in checkouts for b in doc["builds"])
    assert all(t["build_id"] in builds for t in doc["tests"])
    return doc


def stages(*spec: str, failing: str = "") -> list[Stage]:
    """Stages named in order, all ok but the last, which fails with `failing` if given."""
    out = [Stage(name, "ok", 1.5 if name == "build" else 0.5) for name in spec]
    if failing:
        out[-1] = Stage(spec[-1], "error", 2.0, failing)
    return out


BUILT = ("source", "patches", "config", "build", "vdso", "disasm", "guest-build", "boot")


def rev(label: str, series: str | None = None, kernel: str = "7.3", variant: str = "lean",
        stage_list: list[Stage] | None = None, checks: list[Check] | None = None) -> Revision:
    return Revision(label, "Debian linux-source-7.3 7.3.4-1~bpo13+1 (trixie-backports)",
                    job=f"{kernel}/{variant}/{series or 'base'}", kernel=kernel,
                    variant=variant, patchset_hash=HASH if series else None, series=series,
                    applied=["futex: a patch"] if series else [],
                    stages=stages(*BUILT) if stage_list is None else stage_list,
                    checks=checks or [])


def run_of(*revisions: Revision, started: str = STARTED) -> Run:
    return Run("futex-harness run", started, list(revisions), request="ab" * 32, jobs=[])


def by_label(doc: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {o["misc"]["label"]: o for o in doc[kind]}


def checks_of(doc: dict[str, Any], build: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["misc"]["check"]: t for t in doc["tests"] if t["build_id"] == build["id"]}


@pytest.mark.parametrize(("verdict", "status"), STATUS_TABLE.items())
def test_each_verdict_maps_as_the_data_file_says(verdict: str, status: str) -> None:
    assert ISSUE_STATUSES[verdict] == status
    check = Check("cs-fixup-singlestep-64", Verdict(verdict), "detail")
    doc = valid(kcidb.to_kcidb(run_of(rev("base", checks=[check])), "futex_harness"))
    assert [t["status"] for t in doc["tests"]] == [status]


def test_the_data_file_maps_every_verdict() -> None:
    assert set(STATUS_TABLE) == {v.value for v in Verdict}


def test_a_verdict_without_a_status_is_named(tmp_path: Path) -> None:
    text = kcidb.KCIDB_TOML.read_text()
    broken = tmp_path / "kcidb.toml"
    broken.write_text(text.replace('TIMEOUT = "ERROR"\n', ""))
    with pytest.raises(UserError, match=r"missing verdicts \['TIMEOUT'\]"):
        kcidb.load_spec(broken)
    broken.write_text(text.replace('TIMEOUT = "ERROR"', 'TIMEOUT = "BROKEN"'))
    with pytest.raises(UserError, match="statuses BROKEN are not KCIDB's"):
        kcidb.load_spec(broken)


@pytest.mark.parametrize(("check", "path"), [
    ("cs-fixup-singlestep-64", "futex_harness.cs_fixup_singlestep_64"),
    ("elf-vdso64", "futex_harness.elf_vdso64"),
    ("console-stress", "futex_harness.console_stress"),
    ("stage-build", "futex_harness.stage_build"),
    ("kselftest-futex/robust_list/vdso_unlock.64.test_robust_try_unlock_contended",
     "futex_harness.kselftest.futex.robust_list.vdso_unlock.64.test_robust_try_unlock_contended"),
    ("kselftest-futex/futex_numa", "futex_harness.kselftest.futex.futex_numa"),
    ("kselftest-futex/futex_requeue_pi/args.t_0.futex_requeue_pi",
     "futex_harness.kselftest.futex.futex_requeue_pi.args.t_0.futex_requeue_pi"),
    ("odd name/with: spaces..and//slashes.", "futex_harness.odd_name.with__spaces.and.slashes"),
])
def test_check_names_become_dotted_paths(check: str, path: str) -> None:
    assert kcidb.check_path(check) == path
    assert PATH_RULE.fullmatch(path)


def test_base_mutant_and_broken_revisions(tmp_path: Path) -> None:
    """The base passes; a mutant fails a check; one revision fails to compile, one to apply,
    one times out in make, one loses its boot."""
    base = rev("base", checks=[Check("cs-fixup-singlestep-64", Verdict.PASS, seconds=0.25),
                               Check("kselftest-futex/futex_numa", Verdict.NOT_APPLICABLE,
                                     "needs 2 CPUs")])
    mutant = rev("zf-inverted", "patches/mutants/zf-inverted.patch", checks=[
        Check("cs-fixup-singlestep-64", Verdict.FAIL, "bad_steps=200", {"bad_steps": 200}),
        Check("remap-exit-vdso-64", Verdict.INCONCLUSIVE, "never reached: window_hits=0")])
    no_compile = rev("no-compile", "bad.patch", stage_list=stages(
        "source", "patches", "config", "build",
        failing="kernel build failed (log: x):\nmain.c:1:33: error: 'nope' undeclared"))
    no_apply = rev("no-apply", "stale.patch", stage_list=stages(
        "source", "patches", failing="patch 1/1 futex: x does not apply"))
    no_apply.patchset_hash = None
    slow = rev("slow", "slow.patch", variant="vng", stage_list=stages(
        "source", "patches", "config", "build", failing="make took longer than 5400s"))
    lost = rev("lost-boot", "lost.patch", stage_list=stages(*BUILT, failing="no runner"),
               checks=[Check("unlock-semantics-64", Verdict.ERROR, "no result")])
    (tmp_path / "no-compile" / "logs").mkdir(parents=True)
    (tmp_path / "no-compile" / "logs" / "build.log").write_text("main.c:1:33: error:\n")
    doc = valid(kcidb.to_kcidb(run_of(base, mutant, no_compile, no_apply, slow, lost),
                               "futex_harness", tmp_path))

    builds = by_label(doc, "builds")
    assert {k: b.get("status") for k, b in builds.items()} == {
        "base": "PASS", "zf-inverted": "PASS", "no-compile": "FAIL", "no-apply": "MISS",
        "slow": "ERROR", "lost-boot": "PASS"}
    assert builds["base"]["duration"] == 1.5 and builds["base"]["config_name"] == "lean"
    assert builds["slow"]["config_name"] == "vng"
    assert "no-apply" not in {b["misc"]["label"] for b in doc["builds"] if "duration" in b}
    assert "'nope' undeclared" in builds["no-compile"]["log_excerpt"]
    log = tmp_path / "no-compile" / "logs" / "build.log"
    assert builds["no-compile"]["log_url"] == log.as_uri()
    assert builds["no-compile"]["misc"]["log_path"] == "no-compile/logs/build.log"
    assert "log_url" not in builds["base"]  # no build.log in the run dir: nothing to link

    checkouts = {c["misc"]["series"]: c for c in doc["checkouts"]}
    assert checkouts[""]["patchset_hash"] == "" and checkouts[""]["valid"] is True
    assert checkouts["patches/mutants/zf-inverted.patch"]["patchset_hash"] == HASH
    assert checkouts["stale.patch"]["valid"] is False
    assert "patchset_hash" not in checkouts["stale.patch"]
    assert "does not apply" in checkouts["stale.patch"]["log_excerpt"]
    assert checkouts[""]["start_time"] == "2026-11-30T10:00:00+00:00"

    assert {n: t["status"] for n, t in checks_of(doc, builds["base"]).items()} == {
        "cs-fixup-singlestep-64": "PASS", "kselftest-futex/futex_numa": "SKIP"}
    mutant_tests = checks_of(doc, builds["zf-inverted"])
    assert mutant_tests["cs-fixup-singlestep-64"]["status"] == "FAIL"
    assert mutant_tests["cs-fixup-singlestep-64"]["misc"]["counters"] == {"bad_steps": 200}
    assert mutant_tests["remap-exit-vdso-64"]["status"] == "FAIL"
    # A build that failed or never ran has no tests; a stage error after the build is one.
    assert not checks_of(doc, builds["no-compile"]) and not checks_of(doc, builds["no-apply"])
    lost_tests = checks_of(doc, builds["lost-boot"])
    assert lost_tests["stage-boot"]["status"] == "ERROR"
    assert lost_tests["stage-boot"]["path"] == "futex_harness.stage_boot"
    assert lost_tests["stage-boot"]["comment"] == "no runner"
    assert lost_tests["unlock-semantics-64"]["status"] == "ERROR"


def test_two_kernels_by_two_variants() -> None:
    revs = [rev(f"{series or 'base'}@{kernel}-{variant}", series, kernel, variant)
            for kernel in ("7.3", "/home/me/src/linux") for variant in ("lean", "nocompat")
            for series in (None, "v4.mbx")]
    for r in revs:
        r.checks = [Check("elf-vdso64", Verdict.PASS), Check("vdso-mremap", Verdict.PASS)]
    doc = valid(kcidb.to_kcidb(run_of(*revs), "futex_harness"))
    assert len(doc["checkouts"]) == 4 and len(doc["builds"]) == 8 and len(doc["tests"]) == 16
    assert [b["misc"]["label"] for b in doc["builds"]] == [r.label for r in revs]
    # Both variants of one kernel and series are builds of one checkout.
    per_checkout: dict[str, set[str]] = {}
    for b in doc["builds"]:
        per_checkout.setdefault(b["checkout_id"], set()).add(b["config_name"])
    assert all(v == {"lean", "nocompat"} for v in per_checkout.values())
    kernels = {(c["misc"]["kernel"], c["patchset_hash"]) for c in doc["checkouts"]}
    assert kernels == {(k, h) for k in ("7.3", "/home/me/src/linux") for h in ("", HASH)}


def test_ids_are_stable_for_a_run_and_differ_between_runs() -> None:
    record = run_of(rev("base", checks=[Check("elf-vdso64", Verdict.PASS)]),
                    rev("a", "a.patch"), rev("a-2", "a.patch"))
    first, again = kcidb.to_kcidb(record, "lab"), kcidb.to_kcidb(record, "lab")
    assert first == valid(again)
    later = kcidb.to_kcidb(run_of(*record.revisions, started="2026-12-01T10:00:00+0000"), "lab")
    ids = {o["id"] for kind in ("checkouts", "builds", "tests") for o in first[kind]}
    assert ids.isdisjoint(o["id"] for kind in ("checkouts", "builds", "tests")
                          for o in later[kind])
    assert all(i.startswith("lab:") for i in ids)
    # The same series twice: one checkout, two builds with ids of their own.
    assert len(first["checkouts"]) == 2 and len(first["builds"]) == 3


def test_nul_bytes_and_an_unfinished_build(tmp_path: Path) -> None:
    running = rev("base", stage_list=[Stage("source", "ok"), Stage("patches", "ok"),
                                      Stage("config", "ok"), Stage("build", "running")])
    crashed = rev("crash", "c.patch",
                  checks=[Check("unlock-semantics-64", Verdict.ERROR, "stderr: \x00\x01 boom")])
    doc = valid(kcidb.to_kcidb(run_of(running, crashed), "futex_harness", tmp_path))
    build = by_label(doc, "builds")["base"]
    assert "status" not in build and "duration" not in build
    assert "\\x00" in doc["tests"][0]["comment"]


def test_captured_record_validates(tmp_path: Path) -> None:
    record = Run.from_json(json.loads(CAPTURED.read_text()))
    (tmp_path / "base" / "logs").mkdir(parents=True)
    (tmp_path / "base" / "logs" / "kernel.config").write_text("CONFIG_FUTEX=y\n")
    doc = valid(json.loads(kcidb.write_kcidb(tmp_path, record, "futex_harness").read_text()))
    assert len(doc["tests"]) == len(record.revisions[0].checks) == 100
    assert {t["status"] for t in doc["tests"]} == {"PASS", "SKIP"}
    assert [b["status"] for b in doc["builds"]] == ["PASS"]
    assert doc["builds"][0]["config_url"].startswith("file:///")
    paths = {t["path"] for t in doc["tests"]}
    assert "futex_harness.kselftest.futex.robust_list.vdso_unlock.64." \
           "test_robust_try_unlock_contended" in paths
    assert "futex_harness.console_stress" in paths


def test_patchset_hash_is_kcidbs(tmp_path: Path) -> None:
    """As the schema defines it: sha256sum *.patch | cut -c-64 | sha256sum | cut -c-64."""
    patches = [tmp_path / "0001-a.patch", tmp_path / "0002-b.patch"]
    patches[0].write_text("From: a\nSubject: [PATCH 1/2] a\n\n---\n")
    patches[1].write_bytes(b"Subject: [PATCH 2/2] b\n\xff\n---\n")
    sums = subprocess.run(["sha256sum", *map(str, patches)], check=True, capture_output=True)
    digests = subprocess.run(["cut", "-c-64"], input=sums.stdout, check=True,
                             capture_output=True)
    outer = subprocess.run(["sha256sum"], input=digests.stdout, check=True, capture_output=True)
    expected = outer.stdout.decode()[:64]
    assert PatchResult(tmp_path, ("a", "b"), None, tuple(patches)).patchset_hash == expected
    assert PatchResult(tmp_path, (), None).patchset_hash is None


@pytest.mark.parametrize("origin", ["", "My-Lab", "lab.example", "lab\n"])
def test_an_origin_against_the_schema_rule_is_a_user_error(origin: str) -> None:
    with pytest.raises(UserError, match=re.escape("rule ^[a-z0-9_]+$")):
        kcidb.to_kcidb(run_of(rev("base")), origin)


def test_origin_comes_from_the_environment_else_the_data_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(kcidb.ORIGIN_ENV, raising=False)
    assert kcidb.default_origin() == "futex_harness"
    monkeypatch.setenv(kcidb.ORIGIN_ENV, "ci_lab_2")
    write_reports(tmp_path, run_of(rev("base")))
    doc = valid(json.loads((tmp_path / "kcidb.json").read_text()))
    assert {o["origin"] for kind in ("checkouts", "builds") for o in doc[kind]} == {"ci_lab_2"}


def test_cli_refuses_a_bad_origin_before_anything_else(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--kcidb-origin", "My-Lab", "--kernel-src", str(tmp_path / "nope"),
                 "--run-dir", str(tmp_path / "r")])
    assert code == 2
    assert "KCIDB origin 'My-Lab' breaks the schema's rule ^[a-z0-9_]+$" in \
        capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_cli_run_that_stops_at_the_source(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(kcidb.ORIGIN_ENV, "from_env")
    code = main(["run", "--kcidb-origin", "lab_1", "--kernel-src", str(tmp_path / "nope"),
                 "--run-dir", str(tmp_path / "r"), "--accel", "tcg"])
    assert code == 2
    doc = valid(json.loads((tmp_path / "r" / "kcidb.json").read_text()))
    assert doc["checkouts"][0]["origin"] == "lab_1" and doc["checkouts"][0]["valid"] is False
    assert doc["builds"][0]["status"] == "MISS" and doc["tests"] == []


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A fake kernel tree, one fragment and a fake vng first on PATH."""
    monkeypatch.setenv("PATH", f"{FAKEBIN}:{os.environ['PATH']}")
    frags = fragment(tmp_path, "s.config", "CONFIG_FUTEX=y\nCONFIG_RSEQ=y\n").parent
    return {"tree": fake_tree(tmp_path), "frags": frags, "run": tmp_path / "run"}


def build_cmd(w: dict[str, Path]) -> int:
    return main(["build", "--kernel-src", str(w["tree"]), "--config-dir", str(w["frags"]),
                 "--run-dir", str(w["run"]), "--config-variant", "vng"])


def test_real_build_and_compile_error(world: dict[str, Path]) -> None:
    assert build_cmd(world) == 1  # the fake tree has no vDSO: the ELF checks fail
    doc = valid(json.loads((world["run"] / "kcidb.json").read_text()))
    build = doc["builds"][0]
    assert build["status"] == "PASS" and build["config_name"] == "vng"
    assert build["duration"] > 0
    assert build["log_url"] == (world["run"] / "base/logs/build.log").as_uri()
    assert build["config_url"] == (world["run"] / "base/logs/kernel.config").as_uri()
    assert {t["misc"]["check"]: t["status"] for t in doc["tests"]}["elf-vdso64"] == "FAIL"

    shutil.rmtree(world["run"])
    (world["tree"] / "init/main.c").write_text("int start_kernel(void) { return nope; }\n")
    assert build_cmd(world) == 2
    doc = valid(json.loads((world["run"] / "kcidb.json").read_text()))
    assert doc["builds"][0]["status"] == "FAIL" and doc["tests"] == []
    assert "error:" in doc["builds"][0]["log_excerpt"]
    assert Path(doc["builds"][0]["log_url"].removeprefix("file://")).is_file()


def test_cli_merge_writes_kcidb_json_with_its_origin(tmp_path: Path) -> None:
    plan = ["7.3:lean:base", "7.3:lean:a"]
    for index, label in ((1, "base"), (2, "a")):
        revision = rev(label, None if label == "base" else "a.patch",
                       checks=[Check("elf-vdso64", Verdict.PASS)])
        revision.job = plan[index - 1]
        shard = Run("cmd", f"2026-11-30T0{index}:00:00+0100", [revision], "req1",
                    f"{index}/2", [revision.job], plan)
        write_reports(tmp_path / f"s{index}", shard)
        (tmp_path / f"s{index}" / label / "logs").mkdir(parents=True)
        (tmp_path / f"s{index}" / label / "logs" / "build.log").write_text("  CC a.o\n")
    out = tmp_path / "merged"
    assert main(["merge", str(tmp_path / "s1"), str(tmp_path / "s2"), "--run-dir", str(out),
                 "--kcidb-origin", "merged_lab"]) == 0
    doc = valid(json.loads((out / "kcidb.json").read_text()))
    assert {b["origin"] for b in doc["builds"]} == {"merged_lab"}
    assert [b["misc"]["job"] for b in doc["builds"]] == plan
    # The merge copies each shard's logs, so the links point into the merged run dir.
    assert [b["log_url"] for b in doc["builds"]] == [
        (out / label / "logs" / "build.log").as_uri() for label in ("base", "a")]
    assert doc["checkouts"][0]["start_time"] == "2026-11-30T01:00:00+01:00"
