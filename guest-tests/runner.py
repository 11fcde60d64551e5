#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Guest runner: runs inside the virtme-ng guest, stdlib only.

Reads plan.json from the shared read-write directory, runs each test with its own
timeout, and writes one results/<name>.json per test as soon as it finishes, so that a
guest that dies mid-run still leaves the earlier results behind. Progress lines go to
/dev/kmsg because in script mode the guest's stdout may never reach the host.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# Tests on the host point this elsewhere: the host's own kernel log is not ours to write.
KMSG = os.environ.get("FUTEX_HARNESS_KMSG", "/dev/kmsg")


def kmsg(text: str) -> None:
    try:
        with Path(KMSG).open("w") as f:
            f.write(f"futex-harness: {text}\n")
    except OSError:
        print(f"futex-harness: {text}", file=sys.stderr)


def write_atomic(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)


def parse_records(stdout: str) -> list[dict]:
    records = []
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                records.append(json.loads(line))
    return records


def run_test(test: dict) -> dict:
    start = time.monotonic()
    outcome = {"name": test["name"], "argv": test["argv"], "timed_out": False}
    try:
        proc = subprocess.run(test["argv"], capture_output=True, timeout=test["timeout"])
        outcome["exit_code"] = proc.returncode
        stdout, stderr = proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        outcome.update(timed_out=True, exit_code=None)
        stdout, stderr = exc.stdout or b"", exc.stderr or b""
    except OSError as exc:
        outcome["exit_code"] = None
        stdout, stderr = b"", str(exc).encode()
    outcome["stdout"] = stdout.decode(errors="backslashreplace")
    outcome["stderr"] = stderr.decode(errors="backslashreplace")
    outcome["records"] = parse_records(outcome["stdout"])
    outcome["seconds"] = round(time.monotonic() - start, 3)
    return outcome


def main() -> int:
    rwdir = Path(sys.argv[1])
    plan = json.loads((rwdir / "plan.json").read_text())
    out = rwdir / "results"
    out.mkdir(exist_ok=True)
    kmsg(f"runner started, {len(plan['tests'])} tests, kernel {os.uname().release}")
    for test in plan["tests"]:
        kmsg(f"start {test['name']}")
        outcome = run_test(test)
        write_atomic(out / f"{test['name']}.json", outcome)
        kmsg(f"end {test['name']} exit={outcome['exit_code']} timed_out={outcome['timed_out']}")
    write_atomic(out / "done.json", {"kernel": os.uname().release})
    kmsg("runner finished")
    return 0


if __name__ == "__main__":
    sys.exit(main())
