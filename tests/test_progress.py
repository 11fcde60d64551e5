# SPDX-License-Identifier: GPL-2.0
"""The progress view: ETA arithmetic, the plain lines, the history file, and the live bar on
a real pseudo-terminal with log lines printed above it."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_tree import fake_tree
from test_build import request

from harness import progress
from harness.progress import History, Meter, duration, eta, status_line
from harness.stages.build import build

ROOT = Path(__file__).resolve().parent.parent


def test_duration() -> None:
    assert [duration(s) for s in (0, 42.4, 60, 410, 3599, 3720)] == [
        "0s", "42s", "1m00s", "6m50s", "59m59s", "1h02m"]


def test_eta_without_history_is_unknown() -> None:
    assert eta(10, 5.0, None) is None


def test_eta_counts_the_last_duration_down_before_the_first_object() -> None:
    assert eta(0, 30.0, History(100, 100.0)) == 70.0


def test_eta_blends_history_and_rate_by_the_fraction_done() -> None:
    # Half done after 40 s of a step that took 100 s: history says 60 s, rate says 40 s.
    assert eta(50, 40.0, History(100, 100.0)) == pytest.approx(50.0)
    # Nearly done, at this run's rate: 90 done in 90 s, 10 to go.
    assert eta(90, 90.0, History(100, 200.0)) == pytest.approx(0.1 * 110 + 0.9 * 10)


def test_eta_unknown_past_every_estimate() -> None:
    assert eta(0, 150.0, History(100, 100.0)) is None
    assert eta(100, 150.0, History(100, 100.0)) is None


def test_timed_step_eta_is_the_last_duration_left() -> None:
    assert eta(0, 20.0, History(0, 52.0)) == 32.0


def test_status_lines() -> None:
    assert status_line("build", "objects", 1209, 393.0, History(2460, 800.0)) == \
        "build: 1209/2460 objects (49%), 393s, ETA 6m47s"
    assert status_line("build", "objects", 1209, 393.0, None) == \
        "build: 1209 objects, 393s (no earlier build here to estimate from)"
    # A bigger build than the last: the count grows past it, never 100% while running.
    assert status_line("build", "objects", 3000, 900.0, History(2460, 800.0)) == \
        "build: 3000/3000 objects (99%), 900s, ETA unknown"
    assert status_line("boot", "", 0, 30.0, History(0, 52.0)) == \
        "boot: 30s, ETA 22s (the last boot took 52s)"
    assert status_line("boot", "", 0, 30.0, None) == \
        "boot: 30s (no earlier boot here to estimate from)"


def test_history_round_trip_keeps_other_steps(tmp_path: Path) -> None:
    path = progress.history_file(tmp_path / "build" / "tree-lean")
    assert path == tmp_path / "build" / "tree-lean.history.json"
    assert progress.load_history(path, "build-full") is None
    progress.save_history(path, "build-full", History(2053, 434.6))
    progress.save_history(path, "boot", History(0, 51.0))
    assert progress.load_history(path, "build-full") == History(2053, 434.6)
    assert progress.load_history(path, "boot") == History(0, 51.0)
    path.write_text("{not json")
    assert progress.load_history(path, "boot") is None
    progress.save_history(path, "boot", History(0, 50.0))
    assert progress.load_history(path, "boot") == History(0, 50.0)


def test_plain_lines_every_interval(caplog: pytest.LogCaptureFixture) -> None:
    assert not Meter("build", None).live  # pytest's captured stderr is no terminal
    caplog.set_level(logging.INFO, logger="harness")
    with Meter("build", History(10, 1.0), "objects", live=False, interval=0.2) as meter:
        meter.advance(4)
        time.sleep(1.3)
    lines = [r.getMessage() for r in caplog.records]
    assert lines and all(re.fullmatch(r"build: 4/10 objects \(40%\), \ds, ETA \S+", line)
                         for line in lines), lines


def test_build_writes_its_history(tmp_path: Path) -> None:
    req = request(tmp_path, fake_tree(tmp_path))
    build(req)
    history = progress.history_file(req.build_dir)
    full = progress.load_history(history, "build-full")
    assert full is not None and full.count == 1
    (req.build_dir / "vmlinux").write_text("")
    (req.build_dir / ".config").write_text("CONFIG_FUTEX=y\nCONFIG_RSEQ=y\n")
    build(req)
    incremental = progress.load_history(history, "build-incremental")
    assert incremental is not None and incremental.count == 1


LIVE = """\
import logging, sys, time
from harness import progress
log = logging.getLogger("harness")
log.setLevel(logging.DEBUG)
console = logging.StreamHandler(sys.stderr)
console.setLevel(logging.INFO)
log.addHandler(console)
log.addHandler(logging.FileHandler(sys.argv[1]))
with progress.Meter("build", progress.History(20, 2.0), "objects", interval=0.3) as meter:
    for i in range(20):
        meter.advance()
        time.sleep(0.05)
        if i == 5:
            log.info("a log line while the bar is up")
        if i == 6:
            log.info("a long line " + "x" * 150 + " [bold]not markup[/bold]")
log.info("after the bar")
"""


def test_live_bar_on_a_terminal_keeps_the_log_lines(tmp_path: Path) -> None:
    """A real pseudo-terminal: rich draws the bar, log lines land above it whole, and
    harness.log gets the plain progress lines."""
    primary, secondary = os.openpty()
    log_file = tmp_path / "harness.log"
    proc = subprocess.Popen([sys.executable, "-c", LIVE, str(log_file)], cwd=ROOT,
                            stdout=secondary, stderr=secondary, env={**os.environ,
                                                                     "TERM": "xterm"})
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert proc.wait(timeout=30) == 0
    os.close(primary)
    screen = b"".join(chunks).decode(errors="replace")
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen).replace("\r", "\n")
    assert "━" in plain and "/20 objects" in plain
    assert "\na log line while the bar is up\n" in plain
    assert "\na long line " + "x" * 150 + " [bold]not markup[/bold]\n" in plain
    assert plain.rstrip().endswith("after the bar")
    assert "Traceback" not in plain
    written = log_file.read_text()
    assert "a log line while the bar is up" in written
    assert re.search(r"build: \d+/20 objects \(\d+%\)", written)
