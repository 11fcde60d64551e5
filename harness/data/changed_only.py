# SPDX-License-Identifier: GPL-2.0
"""data/changed-only.toml: which guest tests each path of the tree selects for run
--changed-only, and why."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.data import DATA, read_toml
from harness.errors import UserError

CHANGED_ONLY_FILE = DATA / "changed-only.toml"
# The group name that selects every guest test.
ALL = "all"


@dataclass(frozen=True)
class Group:
    """Guest tests (shell patterns of their names) that exercise one part of the series. A
    pattern <test>/<program> names one program of a ktap test (kselftest-futex/futex_wait)
    rather than the whole test."""

    name: str
    tests: tuple[str, ...]
    why: str

    def holds(self, test: str) -> bool:
        return any(fnmatch.fnmatchcase(test, p) for p in self.tests)

    def programs(self, test: str) -> tuple[str, ...]:
        """The programs of the ktap test that this group names one by one."""
        prefix = test + "/"
        return tuple(p.removeprefix(prefix) for p in self.tests if p.startswith(prefix))


@dataclass(frozen=True)
class PathEntry:
    """A path of the tree (a directory ending in '/', a file, or a shell pattern) and the
    groups a change to it selects."""

    match: str
    selects: tuple[str, ...]
    why: str

    def matches(self, path: str) -> bool:
        if self.match.endswith("/"):
            return path.startswith(self.match)
        return path == self.match or fnmatch.fnmatchcase(path, self.match)


@dataclass(frozen=True)
class ChangeMap:
    groups: dict[str, Group]
    paths: tuple[PathEntry, ...]
    source: Path = CHANGED_ONLY_FILE

    def entry(self, path: str) -> PathEntry | None:
        """The first entry that matches the path; None: the map does not cover it."""
        return next((e for e in self.paths if e.matches(path)), None)


def load_change_map(path: Path = CHANGED_ONLY_FILE) -> ChangeMap:
    """The map; an entry naming an unknown group, or without a why, names the file."""
    raw = read_toml(path)
    groups = {name: Group(name, tuple(g.get("tests", ())), _why(g, f"group {name}", path))
              for name, g in raw.get("groups", {}).items()}
    if ALL in groups:
        raise UserError(f"{path}: group {ALL!r} is reserved (it selects every test)")
    entries = tuple(_entry(e, groups, path) for e in raw.get("paths", []))
    return ChangeMap(groups, entries, path)


def _why(raw: dict[str, Any], what: str, path: Path) -> str:
    why = str(raw.get("why", "")).strip()
    if not why:
        raise UserError(f"{path}: {what} has no why")
    return why


def _entry(raw: dict[str, Any], groups: dict[str, Group], path: Path) -> PathEntry:
    match = str(raw.get("match", ""))
    if not match:
        raise UserError(f"{path}: a [[paths]] entry has no match")
    selects = tuple(raw.get("selects", ()))
    unknown = [g for g in selects if g not in groups and g != ALL]
    if unknown:
        raise UserError(f"{path}: {match} selects {', '.join(unknown)}; the groups are: "
                        f"{', '.join([ALL, *sorted(groups)])}")
    return PathEntry(match, selects, _why(raw, match, path))
