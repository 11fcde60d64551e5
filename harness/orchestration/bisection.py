# SPDX-License-Identifier: GPL-2.0
"""The bisection driver: which regression to chase, each step recorded, and the answer.

The search itself is bisect.py's; testing one step (the base plus the first k patches,
through the same stages as any revision) is the pipeline's, handed in as `test_step`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from harness.errors import HarnessError, RunTimeout
from harness.orchestration import bisect
from harness.outputs.record import Bisect, BisectStep
from harness.outputs.record import Revision as RevisionRecord
from harness.verdicts.checks import stage_check

log = logging.getLogger("harness")

# Tests one step into the record given: the first k patches, only the guest tests behind
# the checks named (None: every test; (): none, for a host-side target).
StepTester = Callable[[RevisionRecord, int, "tuple[str, ...] | None"], None]

# The stages that run before any boot: a target there needs no guest test.
HOST_STAGES = ("patches", "config", "build", "vdso", "disasm")


def bisect_revision(rev: RevisionRecord, base: RevisionRecord | None, test_step: StepTester,
                    flush: Callable[[], None]) -> None:
    """Find the series' first bad patch when it broke what passes on its base."""
    target = bisect.regression(base, rev) if base else None
    if target is None:
        if base is None:
            log.warning("%s: no base in this run to bisect against", rev.label)
        return
    rev.bisect = Bisect(list(target.checks) or [stage_check(target.stage or "")])
    total = len(rev.applied)
    if total == 0:
        rev.bisect.detail = "nothing to bisect: the series' patches were never applied"
        return
    log.info("%s: bisecting %d patches for %s", rev.label, total, target.describe())

    def step(k: int) -> str:
        return _step(rev, target, k, test_step, flush)

    try:
        found = bisect.search(total, step)
    except RunTimeout:
        rev.bisect.detail = "stopped at the run's time limit"
        flush()
        raise
    _result(rev, found, total)
    flush()


def _step(rev: RevisionRecord, target: bisect.Target, k: int, test_step: StepTester,
          flush: Callable[[], None]) -> str:
    """Test the base plus the first k patches; good, bad or skip."""
    assert rev.bisect is not None
    total = len(rev.applied)
    name = bisect.patch_name(k, total, rev.applied[k - 1])
    log.info("%s: bisect step %s", rev.label, name)
    # The step's files (logs, guest dirs) nest under its revision's: <label>/bisect/<k>/.
    step_rev = RevisionRecord(f"{rev.label}/bisect/{k:02d}")
    behind = () if target.stage in HOST_STAGES else target.checks or None
    start = time.monotonic()
    try:
        test_step(step_rev, k, behind)
    except RunTimeout:
        raise
    except HarnessError as exc:
        log.info("%s: bisect step %d stopped: %s", rev.label, k, exc)
    failed = step_rev.failed_stage
    status = bisect.step_status(target, failed.name if failed else None, step_rev.checks)
    relevant = [c for c in step_rev.checks if c.name in target.checks]
    broken = [c for c in relevant if not c.verdict.ok]
    absent = bisect.missing(target, step_rev.checks)
    detail = (f"stage {failed.name}: {failed.detail.splitlines()[0][:200]}" if failed
              else f"{len(broken)} of {len(relevant)} fail" if broken
              else f"no verdict for {', '.join(absent)}" if absent
              else f"all {len(relevant)} pass")
    rev.bisect.steps.append(BisectStep(name, k, status, detail,
                                       round(time.monotonic() - start, 1), relevant))
    flush()
    return status


def _result(rev: RevisionRecord, found: bisect.Outcome, total: int) -> None:
    assert rev.bisect is not None
    names = {s.index: s.patch for s in rev.bisect.steps}
    if found.first_bad is not None:
        rev.bisect.first_bad = names.get(found.first_bad) or bisect.patch_name(
            found.first_bad, total, rev.applied[found.first_bad - 1])
        rev.bisect.detail = f"first bad: {rev.bisect.first_bad}"
    else:
        rev.bisect.detail = ("skipped patches hide the first bad one; it is one of: "
                             + "; ".join(names.get(k) or bisect.patch_name(
                                 k, total, rev.applied[k - 1]) for k in found.candidates))
    log.info("%s: %s", rev.label, rev.bisect.detail)
