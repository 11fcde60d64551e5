# SPDX-License-Identifier: GPL-2.0
"""The guest runner's schedule, on the host with shell-script tests: an exclusive test never
overlaps another, the waits tests run in the background beside the shared ones, and every
test still leaves one outcome, its timeout kept."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from plans import run_runner

from harness.data import GUEST_TESTS
from harness.guest.plan import PROTOCOL_SOURCE, protocol

# Each script logs when it starts and ends (a shell of its own, so a clock read by date).
SCRIPT = """#!/bin/sh
echo "$(date +%s.%N) start {name}" >> {log}
sleep {sleep}
echo "$(date +%s.%N) end {name}" >> {log}
echo '{{"check": "{name}", "hits": 1}}'
"""


def plan(tmp_path: Path, tests: list[tuple[str, str, float]], timeout: float = 10) -> Path:
    """A plan of (name, class, seconds asleep) in that order; returns the rwdir."""
    rwdir = tmp_path / "rw"
    bin_dir = rwdir / protocol.BIN
    bin_dir.mkdir(parents=True)
    shutil.copyfile(GUEST_TESTS / protocol.RUNNER, bin_dir / protocol.RUNNER)
    shutil.copyfile(PROTOCOL_SOURCE, bin_dir / PROTOCOL_SOURCE.name)
    entries = []
    for name, run_class, sleep in tests:
        exe = bin_dir / name
        exe.write_text(SCRIPT.format(name=name, log=tmp_path / "log", sleep=sleep))
        exe.chmod(0o755)
        entries.append(protocol.Entry(name, (str(exe),), timeout, run_class))
    protocol.write_plan(rwdir, protocol.Plan(tuple(entries)))
    return rwdir


def intervals(tmp_path: Path) -> dict[str, tuple[float, float]]:
    times: dict[str, dict[str, float]] = {}
    for line in (tmp_path / "log").read_text().splitlines():
        when, what, name = line.split()
        times.setdefault(name, {})[what] = float(when)
    return {name: (t["start"], t.get("end", float("inf"))) for name, t in times.items()}


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


# Interleaved on purpose: the plan's order must not decide what overlaps what.
MIXED = [("s1", "shared", 0.3), ("w1", "waits", 1.5), ("x1", "exclusive", 0.2),
         ("s2", "shared", 0.3), ("w2", "waits", 1.0), ("x2", "exclusive", 0.2),
         ("s3", "shared", 0.3)]


def test_exclusive_tests_overlap_nothing_and_waits_run_beside_shared(tmp_path: Path) -> None:
    rwdir = plan(tmp_path, MIXED)
    run_runner(rwdir)
    spans = intervals(tmp_path)
    assert set(spans) == {name for name, _, _ in MIXED}
    for name in ("x1", "x2"):
        others = [n for n in spans if n != name]
        assert not any(overlap(spans[name], spans[n]) for n in others), (name, spans)
    shared = ("s1", "s2", "s3")
    assert not any(overlap(spans[a], spans[b]) for a in shared for b in shared if a < b)
    assert overlap(spans["w1"], spans["w2"])
    assert all(overlap(spans["w1"], spans[s]) for s in shared)
    outcomes = protocol.read_outcomes(rwdir)
    assert set(outcomes) == set(spans)
    assert all(o.exit_code == 0 and o.records for o in outcomes.values())
    assert protocol.done_path(rwdir).is_file()


def test_the_plan_order_holds_within_a_class(tmp_path: Path) -> None:
    run_runner(plan(tmp_path, MIXED))
    spans = intervals(tmp_path)
    assert spans["x1"][1] <= spans["x2"][0]
    assert spans["s1"][1] <= spans["s2"][0] <= spans["s2"][1] <= spans["s3"][0]
    # The exclusive tests come first: nothing else had started by the time they ended.
    assert max(spans[x][1] for x in ("x1", "x2")) <= min(
        spans[n][0] for n in spans if not n.startswith("x"))


def test_a_background_test_keeps_its_timeout(tmp_path: Path) -> None:
    rwdir = plan(tmp_path, [("w", "waits", 30), ("s", "shared", 0.1)], timeout=1)
    run_runner(rwdir)
    outcomes = protocol.read_outcomes(rwdir)
    assert outcomes["w"].timed_out and outcomes["w"].exit_code is None
    assert outcomes["w"].seconds < 10
    assert not outcomes["s"].timed_out and outcomes["s"].exit_code == 0


def test_a_class_the_runner_does_not_know_runs_alone(tmp_path: Path) -> None:
    rwdir = plan(tmp_path, [("w", "waits", 0.5), ("odd", "later", 0.2), ("s", "shared", 0.2)])
    run_runner(rwdir)
    spans = intervals(tmp_path)
    assert not overlap(spans["odd"], spans["w"]) and not overlap(spans["odd"], spans["s"])


# The copy of bin/ outside the shared directory (protocol.bin_copy_dir): each test script
# says which directory it was run from.
WHERE = """#!/bin/sh
echo '{{"check": "{name}", "from_copy": '"$(case "$0" in {copy}/*) echo 1;; *) echo 0;; esac)"'}}'
"""


def copy_plan(tmp_path: Path) -> tuple[Path, protocol.Plan]:
    rwdir = tmp_path / "rw"
    bin_dir = rwdir / protocol.BIN
    bin_dir.mkdir(parents=True)
    shutil.copyfile(GUEST_TESTS / protocol.RUNNER, bin_dir / protocol.RUNNER)
    shutil.copyfile(PROTOCOL_SOURCE, bin_dir / PROTOCOL_SOURCE.name)
    exe = bin_dir / "t"
    exe.write_text(WHERE.format(name="t", copy=protocol.bin_copy_dir(rwdir)))
    exe.chmod(0o755)
    plan = protocol.Plan((protocol.Entry("t", (str(exe), "--data", str(bin_dir / "x")), 10),))
    return rwdir, plan


def ran_from_copy(rwdir: Path) -> bool:
    outcome = protocol.read_outcomes(rwdir)["t"]
    assert outcome.exit_code == 0, outcome
    return bool(outcome.records[0]["from_copy"])


def test_the_runner_runs_the_programs_from_the_copy_made_for_its_plan(tmp_path: Path) -> None:
    rwdir, plan = copy_plan(tmp_path)
    copy = protocol.make_bin_copy(rwdir, plan.id)
    protocol.write_plan(rwdir, plan._replace(bin_copy=str(copy)))
    run_runner(rwdir)
    assert ran_from_copy(rwdir)
    argv = protocol.read_outcomes(rwdir)["t"].argv
    assert argv == (str(copy / "t"), "--data", str(copy / "x"))
    # Hard links: the copy costs no bytes.
    assert (copy / "t").stat().st_ino == (rwdir / protocol.BIN / "t").stat().st_ino


def test_a_copy_left_by_another_plan_or_none_at_all_is_not_used(tmp_path: Path) -> None:
    rwdir, plan = copy_plan(tmp_path)
    copy = protocol.make_bin_copy(rwdir, "an-earlier-plan")
    protocol.write_plan(rwdir, plan._replace(bin_copy=str(copy)))
    run_runner(rwdir)
    assert not ran_from_copy(rwdir)
    # A guest that does not see the copy (another root, an SSH target).
    shutil.rmtree(copy)
    protocol.write_plan(rwdir, plan._replace(bin_copy=str(copy)))
    run_runner(rwdir)
    assert not ran_from_copy(rwdir)


# What the runner imports: every boot waits for it before the first test.
SLOW_IMPORTS = ("dataclasses", "inspect", "pathlib", "shutil", "tempfile", "typing_extensions")
IMPORTED = """import sys
sys.path.insert(0, sys.argv[1])
before = set(sys.modules)
import runner
print(" ".join(sorted(set(sys.modules) - before)))
"""


def test_the_runner_imports_none_of_the_slow_modules(tmp_path: Path) -> None:
    """Under TCG these took 0.47 s of the runner's start (bench/results/boot-time.md): a
    change that brings one back into the guest, through the runner or protocol.py, fails."""
    shutil.copyfile(GUEST_TESTS / protocol.RUNNER, tmp_path / protocol.RUNNER)
    shutil.copyfile(PROTOCOL_SOURCE, tmp_path / PROTOCOL_SOURCE.name)
    done = subprocess.run(["/usr/bin/python3", "-S", "-c", IMPORTED, str(tmp_path)],
                          capture_output=True, text=True, check=True)
    imported = set(done.stdout.split())
    assert "protocol" in imported and "subprocess" in imported
    assert imported.isdisjoint(SLOW_IMPORTS), sorted(imported.intersection(SLOW_IMPORTS))
