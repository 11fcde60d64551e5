# SPDX-License-Identifier: GPL-2.0
"""A guest test's verdict from the record its program wrote: FAIL on any non-zero fail_if
counter, INCONCLUSIVE on any zero require counter or one short of its minimum, ERROR on no
or a broken record. A record's "detail" string is no counter: a FAIL's detail ends with it."""

from __future__ import annotations

from dataclasses import replace

from harness.data.guest_tests import GuestTest
from harness.guest.protocol import Outcome
from harness.verdicts.checks import Check, Verdict


def judge(test: GuestTest, outcome: Outcome | None,
          host_counters: dict[str, int] | None = None) -> Check:
    """Decide a guest test's verdict from what the guest runner wrote, or from its absence.
    host_counters are added to the test's own record (the host-side image comparison)."""
    if outcome is None:
        return Check(test.name, Verdict.ERROR, "no result: the guest never ran this test")
    seconds = outcome.seconds
    if outcome.timed_out:
        return Check(test.name, Verdict.TIMEOUT,
                     f"killed after {test.timeout:.0f}s; {_stderr(outcome)}", seconds=seconds)
    records = [r for r in outcome.records if r.get("check") == test.name]
    if outcome.exit_code != 0 or len(records) != 1:
        return Check(test.name, Verdict.ERROR,
                     f"exit code {outcome.exit_code}, {len(records)} result records; "
                     f"{_stderr(outcome)}", seconds=seconds)
    counters = {k: int(v) for k, v in records[0].items() if k not in ("check", "detail")}
    counters.update(host_counters or {})
    check = judge_counters(test, counters, seconds)
    # A test may say what went wrong (a fuzzer's seed and first bad call): a FAIL keeps it.
    note = str(records[0].get("detail", ""))
    if check.verdict == Verdict.FAIL and note:
        return replace(check, detail=f"{check.detail}; {note}")
    return check


def judge_counters(test: GuestTest, counters: dict[str, int], seconds: float = 0.0) -> Check:
    """FAIL on any non-zero fail_if counter, else INCONCLUSIVE on any zero require counter
    or any counter short of its minimum."""
    wanted = (*test.require, *test.fail_if, *(k for k, _ in test.minimum))
    missing = [k for k in dict.fromkeys(wanted) if k not in counters]
    if missing:
        return Check(test.name, Verdict.ERROR, f"counters missing: {', '.join(missing)}",
                     counters, seconds)
    bad = [f"{k}={counters[k]}" for k in test.fail_if if counters[k]]
    if bad:
        detail = ", ".join(bad)
        if test.fail_message:
            detail = f"{test.fail_message}: {detail}"
        return Check(test.name, Verdict.FAIL, detail, counters, seconds)
    least = dict(test.minimum)
    unreached = [f"{k}=0" for k in test.require if not counters[k] and k not in least]
    unreached += [f"{k}={counters[k]} of at least {n}" for k, n in least.items() if counters[k] < n]
    if unreached:
        return Check(test.name, Verdict.INCONCLUSIVE, "never reached: " + ", ".join(unreached),
                     counters, seconds)
    return Check(test.name, Verdict.PASS, "", counters, seconds)


def _stderr(outcome: Outcome) -> str:
    text = outcome.stderr.strip()
    return f"stderr: {text[-300:]}" if text else "no stderr"
