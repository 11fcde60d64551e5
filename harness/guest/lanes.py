# SPDX-License-Identifier: GPL-2.0
"""Split a plan across VMs booted side by side ("lanes"), one vCPU each.

A second vCPU in one VM would need multi-threaded TCG, under which a vCPU can keep running
an int3 that the kernel's text patching has already replaced (bench/results/
stress-tcg-threads.md). Two single-vCPU VMs give the suite the host's second core without
that: each QEMU translates for one vCPU only. Each lane's runner keeps the classes: its
exclusive tests run with nothing else in that guest.

A lane's time is its exclusive tests one after the other, then the longer of its longest
waits test and its shared tests one after the other (the runner's order). Tests go to
lanes longest first, each to the lane that keeps the whole plan's end earliest, and of
those to the one it adds least to. The costs are data
(data/lanes.toml), not the last boot's times: the same tests always make the same plan."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from harness.data.lanes import LaneCosts
from harness.guest import protocol


def lane_seconds(entries: Sequence[protocol.Entry], cost: Callable[[str], float]) -> float:
    """How long one runner takes over these entries, by their estimated costs."""
    exclusive = sum(cost(e.name) for e in entries
                    if e.run_class not in (protocol.WAITS, protocol.SHARED))
    waits = max((cost(e.name) for e in entries if e.run_class == protocol.WAITS), default=0.0)
    shared = sum(cost(e.name) for e in entries if e.run_class == protocol.SHARED)
    return exclusive + max(waits, shared)


def split(entries: tuple[protocol.Entry, ...], lanes: int,
          costs: LaneCosts) -> tuple[protocol.Entry, ...]:
    """The entries in their order, each with its lane; all in lane 0 when there is one
    lane or the whole plan is estimated under costs.min_seconds."""
    if lanes <= 1 or lane_seconds(entries, costs.seconds) < costs.min_seconds:
        return tuple(e._replace(lane=0) for e in entries)
    placed: list[list[protocol.Entry]] = [[] for _ in range(lanes)]
    lane_of: dict[str, int] = {}
    for entry in sorted(entries, key=lambda e: -costs.seconds(e.name)):
        now = [lane_seconds(p, costs.seconds) for p in placed]
        best = min(range(lanes), key=lambda i: _placing(now, placed, i, entry, costs))
        placed[best].append(entry)
        lane_of[entry.name] = best
    return tuple(e._replace(lane=lane_of[e.name]) for e in entries)


def _placing(now: list[float], placed: list[list[protocol.Entry]], lane: int,
             entry: protocol.Entry, costs: LaneCosts) -> tuple[float, float]:
    """What putting the entry in that lane costs, given each lane's time now: the plan's
    end (the latest lane), then what it adds to the lane. A waits test or a shared one
    often adds nothing to a lane whose longest waits test outlasts it; that lane is the one
    to take it, not a lane that ends sooner without it (futex_wait_uninitialized_heap's 5 s
    of sleep hosts the shared tests)."""
    after = lane_seconds([*placed[lane], entry], costs.seconds)
    others = [t for i, t in enumerate(now) if i != lane]
    return max([after, *others]), after - now[lane]
