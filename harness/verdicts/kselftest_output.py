# SPDX-License-Identifier: GPL-2.0
"""What a selftest program printed, as the kselftest verdict rules read it: the failure
log of each result, its assertion lines, how the program ended."""

from __future__ import annotations

import re
from collections.abc import Sequence

from harness.kselftest import ktap
from harness.kselftest.programs import RunOutcomeLike
from harness.verdicts.checks import Check, Verdict


def failure_logs(results: Sequence[ktap.KtapResult], stderr: str
                  ) -> dict[int, tuple[str, ...]]:
    """Each failed result's log lines from a stderr kept apart, matched in order by the
    test function the harness names when it closes a failure."""
    failures = ktap.harness_failures(stderr)
    logs: dict[int, tuple[str, ...]] = {}
    for index, result in enumerate(results):
        function = result.name.rsplit(".", 1)[-1]
        match = next((f for f in failures if f[0] == function), None)
        if not result.ok and match:
            failures.remove(match)
            logs[index] = match[1]
    return logs


SEVERITY = {Verdict.PASS: 0, Verdict.NOT_APPLICABLE: 1, Verdict.INCONCLUSIVE: 2,
             Verdict.FAIL: 3, Verdict.TIMEOUT: 4, Verdict.ERROR: 4}


def rank(check: Check) -> int:
    return SEVERITY[check.verdict]


# kselftest_harness prints each failed EXPECT_*/ASSERT_* as "<file>:<line>:<test>:Expected ...".
EXPECTATION = re.compile(r"^\S+:\d+:[^:\s]+:Expected ")


def expectation_failures(lines: Sequence[str]) -> list[str]:
    return [ln for ln in lines if EXPECTATION.search(ln)]


def said(result: ktap.KtapResult) -> str:
    status = "ok" if result.ok else "not ok"
    return f"{status} # {result.directive}" if result.directive else status


# The directory of a source file named in an assertion message: its base name is enough.
SOURCE_DIR = re.compile(r"(?:/[^\s/:]+)+/([^\s/:]+\.[ch]:)")


# kselftest_harness's line closing a test that failed by its assertions: no news in a detail.
PLAIN_END = re.compile(r": Test (?:terminated by assertion|failed)$")


def failure_detail(result: ktap.KtapResult, logs: tuple[str, ...]) -> str:
    """What the test said about its failure: its diagnostics and its stderr log lines."""
    lines = [ln for ln in (*result.diagnostics, *logs) if not PLAIN_END.search(ln)]
    said = " / ".join(SOURCE_DIR.sub(r"\1", ln) for ln in lines[-3:])
    return "; ".join(x for x in (result.reason, said) if x) or "not ok"


def ending(outcome: RunOutcomeLike) -> str:
    if outcome.timed_out:
        return f"killed at its timeout after {outcome.seconds:.0f}s"
    return f"exit code {outcome.exit_code}"


def crashed(code: int | None) -> bool:
    return code is None or code < 0 or code >= 128


def any_failed(doc: ktap.KtapDocument) -> bool:
    return any(not r.ok and r.directive not in (ktap.Directive.SKIP, ktap.Directive.TODO)
               for r in doc.results)
