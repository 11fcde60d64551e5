#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Guest runner: runs inside the guest (or on an SSH target), stdlib only.

Follows the plan in the shared read-write directory, runs each test with its own timeout,
and writes each outcome as soon as the test ends, so that a guest that dies mid-run still
leaves the earlier results behind. Progress lines go to /dev/kmsg because in script mode the
guest's stdout may never reach the host. The file layout and markers come from protocol.py,
which the host copies next to this file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import protocol


def progress(text: str) -> None:
    """One marked line where the host can see it; tests on the host point it elsewhere."""
    line = f"{protocol.MARK}{text}\n"
    try:
        with Path(os.environ.get(protocol.PROGRESS_ENV, protocol.PROGRESS_DEFAULT)).open("w") as f:
            f.write(line)
    except OSError:
        sys.stderr.write(line)


def kill_session(sid: int) -> None:
    """Kill every process left in the test's session. The kernel's selftests put each
    test in a process group of its own (setpgrp), out of reach of a group kill, but they
    stay in the session the test started."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid:
                os.kill(int(stat.parent.name), signal.SIGKILL)
        except (OSError, IndexError, ValueError):
            continue


# The session of the test running now, for a SIGTERM to end it with the runner.
RUNNING: list[int] = []


def on_sigterm(signum: int, frame: object) -> None:
    for sid in RUNNING:
        kill_session(sid)
    os._exit(128 + signum)


def run_test(entry: protocol.Entry, plan_id: str) -> protocol.Outcome:
    """Run one test in a session and a fresh empty directory of its own: the guest's root
    is read-only, and some tests (the kernel's futex_wait) create files where they run."""
    start = time.monotonic()
    exit_code: int | None = None
    timed_out = False
    try:
        with tempfile.TemporaryDirectory(prefix="futex-harness.") as cwd:
            proc = subprocess.Popen(entry.argv, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, cwd=cwd, start_new_session=True)
            RUNNING[:] = [proc.pid]
            try:
                out, err = proc.communicate(timeout=entry.timeout)
                exit_code = proc.returncode
            except subprocess.TimeoutExpired:
                timed_out = True
                kill_session(proc.pid)
                out, err = proc.communicate()
            finally:
                kill_session(proc.pid)
                RUNNING.clear()
    except OSError as exc:
        out, err = b"", str(exc).encode()
    stdout = out.decode(errors="backslashreplace")
    return protocol.Outcome(entry.name, entry.argv, exit_code, timed_out, stdout,
                            err.decode(errors="backslashreplace"),
                            protocol.parse_records(stdout),
                            round(time.monotonic() - start, 3), plan_id)


def main() -> int:
    signal.signal(signal.SIGTERM, on_sigterm)
    rwdir = Path(sys.argv[1])
    plan = protocol.read_plan(rwdir)
    protocol.results_dir(rwdir).mkdir(exist_ok=True)
    progress(f"{protocol.STARTED.removeprefix(protocol.MARK)}, {len(plan.entries)} tests, "
             f"kernel {os.uname().release}")
    for entry in plan.entries:
        progress(f"start {entry.name}")
        outcome = run_test(entry, plan.id)
        protocol.write_outcome(rwdir, outcome)
        progress(f"end {entry.name} exit={outcome.exit_code} timed_out={outcome.timed_out}")
    protocol.write_done(rwdir, os.uname().release)
    progress(protocol.FINISHED.removeprefix(protocol.MARK))
    return 0


if __name__ == "__main__":
    sys.exit(main())
