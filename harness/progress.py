# SPDX-License-Identifier: GPL-2.0
"""The live view of long steps (the build, the boot, unpacking the source).

On a terminal a rich progress bar; elsewhere (CI, pipes) a plain log line every 30 s with a
percentage and an ETA. What to expect comes from the last finished run of the same step,
kept in a small JSON history file in the cache. This module is the only one that draws."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

log = logging.getLogger("harness")

# Seconds between two plain progress lines.
INTERVAL = 30.0
# How often the live view and the ticker wake up.
TICK = 1.0


@dataclass(frozen=True)
class History:
    """The last finished run of a step: what it counted (0 for a timed step) and how long."""

    count: int
    seconds: float


def history_file(build_dir: Path) -> Path:
    """Where the steps of one build dir (one tree and config variant) keep their history."""
    return build_dir.with_name(build_dir.name + ".history.json")


def load_history(path: Path, step: str) -> History | None:
    """The recorded run of step; None when there is none or the file is unreadable."""
    try:
        raw = json.loads(path.read_text())[step]
        return History(int(raw["count"]), float(raw["seconds"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save_history(path: Path, step: str, done: History) -> None:
    """Record a finished step; the other steps' entries stay. Written atomically."""
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):
        entries = {}
    if not isinstance(entries, dict):
        entries = {}
    entries[step] = {"count": done.count, "seconds": round(done.seconds, 1)}
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(path.name + ".tmp")
    scratch.write_text(json.dumps(entries, indent=1, sort_keys=True) + "\n")
    scratch.replace(path)


def expected(done: int, last: History | None) -> int | None:
    """The count to expect: the last run's, or what is already done when this run is bigger."""
    if last is None or last.count <= 0:
        return None
    return max(last.count, done)


def eta(done: int, elapsed: float, last: History | None) -> float | None:
    """Seconds left, or None when unknown (no history, or past every estimate).

    Early on, the last run's duration counts down; as the count grows, the rate of this
    run takes over, in proportion to the fraction done."""
    if last is None or last.seconds <= 0:
        return None
    by_history = max(last.seconds - elapsed, 0.0)
    total = expected(done, last)
    if total is None or done <= 0:
        left = by_history
    else:
        fraction = done / total
        by_rate = elapsed * (total - done) / done
        left = (1 - fraction) * by_history + fraction * by_rate
    return left if left >= 1.0 else None


def duration(seconds: float) -> str:
    """'42s', '6m50s', '1h02m'."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def percent(done: int, last: History | None) -> int | None:
    """Whole percent done; 99 at most while the step runs."""
    total = expected(done, last)
    return None if total is None else min(99, 100 * done // total)


def status_line(step: str, unit: str, done: int, elapsed: float, last: History | None) -> str:
    """One plain progress line: 'build: 1209/2460 objects (49%), 393s, ETA 6m50s'."""
    if last is None:
        counted = f"{done} {unit}, " if unit else ""
        return f"{step}: {counted}{elapsed:.0f}s (no earlier {step} here to estimate from)"
    left = eta(done, elapsed, last)
    when = f"ETA {duration(left)}" if left is not None else "ETA unknown"
    total = expected(done, last)
    if unit and total is not None:
        return (f"{step}: {done}/{total} {unit} ({percent(done, last)}%), {elapsed:.0f}s, "
                f"{when}")
    counted = f"{done} {unit}, " if unit else ""
    return (f"{step}: {counted}{elapsed:.0f}s, {when} (the last {step} took "
            f"{duration(last.seconds)})")


class _EtaColumn(ProgressColumn):
    """The ETA from the history, not rich's own rate guess."""

    def __init__(self, meter: Meter) -> None:
        super().__init__()
        self.meter = meter

    def render(self, task: Task) -> Text:
        left = eta(self.meter.done, self.meter.elapsed, self.meter.last)
        if self.meter.last is None:
            return Text("no earlier run to estimate from", style="dim")
        return Text(f"ETA {duration(left)}" if left is not None else "ETA unknown")


class Meter:
    """The progress of one long step. Use as a context manager; call advance() per unit
    done (from any thread). live=None: a bar when stderr is a terminal (not TERM=dumb)."""

    def __init__(self, step: str, last: History | None, unit: str = "", *,
                 live: bool | None = None, interval: float = INTERVAL,
                 console: Console | None = None) -> None:
        self.step, self.last, self.unit, self.interval = step, last, unit, interval
        self.console = console or Console(stderr=True)
        if live is None:
            live = self.console.is_terminal and not self.console.is_dumb_terminal
        self.live = live
        self.done = 0
        self.start = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._progress: Progress | None = None
        self._task = TaskID(0)
        self._views = contextlib.ExitStack()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def line(self) -> str:
        return status_line(self.step, self.unit, self.done, self.elapsed, self.last)

    def advance(self, count: int = 1) -> None:
        with self._lock:
            self.done += count
        progress = self._progress
        if progress is not None and self.unit:
            progress.update(self._task, completed=self.done,
                            total=expected(self.done, self.last))

    def __enter__(self) -> Meter:
        self.start = time.monotonic()
        if self.live:
            self._views.enter_context(self._live_view())
        self._ticker = threading.Thread(target=self._tick, name=f"progress-{self.step}",
                                        daemon=True)
        self._ticker.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        self._views.close()

    def _tick(self) -> None:
        """Plain lines every interval (only to harness.log under a live bar, which shows
        the same); the timed bar's position once a tick."""
        last_line = time.monotonic()
        while not self._stop.wait(min(TICK, self.interval)):
            if self._progress is not None and not self.unit:
                self._progress.update(self._task, completed=self.elapsed)
            if time.monotonic() - last_line >= self.interval:
                last_line = time.monotonic()
                log.log(logging.DEBUG if self.live else logging.INFO, "%s", self.line())

    @contextlib.contextmanager
    def _live_view(self) -> Iterator[None]:
        """A transient rich bar; the console log handler writes above it meanwhile."""
        counted = bool(self.unit)
        total: float | None = expected(0, self.last) if counted else (
            self.last.seconds if self.last else None)
        columns: list[ProgressColumn] = [TextColumn("{task.description}"), BarColumn()]
        if counted:
            columns.append(TextColumn(_count_format(self.unit, total is not None)))
        columns += [TimeElapsedColumn(), _EtaColumn(self)]
        progress = Progress(*columns, console=self.console, transient=True,
                            redirect_stdout=True, redirect_stderr=True)
        self._task = progress.add_task(self.step, total=total)
        with _log_through(sys.stderr, self.console), progress:
            self._progress = progress
            try:
                yield
            finally:
                self._progress = None


def _count_format(unit: str, known: bool) -> str:
    return ("{task.completed:.0f}/{task.total:.0f} " if known else
            "{task.completed:.0f} ") + unit


class _AboveBar:
    """A text stream for log handlers: each line printed above the live bar, unwrapped (a
    long log line stays one line, as in harness.log) and without markup."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._pending = ""

    def write(self, text: str) -> int:
        *lines, self._pending = (self._pending + text).split("\n")
        for line in lines:
            self.console.print(Text(line), soft_wrap=True)
        return len(text)

    def flush(self) -> None:
        """Lines are printed whole, as they complete."""


@contextlib.contextmanager
def _log_through(real: object, console: Console) -> Iterator[None]:
    """While the bar is up, the console log handlers that write to the real stderr write
    above the bar instead of through it. The file handler (harness.log) is left alone."""
    moved: list[tuple[logging.StreamHandler[Any], Any]] = []
    for handler in logging.getLogger("harness").handlers:
        if type(handler) is logging.StreamHandler and handler.stream is real:
            moved.append((handler, handler.setStream(_AboveBar(console))))
    try:
        yield
    finally:
        for handler, old in moved:
            handler.setStream(old)
