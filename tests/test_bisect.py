# SPDX-License-Identifier: GPL-2.0
"""The bisection: the pure search against known answers (with skips, as git bisect has
them), what counts as broken, and a whole --bisect run on the fake tree whose second
patch breaks the build."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from fake_tree import fake_tree, fragment
from plans import FAKEBIN
from test_patches import mail

from harness.cli import main
from harness.errors import RunTimeout
from harness.orchestration import bisection
from harness.orchestration.bisect import BAD, GOOD, SKIP, Target, regression, search, step_status
from harness.outputs import report
from harness.outputs.record import Revision, Stage
from harness.verdicts.checks import Check, Verdict


def oracle(first_bad: int,
           skips: frozenset[int] = frozenset()) -> tuple[list[int], Callable[[int], str]]:
    asked: list[int] = []

    def step(k: int) -> str:
        asked.append(k)
        return SKIP if k in skips else BAD if k >= first_bad else GOOD

    return asked, step


@pytest.mark.parametrize("total", [1, 2, 3, 7, 14, 33])
def test_search_finds_every_position_in_log_steps(total: int) -> None:
    for first_bad in range(1, total + 1):
        asked, step = oracle(first_bad)
        found = search(total, step)
        assert found.first_bad == first_bad and not found.candidates
        assert len(asked) <= max(1, total.bit_length())
        assert total not in asked, "the whole series is known bad; never test it again"


def test_a_skipped_patch_is_stepped_around() -> None:
    asked, step = oracle(5, frozenset({7}))
    found = search(14, step)
    assert found.first_bad == 5 and asked[:2] == [7, 6]


def test_skips_that_hide_the_answer_name_the_candidates() -> None:
    _, step = oracle(5, frozenset({4}))
    assert search(14, step).candidates == (4, 5)
    _, step = oracle(5, frozenset({4, 5}))
    found = search(8, step)
    assert found.first_bad is None and found.candidates == (4, 5, 6)


def rev(*checks: tuple[str, Verdict], stage: str | None = None) -> Revision:
    r = Revision("x", checks=[Check(n, v) for n, v in checks])
    if stage:
        r.stages.append(Stage(stage, "error"))
    return r


def test_regression_is_what_passed_on_the_base_and_no_longer_does() -> None:
    p, f, na = Verdict.PASS, Verdict.FAIL, Verdict.NOT_APPLICABLE
    base = rev(("a", p), ("b", f), ("c", na), ("d", p))
    assert regression(base, rev(("a", f), ("b", f), ("c", Verdict.ERROR), ("d", p))) == \
        Target(checks=("a", "c"))
    assert regression(base, rev(("a", p), ("b", f), ("c", na), ("d", p))) is None
    assert regression(base, rev(stage="build")) == Target(stage="build")
    assert regression(rev(stage="build"), rev(stage="build")) is None


def test_step_status() -> None:
    checks = Target(checks=("a",))
    assert step_status(checks, None, [Check("a", Verdict.FAIL)]) == BAD
    assert step_status(checks, None, [Check("a", Verdict.PASS)]) == GOOD
    assert step_status(checks, "patches", []) == SKIP
    build = Target(stage="build")
    assert step_status(build, "build", []) == BAD
    assert step_status(build, "patches", []) == SKIP
    assert step_status(build, None, []) == GOOD


def test_a_step_without_the_target_checks_is_a_skip_not_good() -> None:
    """The step booted, but its results lack a check the bisection is after (the test was
    never planned, or its program did not build): nothing says the patch is good."""
    target = Target(checks=("a", "b"))
    assert step_status(target, None, []) == SKIP
    assert step_status(target, None, [Check("a", Verdict.PASS)]) == SKIP
    assert step_status(target, None, [Check("a", Verdict.PASS), Check("b", Verdict.PASS)]) == GOOD
    assert step_status(target, None, [Check("b", Verdict.FAIL)]) == BAD


def bisect_build(tmp_path: Path, mails: list[str]) -> int:
    """`build --bisect` of a thread of these mails on the fake tree, with the fake vng."""
    frags = fragment(tmp_path, "s.config", "CONFIG_FUTEX=y\nCONFIG_RSEQ=y\n").parent
    thread = tmp_path / "series.mbox"
    thread.write_text("".join(mails))
    return main(["build", "--kernel-src", str(fake_tree(tmp_path)), "--config-dir", str(frags),
                 "--config-variant", "vng", "--run-dir", str(tmp_path / "run"),
                 "--series", str(thread), "--bisect"])


def test_bisect_run_names_the_patch_that_broke_the_build(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", f"{FAKEBIN}:{os.environ['PATH']}")
    code = bisect_build(tmp_path, [mail("[PATCH 1/3] harmless", "0", "1", "p1@x"),
                                   mail("[PATCH 2/3] breaks the build", "1", "nope", "p2@x"),
                                   mail("[PATCH 3/3] harmless too", "nope", "nope + 0", "p3@x")])
    assert code == 2
    record = report.load_record(tmp_path / "run")
    bisect = record.revisions[1].bisect
    assert bisect is not None and bisect.checks == ["stage-build"]
    assert bisect.first_bad == "2/3 breaks the build"
    assert [(s.index, s.status) for s in bisect.steps] == [(1, GOOD), (2, BAD)]
    assert (tmp_path / "run" / "series" / "bisect" / "02" / "logs").is_dir()
    assert sorted(p.name for p in (tmp_path / "run").iterdir() if p.is_dir()) == ["base", "series"]
    assert "first bad: 2/3 breaks the build" in capsys.readouterr().out


def test_the_run_time_limit_stops_a_bisection_and_keeps_its_steps(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The limit (SIGALRM's RunTimeout) arrives during the second step: the first step and
    the reason stay in results.json, and the run ends as an error."""
    monkeypatch.setenv("PATH", f"{FAKEBIN}:{os.environ['PATH']}")
    real_step = bisection._step

    def step_then_time_out(*args: object, **kwargs: object) -> str:
        rev = args[0]
        assert isinstance(rev, Revision) and rev.bisect is not None
        if rev.bisect.steps:
            raise RunTimeout("the run went past its limit of 1s")
        return real_step(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(bisection, "_step", step_then_time_out)
    code = bisect_build(tmp_path, [mail("[PATCH 1/4] one", "0", "1", "p1@x"),
                                   mail("[PATCH 2/4] two", "1", "2", "p2@x"),
                                   mail("[PATCH 3/4] breaks the build", "2", "nope", "p3@x"),
                                   mail("[PATCH 4/4] four", "nope", "nope + 0", "p4@x")])
    assert code == 2
    bisect = report.load_record(tmp_path / "run").revisions[1].bisect
    assert bisect is not None and bisect.detail == "stopped at the run's time limit"
    assert len(bisect.steps) == 1 and bisect.first_bad is None
