#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Guest runner: runs inside the guest (or on an SSH target), stdlib only.

Follows the plan in the shared read-write directory, runs each test with its own timeout,
and writes each outcome as soon as the test ends, so that a guest that dies mid-run still
leaves the earlier results behind. The exclusive tests run first, one by one, with nothing
beside them; then the waits tests start in the background, each in a thread of its own,
and the shared tests run one by one beside them; the runner finishes once every test has.
Progress lines go to /dev/kmsg because in script mode the guest's stdout may never reach
the host. The file layout and markers come from protocol.py,
which the host copies next to this file.

Every boot waits for this file's imports before the first test, so it imports no more than
it needs, and os rather than pathlib, tempfile or shutil (protocol.py says what those cost).
"""

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))  # noqa: PTH120

import protocol


def progress(text: str) -> None:
    """One marked line where the host can see it; tests on the host point it elsewhere."""
    line = f"{protocol.MARK}{text}\n"
    try:
        with open(os.environ.get(protocol.PROGRESS_ENV, protocol.PROGRESS_DEFAULT), "w") as f:  # noqa: PTH123
            f.write(line)
    except OSError:
        sys.stderr.write(line)


def kill_session(sid: int) -> None:
    """Kill every process left in the test's session. The kernel's selftests put each
    test in a process group of its own (setpgrp), out of reach of a group kill, but they
    stay in the session the test started. Plain os calls, not pathlib's glob: the scan runs
    after every test, and the glob takes twice as long (measured on the host)."""
    for pid in os.listdir("/proc"):  # noqa: PTH208 (speed, above)
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:  # noqa: PTH123
                fields = stat.read().rsplit(b")", 1)[1].split()
            if int(fields[3]) == sid:
                os.kill(int(pid), signal.SIGKILL)
        except (OSError, IndexError, ValueError):
            continue


# The sessions of the tests running now, for a SIGTERM to end them with the runner.
RUNNING: set[int] = set()


def on_sigterm(signum: int, frame: object) -> None:
    for sid in list(RUNNING):
        kill_session(sid)
    os._exit(128 + signum)


def work_dir() -> str:
    """A new empty directory for one test, under $TMPDIR or /tmp."""
    base = os.environ.get("TMPDIR", "/tmp")
    for n in range(1000):
        path = os.path.join(base, f"futex-harness.{os.getpid()}.{threading.get_ident()}.{n}")  # noqa: PTH118
        try:
            os.mkdir(path, 0o700)  # noqa: PTH102
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no free futex-harness.* directory in {base}")


def remove_tree(top: str) -> None:
    """Remove what a test left in its directory, and the directory."""
    for root, dirs, files in os.walk(top, topdown=False):
        for name in files:
            os.unlink(os.path.join(root, name))  # noqa: PTH108,PTH118
        for name in dirs:
            path = os.path.join(root, name)  # noqa: PTH118
            if os.path.islink(path):  # noqa: PTH114
                os.unlink(path)  # noqa: PTH108
            else:
                os.rmdir(path)  # noqa: PTH106
    os.rmdir(top)  # noqa: PTH106


def run_test(entry: protocol.Entry, plan_id: str) -> protocol.Outcome:
    """Run one test in a session and a fresh empty directory of its own: the guest's root
    is read-only, and some tests (the kernel's futex_wait) create files where they run."""
    start = time.monotonic()
    exit_code: int | None = None
    timed_out = False
    try:
        cwd = work_dir()
        try:
            proc = subprocess.Popen(entry.argv, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, cwd=cwd, start_new_session=True)
            RUNNING.add(proc.pid)
            try:
                out, err = proc.communicate(timeout=entry.timeout)
                exit_code = proc.returncode
            except subprocess.TimeoutExpired:
                timed_out = True
                kill_session(proc.pid)
                out, err = proc.communicate()
            finally:
                kill_session(proc.pid)
                RUNNING.discard(proc.pid)
        finally:
            # Best effort: what a test leaves in the guest's /tmp must not cost its outcome.
            with contextlib.suppress(OSError):
                remove_tree(cwd)
    except OSError as exc:
        out, err = b"", str(exc).encode()
    stdout = out.decode(errors="backslashreplace")
    return protocol.Outcome(entry.name, entry.argv, exit_code, timed_out, stdout,
                            err.decode(errors="backslashreplace"),
                            protocol.parse_records(stdout),
                            round(time.monotonic() - start, 3), plan_id)


def record(rwdir: str, entry: protocol.Entry, plan_id: str) -> None:
    """Run one test and write its outcome, between its start and end progress lines."""
    progress(f"start {entry.name}")
    outcome = run_test(entry, plan_id)
    protocol.write_outcome(rwdir, outcome)
    progress(f"end {entry.name} exit={outcome.exit_code} timed_out={outcome.timed_out}")


def of_class(plan: protocol.Plan, run_class: str) -> list[protocol.Entry]:
    return [e for e in plan.entries if e.run_class == run_class]


def run_plan(rwdir: str, plan: protocol.Plan) -> None:
    """Exclusive tests alone; then the waits tests in the background, the shared ones one
    by one beside them. A class the runner does not know runs alone, like exclusive."""
    alone = [e for e in plan.entries if e.run_class not in (protocol.WAITS, protocol.SHARED)]
    for entry in alone:
        record(rwdir, entry, plan.id)
    background = [threading.Thread(target=record, args=(rwdir, e, plan.id))
                  for e in of_class(plan, protocol.WAITS)]
    for thread in background:
        thread.start()
    for entry in of_class(plan, protocol.SHARED):
        record(rwdir, entry, plan.id)
    for thread in background:
        thread.join()


def main() -> int:
    """runner.py <rwdir> [<lane>]: the whole plan, or one lane's tests when the host split
    the plan across VMs booted side by side."""
    signal.signal(signal.SIGTERM, on_sigterm)
    rwdir = sys.argv[1]
    lane = int(sys.argv[2]) if len(sys.argv) > 2 else None
    plan = protocol.read_plan(rwdir).in_lane(lane)
    fast = plan.from_bin_copy(rwdir)
    protocol.make_results_dir(rwdir)
    where = plan.bin_copy if fast is not plan else os.path.join(rwdir, protocol.BIN)  # noqa: PTH118
    of_lane = "" if lane is None else f" of lane {lane}"
    progress(f"{protocol.STARTED.removeprefix(protocol.MARK)}, {len(plan.entries)} tests"
             f"{of_lane}, kernel {os.uname().release}, programs from {where}")
    plan = fast
    run_plan(rwdir, plan)
    protocol.write_done(rwdir, os.uname().release, lane)
    progress(protocol.FINISHED.removeprefix(protocol.MARK))
    return 0


if __name__ == "__main__":
    sys.exit(main())
