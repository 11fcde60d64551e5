# SPDX-License-Identifier: GPL-2.0
"""Verdicts for the kernel's own futex selftests: each program's KTAP output, read by
ktap.py, becomes one check per subtest. With the series present, each series subtest is
named and must pass (a SKIP, a missing one, or its program not built or never run is a
FAIL); any other SKIP or XFAIL passes only when data/kselftest.toml lists its reason; a
timing-sensitive subtest folds its reruns into one check, forgiving only failures that
carry its race's signature, no more of them than its measured rate explains."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from harness.data.guest_tests import ProgramChoice
from harness.kselftest import ktap
from harness.kselftest.programs import (
    KSFT_SKIP,
    TAIL_CHARS,
    KselftestBinary,
    KselftestRun,
    RunOutcomeLike,
    plan_runs,
)
from harness.kselftest.sources import ProgramSource
from harness.kselftest.spec import KselftestSpec, TimingSensitive
from harness.verdicts.checks import Check, Verdict
from harness.verdicts.kselftest_attempts import Attempt, allowed_failures, attempts_check
from harness.verdicts.kselftest_output import (
    any_failed,
    crashed,
    ending,
    expectation_failures,
    failure_detail,
    failure_logs,
    rank,
    said,
)

# --- verdicts ----------------------------------------------------------------------------

@dataclass(frozen=True)
class _Ctx:
    spec: KselftestSpec
    program: str
    series_present: bool
    kconfig: Mapping[str, str] | None = None
    # The program's source in the tree under test; None when it cannot be read.
    source: ProgramSource | None = None

    def name(self, subtest: str = "") -> str:
        return self.spec.check_name(self.program, subtest)


def judge(spec: KselftestSpec, runs: Sequence[KselftestRun | KselftestBinary],
          outcomes: Mapping[str, RunOutcomeLike], series_present: bool,
          kconfig: Mapping[str, str] | None = None,
          sources: Mapping[str, ProgramSource] | None = None,
          programs: ProgramChoice | None = None) -> list[Check]:
    """One check per subtest of every program run (binaries are planned first), with the
    reruns of timing-sensitive subtests folded into their check. kconfig (the built
    .config, option to value) makes series subtests whose option is off N/A; sources (by
    program) name a series subtest the tree's source lacks. A series program that
    --changed-only left out (programs) gets no check: the report lists it as not run."""
    planned = [r for r in runs if isinstance(r, KselftestRun)]
    planned += plan_runs([b for b in runs if isinstance(b, KselftestBinary)], spec)
    checks: list[Check] = []
    for main in planned:
        if not main.subtest:
            reruns = [r for r in planned if r.binary == main.binary and r.subtest]
            ctx = _Ctx(spec, main.binary, series_present, kconfig,
                       (sources or {}).get(main.binary))
            checks += _judge_program(ctx, outcomes.get(main.name), reruns, outcomes)
    left_out = {p for p in spec.series if programs and not programs.runs(p)}
    checks += series_not_built(spec, {r.binary for r in planned} | left_out, series_present,
                               kconfig, _not_built_why(spec), sources)
    return checks


def series_not_built(spec: KselftestSpec, built: set[str], series_present: bool,
                     kconfig: Mapping[str, str] | None, why: str,
                     sources: Mapping[str, ProgramSource] | None = None) -> list[Check]:
    """The series subtests of every series program not among `built`, by name, so none is
    silently missing: FAIL with the series (`why` says what happened, or that the tree's
    source lacks it), N/A without it (a pre-7.2 tree has no robust_list) or when the kernel
    lacks the option they need."""
    checks = []
    for program in (p for p in spec.series if p not in built):
        ctx = _Ctx(spec, program, series_present, kconfig, (sources or {}).get(program))
        for subtest in spec.series_names(program):
            unmet = _not_applicable(ctx, subtest)
            if unmet:
                checks.append(Check(ctx.name(subtest), Verdict.NOT_APPLICABLE,
                                    f"{unmet}: {program} {why}"))
            elif (renamed := _not_in_source(ctx, subtest)) is not None:
                checks.append(renamed)
            else:
                checks.append(Check(ctx.name(subtest), Verdict.FAIL,
                                    f"{program} {why}, but the series provides it"))
    return checks


def _not_built_why(spec: KselftestSpec) -> str:
    if spec.binaries is None:
        return (f"was not built: the tree's {spec.directory}/Makefile does not name it in "
                "TEST_GEN_PROGS")
    return "was not built: binaries in data/kselftest.toml does not name it"


def _judge_program(ctx: _Ctx, outcome: RunOutcomeLike | None, reruns: list[KselftestRun],
                   outcomes: Mapping[str, RunOutcomeLike]) -> list[Check]:
    if ctx.spec.program(ctx.program).output == "exit-status":
        return [_exit_status_check(ctx, outcome)]
    if outcome is None:
        never = Check(ctx.name(), Verdict.ERROR, "no result: the guest never ran it")
        return [never, *_missing_series(ctx, {}, None, "not run: the guest never ran "
                                        f"{ctx.program}")]
    doc = ktap.parse_document(outcome.stdout)
    found = _subtest_checks(ctx, doc.results, outcome)
    problem = _program_check(ctx, doc, outcome)
    skipped = problem is not None and problem.verdict == Verdict.NOT_APPLICABLE
    for timing in () if skipped else ctx.spec.timing(ctx.program):
        _fold_reruns(ctx, timing, found, outcome,
                     [r for r in reruns if r.subtest == timing.subtest], outcomes)
    broken = problem if outcome.timed_out or crashed(outcome.exit_code) else None
    return [*([problem] if problem else []), *found.values(), *_missing_series(ctx, found,
                                                                                broken)]


def _subtest_checks(ctx: _Ctx, results: Sequence[ktap.KtapResult],
                    outcome: RunOutcomeLike) -> dict[str, Check]:
    """The checks of the reported subtests by name; a name reported twice keeps the worse."""
    found: dict[str, Check] = {}
    logs = failure_logs(results, outcome.stderr)
    for index, result in enumerate(results):
        check = _subtest_verdict(ctx, result, outcome, logs.get(index, ()))
        old = found.get(check.name)
        found[check.name] = check if old is None or rank(check) > rank(old) else old
    return found


def _subtest_verdict(ctx: _Ctx, result: ktap.KtapResult, outcome: RunOutcomeLike,
                     logs: tuple[str, ...] = ()) -> Check:
    """One reported subtest's check, from its (folded) KTAP result; logs are its failure's
    lines from a stderr kept apart."""
    name = ctx.name(result.name or f"#{result.number}")
    series = ctx.spec.is_series(ctx.program, result.name)
    if not result.complete:
        return Check(name, Verdict.TIMEOUT if outcome.timed_out else Verdict.ERROR,
                     f"{result.reason}; {ending(outcome)}")
    unmet = _not_applicable(ctx, result.name) if series else None
    if unmet:
        return Check(name, Verdict.NOT_APPLICABLE, f"{unmet} (it reported {said(result)})")
    return _with_nested(ctx, name, result, _directive_verdict(ctx, name, result, series, logs))


def _not_applicable(ctx: _Ctx, subtest: str) -> str | None:
    """Why a series subtest cannot apply to this kernel, or None."""
    if not ctx.series_present:
        return "series absent"
    option = ctx.spec.missing_option(ctx.program, subtest, ctx.kconfig)
    return f"needs CONFIG_{option}, which this kernel's config lacks" if option else None


def _directive_verdict(ctx: _Ctx, name: str, result: ktap.KtapResult, series: bool,
                       logs: tuple[str, ...]) -> Check:
    directive, reason = result.directive, result.reason
    if directive in (ktap.Directive.SKIP, ktap.Directive.TODO):
        return _skip_verdict(ctx, name, result, series, logs)
    if directive == ktap.Directive.ERROR:
        return Check(name, Verdict.ERROR, reason or "the test reported an error")
    if directive == ktap.Directive.XFAIL:
        return _xfail_verdict(ctx, name, result, series)
    if result.ok:
        return Check(name, Verdict.PASS, "passed unexpectedly (XPASS)"
                     if directive == ktap.Directive.XPASS else "")
    return Check(name, Verdict.FAIL, failure_detail(result, logs))


def _skip_verdict(ctx: _Ctx, name: str, result: ktap.KtapResult, series: bool,
                  logs: tuple[str, ...]) -> Check:
    """N/A only for a SKIP data/kselftest.toml lists, with the reason it gives, and with no
    failed expectation before it; every other SKIP (or TODO) is a FAIL quoting its reason."""
    reason = result.reason
    if series:
        return Check(name, Verdict.FAIL, f"skipped, but the series provides it: {reason}")
    if ctx.spec.accepted_skip(ctx.program, result.name, reason) is None:
        return Check(name, Verdict.FAIL, f"{result.directive} for a reason data/kselftest.toml "
                     f"does not accept: {reason!r}")
    failed = expectation_failures((*result.diagnostics, *logs))
    if failed:
        return Check(name, Verdict.FAIL, f"skipped ({reason}) after a failed expectation: "
                     f"{failed[0]}")
    return Check(name, Verdict.NOT_APPLICABLE, reason)


def _xfail_verdict(ctx: _Ctx, name: str, result: ktap.KtapResult, series: bool) -> Check:
    """PASS only for an XFAIL data/kselftest.toml lists as expected, with its reason."""
    listed = ctx.spec.expected_failure(ctx.program, result.name, result.reason)
    if series:
        return Check(name, Verdict.FAIL, f"XFAIL, but the series provides it: {result.reason}")
    if listed is None:
        return Check(name, Verdict.FAIL, "XFAIL, but data/kselftest.toml does not list it as "
                     f"expected to fail: {result.reason!r}")
    return Check(name, Verdict.PASS, f"expected failure: {result.reason} ({listed.why})")


def _with_nested(ctx: _Ctx, name: str, result: ktap.KtapResult, own: Check) -> Check:
    """A nested KTAP block is judged too: its worst result is the parent's when it is worse,
    so a `not ok` under an `ok` parent is a FAIL."""
    nested = [_nested_check(ctx, name, child) for child in result.subtests]
    worst = max(nested, key=rank, default=None)
    if worst is None or rank(worst) <= rank(own):
        return own
    return Check(name, worst.verdict, f"nested {worst.name.removeprefix(name + '/')}: "
                 f"{worst.detail or worst.verdict}")


def _nested_check(ctx: _Ctx, parent: str, child: ktap.KtapResult) -> Check:
    name = f"{parent}/{child.name or f'#{child.number}'}"
    if not child.complete:
        return Check(name, Verdict.ERROR, child.reason)
    subtest = name.removeprefix(ctx.name() + "/")
    series = ctx.spec.is_series(ctx.program, subtest)
    named = replace(child, name=subtest)
    return _with_nested(ctx, name, child, _directive_verdict(ctx, name, named, series, ()))


# --- timing-sensitive subtests (their rule: kselftest_attempts.py) ------------------------


def _fold_reruns(ctx: _Ctx, timing: TimingSensitive, found: dict[str, Check],
                 main: RunOutcomeLike, reruns: list[KselftestRun],
                 outcomes: Mapping[str, RunOutcomeLike]) -> None:
    """The main run's check of a timing-sensitive subtest, with its reruns counted in."""
    name = ctx.name(timing.subtest)
    if name not in found and (absent := _not_defined(ctx, timing.subtest)):
        found[name] = Check(name, Verdict.NOT_APPLICABLE, absent)
        return
    first = _attempt(ctx, "the main run", timing.subtest, main)
    if name in found:
        # A name reported twice: found kept the worse of the two.
        first = Attempt(first.label, found[name], first.lines)
    if first.check.verdict == Verdict.NOT_APPLICABLE:
        return
    ran = [(i, o) for i, r in enumerate(reruns, 1) if (o := outcomes.get(r.name)) is not None]
    attempts = [first, *(_attempt(ctx, f"rerun {i}", timing.subtest, o) for i, o in ran)]
    found[name] = attempts_check(name, timing, attempts, len(reruns) - len(ran),
                                  allowed_failures(timing, ctx.spec.false_failure_odds))


def _not_defined(ctx: _Ctx, subtest: str) -> str | None:
    """Why a listed timing-sensitive subtest that was not reported is no check here: the
    tree's source does not define it (an older tree, such as 6.12, whose program has other
    names or is no kselftest_harness program). None when the source defines it or cannot be
    read: then not reporting it is an ERROR, as it was. A program that crashed is still its
    own check (_program_check), whatever its subtests' names."""
    if ctx.source is None or subtest in ctx.source.subtests:
        return None
    kind = "" if ctx.source.harness else ", which is no kselftest_harness program,"
    return (f"the tree's {ctx.source.file}{kind} defines no {subtest}: data/kselftest.toml "
            "lists it as timing-sensitive for newer trees; its reruns judge nothing here")


def _attempt(ctx: _Ctx, label: str, subtest: str, outcome: RunOutcomeLike) -> Attempt:
    """One attempt at subtest: its check from the run's output, and the lines it printed."""
    results = ktap.parse(outcome.stdout)
    logs = failure_logs(results, outcome.stderr)
    for index, result in enumerate(results):
        if result.name == subtest:
            own = logs.get(index, ())
            return Attempt(label, _subtest_verdict(ctx, result, outcome, own),
                            (*result.diagnostics, *own))
    verdict = Verdict.TIMEOUT if outcome.timed_out else Verdict.ERROR
    return Attempt(label, Check(ctx.name(subtest), verdict,
                                 f"not reported; {ending(outcome)}"))


# --- the program as a whole --------------------------------------------------------------

def _program_check(ctx: _Ctx, doc: ktap.KtapDocument, outcome: RunOutcomeLike) -> Check | None:
    """One check for the program when something beyond its subtests went wrong: no results,
    a crash, a timeout, unreported planned subtests, a bail-out, an unexplained exit code."""
    reported = sum(r.complete for r in doc.results)
    planned = doc.plan.count if doc.plan else reported
    if not doc.results and doc.plan and doc.plan.skip_reason is not None:
        return _program_skip(ctx, doc.plan.skip_reason, outcome)
    problems = _problems(doc, outcome, reported, planned)
    if not problems:
        return None
    tail = outcome.stdout.strip()[-TAIL_CHARS:] or outcome.stderr.strip()[-TAIL_CHARS:]
    return Check(ctx.name(), Verdict.TIMEOUT if outcome.timed_out else Verdict.ERROR,
                 "; ".join(problems) + (f"; output ends: {tail}" if tail else ""),
                 {"planned": planned, "reported": reported}, outcome.seconds)


def _program_skip(ctx: _Ctx, reason: str, outcome: RunOutcomeLike) -> Check:
    """A whole program skipped (`1..0 # SKIP`): N/A only for a reason the data file lists."""
    if ctx.spec.accepted_skip(ctx.program, "", reason) is None:
        return Check(ctx.name(), Verdict.FAIL, "the whole program skipped for a reason "
                     f"data/kselftest.toml does not accept: {reason!r}", seconds=outcome.seconds)
    return Check(ctx.name(), Verdict.NOT_APPLICABLE, reason, seconds=outcome.seconds)


def _problems(doc: ktap.KtapDocument, outcome: RunOutcomeLike, reported: int,
              planned: int) -> list[str]:
    problems = []
    if not doc.results:
        problems.append("no results in its output")
    elif reported < planned:
        problems.append(f"{planned - reported} of {planned} planned subtests not reported")
    if doc.bail_out is not None:
        problems.append(f"bailed out: {doc.bail_out}")
    if outcome.timed_out or crashed(outcome.exit_code):
        problems.append(ending(outcome))
    elif outcome.exit_code not in (0, KSFT_SKIP) and not any_failed(doc):
        problems.append(f"exit code {outcome.exit_code} although no subtest failed")
    return problems


def _missing_series(ctx: _Ctx, found: Mapping[str, Check], broken: Check | None,
                    missing: str = "not reported") -> list[Check]:
    """The series subtests the output never named: FAIL with the series (also when the
    program never ran), N/A without; the program's ERROR or TIMEOUT when it crashed or
    timed out."""
    checks = []
    for subtest in ctx.spec.series_names(ctx.program):
        name = ctx.name(subtest)
        unmet = _not_applicable(ctx, subtest)
        if name in found:
            continue
        if unmet:
            checks.append(Check(name, Verdict.NOT_APPLICABLE, f"{unmet} (not reported)"))
        elif (renamed := _not_in_source(ctx, subtest)) is not None:
            checks.append(renamed)
        elif broken is not None:
            checks.append(Check(name, broken.verdict, f"not reported: {broken.detail}"))
        else:
            checks.append(Check(name, Verdict.FAIL, f"{missing}, but the series provides it"))
    return checks


def _not_in_source(ctx: _Ctx, subtest: str) -> Check | None:
    """A listed series subtest the tree's source does not define: a FAIL that reads as a
    rename (data/kselftest.toml's [series] names it), not as the kernel losing it."""
    if ctx.source is None or subtest in ctx.source.subtests:
        return None
    return Check(ctx.name(subtest), Verdict.FAIL, f"the tree's {ctx.source.file} has no "
                 f"{subtest}: data/kselftest.toml's [series] lists it; if it was renamed, "
                 "list the new name there")


def _exit_status_check(ctx: _Ctx, outcome: RunOutcomeLike | None) -> Check:
    """A program without TAP output, judged by how it ended."""
    if outcome is None:
        return Check(ctx.name(), Verdict.ERROR, "no result: the guest never ran it")
    tail = (outcome.stderr.strip() or outcome.stdout.strip())[-TAIL_CHARS:]
    if outcome.timed_out:
        return Check(ctx.name(), Verdict.TIMEOUT, ending(outcome), seconds=outcome.seconds)
    if outcome.exit_code is None:
        return Check(ctx.name(), Verdict.ERROR, f"did not run: {tail}", seconds=outcome.seconds)
    if outcome.exit_code != 0:
        return Check(ctx.name(), Verdict.FAIL, f"{ending(outcome)}; output ends: {tail}",
                     seconds=outcome.seconds)
    return Check(ctx.name(), Verdict.PASS, f"exit 0; output ends: {tail}",
                 seconds=outcome.seconds)
