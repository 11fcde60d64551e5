# SPDX-License-Identifier: GPL-2.0
"""Every planned guest test gets a verdict, even when the guest died before running it."""

from __future__ import annotations

from pathlib import Path

from harness.guest import protocol
from harness.guest.plan import GuestPlan
from harness.kselftest.spec import load_spec
from harness.verdicts import kselftest as kselftest_verdicts
from harness.verdicts.checks import Check, Verdict
from harness.verdicts.counters import judge
from harness.verdicts.image import image_comparison


def current(plan: GuestPlan, outcomes: dict[str, protocol.Outcome]
            ) -> dict[str, protocol.Outcome]:
    """The outcomes written under the plan this boot followed (the id in its plan.json);
    any other was left by an earlier plan in a reused directory."""
    plan_id = protocol.read_plan(plan.rwdir).id
    return {name: o for name, o in outcomes.items() if o.plan == plan_id}


def test_seconds(plan: GuestPlan, outcomes: dict[str, protocol.Outcome]) -> dict[str, float]:
    """How long each program the runner started took in the guest, by its name."""
    return {name: round(o.seconds, 2) for name, o in current(plan, outcomes).items()}


def judge_plan(plan: GuestPlan, images: dict[str, Path],
               outcomes: dict[str, protocol.Outcome]) -> list[Check]:
    """Every test of the plan gets a verdict, even when the guest died before running it.
    `outcomes`: what the runner left in the plan's rwdir (protocol.read_outcomes); one
    written under another plan is no result of this boot: ERROR."""
    fresh = current(plan, outcomes)
    checks = list(plan.skipped)
    for test in plan.planned:
        if test.kind == "ktap":
            checks += kselftest_verdicts.judge(load_spec(), plan.ktap_runs[test.name],
                                               fresh, plan.series_present, plan.config,
                                               plan.ktap_sources.get(test.name),
                                               test.programs)
        elif test.name in outcomes and test.name not in fresh:
            checks.append(Check(test.name, Verdict.ERROR, "no result from this boot: "
                                f"{protocol.outcome_path(plan.rwdir, test.name)} was left by "
                                "an earlier plan in this directory"))
        else:
            extra = image_comparison(test, plan.rwdir, images[test.image], plan.alt_layout,
                                     plan.critical.get(test.image, ())) if test.image else {}
            checks.append(judge(test, fresh.get(test.name), extra))
    return checks
