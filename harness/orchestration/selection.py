# SPDX-License-Identifier: GPL-2.0
"""run --changed-only: the guest tests a revision needs, chosen from the files its patches
touch through data/changed-only.toml. Anything the map does not cover runs everything."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from harness.data.changed_only import ALL, ChangeMap, PathEntry
from harness.data.guest_tests import GuestTest, ProgramChoice
from harness.outputs.record import ChangedOnly, MapEntry, NotRun
from harness.stages.patches import touched_files


def select_for_patches(tests: tuple[GuestTest, ...], patches: Sequence[Path],
                       change_map: ChangeMap) -> tuple[tuple[GuestTest, ...], ChangedOnly]:
    """The tests the revision's patches select, and the record of the choice. The base (no
    patches) and a patch that names no file run everything."""
    if not patches:
        return tests, ChangedOnly((), "no patches (the base): nothing to choose from")
    touched = {p: touched_files(p) for p in patches}
    blind = [p.name for p, files in touched.items() if not files]
    files = tuple(sorted({f for fs in touched.values() for f in fs}))
    chosen, record = select(tests, files, change_map)
    if blind:
        return tests, ChangedOnly(files, f"{', '.join(blind)} names no file",
                                  record.entries)
    return chosen, record


def select(tests: tuple[GuestTest, ...], files: tuple[str, ...],
           change_map: ChangeMap) -> tuple[tuple[GuestTest, ...], ChangedOnly]:
    """The union of what each file's entry selects; every test when a file matches no entry
    or an entry selecting all. A test in no group always runs."""
    matched: dict[PathEntry, list[str]] = {}
    outside = []
    for f in files:
        entry = change_map.entry(f)
        if entry is None:
            outside.append(f)
        else:
            matched.setdefault(entry, []).append(f)
    entries = tuple(MapEntry(e.match, e.selects, e.why, tuple(fs)) for e, fs in matched.items())
    everything = _everything(files, outside, entries, change_map)
    if everything:
        return tests, ChangedOnly(files, everything, entries)
    wanted = {g for e in entries for g in e.selects}
    chosen: list[GuestTest] = []
    not_run: list[NotRun] = []
    for test in tests:
        groups = tuple(n for n, g in change_map.groups.items() if g.holds(test.name))
        parts = {n: g.programs(test.name) for n, g in change_map.groups.items()
                 if g.programs(test.name)}
        if (not groups and not parts) or wanted.intersection(groups):
            chosen.append(test)
        elif wanted.intersection(parts):
            chosen.append(_narrowed(test, parts, wanted))
            not_run += [NotRun(f"{test.name}/{p}", (n,))
                        for n, programs in parts.items() if n not in wanted for p in programs]
        else:
            not_run.append(NotRun(test.name, groups or tuple(parts)))
    return tuple(chosen), ChangedOnly(files, "", entries, tuple(not_run))


def _narrowed(test: GuestTest, parts: dict[str, tuple[str, ...]],
              wanted: set[str]) -> GuestTest:
    """A ktap test with only the programs of the selected groups (and any program that no
    group names)."""
    kept = tuple(p for n, ps in parts.items() if n in wanted for p in ps)
    left_out = tuple(p for n, ps in parts.items() if n not in wanted for p in ps)
    return replace(test, programs=ProgramChoice(kept, left_out))


def _everything(files: tuple[str, ...], outside: list[str], entries: tuple[MapEntry, ...],
                change_map: ChangeMap) -> str:
    """Why every test runs; "" when the map may narrow them."""
    if not files:
        return "the patches touch no file"
    if outside:
        return (f"{', '.join(outside)} {'is' if len(outside) == 1 else 'are'} not in "
                f"{change_map.source.name}")
    wide = [e for e in entries if ALL in e.selects]
    if wide:
        return "; ".join(f"{', '.join(e.files)}: {e.match} selects {ALL} ({e.why})"
                         for e in wide)
    return ""
