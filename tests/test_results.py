# SPDX-License-Identifier: GPL-2.0
from __future__ import annotations

from dataclasses import replace

from harness.data.guest_tests import GuestTest, load_guest_tests
from harness.data.settings import load_settings
from harness.guest.protocol import Outcome
from harness.verdicts.checks import Verdict
from harness.verdicts.counters import judge

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
