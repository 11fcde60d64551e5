# SPDX-License-Identifier: GPL-2.0
from __future__ import annotations

from pathlib import Path

import pytest

from harness.data.guest_tests import GuestTest, load_guest_tests
from harness.data.settings import load_settings
from harness.errors import UserError
from harness.guest.protocol import Outcome
from harness.verdicts.checks import Verdict
from harness.verdicts.counters import judge, judge_counters

TEST = GuestTest(name="t", sources=(), cflags=(), image="vdso64", entry="list64", args=(),
                 timeout=5, require=("hits",), fail_if=("bad_steps",))


def outcome(**record: int | str) -> Outcome:
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
    raw = outcome()._replace(timed_out=True, records=(), stderr="stuck")
    assert judge(TEST, raw).verdict == Verdict.TIMEOUT


def test_crash_is_an_error_with_stderr() -> None:
    raw = outcome()._replace(exit_code=-11, records=(), stderr="Segmentation fault")
    check = judge(TEST, raw)
    assert check.verdict == Verdict.ERROR and "Segmentation fault" in check.detail


def test_missing_counter_is_an_error() -> None:
    assert judge(TEST, outcome(hits=3)).verdict == Verdict.ERROR


def test_shipped_tests_have_rules() -> None:
    # Every test can be INCONCLUSIVE; all but positive controls (control = true in the
    # data) can FAIL, and a control must demand what it exists to show.
    # ktap tests are judged per subtest by their TAP lines (tests/test_kselftest.py).
    for test in (t for t in load_guest_tests() if t.kind != "ktap"):
        assert test.require, test.name
        assert test.fail_if or test.control, test.name
        if test.control:
            assert {"corruptions", "owner_died"} & set(test.require), test.name
        assert test.suite in load_settings().suites, test.name


def test_a_test_that_cannot_fail_must_say_it_is_a_control(tmp_path: Path) -> None:
    path = tmp_path / "guest-tests.toml"
    path.write_text('[[tests]]\nname = "lax"\nclass = "shared"\nargs = []\ntimeout = 1\n'
                    'require = ["hits"]\n')
    with pytest.raises(UserError, match="test lax has no fail_if counter, so it can never FAIL"):
        load_guest_tests(path)
    path.write_text(path.read_text() + "control = true\n")
    assert load_guest_tests(path)[0].control


LEGACY = {"rounds": 9, "window_hits": 9, "not_reached": 0, "zf_clear_stops": 0,
          "corruptions": 9, "owner_died": 9, "wrong_values": 0}


@pytest.mark.parametrize("name", ["remap-exit-legacy", "remap-exit-legacy-32bit"])
def test_legacy_controls_check_the_value_the_kernel_wrote(name: str) -> None:
    """The 64-bit control and its 32-bit twin on the compat exit path pass only when every
    round ends with the kernel's FUTEX_OWNER_DIED at the lock: a page zeroed or scribbled
    by something else "corrupts" too, but shows nothing about the exit path."""
    control = {t.name: t for t in load_guest_tests()}[name]
    other = judge_counters(control, {**LEGACY, "owner_died": 0, "wrong_values": 9})
    assert other.verdict == Verdict.FAIL and other.detail == "wrong_values=9"
    some = judge_counters(control, {**LEGACY, "owner_died": 8, "corruptions": 8})
    assert some.verdict == Verdict.INCONCLUSIVE
    assert judge_counters(control, LEGACY).verdict == Verdict.PASS
    assert control.control and ("-m32" in control.cflags) == name.endswith("-32bit")


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


def shipped(name: str) -> GuestTest:
    return next(t for t in load_guest_tests() if t.name == name)


KILL_PASS = {"kill_window": 4, "term_window": 3, "group_window": 5, "skipped_fixups": 0,
             "bad_states": 0, "wrong_deaths": 0, "upper_half_touched": 0}


def test_kill_in_window_needs_a_window_kill_for_each_way_of_dying() -> None:
    """A run whose SIGTERM deaths never landed in the window checked nothing about SIGTERM,
    however many SIGKILLs did."""
    test = shipped("kill-in-window-64")
    assert judge_counters(test, KILL_PASS).verdict == Verdict.PASS
    check = judge_counters(test, {**KILL_PASS, "term_window": 0})
    assert check.verdict == Verdict.INCONCLUSIVE and "term_window=0" in check.detail


def test_a_skipped_fixup_fails_even_when_the_probe_counted_nothing() -> None:
    """A kernel that skips the fixup call never fires the kprobe on it: no window kill is
    counted, but the dead child's lock and pop still show the skip, and that decides."""
    none_counted = {**KILL_PASS, "kill_window": 0, "term_window": 0, "group_window": 0}
    check = judge_counters(shipped("kill-in-window-list32"),
                           {**none_counted, "skipped_fixups": 7})
    assert check.verdict == Verdict.FAIL and check.detail == "skipped_fixups=7"


def test_an_8_byte_clear_of_a_compat_pop_fails_kill_in_window() -> None:
    """The fooled case: a fixup that clears 8 bytes for an x32 task's 4-byte pop still
    clears pop, so every death looks idle or marked and skipped_fixups stays 0; only the
    canary after the compat head's pending word shows it. Without that counter the run
    would ERROR, not pass: a missing counter of the rule is never taken as 0."""
    test = shipped("kill-in-window-x32")
    assert judge_counters(test, KILL_PASS).verdict == Verdict.PASS
    check = judge_counters(test, {**KILL_PASS, "upper_half_touched": 3})
    assert check.verdict == Verdict.FAIL and check.detail == "upper_half_touched=3"
    missing = {k: v for k, v in KILL_PASS.items() if k != "upper_half_touched"}
    assert judge_counters(test, missing).verdict == Verdict.ERROR


def test_exit_walk_needs_every_scenario() -> None:
    """Marked locks and woken waiters from the simple scenarios do not make up for a
    scenario (pop also on the list) that was never set up."""
    test = shipped("robust-exit-walk-64")
    reached = {k: 3 for k in test.require} | {k: 0 for k in test.fail_if}
    assert judge_counters(test, reached).verdict == Verdict.PASS
    check = judge_counters(test, {**reached, "listed": 0})
    assert check.verdict == Verdict.INCONCLUSIVE and check.detail == "never reached: listed=0"


KERNEL_POP = {"alias_found": 1, "kaslr_off": 1, "five_level": 0, "cases": 24,
              "window_stops": 6, "alias_fixups": 6, "fixup_seen": 6, "kernel_writes": 0,
              "not_refused": 0, "traced_bad": 0}


def test_kernel_pop_fails_as_a_security_check() -> None:
    """A kernel write through a user pointer is a FAIL that says SECURITY first, from the
    test's fail_message in the data; the counters follow."""
    test = {t.name: t for t in load_guest_tests()}["robust-unlock-kernel-pop"]
    check = judge_counters(test, {**KERNEL_POP, "kernel_writes": 6})
    assert check.verdict == Verdict.FAIL
    assert check.detail.startswith("SECURITY: ") and check.detail.endswith(": kernel_writes=6")
    assert judge_counters(test, KERNEL_POP).verdict == Verdict.PASS


@pytest.mark.parametrize("unknown", ["alias_found", "kaslr_off"])
def test_kernel_pop_without_the_alias_is_inconclusive(unknown: str) -> None:
    """Fooled case: with KASLR on or no PFN the kernel address was a guess, so calls that
    wrote nothing there prove nothing; the test says so even if it ran them."""
    test = {t.name: t for t in load_guest_tests()}["robust-unlock-kernel-pop"]
    check = judge_counters(test, {**KERNEL_POP, unknown: 0})
    assert check.verdict == Verdict.INCONCLUSIVE and unknown in check.detail


def test_no_fail_message_leaves_the_detail_as_it_was() -> None:
    check = judge_counters(TEST, {"hits": 1, "bad_steps": 2})
    assert check.detail == "bad_steps=2" and TEST.fail_message == ""


def test_a_records_detail_is_no_counter_and_ends_a_fail() -> None:
    """A fuzzer's seed and first bad call travel as the record's detail: a FAIL shows them
    after its counters; a PASS or INCONCLUSIVE does not turn them into a counter."""
    note = "seed 7 call 11: futex op 0x201 ..."
    failed = judge(TEST, outcome(hits=5, bad_steps=1, detail=note))
    assert failed.verdict == Verdict.FAIL and failed.detail == f"bad_steps=1; {note}"
    assert "detail" not in failed.counters
    passed = judge(TEST, outcome(hits=5, bad_steps=0, detail=""))
    assert passed.verdict == Verdict.PASS and passed.detail == ""
    unreached = judge(TEST, outcome(hits=0, bad_steps=0, detail=note))
    assert unreached.verdict == Verdict.INCONCLUSIVE and note not in unreached.detail
