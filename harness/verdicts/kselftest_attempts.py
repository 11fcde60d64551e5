# SPDX-License-Identifier: GPL-2.0
"""Timing-sensitive kselftest subtests: their attempts folded into one verdict. A failed
attempt is forgiven only when it carries its race's signature, and no more of them than
the measured rate explains (a binomial bound); a main run that broke is never overridden."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from harness.kselftest.spec import TimingSensitive
from harness.verdicts.checks import Check, Verdict
from harness.verdicts.kselftest_output import SOURCE_DIR, expectation_failures


@dataclass(frozen=True)
class Attempt:
    """One run of a timing-sensitive subtest: which one, its check, and what it printed."""

    label: str
    check: Check
    lines: tuple[str, ...] = ()


def allowed_failures(timing: TimingSensitive, odds: float) -> int:
    """The most failed attempts the race explains: one less than the smallest k with
    P[Binomial(attempts, measured rate) >= k] < odds; every attempt when none is that rare."""
    n, p = timing.attempts, timing.rate
    tail = 1.0
    for k in range(n + 1):
        if tail < odds:
            return k - 1
        tail -= math.comb(n, k) * p ** k * (1 - p) ** (n - k)
    return n


def attempts_check(name: str, timing: TimingSensitive, attempts: list[Attempt],
                    missing: int, allowed: int) -> Check:
    """PASS only when the main run did not break, every failed attempt carries the race's
    signature, no more failed than the measured rate explains, and one passed."""
    failed = [a for a in attempts if a.check.verdict != Verdict.PASS]
    counters = {"attempts": len(attempts), "failures": len(failed), "allowed_failures": allowed}
    notes = attempt_notes(timing, attempts, failed, missing, allowed)
    main = attempts[0].check
    if main.verdict in (Verdict.ERROR, Verdict.TIMEOUT):
        # A later pass never overrides a main run that crashed or timed out.
        return Check(name, main.verdict, f"the main run: {main.detail}; {notes}", counters)
    other = next((a for a in failed if not race_signature(timing, a)), None)
    if other is not None:
        return Check(name, Verdict.FAIL, f"{other.label} failed without the race's signature: "
                     f"{other.check.verdict}: {other.check.detail}; {notes}", counters)
    if len(failed) > allowed:
        return Check(name, Verdict.FAIL, f"{len(failed)} of {len(attempts)} attempts failed, "
                     f"more than the race explains; {notes}", counters)
    if len(failed) == len(attempts):
        return Check(name, Verdict.FAIL, f"every attempt failed; {notes}", counters)
    return Check(name, Verdict.PASS, notes, counters)


def attempt_notes(timing: TimingSensitive, attempts: list[Attempt], failed: list[Attempt],
                   missing: int, allowed: int) -> str:
    notes = [f"passed {len(attempts) - len(failed)} of {len(attempts)} attempts",
             f"timing-sensitive, {timing.reruns} reruns, at most {allowed} may fail (measured "
             f"{timing.measured_failures} of {timing.measured_attempts})"]
    if missing:
        notes.append(f"{missing} rerun(s) left no result")
    if failed:
        notes.append(f"first failure ({failed[0].label}): {failed[0].check.verdict}: "
                     f"{failed[0].check.detail}")
    return "; ".join(notes)


# How kselftest_harness ends a test that did not fail by its own assertions.
ABNORMAL = re.compile(r"Test terminated (?:by timeout|unexpectedly by signal)|"
                       r"Test ended in some other way")


def race_signature(timing: TimingSensitive, attempt: Attempt) -> bool:
    """A failed attempt is the race when it failed by its assertions alone, each of them
    matches one of the signature's in full, and it shows what the signature shows."""
    if attempt.check.verdict != Verdict.FAIL:
        return False
    lines = [SOURCE_DIR.sub(r"\1", ln) for ln in attempt.lines]
    asserted = expectation_failures(lines)
    return (bool(asserted) and not any(ABNORMAL.search(ln) for ln in lines)
            and all(any(p.fullmatch(a) for p in timing.assertions) for a in asserted)
            and all(any(p.search(ln) for ln in lines) for p in timing.shows))
