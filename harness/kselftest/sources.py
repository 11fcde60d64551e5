# SPDX-License-Identifier: GPL-2.0
"""The subtests a selftest program's source defines, read from the tree under test with
kselftest_harness.h's macros, so that a series subtest the source lacks reads as a rename
and not as a kernel bug."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from harness.kselftest.spec import KselftestSpec

_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.DOTALL)
# TEST(name) and TEST_SIGNAL(name, sig) run as global.<name>.
_TEST = re.compile(r"^[ \t]*TEST(?:_SIGNAL)?\s*\(\s*(\w+)\s*[,)]", re.MULTILINE)
# TEST_F, TEST_F_SIGNAL and TEST_F_TIMEOUT run as <fixture>[.<variant>].<name>.
_TEST_F = re.compile(r"^[ \t]*TEST_F(?:_SIGNAL|_TIMEOUT)?\s*\(\s*(\w+)\s*,\s*(\w+)\s*[,)]",
                     re.MULTILINE)
_VARIANT = re.compile(r"^[ \t]*FIXTURE_VARIANT_ADD\s*\(\s*(\w+)\s*,\s*(\w+)\s*\)",
                      re.MULTILINE)
# Only a program that runs kselftest_harness's main reports its subtests by these names.
_MAIN = re.compile(r"^[ \t]*TEST_HARNESS_MAIN\b", re.MULTILINE)


@dataclass(frozen=True)
class ProgramSource:
    """A program's source file in the tree, and the subtest names it defines."""

    # Relative to the tree, as the messages name it (robust_list.c).
    file: str
    subtests: frozenset[str]
    # False: no kselftest_harness program (6.12's futex_wait.c), which reports no harness
    # name (fixture.test) at all; subtests is then empty.
    harness: bool = True

    def lacks(self, names: Iterable[str]) -> tuple[str, ...]:
        """The names among `names` that this source does not define."""
        return tuple(n for n in names if n not in self.subtests)


def defined_subtests(text: str) -> frozenset[str] | None:
    """Every subtest name a kselftest_harness program reports (fixture[.variant].test,
    global.<test> for TEST); None when the text is no kselftest_harness program."""
    code = _COMMENT.sub(" ", text)
    if not _MAIN.search(code):
        return None
    variants: dict[str, list[str]] = {}
    for fixture, variant in _VARIANT.findall(code):
        variants.setdefault(fixture, []).append(variant)
    names = {f"global.{t}" for t in _TEST.findall(code)}
    for fixture, test in _TEST_F.findall(code):
        # A fixture without FIXTURE_VARIANT_ADD runs once, under the unnamed variant.
        names |= {".".join(filter(None, (fixture, v, test)))
                  for v in variants.get(fixture, [""])}
    return frozenset(names)


def program_source(directory: Path, program: str) -> ProgramSource | None:
    """The program's <program>.c in the selftests directory (the one file it is built
    from); None when there is none or it is no kselftest_harness program."""
    source = read_source(directory, program)
    return source if source is not None and source.harness else None


def read_source(directory: Path, program: str) -> ProgramSource | None:
    """The program's <program>.c in the selftests directory, harness program or not; None
    when there is none."""
    path = directory / f"{program}.c"
    if not path.is_file():
        return None
    names = defined_subtests(path.read_text(errors="replace"))
    return ProgramSource(path.name, names or frozenset(), names is not None)


def series_sources(spec: KselftestSpec, tree: Path) -> dict[str, ProgramSource]:
    """The tree's source of each program with series subtests, where it can be read."""
    found = {p: program_source(tree / spec.directory, p) for p in spec.series}
    return {p: s for p, s in found.items() if s is not None}


def rerun_sources(spec: KselftestSpec, tree: Path) -> dict[str, ProgramSource]:
    """The tree's source of each program with a timing-sensitive subtest, where the file
    exists, so that a subtest of newer trees that this tree's program does not define reads
    as such and not as the program losing it."""
    found = {p: read_source(tree / spec.directory, p)
             for p in sorted({t.program for t in spec.timing_sensitive})}
    return {p: s for p, s in found.items() if s is not None}
