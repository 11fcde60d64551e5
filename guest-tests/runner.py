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


def run_test(entry: protocol.Entry) -> protocol.Outcome:
    """Run one test in a fresh empty directory of its own: the guest's root is read-only,
    and some tests (the kernel's futex_wait) create files where they run."""
    start = time.monotonic()
    exit_code: int | None = None
    timed_out = False
    try:
        with tempfile.TemporaryDirectory(prefix="futex-harness.") as cwd:
            proc = subprocess.run(entry.argv, capture_output=True, timeout=entry.timeout,
                                  cwd=cwd)
        exit_code, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        timed_out = True
        out, err = exc.stdout or b"", exc.stderr or b""
    except OSError as exc:
        out, err = b"", str(exc).encode()
    stdout = out.decode(errors="backslashreplace")
    return protocol.Outcome(entry.name, entry.argv, exit_code, timed_out, stdout,
                            err.decode(errors="backslashreplace"),
                            protocol.parse_records(stdout),
                            round(time.monotonic() - start, 3))


def main() -> int:
    rwdir = Path(sys.argv[1])
    plan = protocol.read_plan(rwdir)
    protocol.results_dir(rwdir).mkdir(exist_ok=True)
    progress(f"{protocol.STARTED.removeprefix(protocol.MARK)}, {len(plan.entries)} tests, "
             f"kernel {os.uname().release}")
    for entry in plan.entries:
        progress(f"start {entry.name}")
        outcome = run_test(entry)
        protocol.write_outcome(rwdir, outcome)
        progress(f"end {entry.name} exit={outcome.exit_code} timed_out={outcome.timed_out}")
    protocol.write_done(rwdir, os.uname().release)
    progress(protocol.FINISHED.removeprefix(protocol.MARK))
    return 0


if __name__ == "__main__":
    sys.exit(main())
