# SPDX-License-Identifier: GPL-2.0
"""The futex kselftest stage: verdicts from captured outputs (tests/data/ktap/), the plan of
runs and reruns, the data file, and a real build of a tiny selftests tree with gcc."""

from __future__ import annotations

import dataclasses
import math
import re
import subprocess
from pathlib import Path

import pytest

from harness.data import GUEST_TESTS
from harness.data.guest_tests import ProgramChoice, load_guest_tests
from harness.errors import InfraError, UserError
from harness.guest.plan import GuestPlanRequest, _ktap_entry, make_plan
from harness.kselftest import ktap
from harness.kselftest import programs as ks
from harness.kselftest import spec as spec_module
from harness.kselftest.programs import KselftestBinary, KselftestRun, RunOutcome
from harness.kselftest.spec import KselftestSpec, TimingSensitive
from harness.stages.vdso import VdsoResult
from harness.verdicts.checks import Check, Verdict
from harness.verdicts.kselftest import judge
from harness.verdicts.kselftest_attempts import allowed_failures

KTAP = Path(__file__).resolve().parent / "data" / "ktap"
SPEC = spec_module.load_spec()
VDSO64 = "vdso_unlock.64.test_robust_try_unlock_uncontended"
MULTI = "global.test_robust_list_multiple_elements"
PENDING = "global.test_set_list_op_pending"


def golden(name: str) -> str:
    return (KTAP / name).read_bytes().decode("utf-8", errors="backslashreplace")


def ran(name: str, exit_code: int | None = 0, timed_out: bool = False,
        stderr: str = "") -> RunOutcome:
    return RunOutcome(golden(name), exit_code, timed_out, 1.5, stderr)


def binary(name: str, timeout: float = 45.0) -> KselftestBinary:
    return KselftestBinary(name, Path("/bin") / name, timeout)


def only(spec: KselftestSpec, *timing: TimingSensitive) -> KselftestSpec:
    return dataclasses.replace(spec, timing_sensitive=timing)


def judge_one(program: str, outcome: RunOutcome | None, series_present: bool = True,
              spec: KselftestSpec | None = None) -> dict[str, Check]:
    spec = spec or only(SPEC)
    runs = ks.plan_runs([binary(program)], spec)
    outcomes = {runs[0].name: outcome} if outcome else {}
    # Only this program's checks: the series subtests of a program not run are judged too.
    return {c.name: c for c in judge(spec, runs, outcomes, series_present)
            if c.name == sub(program) or c.name.startswith(sub(program) + "/")}


def sub(program: str, subtest: str = "") -> str:
    return SPEC.check_name(program, subtest)


# --- the data file ---------------------------------------------------------------------

def test_data_file_names_real_subtests() -> None:
    """Every series and timing-sensitive name is a subtest the 7.3 programs really print."""
    goldens = ("guest-7.3-robust_list.txt", "guest-7.3-futex_requeue_pi.txt",
               "guest-7.3-futex_wait.9p-cwd.txt", "guest-7.3-futex_waitv.txt")
    printed = {r.name for name in goldens for r in ktap.parse(golden(name))}
    assert set(SPEC.series["robust_list"]) <= printed
    assert len(SPEC.series_names("robust_list")) == 10
    assert {t.subtest for t in SPEC.timing_sensitive} <= printed
    assert all(t.reruns >= 1 and t.reason for t in SPEC.timing_sensitive)
    assert all(t.assertions and 0 < t.rate < 1 for t in SPEC.timing_sensitive)
    assert SPEC.binaries is None and SPEC.default_timeout is None
    assert SPEC.program("futex_numa").output == "exit-status"


def test_bad_program_output_kind(tmp_path: Path) -> None:
    bad = (KTAP.parent.parent.parent / "data" / "kselftest.toml").read_text().replace(
        'output = "exit-status"', 'output = "json"')
    (tmp_path / "k.toml").write_text(bad)
    with pytest.raises(UserError, match="choose tap or exit-status"):
        spec_module.load_spec(tmp_path / "k.toml")


@pytest.mark.parametrize(("edit", "message"), [
    ('why = "the automatic', "say why this reason is not the kernel's fault"),
    ("reason = 'Automatic increase with", "bad regex"),
])
def test_accepted_skip_without_a_why_or_with_a_bad_regex(tmp_path: Path, edit: str,
                                                         message: str) -> None:
    text = (KTAP.parent.parent.parent / "data" / "kselftest.toml").read_text()
    broken = text.replace(edit, {"why": 'why = "" #', "rea": "reason = '(' #"}[edit[:3]])
    assert broken != text
    (tmp_path / "k.toml").write_text(broken)
    with pytest.raises(UserError, match=message):
        spec_module.load_spec(tmp_path / "k.toml")


@pytest.mark.parametrize(("edit", "message"), [
    ("measured_failures = 1\n", "measured_failures 9 of measured_attempts 3 is not a rate"),
    ("assertions = ['futex_requeue_pi", "no assertions: a race without a signature"),
])
def test_timing_entry_needs_a_rate_and_a_signature(tmp_path: Path, edit: str,
                                                   message: str) -> None:
    text = (KTAP.parent.parent.parent / "data" / "kselftest.toml").read_text()
    broken = text.replace(edit, {"mea": "measured_failures = 9\n",
                                 "ass": "nothing = ['"}[edit[:3]], 1)
    assert broken != text
    (tmp_path / "k.toml").write_text(broken)
    with pytest.raises(UserError, match=message):
        spec_module.load_spec(tmp_path / "k.toml")


@pytest.mark.parametrize(("edit", "message"), [
    ('class = "waits"\n', "kselftest program futex_numa has no class; give one of"),
    ('class = "waits"\n', "has class 'sleeps'; choose one of: exclusive, waits, shared"),
])
def test_a_program_without_a_known_class(tmp_path: Path, edit: str, message: str) -> None:
    text = (KTAP.parent.parent.parent / "data" / "kselftest.toml").read_text()
    numa = text.index("[programs.futex_numa]")
    new = "" if "no class" in message else 'class = "sleeps"\n'
    broken = text[:numa] + text[numa:].replace(edit, new, 1)
    (tmp_path / "k.toml").write_text(broken)
    with pytest.raises(UserError, match=message):
        spec_module.load_spec(tmp_path / "k.toml")


# 7.3's functional/Makefile TEST_GEN_PROGS.
PROGRAMS_7_3 = ("futex_wait_timeout", "futex_wait_wouldblock", "futex_requeue_pi",
                "futex_requeue_pi_signal_restart", "futex_requeue_pi_mismatched_ops",
                "futex_wait_uninitialized_heap", "futex_wait_private_mapped_file", "futex_wait",
                "futex_requeue", "futex_priv_hash", "futex_numa_mpol", "futex_waitv",
                "futex_numa", "robust_list", "futex_lock_pi_exiting")


def test_every_program_of_the_tree_has_a_class_and_runs_carry_it() -> None:
    """Each of 7.3's programs is listed with a class; the reruns of a timing-sensitive
    subtest keep its program's, and a program the data does not list runs alone."""
    assert set(PROGRAMS_7_3) <= set(SPEC.programs)
    assert SPEC.program("robust_list").run_class == "exclusive"
    assert SPEC.program("futex_numa").run_class == "waits"
    runs = ks.plan_runs([binary("futex_wait"), binary("futex_numa"), binary("new_one")], SPEC)
    classes = {r.name: r.run_class for r in runs}
    assert set(classes.values()) == {"exclusive", "waits"}
    assert classes["kselftest-futex.new_one"] == "exclusive"


# --- the plan ------------------------------------------------------------------------------

def test_plan_one_run_per_program_then_reruns() -> None:
    spec = dataclasses.replace(only(SPEC, TimingSensitive("robust_list", MULTI, "racy", 2)),
                               programs={"futex_wait": spec_module.ProgramSpec(timeout=90.0,
                                                                      args=("-v",))})
    runs = ks.plan_runs([binary("futex_wait"), binary("robust_list", 30.0)], spec)
    assert [(r.name, r.binary, r.argv, r.timeout, r.subtest) for r in runs] == [
        ("kselftest-futex.futex_wait", "futex_wait", ("-v",), 90.0, ""),
        ("kselftest-futex.robust_list", "robust_list", (), 30.0, ""),
        (f"kselftest-futex.robust_list.{MULTI}.rerun1", "robust_list", ("-r", MULTI), 30.0,
         MULTI),
        (f"kselftest-futex.robust_list.{MULTI}.rerun2", "robust_list", ("-r", MULTI), 30.0,
         MULTI),
    ]
    assert not any("/" in r.name for r in runs)


def test_plan_default_timeout_from_the_data_file() -> None:
    spec = dataclasses.replace(SPEC, default_timeout=120.0)
    assert {r.timeout for r in ks.plan_runs([binary("robust_list")], spec)} == {120.0}


def test_plan_with_the_real_data_file() -> None:
    programs = sorted({t.program for t in SPEC.timing_sensitive})
    runs = ks.plan_runs([binary(p) for p in programs], SPEC)
    assert len(runs) == len(programs) + sum(t.reruns for t in SPEC.timing_sensitive)
    assert len({r.name for r in runs}) == len(runs)


# --- verdicts: the SKIP trap ---------------------------------------------------------------

def test_pristine_guest_every_subtest_passes() -> None:
    checks = judge_one("robust_list", ran("guest-7.3-robust_list.txt"))
    assert len(checks) == 17
    assert {c.verdict for c in checks.values()} == {Verdict.PASS}
    assert sub("robust_list", VDSO64) in checks


def test_skip_inside_a_series_subtest_fails_with_the_series() -> None:
    checks = judge_one("robust_list", ran("host-6.18-robust_list.txt", exit_code=1))
    vdso = checks[sub("robust_list", VDSO64)]
    assert vdso.verdict == Verdict.FAIL
    assert vdso.detail == ("skipped, but the series provides it: "
                           "__vdso_futex_robust_list64_try_unlock not found")
    op = checks[sub("robust_list", "futex_op.wake32.test_futex_robust_unlock")]
    assert op.verdict == Verdict.FAIL
    assert "robust_list.c:795:test_futex_robust_unlock:Expected ret (-1) == 0 (0)" in op.detail
    assert checks[sub("robust_list", "global.test_robustness")].verdict == Verdict.PASS
    assert sub("robust_list") not in checks


def test_series_subtests_are_not_applicable_without_the_series() -> None:
    checks = judge_one("robust_list", ran("host-6.18-robust_list.txt", exit_code=1),
                       series_present=False)
    series = [c for c in checks.values() if SPEC.is_series("robust_list",
                                                            c.name.split("/")[-1])]
    assert len(series) == 10
    assert {c.verdict for c in series} == {Verdict.NOT_APPLICABLE}
    assert checks[sub("robust_list", VDSO64)].detail == "series absent (it reported ok # SKIP)"
    others = [c for c in checks.values() if c not in series]
    assert len(others) == 7 and {c.verdict for c in others} == {Verdict.PASS}


def test_missing_series_subtest_fails_with_the_series() -> None:
    text = "\n".join(ln for ln in golden("guest-7.3-robust_list.txt").splitlines()
                     if "unlock_pi32" not in ln)
    checks = judge_one("robust_list", RunOutcome(text, 0, False, 1.0))
    missing = checks[sub("robust_list", "futex_op.unlock_pi32.test_futex_robust_unlock")]
    assert missing.verdict == Verdict.FAIL
    assert missing.detail == "not reported, but the series provides it"
    # The plan said 17 and only 16 came: the program gets a check of its own.
    assert checks[sub("robust_list")].verdict == Verdict.ERROR
    absent = judge_one("robust_list", RunOutcome(text, 0, False, 1.0), series_present=False)
    assert absent[missing.name].verdict == Verdict.NOT_APPLICABLE


def test_a_skip_for_a_missing_feature_is_not_applicable_with_its_reason() -> None:
    checks = judge_one("futex_numa_mpol", ran("host-6.18-futex_numa_mpol.txt"))
    assert list(checks.values()) == [Check(
        sub("futex_numa_mpol", "global.futex_numa_mpol"), Verdict.NOT_APPLICABLE,
        "futex2 MPOL hints test requires libnuma 2.0.18+")]


def accepting(spec: KselftestSpec, program: str, subtest: str, reason: str,
              table: str = "accepted_skips") -> KselftestSpec:
    listed = spec_module.AcceptedResult(program, subtest, re.compile(reason), "test")
    return dataclasses.replace(spec, **{table: (*getattr(spec, table), listed)})


def test_whole_program_skip_for_a_listed_reason_is_one_not_applicable_check() -> None:
    spec = accepting(only(SPEC), "futex_waitv", "", r"futex2 is not supported by this kernel")
    checks = judge_one("futex_waitv", ran("hand-skip-all.tap", exit_code=4), spec=spec)
    assert [(c.name, c.verdict, c.detail) for c in checks.values()] == [
        (sub("futex_waitv"), Verdict.NOT_APPLICABLE, "futex2 is not supported by this kernel")]


def test_whole_program_skip_for_an_unlisted_reason_fails() -> None:
    """The fooled case: `1..0 # SKIP` used to be N/A whatever its reason."""
    checks = judge_one("futex_waitv", ran("hand-skip-all.tap", exit_code=4))
    assert [(c.name, c.verdict, c.detail) for c in checks.values()] == [
        (sub("futex_waitv"), Verdict.FAIL, "the whole program skipped for a reason "
         "data/kselftest.toml does not accept: 'futex2 is not supported by this kernel'")]


REQUEUE_SKIPPED = """\
TAP version 13
1..2
# Starting 2 tests from 1 test cases.
#  RUN           global.requeue_single ...
#      SKIP      requeue needs two CPUs
#            OK  global.requeue_single
ok 1 global.requeue_single # SKIP requeue needs two CPUs
#  RUN           global.requeue_multiple ...
#            OK  global.requeue_multiple
ok 2 global.requeue_multiple
# PASSED: 2 / 2 tests passed.
# Totals: pass:1 fail:0 xfail:0 xpass:0 skip:1 error:0
"""


def test_unlisted_skip_of_a_non_series_subtest_fails_quoting_its_reason() -> None:
    """The fooled case: a revision added a SKIP to futex_requeue's requeue_single, and the
    check became N/A, so the revision passed."""
    checks = judge_one("futex_requeue", RunOutcome(REQUEUE_SKIPPED, 0, False, 0.3))
    single = checks[sub("futex_requeue", "global.requeue_single")]
    assert single.verdict == Verdict.FAIL
    assert single.detail == ("SKIP for a reason data/kselftest.toml does not accept: "
                             "'requeue needs two CPUs'")
    assert checks[sub("futex_requeue", "global.requeue_multiple")].verdict == Verdict.PASS


def test_listed_skip_reason_must_match_in_full() -> None:
    spec = accepting(only(SPEC), "futex_requeue", "global.requeue_single", r"needs two CPUs")
    checks = judge_one("futex_requeue", RunOutcome(REQUEUE_SKIPPED, 0, False, 0.3), spec=spec)
    assert checks[sub("futex_requeue", "global.requeue_single")].verdict == Verdict.FAIL
    spec = accepting(only(SPEC), "futex_requeue", "global.requeue_single",
                     r"requeue needs two CPUs")
    checks = judge_one("futex_requeue", RunOutcome(REQUEUE_SKIPPED, 0, False, 0.3), spec=spec)
    assert checks[sub("futex_requeue", "global.requeue_single")] == Check(
        sub("futex_requeue", "global.requeue_single"), Verdict.NOT_APPLICABLE,
        "requeue needs two CPUs")


def test_listed_skip_after_a_failed_expectation_fails() -> None:
    """kselftest_harness's SKIP() overwrites an EXPECT failure that came before it."""
    text = golden("host-6.18-futex_numa_mpol.txt").replace(
        "# futex_numa_mpol.c:184:futex_numa_mpol:Memory back to RW\n",
        "# futex_numa_mpol.c:184:futex_numa_mpol:Memory back to RW\n"
        "# futex_numa_mpol.c:60:futex_numa_mpol:Expected ret (-1) >= 0 (0)\n")
    checks = judge_one("futex_numa_mpol", RunOutcome(text, 0, False, 0.3))
    (check,) = checks.values()
    assert check.verdict == Verdict.FAIL
    assert check.detail == ("skipped (futex2 MPOL hints test requires libnuma 2.0.18+) after a "
                            "failed expectation: futex_numa_mpol.c:60:futex_numa_mpol:"
                            "Expected ret (-1) >= 0 (0)")


def test_the_data_file_accepts_the_skips_a_pristine_guest_gives() -> None:
    assert SPEC.accepted_skip("futex_numa_mpol", "global.futex_numa_mpol",
                              "futex2 MPOL hints test requires libnuma 2.0.18+")
    assert SPEC.accepted_skip("futex_priv_hash", "global.priv_hash",
                              "Automatic increase with more than 16 CPUs (only 1 online)")
    assert not SPEC.accepted_skip("futex_priv_hash", "global.priv_hash",
                                  "Automatic increase with more than 16 CPUs (only 64 online)")
    # 7.2 gives no count.
    assert SPEC.accepted_skip("futex_priv_hash", "global.priv_hash",
                              "Automatic increase with more than 16 CPUs")
    assert not SPEC.accepted_skip("futex_requeue", "global.requeue_single",
                                  "futex2 MPOL hints test requires libnuma 2.0.18+")
    assert all(a.why for a in (*SPEC.accepted_skips, *SPEC.expected_failures))


XFAIL = """\
TAP version 13
1..2
ok 1 global.requeue_single # XFAIL requeue is known broken
#  RUN           global.requeue_multiple ...
ok 1 # XFAIL inner reason
#            OK  global.requeue_multiple
ok 2 global.requeue_multiple
"""


def test_xfail_is_a_failure_unless_listed_with_its_reason() -> None:
    checks = judge_one("futex_requeue", RunOutcome(XFAIL, 0, False, 0.3))
    single = checks[sub("futex_requeue", "global.requeue_single")]
    assert single.verdict == Verdict.FAIL
    assert single.detail == ("XFAIL, but data/kselftest.toml does not list it as expected to "
                             "fail: 'requeue is known broken'")
    # An XFAIL printed inside the test, under the harness's plain `ok`, is an XFAIL too.
    assert checks[sub("futex_requeue", "global.requeue_multiple")].verdict == Verdict.FAIL
    spec = accepting(only(SPEC), "futex_requeue", "global.requeue_single",
                     r"requeue is known broken", "expected_failures")
    listed = judge_one("futex_requeue", RunOutcome(XFAIL, 0, False, 0.3), spec=spec)
    assert listed[single.name] == Check(single.name, Verdict.PASS,
                                        "expected failure: requeue is known broken (test)")


NESTED_FAIL_UNDER_OK = """\
KTAP version 1
1..2
    KTAP version 1
    # Subtest: futex_robust
    1..2
    ok 1 uncontended
    not ok 2 contended
ok 1 futex_robust
    KTAP version 1
    # Subtest: futex_other
    1..1
    ok 1 only
ok 2 futex_other
"""


def test_a_nested_not_ok_under_an_ok_parent_fails() -> None:
    checks = judge_one("kunit_robust", RunOutcome(NESTED_FAIL_UNDER_OK, 0, False, 0.1))
    assert {c.name: (c.verdict, c.detail) for c in checks.values()} == {
        sub("kunit_robust", "futex_robust"): (Verdict.FAIL, "nested contended: not ok"),
        sub("kunit_robust", "futex_other"): (Verdict.PASS, ""),
    }


# --- verdicts: timing-sensitive subtests ---------------------------------------------------
# The rules run on robust_list's captures with a made-up entry, as robust_list was rerun
# before its preload: a late waiter's mutex_lock() returns -1, which is the signature.

def rerun_outcomes(spec: KselftestSpec, main: RunOutcome, reruns: list[str]
                   ) -> tuple[tuple[KselftestRun, ...], dict[str, RunOutcome]]:
    runs = ks.plan_runs([binary("robust_list")], spec)
    outcomes = {runs[0].name: main}
    outcomes.update({r.name: ran(f, exit_code=0 if "pass" in f else 1)
                     for r, f in zip(runs[1:], reruns, strict=False)})
    return runs, outcomes


def racy(subtest: str, reruns: int, failures: int = 7, of: int = 20) -> TimingSensitive:
    test = subtest.rsplit(".", 1)[-1]
    late = re.compile(rf"robust_list\.c:\d+:{test}:Expected ret \(-1\) == 0 \(0\)")
    return TimingSensitive("robust_list", subtest, "racy", reruns, failures, of, (late,))


def flaky(reruns: int, failures: int = 7, of: int = 20) -> KselftestSpec:
    return only(SPEC, racy(MULTI, reruns, failures, of))


FAIL_MULTI = "guest-7.3-robust_list.multiple_elements.fail.txt"
PASS_MULTI = "guest-7.3-robust_list.multiple_elements.pass.txt"


def multi_check(spec: KselftestSpec, runs: tuple[KselftestRun, ...],
                outcomes: dict[str, RunOutcome]) -> Check:
    (check,) = [c for c in judge(spec, runs, outcomes, True) if c.name.endswith(MULTI)]
    return check


def test_flaky_passes_when_a_rerun_passes_and_counts_the_failures() -> None:
    spec = flaky(2)
    runs, outcomes = rerun_outcomes(spec, ran(FAIL_MULTI, exit_code=1), [FAIL_MULTI, PASS_MULTI])
    check = multi_check(spec, runs, outcomes)
    assert check.verdict == Verdict.PASS
    assert check.counters == {"attempts": 3, "failures": 2, "allowed_failures": 3}
    assert check.detail.startswith(
        "passed 1 of 3 attempts; timing-sensitive, 2 reruns, at most 3 may fail (measured 7 "
        "of 20); first failure (the main run): FAIL: ")


def test_flaky_fails_when_every_attempt_fails() -> None:
    spec = flaky(2)
    runs, outcomes = rerun_outcomes(spec, ran(FAIL_MULTI, exit_code=1), [FAIL_MULTI, FAIL_MULTI])
    check = multi_check(spec, runs, outcomes)
    assert check.verdict == Verdict.FAIL
    assert check.counters == {"attempts": 3, "failures": 3, "allowed_failures": 3}
    assert check.detail.startswith("every attempt failed; ")
    assert "One or more children failed" in check.detail


def test_flaky_main_pass_still_shows_rerun_failures_and_missing_reruns() -> None:
    spec = flaky(3)
    runs, outcomes = rerun_outcomes(spec, ran("guest-7.3-robust_list.txt"), [FAIL_MULTI])
    check = multi_check(spec, runs, outcomes)
    assert check.verdict == Verdict.PASS
    assert check.counters == {"attempts": 2, "failures": 1, "allowed_failures": 4}
    assert "2 rerun(s) left no result" in check.detail


def test_flaky_rerun_that_crashed_is_not_the_race() -> None:
    spec = flaky(2)
    runs = ks.plan_runs([binary("robust_list")], spec)
    outcomes = {runs[0].name: ran(FAIL_MULTI, 1),
                runs[1].name: RunOutcome("TAP version 13\n1..1\n", -11, False, 0.2),
                runs[2].name: ran(PASS_MULTI)}
    check = multi_check(spec, runs, outcomes)
    assert check.verdict == Verdict.FAIL
    assert check.counters == {"attempts": 3, "failures": 2, "allowed_failures": 3}
    assert check.detail.startswith("rerun 1 failed without the race's signature: ERROR: not "
                                   "reported; exit code -11; ")


def test_a_failure_without_the_race_signature_fails_at_once() -> None:
    """The race leaves one signature; any other failure is not forgiven by a passing rerun."""
    other = golden(FAIL_MULTI).replace(
        "robust_list.c:485:test_robust_list_multiple_elements:Expected ret (-1) == 0 (0)",
        "robust_list.c:489:test_robust_list_multiple_elements:Expected 0 (0) != "
        "lock->futex & FUTEX_OWNER_DIED (0)")
    spec = flaky(2)
    runs, outcomes = rerun_outcomes(spec, RunOutcome(other, 1, False, 1.0),
                                    [PASS_MULTI, PASS_MULTI])
    check = multi_check(spec, runs, outcomes)
    assert check.verdict == Verdict.FAIL
    assert check.detail.startswith("the main run failed without the race's signature: FAIL: ")
    assert check.counters == {"attempts": 3, "failures": 1, "allowed_failures": 3}


def test_a_signal_is_not_the_race() -> None:
    killed = golden(FAIL_MULTI).replace(
        "test_robust_list_multiple_elements: Test failed",
        "test_robust_list_multiple_elements: Test terminated unexpectedly by signal 11")
    spec = flaky(1)
    runs, outcomes = rerun_outcomes(spec, RunOutcome(killed, 1, False, 1.0), [PASS_MULTI])
    check = multi_check(spec, runs, outcomes)
    assert check.verdict == Verdict.FAIL
    assert "by signal 11" in check.detail


def test_more_failures_than_the_rate_explains_fail_even_with_a_pass() -> None:
    """The fooled case's shape: 5 of 6 attempts failed with the race's signature and one
    passed. At a measured 1 in 20, P[4 or more of 6 fail] < 0.001: at most 3 may fail."""
    spec = flaky(5, failures=1, of=20)
    runs, outcomes = rerun_outcomes(spec, ran(FAIL_MULTI, exit_code=1),
                                    [FAIL_MULTI] * 4 + [PASS_MULTI])
    check = multi_check(spec, runs, outcomes)
    assert check.verdict == Verdict.FAIL
    assert check.counters == {"attempts": 6, "failures": 5, "allowed_failures": 3}
    assert check.detail.startswith("5 of 6 attempts failed, more than the race explains; "
                                   "passed 1 of 6 attempts; ")
    runs, outcomes = rerun_outcomes(spec, ran(FAIL_MULTI, exit_code=1),
                                    [FAIL_MULTI] * 2 + [PASS_MULTI] * 3)
    assert multi_check(spec, runs, outcomes).verdict == Verdict.PASS


def cut_in_multi() -> str:
    """The full robust_list run, ended while multiple_elements ran."""
    text = golden("guest-7.3-robust_list.txt")
    return text[:text.index("#            OK  global.test_robust_list_multiple_elements")]


@pytest.mark.parametrize(("timed_out", "code", "verdict"), [
    (True, None, Verdict.TIMEOUT), (False, -11, Verdict.ERROR)])
def test_a_main_run_that_broke_is_never_overridden_by_a_passing_rerun(
        timed_out: bool, code: int | None, verdict: Verdict) -> None:
    spec = flaky(2)
    runs, outcomes = rerun_outcomes(spec, RunOutcome(cut_in_multi(), code, timed_out, 45.0),
                                    [PASS_MULTI, PASS_MULTI])
    check = multi_check(spec, runs, outcomes)
    assert check.verdict == verdict
    assert check.detail.startswith("the main run: no result line: the output ended while it "
                                   "ran")
    assert check.counters == {"attempts": 3, "failures": 1, "allowed_failures": 3}


@pytest.mark.parametrize(("attempts", "rate", "allowed"), [
    (6, 0.35, 6), (6, 0.05, 3), (3, 1 / 3, 3), (6, 0.0, 0), (10, 1 / 3, 8), (1, 0.5, 1)])
def test_allowed_failures_is_a_binomial_bound(attempts: int, rate: float, allowed: int) -> None:
    timing = TimingSensitive("p", "t", "racy", attempts - 1, round(rate * 1000), 1000,
                             (re.compile("x"),))
    assert allowed_failures(timing, 0.001) == allowed
    tail = sum(math.comb(attempts, k) * timing.rate ** k * (1 - timing.rate) ** (attempts - k)
               for k in range(allowed + 1, attempts + 1))
    assert tail < 0.001


def test_split_streams_failure_detail_comes_from_stderr() -> None:
    spec = only(SPEC, racy(PENDING, 1))
    runs = ks.plan_runs([binary("robust_list")], spec)
    outcomes = {runs[0].name: RunOutcome(golden("guest-7.3-robust_list.stdout"), 1, False, 2.0,
                                         golden("guest-7.3-robust_list.stderr"))}
    checks = {c.name: c for c in judge(spec, runs, outcomes, True)}
    check = checks[sub("robust_list", PENDING)]
    assert check.verdict == Verdict.FAIL
    assert check.counters == {"attempts": 1, "failures": 1, "allowed_failures": 2}
    assert check.detail.startswith("every attempt failed; ")
    assert "1 rerun(s) left no result" in check.detail
    assert "robust_list.c:435:test_set_list_op_pending:Expected ret (-1) == 0 (0)" in check.detail
    assert sum(c.verdict == Verdict.PASS for c in checks.values()) == 16


def requeue_pi_rerun(passed: bool) -> RunOutcome:
    name = "args.t_500000_broadcast_owner.futex_requeue_pi"
    text = golden("guest-7.3-futex_requeue_pi.txt")
    if passed:
        return RunOutcome(f"TAP version 13\n1..1\n#  RUN           {name} ...\n"
                          f"#            OK  {name}\nok 1 {name}\n", 0, False, 0.5)
    start = text.index(f"#  RUN           {name} ...")
    end = text.index(f"not ok 16 {name}\n")
    return RunOutcome("TAP version 13\n1..1\n" + text[start:end] + f"not ok 1 {name}\n", 1,
                      False, 0.5)


def test_requeue_pi_race_carries_its_signature_and_is_forgiven_by_a_pass() -> None:
    """The data file's entry on a real capture of the race (pristine 7.3 under TCG)."""
    runs = ks.plan_runs([binary("futex_requeue_pi")], SPEC)
    outcomes = {runs[0].name: ran("guest-7.3-futex_requeue_pi.txt", exit_code=1),
                runs[1].name: requeue_pi_rerun(False), runs[2].name: requeue_pi_rerun(True)}
    checks = {c.name: c for c in judge(SPEC, runs, outcomes, True)}
    check = checks[sub("futex_requeue_pi", "args.t_500000_broadcast_owner.futex_requeue_pi")]
    assert check.verdict == Verdict.PASS, check.detail
    assert check.counters == {"attempts": 3, "failures": 2, "allowed_failures": 3}


PRIVATE_FUTEX_RACE = """\
TAP version 13
1..1
#  RUN           global.private_futex ...
# futex_wait.c:58:private_futex:Calling private futex_wait on futex: 0x7ffd1c0
# futex_wait.c:64:private_futex:Calling private futex_wake on futex: 0x7ffd1c0
# futex_wait.c:66:private_futex:Expected res (0) == 1 (1)
# futex_wait.c:67:private_futex:futex_wake private returned: 0 {}
# futex_wait.c:39:private_futex:Expected res (-1) == 0 (0)
# futex_wait.c:40:private_futex:waiter failed errno 110: Connection timed out
# private_futex: Test failed
#          FAIL  global.private_futex
not ok 1 global.private_futex
""".format("")  # the TH_LOG ends "returned: %d %s" with an empty %s: a trailing space


def test_futex_wait_race_carries_its_signature() -> None:
    """What futex_wait.c prints when the waker's futex_wake() comes before the wait."""
    runs = ks.plan_runs([binary("futex_wait")], SPEC)
    passing = PRIVATE_FUTEX_RACE.replace("not ok 1", "ok 1").replace("FAIL  ", "OK  ")
    passing = "\n".join(ln for ln in passing.splitlines() if "private_futex:" not in ln)
    outcomes = {runs[0].name: RunOutcome(PRIVATE_FUTEX_RACE, 1, False, 0.2),
                runs[1].name: RunOutcome(passing, 0, False, 0.2)}
    check = {c.name: c for c in judge(SPEC, runs, outcomes, True)}[
        sub("futex_wait", "global.private_futex")]
    assert check.verdict == Verdict.PASS, check.detail
    lost = PRIVATE_FUTEX_RACE.replace("errno 110: Connection timed out", "errno 4: Interrupted")
    outcomes[runs[0].name] = RunOutcome(lost, 1, False, 0.2)
    check = {c.name: c for c in judge(SPEC, runs, outcomes, True)}[check.name]
    assert check.verdict == Verdict.FAIL


def test_timing_subtest_skipped_is_not_retried() -> None:
    spec = only(SPEC, TimingSensitive("robust_list", VDSO64, "racy", 1))
    checks = judge_one("robust_list", ran("host-6.18-robust_list.txt", 1), False, spec)
    assert checks[sub("robust_list", VDSO64)].counters == {}


def test_requeue_pi_timing_failure_is_named() -> None:
    checks = judge_one("futex_requeue_pi", ran("guest-7.3-futex_requeue_pi.txt", exit_code=1))
    failed = [c for c in checks.values() if c.verdict != Verdict.PASS]
    assert [c.name for c in failed] == [
        sub("futex_requeue_pi", "args.t_500000_broadcast_owner.futex_requeue_pi")]
    assert "max broadcast iterations (1000) reached" in failed[0].detail
    assert len(checks) == 24


# --- verdicts: crashes, timeouts, nothing at all ------------------------------------------

def test_truncated_by_a_timeout() -> None:
    checks = judge_one("robust_list", ran("derived-robust_list.truncated.txt", None, True))
    running = checks[sub("robust_list", VDSO64)]
    assert running.verdict == Verdict.TIMEOUT
    whole = checks[sub("robust_list")]
    assert whole.verdict == Verdict.TIMEOUT
    assert whole.counters == {"planned": 17, "reported": 9}
    assert whole.detail.startswith("8 of 17 planned subtests not reported; killed at its timeout")
    unreported = checks[sub("robust_list", "futex_op.wake.test_futex_robust_unlock")]
    assert unreported.verdict == Verdict.TIMEOUT
    assert sum(c.verdict == Verdict.PASS for c in checks.values()) == 7
    assert not [c for c in checks.values() if c.verdict == Verdict.PASS
                and SPEC.is_series("robust_list", c.name.split("/")[-1])]


def test_crash_mid_test_is_an_error() -> None:
    checks = judge_one("futex_wait_private_mapped_file",
                       ran("host-6.18-futex_wait_private_mapped_file.killed.txt", -9))
    assert {c.name: c.verdict for c in checks.values()} == {
        sub("futex_wait_private_mapped_file"): Verdict.ERROR,
        sub("futex_wait_private_mapped_file", "global.wait_private_mapped_file"): Verdict.ERROR}
    assert "exit code -9" in checks[sub("futex_wait_private_mapped_file")].detail


def test_output_with_no_results_is_one_error() -> None:
    checks = judge_one("futex_wait", RunOutcome("", 127, False, 0.0, "not found"))
    assert [(c.name, c.verdict) for c in checks.values()] == [(sub("futex_wait"),
                                                               Verdict.ERROR)]
    assert checks[sub("futex_wait")].detail.startswith("no results in its output; ")


def test_program_never_ran() -> None:
    """With the series, a series program that never ran fails each series subtest by name."""
    checks = judge_one("robust_list", None)
    assert checks[sub("robust_list")].verdict == Verdict.ERROR
    assert checks[sub("robust_list", VDSO64)] == Check(
        sub("robust_list", VDSO64), Verdict.FAIL,
        "not run: the guest never ran robust_list, but the series provides it")
    assert len(checks) == 11
    absent = judge_one("robust_list", None, series_present=False)
    assert absent[sub("robust_list", VDSO64)].verdict == Verdict.NOT_APPLICABLE


def test_unexplained_exit_code_is_an_error() -> None:
    checks = judge_one("robust_list", ran("guest-7.3-robust_list.txt", exit_code=1))
    assert checks[sub("robust_list")].detail.startswith(
        "exit code 1 although no subtest failed")


def test_a_subtest_reported_twice_keeps_the_worse_verdict() -> None:
    text = golden("guest-7.3-robust_list.txt") + golden(
        "guest-7.3-robust_list.multiple_elements.fail.txt")
    checks = judge_one("robust_list", RunOutcome(text, 1, False, 1.0))
    assert checks[sub("robust_list", MULTI)].verdict == Verdict.FAIL


def test_exit_status_program() -> None:
    good = judge_one("futex_numa", ran("guest-7.3-futex_numa.txt"))
    assert [(c.name, c.verdict) for c in good.values()] == [(sub("futex_numa"), Verdict.PASS)]
    bad = judge_one("futex_numa", RunOutcome("", -6, False, 3.0,
                                             "futex_numa: Assertion `val == N_WAITERS' failed."))
    assert bad[sub("futex_numa")].verdict == Verdict.FAIL
    assert "Assertion" in bad[sub("futex_numa")].detail
    late = judge_one("futex_numa", RunOutcome("", None, True, 45.0))
    assert late[sub("futex_numa")].verdict == Verdict.TIMEOUT


def test_judge_plans_binaries_itself() -> None:
    checks = judge(only(SPEC), [binary("robust_list")],
                      {"kselftest-futex.robust_list": ran("guest-7.3-robust_list.txt")}, True)
    assert len(checks) == 17


# --- the build, on a tiny selftests tree -------------------------------------------------

TOP_MAKEFILE = """\
headers_install:
\tmkdir -p $(INSTALL_HDR_PATH)/include/linux
\tprintf '#define FAKE_ROBUST_UNLOCK 512\\n' > $(INSTALL_HDR_PATH)/include/linux/fakefutex.h
"""
FUNCTIONAL_MAKEFILE = """\
LDLIBS := -lpthread
TEST_GEN_PROGS := \\
\tfirst \\
\tsecond
TEST_GEN_PROGS += $(EXTRA)
include ../../lib.mk
"""
PROGRAM = """\
#include <stdio.h>
#include <linux/fakefutex.h>
#include "shared.h"
int main(void) { printf("1..1\\nok 1 %s %d\\n", NAME, FAKE_ROBUST_UNLOCK); return 0; }
"""


def tiny_tree(tmp_path: Path, settings: str | None = None) -> Path:
    tree = tmp_path / "linux"
    functional = tree / SPEC.directory
    functional.mkdir(parents=True)
    (tree / "Makefile").write_text(TOP_MAKEFILE)
    (functional / "Makefile").write_text(FUNCTIONAL_MAKEFILE)
    (functional.parent / "include").mkdir()
    (functional.parent / "include" / "shared.h").write_text('#define NAME "tiny"\n')
    for name in ("first", "second"):
        (functional / f"{name}.c").write_text(PROGRAM)
    runner = tree / "tools/testing/selftests/kselftest/runner.sh"
    runner.parent.mkdir(parents=True)
    runner.write_text("export kselftest_default_timeout=45\n")
    if settings is not None:
        (functional / "settings").write_text(settings)
    return tree


def request(tmp_path: Path, tree: Path, spec: KselftestSpec = SPEC
            ) -> ks.KselftestBuildRequest:
    return ks.KselftestBuildRequest(tree, tmp_path / "build", tmp_path / "out",
                                    tmp_path / "logs", 60.0, spec)


def test_build_compiles_every_program_against_the_installed_headers(tmp_path: Path) -> None:
    tree = tiny_tree(tmp_path)
    built = ks.build(request(tmp_path, tree))
    assert [(b.name, b.path, b.timeout) for b in built] == [
        ("first", tmp_path / "out" / "first", 45.0),
        ("second", tmp_path / "out" / "second", 45.0)]
    assert (tmp_path / "build" / ks.HEADERS_DIR / "include/linux/fakefutex.h").is_file()
    log = (tmp_path / "logs" / "kselftest-build.log").read_text()
    assert f"-I{tmp_path}/build/kselftest-headers/include -I../include -I../../" in log
    assert "-DLIBNUMA_VER_" in log
    out = subprocess.run([built[0].path], check=True, capture_output=True, text=True).stdout
    assert out == "1..1\nok 1 tiny 512\n"


def test_build_takes_a_settings_timeout_and_a_chosen_program(tmp_path: Path) -> None:
    tree = tiny_tree(tmp_path, settings="# comment\ntimeout=300\n")
    spec = dataclasses.replace(SPEC, binaries=("second",))
    assert [(b.name, b.timeout) for b in ks.build(request(tmp_path, tree, spec))] == [
        ("second", 300.0)]


def test_build_unknown_program_lists_the_known_ones(tmp_path: Path) -> None:
    spec = dataclasses.replace(SPEC, binaries=("robust_list",))
    with pytest.raises(UserError, match="choose from: first, second"):
        ks.build(request(tmp_path, tiny_tree(tmp_path), spec))


def test_build_compile_error_names_the_program(tmp_path: Path) -> None:
    tree = tiny_tree(tmp_path)
    (tree / SPEC.directory / "second.c").write_text("int main(void) { return nope; }\n")
    with pytest.raises(InfraError, match=r"cannot build selftest second: .*nope"):
        ks.build(request(tmp_path, tree))


def test_build_tree_without_selftests(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no selftests Makefile"):
        ks.build(request(tmp_path, tmp_path))


def test_series_subtest_needing_an_option_the_config_lacks() -> None:
    spec = only(SPEC)
    runs = ks.plan_runs([binary("robust_list")], spec)
    outcomes = {runs[0].name: ran("host-6.18-robust_list.txt", exit_code=1)}
    checks = {c.name: c for c in judge(spec, runs, outcomes, True, {"COMPAT": "n"})}
    list32 = checks[sub("robust_list", "vdso_unlock.32.test_robust_try_unlock_contended")]
    assert list32.verdict == Verdict.NOT_APPLICABLE
    assert list32.detail == ("needs CONFIG_COMPAT, which this kernel's config lacks "
                             "(it reported ok # SKIP)")
    assert checks[sub("robust_list", "futex_op.unlock_pi32.test_futex_robust_unlock")
                  ].verdict == Verdict.NOT_APPLICABLE
    # The 64-bit entry and ops need no option: still FAIL here.
    assert checks[sub("robust_list", VDSO64)].verdict == Verdict.FAIL
    assert checks[sub("robust_list", "futex_op.wake.test_futex_robust_unlock")
                  ].verdict == Verdict.FAIL
    with_compat = {c.name: c for c in judge(spec, runs, outcomes, True, {"COMPAT": "y"})}
    assert with_compat[list32.name].verdict == Verdict.FAIL


def test_mutant_contended_jump_fails_exactly_the_contended_subtests() -> None:
    """patches/mutants/contended-jumps-to-store.patch, run in a guest: streams apart."""
    name = "guest-7.3-mutant-contended-jumps-to-store.robust_list"
    outcome = RunOutcome(golden(f"{name}.stdout"), 1, False, 0.46, golden(f"{name}.stderr"))
    checks = judge_one("robust_list", outcome)
    failed = {c.name: c.detail for c in checks.values() if c.verdict != Verdict.PASS}
    assert failed == {
        sub("robust_list", "vdso_unlock.32.test_robust_try_unlock_contended"):
            "robust_list.c:713:test_robust_try_unlock_contended:Expected "
            "head.list_op_pending (140724603453440) == &lock.list (140726521792680)",
        sub("robust_list", "vdso_unlock.64.test_robust_try_unlock_contended"):
            "robust_list.c:713:test_robust_try_unlock_contended:Expected "
            "head.list_op_pending (0) == &lock.list (140726521792680)",
    }
    assert len(checks) == 17


def test_a_failed_rerun_keeps_its_own_stderr_detail() -> None:
    spec = only(SPEC, racy(PENDING, 1))
    runs = ks.plan_runs([binary("robust_list")], spec)
    name = "guest-7.3-robust_list.set_list_op_pending.rerun-fail"
    outcomes = {runs[0].name: ran("guest-7.3-robust_list.txt"),
                runs[1].name: RunOutcome(golden(f"{name}.stdout"), 1, False, 0.1,
                                         golden(f"{name}.stderr"))}
    (check,) = [c for c in judge(spec, runs, outcomes, True) if c.name.endswith(PENDING)]
    assert check.verdict == Verdict.PASS
    assert check.counters == {"attempts": 2, "failures": 1, "allowed_failures": 2}
    assert check.detail.endswith("first failure (rerun 1): FAIL: robust_list.c:435:"
                                 "test_set_list_op_pending:Expected ret (-1) == 0 (0)")


def test_series_program_missing_from_the_makefile_fails_each_series_subtest() -> None:
    """The fooled case: a revision moved robust_list out of TEST_GEN_PROGS, every series
    subtest vanished from the report, and the revision passed."""
    runs = ks.plan_runs([binary("futex_wait")], SPEC)
    checks = {c.name: c for c in judge(SPEC, runs, {runs[0].name: ran(
        "guest-7.3-futex_wait.9p-cwd.txt", 1)}, series_present=True)}
    series = [c for c in checks.values() if c.name.startswith(sub("robust_list") + "/")]
    assert sorted(c.name for c in series) == sorted(
        sub("robust_list", s) for s in SPEC.series_names("robust_list"))
    assert {c.verdict for c in series} == {Verdict.FAIL}
    assert checks[sub("robust_list", VDSO64)].detail == (
        "robust_list was not built: the tree's tools/testing/selftests/futex/functional/"
        "Makefile does not name it in TEST_GEN_PROGS, but the series provides it")
    # Without CONFIG_COMPAT the 32-bit ones are N/A, as when the program runs.
    nocompat = {c.name: c for c in judge(SPEC, runs, {}, True, {"COMPAT": "n"})}
    assert nocompat[sub("robust_list", "vdso_unlock.32.test_robust_try_unlock_contended")
                    ].verdict == Verdict.NOT_APPLICABLE
    assert nocompat[sub("robust_list", VDSO64)].verdict == Verdict.FAIL


def test_a_series_program_changed_only_left_out_gets_no_check_but_a_dropped_one_fails() -> None:
    """--changed-only left robust_list out on purpose: no check (the report lists it as
    not run). The fooled case beside it: a choice that keeps robust_list, whose run is
    missing from the plan, still fails every series subtest."""
    runs = ks.plan_runs([binary("futex_wait")], SPEC)
    outcomes = {runs[0].name: ran("guest-7.3-futex_wait.9p-cwd.txt", 1)}
    left = ProgramChoice(("futex_wait",), ("robust_list",))
    assert not [c for c in judge(SPEC, runs, outcomes, True, programs=left)
                if c.name.startswith(sub("robust_list") + "/")]
    kept = ProgramChoice(("futex_wait", "robust_list"), ("robust_list",))
    series = [c for c in judge(SPEC, runs, outcomes, True, programs=kept)
              if c.name.startswith(sub("robust_list") + "/")]
    assert series and {c.verdict for c in series} == {Verdict.FAIL}


def test_series_subtests_of_a_program_the_tree_lacks_are_never_silent() -> None:
    # A pre-series tree (6.12) has no robust_list program at all.
    runs = (KselftestRun("kselftest-futex.futex_wait", "futex_wait", (), 45.0),)
    absent = judge(SPEC, runs, {}, series_present=False)
    listed = [c for c in absent if c.name.startswith("kselftest-futex/robust_list/")]
    assert listed and all(c.verdict == Verdict.NOT_APPLICABLE for c in listed)
    assert all("series absent" in c.detail for c in listed)


# --- a tree whose selftests are missing or do not build ----------------------------------

KSELFTEST_TEST = next(t for t in load_guest_tests() if t.kind == "ktap")


def plan_tree(tmp_path: Path, tree: Path, series_absent: str | None = None
              ) -> dict[str, Check]:
    request = GuestPlanRequest((KSELFTEST_TEST,), VdsoResult((), {}), tmp_path / "rw",
                               tmp_path / "logs", 60.0, series_absent, tree=tree,
                               build_dir=tmp_path / "build")
    (tmp_path / "logs").mkdir(exist_ok=True)
    result = make_plan(request)
    assert result.planned == ()
    return {c.name: c for c in result.skipped}


def test_tree_without_the_selftests_is_an_error_naming_the_directory(tmp_path: Path) -> None:
    """With the series, a tree without tools/testing/selftests/futex used to be one N/A."""
    tree = tmp_path / "linux"
    (tree / "tools/testing/selftests").mkdir(parents=True)
    checks = plan_tree(tmp_path, tree)
    assert checks[KSELFTEST_TEST.name] == Check(
        KSELFTEST_TEST.name, Verdict.ERROR,
        f"the tree has no {tree}/tools/testing/selftests/futex, so none of its futex "
        "selftests can run")
    series = [c for c in checks.values() if c.name.startswith(sub("robust_list") + "/")]
    assert len(series) == 10 and {c.verdict for c in series} == {Verdict.FAIL}
    assert series[0].detail == ("robust_list was not built: the tree has no futex "
                                "selftests, but the series provides it")


def test_tree_without_the_selftests_and_without_the_series_is_not_applicable(
        tmp_path: Path) -> None:
    checks = plan_tree(tmp_path, tmp_path / "linux", "the tree has no FUTEX_ROBUST_UNLOCK")
    assert checks[KSELFTEST_TEST.name].verdict == Verdict.NOT_APPLICABLE
    assert {c.verdict for c in checks.values()} == {Verdict.NOT_APPLICABLE}
    assert len(checks) == 11


def test_selftests_that_do_not_build_fail_each_series_subtest(tmp_path: Path) -> None:
    tree = tiny_tree(tmp_path)
    (tree / SPEC.directory / "second.c").write_text("int main(void) { return nope; }\n")
    checks = plan_tree(tmp_path, tree)
    assert checks[KSELFTEST_TEST.name].verdict == Verdict.ERROR
    assert checks[KSELFTEST_TEST.name].detail.startswith(
        "the selftests did not build: cannot build selftest second: ")
    assert checks[sub("robust_list", VDSO64)] == Check(
        sub("robust_list", VDSO64), Verdict.FAIL,
        "robust_list was not built: the selftests did not build, but the series provides it")


def test_a_changed_only_choice_plans_only_the_programs_it_keeps(tmp_path: Path) -> None:
    """--changed-only narrowed the selftests to `first`: `second` gets no run in the plan,
    and a program no group names would (ProgramChoice.runs)."""
    narrowed = dataclasses.replace(KSELFTEST_TEST,
                                   programs=ProgramChoice(("first",), ("second",)))
    request = GuestPlanRequest((narrowed,), VdsoResult((), {}), tmp_path / "rw",
                               tmp_path / "logs", 60.0, tree=tiny_tree(tmp_path),
                               build_dir=tmp_path / "build")
    (tmp_path / "logs").mkdir()
    plan = make_plan(request)
    assert {r.binary for r in plan.ktap_runs[narrowed.name]} == {"first"}
    assert [e.name for e in plan.entries] == [f"{SPEC.suite}.first"]


# --- robust_list's exit race, removed by a preload -----------------------------------------

SETTLE = GUEST_TESTS / "kselftest" / "robust_exit_settle.c"


def lost_wakeup_main_run() -> str:
    """The full robust_list run of a kernel that loses the wakeup at owner death: the
    waiters of test_robust_list_multiple_elements time out (the same text as the race)."""
    failed = golden("guest-7.3-robust_list.multiple_elements.fail.txt").splitlines()[3:-2]
    ok = golden("guest-7.3-robust_list.txt").splitlines()
    at = ok.index("ok 6 global.test_robust_list_multiple_elements")
    return "\n".join([*ok[:at - 2], *failed[:-1], "not ok 6 " + MULTI, *ok[at + 1:]]) + "\n"


def test_a_lost_wakeup_is_not_forgiven_by_a_lucky_rerun() -> None:
    """The fooled case: a kernel with a lost wakeup at owner death failed 5 of 6 attempts of
    multiple_elements, and the check passed ("passed 1 of 6 attempts"). The race is gone
    (the preload), so robust_list is not rerun and its first failure is a FAIL."""
    runs = ks.plan_runs([binary("robust_list")], SPEC)
    assert [r.name for r in runs] == ["kselftest-futex.robust_list"]
    fail = "guest-7.3-robust_list.multiple_elements.fail.txt"
    outcomes = {runs[0].name: RunOutcome(lost_wakeup_main_run(), 1, False, 4.0)}
    # What the reruns that used to be planned said: one lucky pass.
    base = f"kselftest-futex.robust_list.{MULTI}"
    outcomes |= {f"{base}.rerun{i}": ran(fail, 1) for i in range(1, 5)}
    outcomes[f"{base}.rerun5"] = ran("guest-7.3-robust_list.multiple_elements.pass.txt")
    checks = {c.name: c for c in judge(SPEC, runs, outcomes, True)}
    check = checks[sub("robust_list", MULTI)]
    assert check.verdict == Verdict.FAIL
    assert "robust_list.c:532:test_robust_list_multiple_elements:One or more children " \
        "failed" in check.detail
    assert sum(c.verdict == Verdict.PASS for c in checks.values()) == 16


def test_robust_list_runs_with_the_settle_preload() -> None:
    assert SPEC.program("robust_list").preload == "kselftest/robust_exit_settle.c"
    assert not SPEC.timing("robust_list")
    preloaded = dataclasses.replace(binary("robust_list"),
                                    preload=Path("/b/robust_exit_settle.so"))
    (run,) = ks.plan_runs([preloaded], SPEC)
    assert run.preload == "robust_exit_settle.so"
    entry = _ktap_entry(KSELFTEST_TEST, run, Path("/rw/bin"))
    programs = "/rw/bin/kselftest-futex"
    assert entry.argv == ("/usr/bin/env", f"LD_PRELOAD={programs}/robust_exit_settle.so",
                          f"{programs}/robust_list")


def test_build_compiles_a_preload_library(tmp_path: Path) -> None:
    spec = dataclasses.replace(SPEC, programs={"second": spec_module.ProgramSpec(
        preload="kselftest/robust_exit_settle.c")})
    first, second = ks.build(request(tmp_path, tiny_tree(tmp_path), spec))
    assert first.preload is None
    assert second.preload == tmp_path / "out" / "robust_exit_settle.so"
    assert second.preload.read_bytes()[:4] == b"\x7fELF"


def test_unknown_preload_source_is_named(tmp_path: Path) -> None:
    text = (KTAP.parent.parent.parent / "data" / "kselftest.toml").read_text()
    (tmp_path / "k.toml").write_text(text.replace("robust_exit_settle.c", "nope.c"))
    with pytest.raises(UserError, match=r"preload 'kselftest/nope\.c': no such file"):
        spec_module.load_spec(tmp_path / "k.toml")


def test_settle_preload_holds_the_exit_until_the_late_waiter_sleeps(tmp_path: Path) -> None:
    """The race for real, on the host: a waiter 300 ms late misses the owner's death and
    times out; with the preload the owner's usleep() waits for it, and it is woken."""
    probe, library = tmp_path / "probe", tmp_path / "settle.so"
    subprocess.run(["gcc", "-O2", "-Wall", "-Werror", KTAP.parent / "robust_exit_probe.c",
                    "-o", probe], check=True)
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", SETTLE,
                    "-o", library], check=True)
    plain = subprocess.run([probe], capture_output=True, text=True, timeout=30)
    assert plain.stdout == "timed out\n"
    settled = subprocess.run([probe], capture_output=True, text=True, timeout=30,
                             env={"LD_PRELOAD": str(library)})
    assert settled.stdout == "woken\n", settled.stderr
