# SPDX-License-Identifier: GPL-2.0
from __future__ import annotations

from dataclasses import replace

from harness.data.guest_tests import GuestTest, load_guest_tests
from harness.data.settings import load_settings
from harness.guest.protocol import Outcome
from harness.verdicts.checks import Verdict
from harness.verdicts.counters import judge, judge_counters

TEST = GuestTest(name="t", sources=(), cflags=(), image="vdso64", entry="list64", args=(),
                 timeout=5, require=("hits",), fail_if=("bad_steps",))


def outcome(**record: int) -> Outcome:
    return Outcome("t", exit_code=0, seconds=1.5, records=({"check": "t", **record},))


def test_pass_needs_hits_and_no_bad() -> None:
    check = judge(TEST, outcome(hits=200, bad_steps=0))
    assert check.verdict == Verdict.PASS and check.counters == {"hits": 200, "bad_steps": 0}


def test_bad_steps_fail() -> None:
    check = judge(TEST, outcome(hits=200, bad_steps=200))
    assert check.verdict == Verdict.FAIL and check.detail == "bad_steps=200"


def test_zero_hits_is_inconclusive_not_pass() -> None:
    check = judge(TEST, outcome(hits=0, bad_steps=0))
    assert check.verdict == Verdict.INCONCLUSIVE and not check.verdict.ok


def test_no_result_is_an_error() -> None:
    check = judge(TEST, None)
    assert check.verdict == Verdict.ERROR and "never ran" in check.detail


def test_timeout() -> None:
    raw = replace(outcome(), timed_out=True, records=(), stderr="stuck")
    assert judge(TEST, raw).verdict == Verdict.TIMEOUT


def test_crash_is_an_error_with_stderr() -> None:
    raw = replace(outcome(), exit_code=-11, records=(), stderr="Segmentation fault")
    check = judge(TEST, raw)
    assert check.verdict == Verdict.ERROR and "Segmentation fault" in check.detail


def test_missing_counter_is_an_error() -> None:
    assert judge(TEST, outcome(hits=3)).verdict == Verdict.ERROR


def test_shipped_tests_have_rules() -> None:
    # Every test can be INCONCLUSIVE; all but positive controls can FAIL.
    # ktap tests are judged per subtest by their TAP lines (tests/test_kselftest.py).
    for test in (t for t in load_guest_tests() if t.kind != "ktap"):
        assert test.require, test.name
        assert test.fail_if or "legacy" in test.name, test.name
        assert test.suite in load_settings().suites, test.name


def test_fewer_zf_set_stops_than_a_full_run_is_inconclusive() -> None:
    """100 iterations stop twice each after a successful cmpxchg: 200, as the README says.
    A run whose range the stepper entered only half as often (a label placed one
    instruction late, say) proved less than it claims."""
    singlestep = next(t for t in load_guest_tests() if t.name == "cs-fixup-singlestep-64")
    good = {"hits_zf_set": 200, "hits_zf_clear": 100, "hits_success_label": 100,
            "window_stops": 200, "bad_steps": 0, "window_bad": 0, "dx_mismatch": 0,
            "semantics_bad": 0, "canary_bad": 0}
    assert judge_counters(singlestep, good).verdict == Verdict.PASS
    half = judge_counters(singlestep, {**good, "hits_zf_set": 100})
    assert half.verdict == Verdict.INCONCLUSIVE
    assert half.detail == "never reached: hits_zf_set=100 of at least 200"
    assert judge_counters(singlestep, {**good, "hits_zf_set": 0}).detail == \
        "never reached: hits_zf_set=0 of at least 200"
