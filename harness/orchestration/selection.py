# SPDX-License-Identifier: GPL-2.0
"""run --changed-only: the guest tests a revision needs, chosen from the files its patches
touch through data/changed-only.toml. Anything the map does not cover runs everything."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from harness.data.changed_only import ALL, ChangeMap, PathEntry
from harness.data.guest_tests import GuestTest
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
    chosen, not_run = [], []
    for test in tests:
        groups = tuple(n for n, g in change_map.groups.items() if g.holds(test.name))
        if not groups or wanted.intersection(groups):
            chosen.append(test)
        else:
            not_run.append(NotRun(test.name, groups))
    return tuple(chosen), ChangedOnly(files, "", entries, tuple(not_run))


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
