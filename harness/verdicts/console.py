# SPDX-License-Identifier: GPL-2.0
"""Console triage: find kernel reports (panic, Oops, BUG, WARNING, KASAN, ...) in a guest console.

The patterns live in data/console-patterns.toml. A report is recognised by its headline
line; the lines that follow belong to it until an end marker, the next report, or the end
of the log, so a report of fifty lines is one splat. Parsing is pure: text in, splats out.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.data import DATA, read_toml
from harness.errors import UserError
from harness.verdicts.checks import Check, Verdict

PATTERNS = DATA / "console-patterns.toml"
CHECK_NAME = "console"
# At most this many titles go into a check's detail; the counters still count all.
DETAIL_TITLES = 10
# C0 controls and DEL, except tab: shown as \xNN like the bytes backslashreplace escapes.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass(frozen=True)
class Rule:
    regex: re.Pattern[str]
    why: str


@dataclass(frozen=True)
class Headline:
    kind: str
    regex: re.Pattern[str]
    why: str
    # Kinds of report in progress that this line belongs to, if it comes within `within` lines.
    joins: tuple[str, ...] = ()
    within: int = 0


@dataclass(frozen=True)
class Preamble:
    kind: str
    regex: re.Pattern[str]
    within: int
    why: str


@dataclass(frozen=True)
class Patterns:
    prefix: re.Pattern[str]
    report_lines: int
    headlines: tuple[Headline, ...]
    preambles: tuple[Preamble, ...]
    ends: tuple[Rule, ...]
    noise: tuple[Rule, ...]

    def headline(self, text: str) -> Headline | None:
        """The first headline pattern that matches text, if any."""
        return next((h for h in self.headlines if h.regex.search(text)), None)

    def preamble(self, text: str) -> Preamble | None:
        """The first preamble pattern that matches text, if any."""
        return next((p for p in self.preambles if p.regex.search(text)), None)

    def is_end(self, text: str) -> bool:
        """Whether text closes the report in progress."""
        return any(r.regex.search(text) for r in self.ends)

    def is_noise(self, text: str) -> bool:
        """Whether text is decoration that a splat's lines leave out."""
        return any(r.regex.search(text) for r in self.noise)


@dataclass(frozen=True)
class Splat:
    kind: str
    # The headline, time stamp stripped.
    title: str
    # 1-based console line of the headline (of the preamble when no headline followed it).
    line: int
    # The first lines of the report, time stamps and decoration stripped.
    lines: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, for results files."""
        return {"kind": self.kind, "title": self.title, "line": self.line,
                "lines": list(self.lines)}


def _compile(regex: str, path: Path) -> re.Pattern[str]:
    try:
        return re.compile(regex)
    except re.error as exc:
        raise UserError(f"{path}: bad regex {regex!r}: {exc}") from exc


def load_patterns(path: Path = PATTERNS) -> Patterns:
    """Read the console patterns file into frozen dataclasses; a bad regex names the file."""
    raw = read_toml(path)
    console = raw["console"]
    return Patterns(
        prefix=_compile(console["prefix"], path),
        report_lines=int(console["report_lines"]),
        headlines=tuple(
            Headline(h["kind"], _compile(h["regex"], path), h["why"],
                     tuple(h.get("joins", ())), int(h.get("within", 0)))
            for h in raw["headline"]
        ),
        preambles=tuple(Preamble(p["kind"], _compile(p["regex"], path), int(p["within"]),
                                 p["why"]) for p in raw.get("preamble", [])),
        ends=tuple(Rule(_compile(r["regex"], path), r["why"]) for r in raw.get("end", [])),
        noise=tuple(Rule(_compile(r["regex"], path), r["why"]) for r in raw.get("noise", [])),
    )


@functools.cache
def default_patterns() -> Patterns:
    """The patterns shipped in data/, read once."""
    return load_patterns()


@dataclass(frozen=True)
class _Line:
    number: int
    text: str
    # The line carried a printk time stamp, so the kernel wrote it.
    kernel: bool


def _parse_line(number: int, raw: str, prefix: re.Pattern[str]) -> _Line:
    # The serial console may put guest or vng output before the kernel's time stamp.
    m = prefix.search(raw)
    text = raw[m.end():] if m else raw
    text = _CONTROL.sub(lambda c: f"\\x{ord(c.group()):02x}", text.rstrip())
    return _Line(number, text, m is not None)


@dataclass
class _Report:
    """A report being read; mutable until it is closed into a Splat."""

    kind: str
    title: str
    line: int
    kernel: bool
    lines: list[str] = field(default_factory=list)
    # Set while only a preamble has been seen: the last line a headline may still join it.
    waits_until: int | None = None


class _Scanner:
    """Feeds console lines through the patterns, one report open at a time."""

    def __init__(self, patterns: Patterns) -> None:
        self._p = patterns
        self._open: _Report | None = None
        self.found: list[Splat] = []

    def feed(self, line: _Line) -> None:
        """Take one console line."""
        report = self._open
        if report and report.kernel and not line.kernel:
            return  # guest or vng output interleaved with a kernel report
        if report and report.waits_until is not None and line.number > report.waits_until:
            self.close()
        if self._p.is_end(line.text):
            self.close()
        elif headline := self._p.headline(line.text):
            self._headline(headline, line)
        elif preamble := self._p.preamble(line.text):
            self.close()
            self._open = _Report(preamble.kind, line.text, line.number, line.kernel,
                                 waits_until=line.number + preamble.within)
        else:
            self._add(line.text)

    def _headline(self, headline: Headline, line: _Line) -> None:
        report = self._open
        if report and report.waits_until is not None:
            report.kind, report.title, report.line = headline.kind, line.text, line.number
            report.waits_until = None
        elif not (report and report.kind in headline.joins
                  and line.number - report.line <= headline.within):
            self.close()
            self._open = _Report(headline.kind, line.text, line.number, line.kernel)
        self._add(line.text)

    def _add(self, text: str) -> None:
        report = self._open
        if report and len(report.lines) < self._p.report_lines and not self._p.is_noise(text):
            report.lines.append(text)

    def close(self) -> None:
        """Turn the open report, if any, into a splat."""
        if self._open:
            r = self._open
            self.found.append(Splat(r.kind, r.title, r.line, tuple(r.lines)))
            self._open = None


def scan(text: str, patterns: Patterns | None = None) -> list[Splat]:
    """Every kernel report in a console's text, in order; one splat per report."""
    p = patterns or default_patterns()
    scanner = _Scanner(p)
    for number, raw in enumerate(text.split("\n"), 1):
        scanner.feed(_parse_line(number, raw, p.prefix))
    scanner.close()
    return scanner.found


def describe(splats: list[Splat]) -> str:
    """Each splat's title, then the first lines of the first one."""
    shown = [f"line {s.line}: [{s.kind}] {s.title}" for s in splats[:DETAIL_TITLES]]
    if len(splats) > DETAIL_TITLES:
        shown.append(f"... and {len(splats) - DETAIL_TITLES} more")
    first = splats[0]
    body = [f"first report, line {first.line}:", *(f"  {x}" for x in first.lines)]
    return "\n".join([f"{len(splats)} kernel report(s):", *shown, *body])


def console_check(path: Path) -> Check:
    """The `console` check: PASS when clean, FAIL on any kernel report, ERROR without a log."""
    try:
        text = path.read_text(encoding="utf-8", errors="backslashreplace")
    except OSError as exc:
        return Check(CHECK_NAME, Verdict.ERROR, f"no console log {path}: {exc.strerror}")
    if not text.strip():
        return Check(CHECK_NAME, Verdict.ERROR, f"console log {path} is empty")
    splats = scan(text)
    if not splats:
        return Check(CHECK_NAME, Verdict.PASS)
    counters = dict(Counter(s.kind for s in splats))
    return Check(CHECK_NAME, Verdict.FAIL, describe(splats), counters)


def consoles_check(paths: tuple[Path, ...]) -> Check:
    """The `console` check of a suite booted as several VMs side by side: the worst of the
    consoles, each report named with its log when there is more than one."""
    checks = [console_check(p) for p in paths]
    if len(checks) == 1:
        return checks[0]
    worst = max(checks, key=lambda c: _SEVERITY[c.verdict])
    if worst.verdict == Verdict.PASS:
        return worst
    counters: Counter[str] = Counter()
    for check in checks:
        counters.update(check.counters)
    detail = "; ".join(f"{p.name}: {c.detail}" for p, c in zip(paths, checks, strict=True)
                       if c.verdict != Verdict.PASS)
    return Check(CHECK_NAME, worst.verdict, detail, dict(counters))


# Which of two console verdicts wins: a kernel report in one log is the kernel's failure,
# whatever happened to another log.
_SEVERITY = {Verdict.PASS: 0, Verdict.ERROR: 1, Verdict.FAIL: 2}
