# SPDX-License-Identifier: GPL-2.0
"""A suite split across VMs booted side by side: which test goes to which lane, the
runner of one lane, and a boot of two fake VMs whose results and consoles all count."""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from plans import GOOD, run_runner, verdicts
from plans import script_plan as make_plan
from test_runner_classes import intervals, plan

from harness.backends import BackendConfig
from harness.backends import vng as boot
from harness.data import guest_tests
from harness.data.lanes import Cost, LaneCosts, load_lane_costs
from harness.data.settings import load_settings
from harness.errors import UserError
from harness.guest import lanes, protocol
from harness.guest.plan import GuestPlan
from harness.orchestration import pipeline
from harness.verdicts.checks import Verdict
from harness.verdicts.console import consoles_check


def costs(**seconds: float) -> LaneCosts:
    return LaneCosts((*(Cost(n, s) for n, s in seconds.items()), Cost("*", 0.1)), 1.0)


def entry(name: str, run_class: str = protocol.SHARED) -> protocol.Entry:
    return protocol.Entry(name, (name,), 10, run_class)


def by_lane(entries: tuple[protocol.Entry, ...]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for e in entries:
        out.setdefault(e.lane, []).append(e.name)
    return out


def test_a_lane_takes_its_exclusive_tests_then_the_longer_of_waits_and_shared() -> None:
    cost = costs(x=2, w=5, s=1).seconds
    tests = [entry("x", protocol.EXCLUSIVE), entry("w", protocol.WAITS), entry("s"),
             entry("s")]
    assert lanes.lane_seconds(tests, cost) == 2 + 5
    assert lanes.lane_seconds([entry("s")] * 8, cost) == 8


def test_one_lane_or_a_short_plan_stays_in_one_vm() -> None:
    tests = (entry("a"), entry("b"), entry("c"))
    assert set(by_lane(lanes.split(tests, 1, costs(a=5, b=5, c=5)))) == {0}
    # 0.3 s in all, under the 1 s below which a second boot costs more than it saves.
    assert set(by_lane(lanes.split(tests, 2, costs()))) == {0}


def test_the_lanes_end_close_together_and_keep_the_plan_order() -> None:
    tests = (entry("x1", protocol.EXCLUSIVE), entry("kill1"), entry("w-long", protocol.WAITS),
             entry("py1"), entry("x2", protocol.EXCLUSIVE), entry("kill2"), entry("py2"))
    table = costs(**{"x*": 3, "kill*": 2, "w-long": 6, "py*": 2})
    split = lanes.split(tests, 2, table)
    assert [e.name for e in split] == [e.name for e in tests]
    ends = [lanes.lane_seconds([e for e in split if e.lane == n], table.seconds)
            for n in (0, 1)]
    # One VM would take 6 (exclusive) + max(6, 8) = 14 s.
    assert max(ends) <= 8, by_lane(split)
    assert lanes.split(tests, 2, table) == split


def test_a_long_sleeper_hosts_the_other_sleepers_and_the_shared_tests() -> None:
    """The lane that sleeps longest takes the tests it can run beside its sleep for nothing;
    the rule of "the lane that ends soonest with it" put the second sleeper in the other
    lane, which then ended 5 s later than it had to."""
    seconds = {"numa": 10, "heap": 5, "py": 3, "fuzz": 2, "x1": 2, "x2": 2, "x3": 2}
    tests = (entry("numa", protocol.WAITS), entry("heap", protocol.WAITS), entry("py"),
             entry("fuzz"), *(entry(f"x{i}", protocol.EXCLUSIVE) for i in (1, 2, 3)))
    placed = by_lane(lanes.split(tests, 2, costs(**seconds)))
    assert placed == {0: ["numa", "heap", "py", "fuzz"], 1: ["x1", "x2", "x3"]}


def test_a_test_the_cost_table_does_not_match_is_an_error_naming_the_file(
        tmp_path: Path) -> None:
    with pytest.raises(UserError, match="end the table"):
        LaneCosts((Cost("kill-*", 1),), 1).seconds("py-unlock")
    bad = tmp_path / "lanes.toml"
    bad.write_text('min_seconds = 5\n[seconds]\n"kill-*" = 1\n')
    with pytest.raises(UserError, match=r"lanes.toml.*must end with"):
        load_lane_costs(bad)


def test_every_shipped_guest_test_has_a_cost_of_its_own() -> None:
    """A new test is placed by a measured cost, not by the catch-all's guess."""
    table = load_lane_costs()
    catch_all = dataclasses.replace(table, costs=table.costs[:-1])
    for test in guest_tests.load_guest_tests():
        if test.suite == "default" and test.kind != "ktap":
            catch_all.seconds(test.name)


def test_a_plan_keeps_its_lanes_through_its_file() -> None:
    plan = protocol.Plan((entry("a")._replace(lane=1), entry("b")))
    again = protocol.Plan.from_json(plan.to_json())
    assert again == plan and again.lanes == (0, 1)
    assert [e.name for e in again.in_lane(1).entries] == ["a"]
    assert again.in_lane(None) is again
    assert again.timeout(1) == 10 and again.timeout() == 20
    # The host's plan asks the runner's: one owner for lanes and their timeouts.
    host = GuestPlan(Path("rw"), Path("runner.py"), (), (), entries=plan.entries)
    assert host.lanes == (0, 1) and host.lane_timeout(1) == 10 and host.total_timeout == 20
    assert GuestPlan(Path("rw"), Path("runner.py"), (), ()).lanes == (0,)


def test_the_runner_of_a_lane_runs_that_lane_alone(tmp_path: Path) -> None:
    rwdir = plan(tmp_path, [("a", "shared", 0), ("b", "exclusive", 0), ("c", "waits", 0)])
    whole = protocol.read_plan(rwdir)
    protocol.write_plan(rwdir, protocol.Plan(
        tuple(e._replace(lane=1 if e.name == "b" else 0) for e in whole.entries), whole.id))
    run_runner(rwdir, lane=1)
    assert set(intervals(tmp_path)) == {"b"}
    assert set(protocol.read_outcomes(rwdir)) == {"b"}
    assert protocol.done_path(rwdir, 1).is_file() and not protocol.done_path(rwdir).exists()
    run_runner(rwdir, lane=0)
    assert set(protocol.read_outcomes(rwdir)) == {"a", "b", "c"}


def two_lanes(tmp_path: Path) -> GuestPlan:
    """Four sleeping scripts, two to a lane: side by side they take 1 s, one VM 2 s."""
    guest = make_plan(tmp_path, {n: "sleep 0.5\n" + GOOD % n for n in ("a", "b", "c", "d")})
    written = protocol.read_plan(guest.rwdir)
    split = tuple(e._replace(lane=i % 2) for i, e in enumerate(written.entries))
    protocol.write_plan(guest.rwdir, written._replace(entries=split))
    entries = tuple(e._replace(lane=i % 2) for i, e in enumerate(guest.entries))
    return dataclasses.replace(guest, entries=entries)


def request(tmp_path: Path, guest: GuestPlan) -> boot.BootRequest:
    return boot.BootRequest(tmp_path / "bzImage", guest, tmp_path / "logs", tmp_path / "cache",
                            "tcg", 20, 2, "1G", 1, sys.executable)


def test_two_lanes_boot_two_vms_at_once_and_every_result_comes_back(
        tmp_path: Path, fake_vng: Path) -> None:
    guest = two_lanes(tmp_path)
    (tmp_path / "logs").mkdir()
    booted = boot.boot_lanes(request(tmp_path, guest))
    assert len(booted) == 2 and all(b.runner_finished for b in booted)
    assert [b.console.name for b in booted] == ["console.log", "console-lane1.log"]
    argv = fake_vng.read_text().splitlines()
    assert sorted(line.rsplit(" ", 1)[-1].strip("'") for line in argv) == ["0", "1"]
    # Side by side: both VMs' 1 s of tests end well before 2 s one after the other would.
    assert max(b.seconds for b in booted) < 1.9
    outcomes = protocol.read_outcomes(guest.rwdir)
    assert set(outcomes) == {"a", "b", "c", "d"}
    assert all(protocol.done_path(guest.rwdir, lane).is_file() for lane in (0, 1))


def test_a_lane_whose_vm_dies_leaves_the_suite_unfinished_and_its_console_fails_it(
        tmp_path: Path, fake_vng: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_VNG_MODE", "panic-lane1")
    guest = two_lanes(tmp_path)
    (tmp_path / "logs").mkdir()
    booted = boot.boot_lanes(request(tmp_path, guest))
    assert [b.runner_finished for b in booted] == [True, False]
    assert set(protocol.read_outcomes(guest.rwdir)) == {"a", "c"}
    # The dead lane's tests are not lost among the other lane's passes.
    assert verdicts(guest) == {"a": Verdict.PASS, "b": Verdict.ERROR, "c": Verdict.PASS,
                               "d": Verdict.ERROR}
    check = consoles_check(tuple(b.console for b in booted))
    assert check.verdict == Verdict.FAIL and "console-lane1.log" in check.detail


def test_a_report_in_any_console_fails_the_console_check(tmp_path: Path) -> None:
    clean = "[    0.000000] Linux version 7.3.4\n[    1.0] futex-harness: runner finished\n"
    splat = clean + "[    2.000000] BUG: kernel NULL pointer dereference, address: 0\n"
    paths = []
    for name, text in (("console.log", clean), ("console-lane1.log", splat)):
        paths.append(tmp_path / name)
        paths[-1].write_text(text)
    assert consoles_check((paths[0],)).verdict == Verdict.PASS
    failed = consoles_check(tuple(paths))
    assert failed.verdict == Verdict.FAIL and failed.detail.startswith("console-lane1.log: ")
    missing = consoles_check((paths[1], tmp_path / "console-lane2.log"))
    assert missing.verdict == Verdict.FAIL, "a kernel report outranks a missing log"
    assert consoles_check((paths[0], tmp_path / "none.log")).verdict == Verdict.ERROR


def test_lanes_are_one_on_a_target_and_never_more_than_the_cores(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    settings = load_settings()
    req = pipeline.RunRequest(settings, Path("run"), Path("cache"), (), "upstream", {}, 1,
                              BackendConfig(settings, Path("cache")))
    assert pipeline._lanes(req, "default") == 2
    assert pipeline._lanes(dataclasses.replace(req, lanes=8), "default") == 2
    assert pipeline._lanes(dataclasses.replace(req, lanes=1), "default") == 1
    on_target = dataclasses.replace(req, backend=dataclasses.replace(req.backend,
                                                                     target="ssh://h"))
    assert pipeline._lanes(on_target, "default") == 1
    assert pipeline._lanes(req, "stress") == 1


def test_a_run_that_ends_while_the_lanes_run_takes_their_vms_down(
        tmp_path: Path, fake_vng: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run's limit is a signal in the main thread: the VMs of the lanes, each waited
    for in a thread of its own, must not run on to their own timeouts."""
    monkeypatch.setenv("FAKE_VNG_MODE", "hang")
    guest = two_lanes(tmp_path)
    (tmp_path / "logs").mkdir()

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError("the run went past its limit")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    start = time.monotonic()
    try:
        with pytest.raises(TimeoutError):
            boot.boot_lanes(request(tmp_path, guest))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    # The hanging VMs would take 20 s (their boot timeout) without the stop.
    assert time.monotonic() - start < 6
