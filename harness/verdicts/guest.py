# SPDX-License-Identifier: GPL-2.0
"""Every planned guest test gets a verdict, even when the guest died before running it."""

from __future__ import annotations

from pathlib import Path

from harness.guest import protocol
from harness.guest.plan import GuestPlan
from harness.kselftest.spec import load_spec
from harness.verdicts import kselftest as kselftest_verdicts
from harness.verdicts.checks import Check
from harness.verdicts.counters import judge
from harness.verdicts.image import image_comparison


def test_seconds(outcomes: dict[str, protocol.Outcome]) -> dict[str, float]:
    """How long each program the runner started took in the guest, by its name."""
    return {name: round(o.seconds, 2) for name, o in outcomes.items()}


def judge_plan(plan: GuestPlan, images: dict[str, Path],
               outcomes: dict[str, protocol.Outcome]) -> list[Check]:
    """Every test of the plan gets a verdict, even when the guest died before running it.
    `outcomes`: what the runner left in the plan's rwdir (protocol.read_outcomes)."""
    checks = list(plan.skipped)
    for test in plan.planned:
        if test.kind == "ktap":
            checks += kselftest_verdicts.judge(load_spec(), plan.ktap_runs[test.name],
                                      outcomes, plan.series_present, plan.config)
            continue
        extra = image_comparison(test, plan.rwdir, images[test.image]) if test.image else {}
        checks.append(judge(test, outcomes.get(test.name), extra))
    return checks
