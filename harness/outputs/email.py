# SPDX-License-Identifier: GPL-2.0
"""The reply for the mailing list: plain text from the run record alone, no line wider than
data/email.toml's width, nothing quoted from the series.

For each revision: its verdict; each failing check with its key counter and what that
means; the first bad patch when a bisection found one; kernel, config variant and
accelerator. Then the command that reproduces the run, and a Tested-by: line only when
everything passed. A run --changed-only says in its first line and in each revision's
that it is no series verdict, names the guest tests it left out, and is never signed
Tested-by."""

from __future__ import annotations

import shlex
import textwrap
from collections.abc import Mapping

from harness.data.email import EmailSpec, load_email_spec
from harness.data.guest_tests import GuestTest, load_guest_tests
from harness.outputs.record import Revision, Run
from harness.outputs.report import (
    EXIT_PASS,
    changed_only_lines,
    exit_code,
    overall_verdict,
    revision_verdict,
)
from harness.verdicts.checks import Check, Verdict

# A detail is one clause of a line, not a log.
DETAIL_CHARS = 200


def render_email(run: Run, tester: str | None = None, spec: EmailSpec | None = None,
                 tests: Mapping[str, GuestTest] | None = None) -> str:
    """The reply; tester ("Name <email>") signs it with Tested-by only if all passed."""
    spec = spec or load_email_spec()
    known = tests if tests is not None else {t.name: t for t in load_guest_tests()}
    labels = ", ".join(r.label for r in run.revisions) or "none"
    out = _wrap(f"futex-harness results (x86 vDSO robust-futex unlock tests), "
                f"overall {overall_verdict(run, exit_too=False)}; revisions: {labels}.",
                spec.width)
    for rev in run.revisions:
        out += ["", *_revision(rev, spec, known)]
    if run.command:
        out += ["", "To reproduce (the first line of harness.log):",
                *wrap_command(run.command, spec.width)]
    # A --changed-only pass left checks out: no Tested-by for the series.
    if tester and exit_code(run) == EXIT_PASS and not run.changed_only:
        out += ["", f"Tested-by: {tester}"]
    return "\n".join(out) + "\n"


def _revision(rev: Revision, spec: EmailSpec, tests: Mapping[str, GuestTest]) -> list[str]:
    """One revision's block: verdict, where it ran, what failed and why."""
    bad = [c for c in rev.checks if not c.verdict.ok]
    passed = sum(1 for c in rev.checks if c.verdict == Verdict.PASS)
    na = len(rev.checks) - passed - len(bad)
    counts = (f"{len(rev.checks)} checks: {passed} passed, {len(bad)} failed, {na} N/A"
              if rev.checks else "no checks ran")
    head = f"{rev.label}: {revision_verdict(rev)}, {counts}"
    w = spec.width
    out = _wrap(head, w)
    out += _wrap(f"kernel: {rev.origin or rev.kernel or 'unknown'}", w, "  ", "    ")
    out += _wrap(f"config: {rev.variant or 'unknown'}; accelerator: {_accel(rev)}", w, "  ",
                 "    ")
    if rev.series_absent:
        out += _wrap(f"series absent: {rev.series_absent}", w, "  ", "    ")
    if rev.changes and not rev.changes.error:
        ch = rev.changes
        out += _wrap(f"since {ch.against}: {ch.count('!')} patches changed, {ch.count('>')} "
                     f"added, {ch.count('<')} dropped", w, "  ", "    ")
    if rev.bisect and rev.bisect.first_bad:
        out += _wrap(f"first bad patch: {rev.bisect.first_bad}", w, "  ", "    ")
    elif rev.bisect:
        out += _wrap(f"bisect: no first bad patch found. {_short(rev.bisect.detail)}", w,
                     "  ", "    ")
    for line in changed_only_lines(rev, ""):
        indent = "  " + " " * (len(line) - len(line.lstrip()))
        out += _wrap(line.strip(), w, indent, indent + "  ")
    stage = rev.failed_stage
    if stage:
        out += _wrap("- " + _fill(spec.fallback["stage"], stage=stage.name,
                                  detail=_ends(stage.detail)), w, "  ", "    ")
    for check in bad:
        out += _wrap(f"- {check.name}: {explain(check, spec, tests)}", w, "  ", "    ")
    return out


def _accel(rev: Revision) -> str:
    if rev.target:
        return f"{rev.accel or 'remote'} (target {rev.target})"
    return rev.accel or "none (not booted)"


def explain(check: Check, spec: EmailSpec, tests: Mapping[str, GuestTest]) -> str:
    """VERDICT, the key counter, and one line on what it means."""
    test, counters = tests.get(check.name), check.counters
    if test and check.verdict == Verdict.FAIL:
        failing = [k for k in test.fail_if if counters.get(k)]
        if failing:
            key = failing[0]
            line = spec.failed.get(key, spec.fallback["counter"])
            return f"FAIL {key}={counters[key]}: " + _fill(line, n=counters[key], counter=key)
    if test and check.verdict == Verdict.INCONCLUSIVE:
        unreached = [k for k in test.require if not counters.get(k)]
        if unreached:
            key = unreached[0]
            line = spec.unreached.get(key, spec.fallback["unreached"])
            return f"INCONCLUSIVE {key}=0: " + _fill(line, n=0, counter=key)
    word = {Verdict.FAIL: "fail", Verdict.INCONCLUSIVE: "inconclusive",
            Verdict.TIMEOUT: "timeout"}.get(check.verdict, "error")
    detail = _short(check.detail) or "no detail recorded"
    return f"{check.verdict.value}: " + _fill(spec.fallback[word], detail=detail)


def _fill(template: str, **values: object) -> str:
    return template.format_map(values)


def _short(text: str) -> str:
    """A detail as one clause: whitespace folded, cut at DETAIL_CHARS."""
    flat = " ".join(text.split())
    return flat if len(flat) <= DETAIL_CHARS else flat[:DETAIL_CHARS - 3].rstrip() + "..."


def _ends(text: str) -> str:
    """A stage's error as its first line and, when it kept the command's output, the last
    line of that: the message and the error that caused it."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if len(lines) < 2:
        return _short(text)
    return f"{_short(lines[0])} ... {_short(lines[-1])}"


def _wrap(text: str, width: int, first: str = "", rest: str = "") -> list[str]:
    # Names like cs-fixup-singlestep-64 stay whole unless longer than a line.
    return textwrap.wrap(text, width, initial_indent=first, subsequent_indent=rest,
                         break_on_hyphens=False) or [first.rstrip()]


def wrap_command(command: str, width: int, indent: str = "  ") -> list[str]:
    """A shell command over lines of at most width columns that a shell reads back as the
    same argv. Lines break between words with ' \\', an option kept with its value; a word
    too long for a line is cut with a backslash-newline, which the shell removes, so the
    rest of that word starts in column 0."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    lines: list[str] = []
    line = indent
    for unit in _units(words):
        text = " ".join(shlex.quote(w) for w in unit)
        if line.strip() and len(line) + 1 + len(text) + 2 > width:
            lines.append(line + " \\")
            line = indent + "  "
        if len(line) + len(text) + 2 <= width:
            line += (" " if line.strip() else "") + text
            continue
        for word in unit:
            lines, line = _add_word(lines, line, word, width, indent + "  ")
    return [*lines, line]


def _units(words: list[str]) -> list[list[str]]:
    """Words that belong on one line: the program and its subcommand, an option and its
    value."""
    units: list[list[str]] = []
    for word in words:
        last = units[-1] if units else []
        subcommand = len(units) == 1 and len(last) == 1
        value = len(last) == 1 and last[0].startswith("-") and not word.startswith("-")
        if subcommand or value:
            last.append(word)
        else:
            units.append([word])
    return units


def _add_word(lines: list[str], line: str, word: str, width: int,
              indent: str) -> tuple[list[str], str]:
    """Put one word on the current line, a new one, or, cut, over several."""
    quoted = shlex.quote(word)
    if line.strip() and len(line) + 1 + len(quoted) + 2 > width:
        lines.append(line + " \\")
        line = indent
    if len(line) + len(quoted) + 2 <= width:
        return lines, line + (" " if line.strip() else "") + quoted
    # Room for the backslash; the last piece keeps room for a ' \\' after it.
    pieces = _cut(word, width - len(line) - 2, width - 2)
    if len(pieces) > 1:
        lines = [*lines, line + pieces[0] + "\\", *(p + "\\" for p in pieces[1:-1])]
        line = ""
    return lines, line + pieces[-1]


def _cut(word: str, first: int, rest: int) -> list[str]:
    """word in pieces, each quoted on its own, the first at most first columns wide and
    the others rest: adjacent quoted pieces make one word again."""
    pieces, budget = [], first
    while word:
        take = len(word)
        while take > 1 and len(shlex.quote(word[:take])) > budget:
            take -= 1
        pieces.append(shlex.quote(word[:take]))
        word, budget = word[take:], rest
    return pieces
