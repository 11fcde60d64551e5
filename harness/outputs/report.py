# SPDX-License-Identifier: GPL-2.0
"""Reports from the run record alone: a human table, results.json and JUnit XML."""

from __future__ import annotations

import functools
import itertools
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from harness.data.guest_tests import ReportSpec, load_guest_suite
from harness.errors import UserError
from harness.files import write_atomic
from harness.outputs import kcidb
from harness.outputs.record import Changes, Revision, Run
from harness.verdicts.checks import Check, Verdict, stage_check

EXIT_PASS, EXIT_FAIL, EXIT_ERROR = 0, 1, 2
# Characters XML 1.0 cannot carry at all, even escaped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@functools.cache
def _counters_spec() -> ReportSpec:
    return load_guest_suite().report


def revision_exit(rev: Revision) -> int:
    """2 if a stage stopped with an error, 1 if any check is not a pass, else 0."""
    if rev.failed_stage:
        return EXIT_ERROR
    return EXIT_PASS if rev.checks and all(c.verdict.ok for c in rev.checks) else EXIT_FAIL


def exit_code(run: Run) -> int:
    """The worst revision's; a run with no revision is an error, unless it is a shard the
    split left without jobs."""
    empty = EXIT_PASS if run.shard and not run.jobs else EXIT_ERROR
    return max((revision_exit(r) for r in run.revisions), default=empty)


def verdict_word(code: int) -> str:
    return {EXIT_PASS: "PASS", EXIT_FAIL: "FAIL"}.get(code, "ERROR")


# What every verdict of a run --changed-only says: it chose its checks from the files the
# patches touch, so a pass there is no pass of the series.
NOT_SERIES = "not a series verdict"


def revision_verdict(rev: Revision) -> str:
    """The revision's verdict word; a --changed-only one says it is no series verdict."""
    word = verdict_word(revision_exit(rev))
    return f"changed-only {word}, {NOT_SERIES}" if rev.changed_only else word


def overall_verdict(run: Run, exit_too: bool = True) -> str:
    """The run's verdict: a --changed-only run never reads as a plain PASS."""
    code = exit_code(run)
    if not run.changed_only:
        return f"{verdict_word(code)} (exit {code})" if exit_too else verdict_word(code)
    left = sum(len(r.changed_only.not_run) for r in run.revisions if r.changed_only)
    return (f"changed-only {verdict_word(code)}, {NOT_SERIES} ("
            + (f"exit {code}; " if exit_too else "")
            + f"{left} guest tests not run; run without --changed-only for the series "
              "verdict)")


def changed_only_lines(rev: Revision, indent: str = "   ") -> list[str]:
    """What --changed-only chose for the revision: the files, the map entries they
    matched, and the guest tests not run with their groups."""
    ch = rev.changed_only
    if ch is None:
        return []
    files = ", ".join(ch.files) or "none"
    out = [f"{indent}changed-only ({NOT_SERIES}): the patches touch {len(ch.files)} "
           f"file(s): {files}"]
    if ch.everything:
        return [*out, f"{indent}  every guest test ran: {ch.everything}"]
    for e in ch.entries:
        chose = ", ".join(e.selects) or "no guest test"
        out.append(f"{indent}  {', '.join(e.files)}: entry {e.match} selects {chose} ({e.why})")
    by_groups: dict[tuple[str, ...], list[str]] = {}
    for n in ch.not_run:
        by_groups.setdefault(n.groups, []).append(n.test)
    out.append(f"{indent}  not run: {len(ch.not_run)} guest tests, no entry of these files "
               "selects their groups:")
    out += [f"{indent}    {', '.join(groups)}: {', '.join(tests)}"
            for groups, tests in by_groups.items()]
    return out


def _counters(check: Check) -> str:
    shown = _counters_spec().table
    return " ".join(f"{k}={v}" for k, v in check.counters.items() if k in shown)


def render_table(run: Run) -> str:
    """The table a user reads: one row per stage and per check, a verdict per revision."""
    out = []
    for rev in run.revisions:
        out += _revision_head(rev)
        # As wide as the longest name (the kernel's own subtests have long ones).
        width = max([28, *(len(c.name) for c in rev.checks)])
        out.append(f"   {'STAGE / CHECK':<{width}} {'VERDICT':<13} {'TIME':>7}  COUNTERS / DETAIL")
        for stage in rev.stages:
            out.append(f"   {'stage ' + stage.name:<{width}} {stage.status:<13} "
                       f"{stage.seconds:>6.1f}s  {stage.detail}".rstrip())
        for c in rev.checks:
            shown = _counters(c)
            extra = " ".join(w for w in c.detail.split() if w not in shown.split())
            detail = " ".join(x for x in (shown, extra) if x)
            out.append(f"   {c.name:<{width}} {c.verdict.value:<13} {c.seconds:>6.1f}s  "
                       f"{detail}".rstrip())
        out += _boot_lines(rev)
        out += _bisect_lines(rev)
        out += changed_only_lines(rev)
        out.append(f"   verdict: {revision_verdict(rev)}")
    out.append(f"overall: {overall_verdict(run)}")
    return "\n".join(out) + "\n"


# How many of a boot's slowest guest programs the table names.
SLOWEST = 4


def _boot_lines(rev: Revision) -> list[str]:
    """Where each boot's time went: its programs' total and the slowest of them."""
    out = []
    for boot in (b for b in rev.boots if b.tests):
        out.append(f"   boot {boot.suite}: {len(boot.tests)} guest programs took "
                   f"{boot.seconds_in_tests:.1f}s; slowest: "
                   + ", ".join(f"{name} {s:.1f}s" for name, s in boot.slowest(SLOWEST)))
    return out


def _bisect_lines(rev: Revision) -> list[str]:
    """The bisection's result, then each step in the order it ran."""
    if rev.bisect is None:
        return []
    b = rev.bisect
    seconds = sum(s.seconds for s in b.steps)
    named = ", ".join(b.checks[:3]) + (f" and {len(b.checks) - 3} more" if len(b.checks) > 3
                                        else "")
    out = [f"   bisect ({named}): {b.detail}"
           + (f" [{len(b.steps)} steps, {seconds:.0f}s]" if b.steps else "")]
    for step in b.steps:
        out.append(f"     step {step.patch}: {step.status}")
        broken = [c for c in step.checks if not c.verdict.ok]
        # A bad step shows its failing checks with their counters; others their detail.
        out += ([f"       {c.name} {c.verdict.value} {_counters(c)}".rstrip() for c in broken]
                or ([f"       {step.detail}"] if step.detail else []))
    return out


def _revision_head(rev: Revision) -> list[str]:
    out = [f"== {rev.label}: {rev.origin}"]
    if rev.applied:
        out.append("   series: " + "; ".join(rev.applied))
    if rev.target:
        out.append(f"   target: {rev.target}")
    if rev.accel:
        out.append(f"   accelerator: {rev.accel} ({rev.accel_reason})")
    for b in rev.boots:
        if b.qemu_opts:
            out.append(f"   {b.suite} suite ran with QEMU {' '.join(b.qemu_opts)}")
    return out


def _clean(text: str) -> str:
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def render_junit(run: Run) -> bytes:
    """One testsuite per revision, one testcase per check; stage errors are errors too."""
    root = ET.Element("testsuites", name="futex-harness")
    for rev in run.revisions:
        checks = rev.checks
        suite = ET.SubElement(root, "testsuite", name=_clean(rev.label),
                              tests=str(len(checks)))
        failures = errors = skipped = 0
        for stage in rev.stages:
            if stage.failed:
                case = ET.SubElement(suite, "testcase", classname=_clean(rev.label),
                                     name=stage_check(stage.name))
                ET.SubElement(case, "error", message=_clean(stage.detail[:500]))
                errors += 1
        for c in checks:
            case = ET.SubElement(suite, "testcase", classname=_clean(rev.label), name=c.name,
                                 time=f"{c.seconds:.3f}")
            message = _clean(" ".join(x for x in (c.verdict.value, c.detail, _counters(c)) if x))
            if c.verdict == Verdict.NOT_APPLICABLE:
                ET.SubElement(case, "skipped", message=message)
                skipped += 1
            elif c.verdict == Verdict.FAIL:
                ET.SubElement(case, "failure", message=message)
                failures += 1
            elif not c.verdict.ok:
                ET.SubElement(case, "error", message=message)
                errors += 1
        # Left out by --changed-only: skipped, so no CI counts the revision as all passed.
        not_run = rev.changed_only.not_run if rev.changed_only else ()
        for n in not_run:
            case = ET.SubElement(suite, "testcase", classname=_clean(rev.label), name=n.test)
            ET.SubElement(case, "skipped", message=_clean(
                f"not run: --changed-only ({NOT_SERIES}); no file of the patches selects "
                f"{', '.join(n.groups)}"))
        skipped += len(not_run)
        suite.set("tests", str(len(checks) + len(not_run)))
        suite.set("failures", str(failures))
        suite.set("errors", str(errors))
        suite.set("skipped", str(skipped))
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


def write_reports(run_dir: Path, run: Run, kcidb_origin: str | None = None) -> None:
    """results.json, junit.xml, report.txt and kcidb.json, each replaced whole so none is ever
    half-written. kcidb_origin None: $FUTEX_HARNESS_KCIDB_ORIGIN or data/kcidb.toml's."""
    run_dir.mkdir(parents=True, exist_ok=True)
    raw = run.to_json(exit_code(run))
    write_atomic(run_dir / "results.json", (json.dumps(raw, indent=1) + "\n").encode())
    write_atomic(run_dir / "junit.xml", render_junit(run))
    write_atomic(run_dir / "report.txt", render_text(run).encode())
    kcidb.write_kcidb(run_dir, run, kcidb_origin or kcidb.default_origin())


def render_text(run: Run) -> str:
    """The table, and the comparison when there is more than one column."""
    text = render_table(run)
    return text + render_comparison(run) if len(run.revisions) > 1 else text


def load_record(run_dir: Path) -> Run:
    """A finished (or interrupted) run's record, from its run dir or its results.json."""
    path = run_dir / "results.json" if run_dir.is_dir() else run_dir
    try:
        raw = json.loads(path.read_text())
        return Run.from_json(raw, str(path))
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise UserError(f"cannot read results from {path}: {exc}") from exc


def _cell(check: Check) -> str:
    """A verdict with its most telling counter: for a failure, the first one that failed."""
    if check.verdict == Verdict.FAIL and check.detail:
        return f"FAIL {check.detail.split(',')[0].split(';')[0].strip()[:40]}"
    for key in _counters_spec().cell:
        if key in check.counters and (check.counters[key] or not check.verdict.ok):
            return f"{check.verdict.value} {key}={check.counters[key]}"
    return check.verdict.value


def render_comparison(run: Run) -> str:
    """Rows are checks, columns are revisions; '*' marks a verdict that changed from the
    revision to its left."""
    revs = run.revisions
    grid: dict[str, dict[str, Check]] = {}
    for rev in revs:
        for check in rev.checks:
            grid.setdefault(check.name, {})[rev.label] = check
    labels = [r.label for r in revs]
    width = max([len(n) for n in grid] + [len("stages")]) + 2
    col = max([len(label) for label in labels] + [22]) + 2
    out = ["", "== comparison (* = verdict changed from the column to the left)",
           "   " + "CHECK".ljust(width) + "".join(label.ljust(col) for label in labels)]
    stages = [_stages_cell(r) for r in revs]
    out.append("   " + "stages".ljust(width) + "".join(c.ljust(col) for c in stages))
    for name, row in grid.items():
        cells, previous = [], None
        for label in labels:
            cell = row.get(label)
            text = _cell(cell) if cell else _absent(revs[labels.index(label)], name)
            verdict = cell.verdict if cell else None
            mark = "*" if previous is not None and verdict != previous else " "
            cells.append((mark + text).ljust(col))
            previous = verdict
        out.append("   " + name.ljust(width) + "".join(cells))
    out.append("   " + "verdict".ljust(width)
               + "".join((" " + revision_verdict(r).split(",")[0]).ljust(col) for r in revs))
    out += render_changes(revs)
    return "\n".join(out) + "\n"


def _absent(rev: Revision, check: str) -> str:
    """The cell of a check the revision lacks: 'not run' when --changed-only left it out."""
    left = rev.changed_only.not_run if rev.changed_only else ()
    return "not run" if any(check == n.test or check.startswith(n.test + "/")
                            for n in left) else "-"


def render_changes(revs: list[Revision]) -> list[str]:
    """Below the comparison: what git range-diff says changed in the series, then each
    check whose verdict changed between two neighbouring columns, with the patches that
    changed between them."""
    out = []
    compared = [r for r in revs if r.changes]
    if compared:
        out += ["", "== what changed in the series (git range-diff)"]
    for rev in compared:
        assert rev.changes is not None
        out += [f"   {_changes_head(rev.changes, rev.label)}", *_patch_lines(rev.changes)]
    flipped = []
    for left, right in itertools.pairwise(revs):
        flips = _flips(left, right)
        if flips:
            flipped += [f"   {left.label} -> {right.label}:",
                        *(f"     {name}: {old} -> {new}" for name, old, new in flips),
                        *_between(left, right)]
    if flipped:
        out += ["", "== checks whose verdict changed, and the patches between them", *flipped]
    return out


def _changes_head(changes: Changes, label: str) -> str:
    head = f"{changes.against} -> {label}"
    if changes.error:
        return f"{head}: not compared: {changes.error}"
    return (f"{head}: {changes.count('!')} changed, {changes.count('>')} added, "
            f"{changes.count('<')} dropped, {changes.count('=')} unchanged")


def _patch_lines(changes: Changes, indent: str = "     ") -> list[str]:
    """One line per patch that is not identical in both revisions."""
    out = []
    for p in changes.patches:
        if p.kind == "=":
            continue
        name = p.new if p.kind != "<" else p.old
        was = f" (was {p.old})" if p.kind == "!" and p.old != p.new else ""
        out.append(f"{indent}{p.kind} {name}{was}")
    return out


def _flips(left: Revision, right: Revision) -> list[tuple[str, str, str]]:
    """(check, verdict on the left, verdict on the right) for every check in both whose
    verdict differs."""
    before = {c.name: c.verdict for c in left.checks}
    return [(c.name, before[c.name].value, c.verdict.value) for c in right.checks
            if c.name in before and before[c.name] != c.verdict]


def _between(left: Revision, right: Revision) -> list[str]:
    """The patches that changed from the left column to the right one."""
    ch = right.changes
    if ch and ch.against == left.label:
        if ch.error:
            return [f"     patches: not compared: {ch.error}"]
        lines = _patch_lines(ch, "       ")
        return (["     patches changed between them:", *lines] if lines else
                ["     patches: none changed, the same series (a flaky check?)"])
    if not left.series and right.series:
        return [f"     patches: the whole series ({len(right.applied)} patches)"]
    return ["     patches: not compared"]


def _stages_cell(rev: Revision) -> str:
    failed = rev.failed_stage
    return f" error: {failed.name}" if failed else " ok"
