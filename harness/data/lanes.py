# SPDX-License-Identifier: GPL-2.0
"""data/lanes.toml: what each guest test costs in guest seconds, for splitting a suite
across VMs booted side by side, and below what total one VM does it all."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path

from harness.data import DATA, read_toml
from harness.errors import UserError

LANES_FILE = DATA / "lanes.toml"


@dataclass(frozen=True)
class Cost:
    """Guest seconds of the tests whose name matches a shell pattern."""

    pattern: str
    seconds: float


@dataclass(frozen=True)
class LaneCosts:
    # In file order; the first pattern that matches a test's name gives its cost.
    costs: tuple[Cost, ...]
    # A plan whose one-VM time is estimated below this boots one VM: a second boot takes
    # more host time than it would save.
    min_seconds: float

    def seconds(self, name: str) -> float:
        for cost in self.costs:
            if fnmatch.fnmatchcase(name, cost.pattern):
                return cost.seconds
        raise UserError(f"{LANES_FILE}: no pattern of [seconds] matches guest test {name}; "
                        "end the table with \"*\"")


def load_lane_costs(path: Path = LANES_FILE) -> LaneCosts:
    raw = read_toml(path)
    try:
        costs = tuple(Cost(str(p), float(s)) for p, s in raw["seconds"].items())
        min_seconds = float(raw["min_seconds"])
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path}: needs min_seconds and a [seconds] table of pattern = "
                        f"seconds ({exc})") from exc
    if not costs or costs[-1].pattern != "*":
        raise UserError(f"{path}: [seconds] must end with \"*\", the cost of any other test")
    return LaneCosts(costs, min_seconds)
