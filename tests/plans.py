# SPDX-License-Identifier: GPL-2.0
"""Plans of shell-script tests, laid out through the protocol module as guest.plan lays
out real ones: the runner and protocol.py in bin/, one script per test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from elf_fixtures import ALT_7_3

from harness.data import GUEST_TESTS
from harness.data.guest_tests import GuestTest
from harness.guest.plan import PROTOCOL_SOURCE, GuestPlan, protocol
from harness.verdicts.checks import Verdict
from harness.verdicts.counters import judge

# Stand-ins for vng and QEMU (tests/conftest.py's fake_vng puts them first on PATH).
FAKEBIN = Path(__file__).resolve().parent / "fakebin"
GOOD = "echo '{\"check\": \"%s\", \"hits\": 5, \"bad\": 0}'\n"


def gtest(name: str, timeout: float = 2) -> GuestTest:
    return GuestTest(name=name, sources=(), cflags=(), image="vdso64",
                     entry="list64", args=(), timeout=timeout, require=("hits",),
                     fail_if=("bad",))


def script_plan(tmp_path: Path, scripts: dict[str, str],
                timeouts: dict[str, float] | None = None, suite_timeout: float = 2,
                out_arg: bool = False) -> GuestPlan:
    """timeouts are the runner's per-test ones; suite_timeout feeds the whole-suite limit.
    With out_arg every script gets --out <its extra file> as $1 $2."""
    rwdir = tmp_path / "rw"
    bin_dir = rwdir / protocol.BIN
    bin_dir.mkdir(parents=True, exist_ok=True)  # a reused run directory
    runner = bin_dir / protocol.RUNNER
    shutil.copyfile(GUEST_TESTS / protocol.RUNNER, runner)
    shutil.copyfile(PROTOCOL_SOURCE, bin_dir / PROTOCOL_SOURCE.name)
    entries = []
    for name, body in scripts.items():
        exe = bin_dir / name
        exe.write_text("#!/bin/sh\n" + body)
        exe.chmod(0o755)
        extra = ("--out", str(protocol.extra_path(rwdir, name))) if out_arg else ()
        entries.append(protocol.Entry(name, (str(exe), *extra),
                                      (timeouts or {}).get(name, 2)))
    plan = protocol.Plan(tuple(entries))
    protocol.write_plan(rwdir, plan)
    planned = tuple(gtest(n, suite_timeout) for n in scripts)
    entries_for_limit = tuple(protocol.Entry(e.name, e.argv, suite_timeout) for e in entries)
    return GuestPlan(rwdir, runner, planned, (), entries_for_limit, alt_layout=ALT_7_3)


def verdicts(plan: GuestPlan) -> dict[str, Verdict]:
    outcomes = protocol.read_outcomes(plan.rwdir)
    return {t.name: judge(t, outcomes.get(t.name)).verdict for t in plan.planned}


def run_runner(rwdir: Path, lane: int | None = None) -> None:
    """The real guest runner over rwdir's plan (or one lane of it), on the host, as the
    guest would run it."""
    env = {**os.environ, protocol.PROGRESS_ENV: "/dev/stderr"}
    lane_arg = [] if lane is None else [str(lane)]
    subprocess.run([sys.executable, "-S", "-c", protocol.RUN_RUNNER, str(rwdir / protocol.BIN),
                    str(rwdir), *lane_arg], check=True, env=env, capture_output=True,
                   timeout=60)
