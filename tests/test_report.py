# SPDX-License-Identifier: GPL-2.0
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest

from harness.errors import UserError
from harness.outputs.record import SCHEMA, Boot, Revision, Run, Stage
from harness.outputs.report import exit_code, load_record, render_junit, render_table, write_reports
from harness.verdicts.checks import Check, Verdict


def record(*checks: Check, stage_error: str | None = None) -> Run:
    stages = [Stage("build", "ok", 700.0, "3000 objects")]
    if stage_error:
        stages.append(Stage("boot", "error", 1.0, stage_error))
    return Run(revisions=[Revision("base", "Debian linux-source-7.3", accel="tcg",
                                   accel_reason="kvm_pvm", stages=stages, checks=list(checks))])


PASS = Check("cs-fixup-singlestep-64", Verdict.PASS, "", {"hits": 300, "bad_steps": 0}, 2.0)
FAIL = Check("cs-fixup-singlestep-64", Verdict.FAIL, "bad_steps=200", {"bad_steps": 200})


def test_exit_codes() -> None:
    assert exit_code(record(PASS)) == 0
    assert exit_code(record(PASS, FAIL)) == 1
    assert exit_code(record(Check("x", Verdict.INCONCLUSIVE))) == 1
    assert exit_code(record(PASS, stage_error="vng missing")) == 2
    assert exit_code(record()) == 1  # no checks at all is not a pass
    assert exit_code(Run()) == 2


def test_table_names_stages_checks_and_accel() -> None:
    text = render_table(record(PASS, FAIL))
    assert "accelerator: tcg (kvm_pvm)" in text
    assert "stage build" in text and "3000 objects" in text
    assert "hits=300 bad_steps=0" in text
    assert "FAIL" in text and "verdict: FAIL" in text and "overall: FAIL (exit 1)" in text


def test_table_says_where_a_boots_time_went(tmp_path: Path) -> None:
    """The kernel's selftest programs report no time per subtest: the boot line gives each
    program's time, the slowest first, and the record keeps them all."""
    run = record(PASS)
    times = {"kselftest-futex/futex_numa": 10.2, "cs-fixup-singlestep-64": 0.3,
             "kselftest-futex/robust_list": 3.1, "py-unlock-semantics-64": 13.8,
             "vdso-mremap": 1.0}
    run.revisions[0].boots.append(Boot("default", "tcg", (), times))
    assert ("   boot default: 5 guest programs took 28.4s; slowest: py-unlock-semantics-64 "
            "13.8s, kselftest-futex/futex_numa 10.2s, kselftest-futex/robust_list 3.1s, "
            "vdso-mremap 1.0s") in render_table(run).splitlines()
    write_reports(tmp_path, run)
    assert load_record(tmp_path).revisions[0].boots[0].tests == times


def test_junit_is_valid_and_escapes_control_characters() -> None:
    nasty = Check("console", Verdict.FAIL, "oops \x1b[1m\x00 <tag> & more")
    root = ET.fromstring(render_junit(record(PASS, nasty, stage_error="dead\x07")))
    suite = root.find("testsuite")
    assert suite is not None and suite.get("name") == "base"
    assert suite.get("failures") == "1" and suite.get("errors") == "1"
    failure = root.find(".//testcase[@name='console']/failure")
    assert failure is not None and "\\x1b" in failure.get("message", "")


def test_reports_round_trip(tmp_path: Path) -> None:
    write_reports(tmp_path, record(PASS))
    loaded = load_record(tmp_path)
    assert loaded == record(PASS)
    raw = json.loads((tmp_path / "results.json").read_text())
    assert raw["schema"] == SCHEMA and raw["exit_code"] == 0
    assert raw["revisions"][0]["label"] == "base"
    assert (tmp_path / "report.txt").read_text() == render_table(loaded)
    ET.parse(tmp_path / "junit.xml")


def test_comparison_marks_changed_verdicts() -> None:
    from harness.outputs.report import render_comparison

    base = record(PASS).revisions[0]
    bad = replace(base, label="no-fixup", checks=[FAIL])
    text = render_comparison(Run(revisions=[base, bad]))
    lines = {ln.split()[0]: ln for ln in text.splitlines() if ln.startswith("   ")}
    row = lines["cs-fixup-singlestep-64"]
    assert row.split()[1] == "PASS"  # the base column, nothing to compare with
    assert "*FAIL bad_steps=200" in row
    assert lines["verdict"].split()[1:] == ["PASS", "FAIL"]


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text(json.dumps({"schema": SCHEMA + 1, "revisions": []}))
    with pytest.raises(UserError, match=f"schema {SCHEMA + 1}"):
        load_record(tmp_path)


def test_comparison_shows_what_changed_and_the_patches_behind_a_verdict_change() -> None:
    from harness.outputs.record import Changes, PatchChange
    from harness.outputs.report import render_comparison

    base = record(PASS).revisions[0]
    v1 = replace(base, label="v1", series="t.mbox", applied=["[PATCH 1/2] a", "[PATCH 2/2] b"])
    changes = Changes("v1", (PatchChange("!", "1/2 a", "1/2 a"), PatchChange("=", "2/2 b", "2/2 b"),
                             PatchChange(">", None, "3/3 c")))
    v2 = replace(v1, label="v2", checks=[FAIL], changes=changes)
    v3 = replace(v1, label="v3", changes=Changes("v2", error="the series of v2 did not apply"))
    text = render_comparison(Run(revisions=[base, v1, v2, v3]))
    tail = text.split("== what changed in the series (git range-diff)\n", 1)[1]
    assert tail.splitlines()[:4] == [
        "   v1 -> v2: 1 changed, 1 added, 0 dropped, 1 unchanged",
        "     ! 1/2 a",
        "     > 3/3 c",
        "   v2 -> v3: not compared: the series of v2 did not apply",
    ]
    flips = tail.split("== checks whose verdict changed, and the patches between them\n")[1]
    assert flips.splitlines() == [
        "   v1 -> v2:",
        "     cs-fixup-singlestep-64: PASS -> FAIL",
        "     patches changed between them:",
        "       ! 1/2 a",
        "       > 3/3 c",
        "   v2 -> v3:",
        "     cs-fixup-singlestep-64: FAIL -> PASS",
        "     patches: not compared: the series of v2 did not apply",
    ]
    # From the base, the whole series is what changed; an identical series means a flake.
    bad_v1 = replace(v1, checks=[FAIL])
    same = replace(v1, label="v2", changes=Changes("v1", (PatchChange("=", "1/2 a", "1/2 a"),)))
    text = render_comparison(Run(revisions=[base, bad_v1, same]))
    assert "     patches: the whole series (2 patches)" in text
    assert "     patches: none changed, the same series (a flaky check?)" in text


def test_changes_round_trip(tmp_path: Path) -> None:
    from harness.outputs.record import Changes, PatchChange

    run = record(PASS)
    run.revisions[0].changes = Changes("v1", (PatchChange("<", "2/2 b", None),), "")
    write_reports(tmp_path, run)
    assert load_record(tmp_path) == run
