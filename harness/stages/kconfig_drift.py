# SPDX-License-Identifier: GPL-2.0
"""Option drift between kernel releases: a request fitted to the options a tree has. An
option asked off that the tree lacks is off already; a renamed one takes the tree's name
(data/kconfig-renames.toml); one asked on that the tree lacks stays an error."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from harness.data import DATA, read_toml
from harness.errors import UserError

# An option's name (without CONFIG_) to its value: y, m, n or a string.
Config = dict[str, str]

RENAMES_FILE = DATA / "kconfig-renames.toml"


@dataclass(frozen=True)
class Rename:
    """One option under every name it has had; a fragment may use any of them."""

    names: tuple[str, ...]
    why: str


@dataclass(frozen=True)
class Resolution:
    """How the requested options fit one tree's Kconfig symbols."""

    # Optional options (the series') the tree lacks: dropped from the request.
    absent: tuple[str, ...] = ()
    # Options asked off that the tree lacks: off already.
    gone: tuple[str, ...] = ()
    # (name in the fragments, the tree's name for it).
    renamed: tuple[tuple[str, str], ...] = ()

    def apply(self, wanted: Config) -> Config:
        """The request in the tree's names, without what the tree lacks."""
        names = dict(self.renamed)
        dropped = set(self.absent) | set(self.gone)
        return {names.get(k, k): v for k, v in wanted.items() if k not in dropped}


def load_renames(path: Path = RENAMES_FILE) -> tuple[Rename, ...]:
    """The options that go by other names in other releases (data/kconfig-renames.toml)."""
    renames: list[Rename] = []
    seen: set[str] = set()
    for number, entry in enumerate(read_toml(path).get("option", []), 1):
        names = entry.get("names", [])
        if len(names) < 2 or not entry.get("why"):
            raise UserError(f"{path}: option {number} needs two or more names and a why")
        if seen & set(names):
            raise UserError(f"{path}: {', '.join(sorted(seen & set(names)))} in two entries")
        seen |= set(names)
        renames.append(Rename(tuple(names), entry["why"]))
    return tuple(renames)


def resolve(wanted: Config, symbols: Collection[str], optional: Collection[str] = (),
            renames: tuple[Rename, ...] = ()) -> tuple[Resolution, tuple[str, ...]]:
    """Fit the request to a tree's symbols: a name the tree lacks takes the tree's name for
    that option if it has one; else an optional option is dropped (absent), and an option
    asked off is off already (gone). Returns the rest too: options asked on the tree lacks."""
    absent = tuple(sorted(n for n in optional if _tree_name(n, symbols, renames) is None))
    gone: list[str] = []
    missing: list[str] = []
    renamed: list[tuple[str, str]] = []
    for name, value in sorted(wanted.items()):
        other = _tree_name(name, symbols, renames)
        if other is None and name not in absent:
            (gone if value == "n" else missing).append(name)
        elif other not in (None, name):
            renamed.append((name, other))
    resolution = Resolution(absent, tuple(gone), tuple(renamed))
    _check_one_value(wanted, resolution)
    return resolution, tuple(missing)


def _tree_name(name: str, symbols: Collection[str], renames: tuple[Rename, ...]) -> str | None:
    """The tree's name for an option: its own, else the first of its other names the tree
    has; None when the tree has none of them."""
    if name in symbols:
        return name
    names = next((r.names for r in renames if name in r.names), ())
    return next((n for n in names if n in symbols), None)


def _check_one_value(wanted: Config, resolution: Resolution) -> None:
    """Two names of one option asked different values: which one wins is not the user's
    intent, so it is their error."""
    names = dict(resolution.renamed)
    first: dict[str, tuple[str, str]] = {}
    for name, value in sorted(wanted.items()):
        target = names.get(name, name)
        other, seen = first.setdefault(target, (name, value))
        if seen != value:
            raise UserError(f"config fragments ask CONFIG_{other}={seen} and CONFIG_{name}="
                            f"{value}, which are one option in this tree: CONFIG_{target}")
