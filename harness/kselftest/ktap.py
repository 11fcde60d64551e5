# SPDX-License-Identifier: GPL-2.0
"""KTAP and TAP output, owned here alone: results, nested subtests, the plan, diagnostics,
and the kselftest_harness framing ("#  RUN" ... "#  OK") around each of its tests.

Pure: text in, frozen records out. A test that kselftest_harness started and whose result
line never came (a crash, a timeout, truncated output) is a result with complete=False.
Results printed by the ksft_* calls inside such a test (`ok 1 # SKIP ...`, `# XFAIL`) belong
to that test: they are kept in `inner` and folded into its outcome, because the harness
itself prints `ok N name` for a test that merely returned after such a SKIP or XFAIL.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field, replace

# Indentation is what nests a KTAP block; kselftest_harness tests never nest.
_VERSION = re.compile(r"(?:K?TAP) version \d+\s*$")
_PLAN = re.compile(r"1\.\.(\d+)\s*(?:#\s*(.*))?$")
_RESULT = re.compile(r"(not ok|ok)(?=[ \t]|$)[ \t]*(\d+)?[ \t]*(?:-[ \t]*)?(.*)$")
_SUBTEST = re.compile(r"#\s*Subtest:\s*(.*)$")
_RUN = re.compile(r"#\s+RUN\s+(\S+) \.\.\.\s*$")
_DONE = re.compile(r"#\s+(OK|FAIL)\s+(\S+)\s*$")
_BAIL = re.compile(r"Bail out!\s*(.*)$")
_HASH = re.compile(r"(?<!\\)#")
# kselftest_harness ends a failed test's TH_LOG lines (on stderr) with one of these.
_ENDED = re.compile(r"#\s*(\S+): Test (?:terminated|failed|ended)")


class Directive(enum.StrEnum):
    SKIP = "SKIP"
    TODO = "TODO"
    XFAIL = "XFAIL"
    XPASS = "XPASS"
    # kselftest's ksft_test_result_error(): "not ok N # error ...".
    ERROR = "ERROR"


@dataclass(frozen=True)
class KtapResult:
    number: int | None
    name: str
    ok: bool
    directive: Directive | None = None
    reason: str = ""
    # Diagnostic and other lines printed for this test, without the leading "# ".
    diagnostics: tuple[str, ...] = ()
    # A nested (indented) KTAP block that preceded this result line.
    subtests: tuple[KtapResult, ...] = ()
    # Result lines a kselftest_harness test printed while it ran (already folded in).
    inner: tuple[KtapResult, ...] = ()
    # False: the test started but its own result line never came.
    complete: bool = True

    @property
    def skipped(self) -> bool:
        return self.directive == Directive.SKIP


@dataclass(frozen=True)
class KtapPlan:
    count: int
    # "1..0 # SKIP reason": the whole program skipped.
    skip_reason: str | None = None


@dataclass(frozen=True)
class KtapDocument:
    results: tuple[KtapResult, ...]
    plan: KtapPlan | None
    # The reason of a "Bail out!" line, if one came.
    bail_out: str | None = None


@dataclass
class _Frame:
    """One nesting level while parsing."""

    indent: int
    results: list[KtapResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    plan: KtapPlan | None = None
    subtest_name: str = ""
    # The kselftest_harness test running now, what it printed, and what the harness said.
    running: str | None = None
    inner: list[KtapResult] = field(default_factory=list)
    said: str | None = None
    # The results of a deeper block that closed, waiting for this level's result line.
    children: tuple[KtapResult, ...] = ()
    children_name: str = ""


def parse(text: str | bytes) -> list[KtapResult]:
    """The top-level results of KTAP/TAP output, in the order they came."""
    return list(parse_document(text).results)


def parse_document(text: str | bytes) -> KtapDocument:
    """The top-level results, the top-level plan and any bail-out of KTAP/TAP output."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="backslashreplace")
    stack = [_Frame(0)]
    bail: str | None = None
    # Lines end at "\n" only: a stray "\r" or form feed inside one must not start a result.
    for raw in text.split("\n"):
        line = raw.rstrip("\r").replace("\x00", "")
        body = line.lstrip(" \t")
        if not body:
            continue
        bail = _bail(body) if bail is None else bail
        _feed(stack, len(line) - len(body), body)
    while len(stack) > 1:
        _close(stack)
    top = stack[0]
    _finish_running(top)
    _orphan_children(top)
    return KtapDocument(tuple(top.results), top.plan, bail)


def _bail(body: str) -> str | None:
    match = _BAIL.match(body)
    return match.group(1).strip() if match else None


def _structural(body: str) -> bool:
    return bool(_VERSION.match(body) or _PLAN.match(body) or _RESULT.match(body)
                or _SUBTEST.match(body))


def _feed(stack: list[_Frame], indent: int, body: str) -> None:
    while len(stack) > 1 and indent < stack[-1].indent:
        _close(stack)
    if indent > stack[-1].indent and _structural(body):
        stack.append(_Frame(indent))
    _line(stack[-1], body)


def _line(frame: _Frame, body: str) -> None:
    if _VERSION.match(body):
        return
    subtest = _SUBTEST.match(body)
    if subtest:
        frame.subtest_name = subtest.group(1).strip()
        return
    plan = _PLAN.match(body)
    if plan and frame.plan is None:
        frame.plan = KtapPlan(int(plan.group(1)), _skip_reason(plan.group(2)))
        return
    result = _RESULT.match(body)
    if result:
        _result(frame, _make_result(result))
        return
    _note(frame, body)


def _skip_reason(comment: str | None) -> str | None:
    if comment and comment.strip().upper().startswith("SKIP"):
        return comment.strip()[4:].strip()
    return None


def _note(frame: _Frame, body: str) -> None:
    run = _RUN.match(body)
    if run:
        _finish_running(frame)
        frame.running, frame.inner, frame.said, frame.notes = run.group(1), [], None, []
        return
    done = _DONE.match(body)
    if done and done.group(2) == frame.running:
        frame.said = done.group(1)
        return
    frame.notes.append(body[1:].strip() if body.startswith("#") else body)


def _make_result(match: re.Match[str]) -> KtapResult:
    """A result from its line; the description splits at the first unescaped '#'."""
    status, number, rest = match.groups()
    parts = _HASH.split(rest, maxsplit=1)
    name = parts[0].strip().replace("\\#", "#")
    directive, reason = _directive(parts[1] if len(parts) > 1 else "")
    return KtapResult(int(number) if number else None, name, status == "ok", directive, reason)


def _directive(comment: str) -> tuple[Directive | None, str]:
    words = comment.strip().split(maxsplit=1)
    if not words:
        return None, ""
    head = words[0].upper()
    for directive in Directive:
        # TAP: a directive is matched case-insensitively by its start ("SKIPPED" too).
        if head.startswith(directive.value):
            return directive, words[1].strip() if len(words) > 1 else ""
    return None, comment.strip()


def _result(frame: _Frame, result: KtapResult) -> None:
    if frame.running is not None and result.name != frame.running:
        frame.inner.append(result)
        frame.notes.append(_render(result))
        return
    result = replace(result, diagnostics=tuple(frame.notes), subtests=frame.children)
    if frame.running is not None:
        result = _fold(replace(result, inner=tuple(frame.inner)))
        frame.running = None
    frame.results.append(result)
    frame.notes, frame.children, frame.children_name = [], (), ""


def _render(result: KtapResult) -> str:
    text = f"{'ok' if result.ok else 'not ok'} {result.number or ''} {result.name}".rstrip()
    if result.directive or result.reason:
        text += f" # {result.directive or ''} {result.reason}".rstrip()
    return " ".join(text.split())


def _fold(result: KtapResult) -> KtapResult:
    """A harness test's own line, corrected by what the test itself reported inside."""
    failed = [r for r in result.inner if not r.ok and r.directive not in (Directive.TODO,
                                                                          Directive.XFAIL,
                                                                          Directive.SKIP)]
    if failed and result.ok:
        why = "; ".join(r.reason or r.name or "not ok" for r in failed)
        return replace(result, ok=False, directive=None, reason=f"reported inside: {why}")
    # ksft_test_result_skip()/_xfail() inside a test: the harness's own line says only ok.
    for directive in (Directive.SKIP, Directive.XFAIL, Directive.TODO):
        marked = [r for r in result.inner if r.directive == directive]
        if marked and result.ok and result.directive is None:
            why = "; ".join(r.reason or r.name for r in marked)
            return replace(result, directive=directive, reason=why)
    return result


def _finish_running(frame: _Frame) -> None:
    """A harness test whose result line never came: record it as incomplete."""
    if frame.running is None:
        return
    said = f"; the harness had printed {frame.said}" if frame.said else ""
    frame.results.append(KtapResult(
        None, frame.running, False, None, f"no result line: the output ended while it ran{said}",
        tuple(frame.notes), frame.children, tuple(frame.inner), complete=False))
    frame.running, frame.inner, frame.said, frame.notes = None, [], None, []
    frame.children, frame.children_name = (), ""


def _close(stack: list[_Frame]) -> None:
    """End the deepest block; its results wait for the parent's result line."""
    frame = stack.pop()
    _finish_running(frame)
    _orphan_children(frame)
    parent = stack[-1]
    # Two blocks in a row with no result line between: the first never got one.
    _orphan_children(parent)
    parent.children, parent.children_name = tuple(frame.results), frame.subtest_name


def _orphan_children(frame: _Frame) -> None:
    """A nested block whose parent result line never came: an incomplete parent."""
    if not frame.children:
        return
    frame.results.append(KtapResult(
        None, frame.children_name, False, None,
        "no result line: the output ended inside its subtests",
        subtests=frame.children, complete=False))
    frame.children, frame.children_name = (), ""


def harness_failures(stderr: str) -> list[tuple[str, tuple[str, ...]]]:
    """From a kselftest_harness program's stderr kept apart from stdout: (test function,
    its log lines and the closing line) for each failed test, in order. The harness closes
    each failure with "# <function>: Test terminated by assertion" (or "Test failed",
    "... by signal N")."""
    failures: list[tuple[str, tuple[str, ...]]] = []
    lines: list[str] = []
    for raw in stderr.split("\n"):
        line = raw.rstrip("\r").strip()
        ended = _ENDED.match(line)
        if ended:
            # The ending line itself says how: by assertion, or by a signal or timeout.
            function = ended.group(1)
            own = [ln for ln in lines if f":{function}:" in ln]
            failures.append((function, (*own, line[1:].strip())))
            lines = []
        elif line:
            lines.append(line[1:].strip() if line.startswith("#") else line)
    return failures
