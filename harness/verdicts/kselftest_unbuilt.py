# SPDX-License-Identifier: GPL-2.0
"""Verdicts for a tree whose futex selftests did not build: the selftest check itself, and
each series subtest by name, so that none goes missing silently."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from harness.kselftest.sources import series_sources
from harness.kselftest.spec import KselftestSpec
from harness.verdicts.checks import Check, Verdict
from harness.verdicts.kselftest import series_not_built


def selftests_unbuilt(spec: KselftestSpec, test: str, tree: Path, series_present: bool,
                      kconfig: Mapping[str, str] | None, error: str) -> list[Check]:
    """The checks of a tree whose selftests did not build. Without the selftests directory
    it is N/A only when the series is absent (a trimmed pre-series tree); with the series
    it is an ERROR naming the directory. Either way each series subtest is named."""
    missing = _first_missing(tree, spec.directory)
    if missing is not None and not series_present:
        check = Check(test, Verdict.NOT_APPLICABLE, f"series absent: the tree has no {missing}")
    elif missing is not None:
        check = Check(test, Verdict.ERROR, f"the tree has no {missing}, so none of its "
                      "futex selftests can run")
    else:
        check = Check(test, Verdict.ERROR, f"the selftests did not build: {error}")
    why = "was not built: the " + ("tree has no futex selftests" if missing is not None
                                   else "selftests did not build")
    return [check, *series_not_built(spec, set(), series_present, kconfig, why,
                                     series_sources(spec, tree))]


def _first_missing(tree: Path, directory: str) -> Path | None:
    """The first directory on the way to the selftests that the tree lacks (or its
    Makefile), or None when both are there."""
    path = tree
    for part in Path(directory).parts:
        path = path / part
        if not path.is_dir():
            return path
    return None if (path / "Makefile").is_file() else path / "Makefile"
