# SPDX-License-Identifier: GPL-2.0
"""Bisection over a series' patches: which patch first breaks what passes on the base.

The search is pure: it asks a step function about "the base plus the first k patches" and
gets back good, bad or skip (did not apply, did not build), as `git bisect` does. What a step
runs, and what counts as bad, is the pipeline's business (harness/orchestration/pipeline.py)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from harness.outputs.record import Revision
from harness.verdicts.checks import Check

GOOD, BAD, SKIP = "good", "bad", "skip"
_TAG = re.compile(r"^\[[^\]]*\]\s*")


@dataclass(frozen=True)
class Target:
    """What broke: checks that pass on the base and not with the series, or a stage that
    stopped the series' revision where the base went through."""

    checks: tuple[str, ...] = ()
    stage: str | None = None

    def describe(self) -> str:
        return f"stage {self.stage}" if self.stage else ", ".join(self.checks)


@dataclass(frozen=True)
class Outcome:
    # The index (1-based) of the first bad patch, or None when skips hide it.
    first_bad: int | None
    # When skips hide it: the indices it may be.
    candidates: tuple[int, ...]


def regression(base: Revision, rev: Revision) -> Target | None:
    """What the series broke, or None when it broke nothing the base had working."""
    failed = rev.failed_stage
    if failed and not base.failed_stage:
        return Target(stage=failed.name)
    if failed or base.failed_stage:
        return None
    ok_on_base = {c.name for c in base.checks if c.verdict.ok}
    broken = tuple(c.name for c in rev.checks if not c.verdict.ok and c.name in ok_on_base)
    return Target(checks=broken) if broken else None


def step_status(target: Target, failed_stage: str | None, checks: list[Check]) -> str:
    """good, bad or skip for one step's outcome. A step that broke a target check is bad;
    one that has no verdict for some target check cannot say it is good: skip."""
    if target.stage:
        return BAD if failed_stage == target.stage else SKIP if failed_stage else GOOD
    if failed_stage:
        return SKIP
    by_name = {c.name: c for c in checks}
    if any(n in by_name and not by_name[n].verdict.ok for n in target.checks):
        return BAD
    return SKIP if missing(target, checks) else GOOD


def missing(target: Target, checks: list[Check]) -> tuple[str, ...]:
    """The target checks a step has no verdict for."""
    names = {c.name for c in checks}
    return tuple(n for n in target.checks if n not in names)


def search(total: int, step: Callable[[int], str]) -> Outcome:
    """The first k in 1..total whose step is bad, given that 0 is good and total is bad.
    A skipped k is left out; the nearest untested k to the middle is tried instead."""
    good, bad = 0, total
    skipped: set[int] = set()
    while True:
        untested = [k for k in range(good + 1, bad) if k not in skipped]
        if not untested:
            break
        middle = (good + bad) / 2
        k = min(untested, key=lambda i: (abs(i - middle), i))
        status = step(k)
        if status == GOOD:
            good = k
        elif status == BAD:
            bad = k
        else:
            skipped.add(k)
    hidden = tuple(k for k in range(good + 1, bad) if k in skipped)
    return Outcome(None if hidden else bad, (*hidden, bad) if hidden else ())


def patch_name(index: int, total: int, subject: str) -> str:
    """"09/14 subject", as a series numbers its patches (without its own [PATCH m/n] tag)."""
    width = len(str(total))
    return f"{index:0{width}d}/{total} {_TAG.sub('', subject)}"
