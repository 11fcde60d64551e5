# SPDX-License-Identifier: GPL-2.0
"""README.md's check table says exactly what data/guest-tests.toml enforces: every guest
test has its row, every counter of its rule is named there, and every number the row
promises (`counter` ≥ N) is the rule's minimum."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.data.guest_tests import GuestTest, load_guest_tests

README = Path(__file__).resolve().parent.parent / "README.md"
HEADER = "| check | what it does | passes when |"
TESTS = {t.name: t for t in load_guest_tests() if t.kind != "ktap"}
_TICKED = re.compile(r"`([^`]+)`")
_AT_LEAST = re.compile(r"`(\w+)`(?: \([^)]*\))? ≥ (\d+)")
_ZERO = re.compile(r"`(\w+)` 0\b")
_NONZERO = re.compile(r"`(\w+)` non-zero")


def expand(text: str) -> list[str]:
    """Shell brace expansion: a-{x,y}-{1,2} -> a-x-1, a-x-2, a-y-1, a-y-2."""
    m = re.search(r"\{([^{}]*)\}", text)
    if not m:
        return [text]
    return [w for alt in m.group(1).split(",")
            for w in expand(text[:m.start()] + alt + text[m.end():])]


def rows() -> list[tuple[tuple[str, ...], str]]:
    """(the guest tests a row names, its passes-when text), for the rows naming any."""
    lines = README.read_text().splitlines()
    start = lines.index(HEADER) + 2
    table = lines[start:lines.index("", start)]
    found = []
    for line in table:
        check, _, passes = line.strip("|").split(" | ")
        names = [n for t in _TICKED.findall(check) for n in expand(t) if n in TESTS]
        if names:
            found.append((tuple(names), passes))
    return found


ROWS = rows()


def rule(test: GuestTest) -> set[str]:
    return {*test.require, *test.fail_if, *(k for k, _ in test.minimum)}


def test_every_guest_test_has_one_row() -> None:
    named = [n for names, _ in ROWS for n in names]
    assert sorted(named) == sorted(TESTS)


@pytest.mark.parametrize(("names", "passes"), ROWS, ids=[r[0][0] for r in ROWS])
def test_a_row_names_every_counter_of_the_rule(names: tuple[str, ...], passes: str) -> None:
    ticked = {w for t in _TICKED.findall(passes) for w in expand(t)}
    for name in names:
        assert sorted(rule(TESTS[name]) - ticked) == [], name


@pytest.mark.parametrize(("names", "passes"), ROWS, ids=[r[0][0] for r in ROWS])
def test_the_numbers_a_row_promises_are_the_minimums(names: tuple[str, ...],
                                                      passes: str) -> None:
    promised = {(k, int(n)) for k, n in _AT_LEAST.findall(passes)}
    for name in names:
        assert set(TESTS[name].minimum) == promised, name


@pytest.mark.parametrize(("names", "passes"), ROWS, ids=[r[0][0] for r in ROWS])
def test_zero_and_non_zero_are_fail_if_and_require(names: tuple[str, ...], passes: str) -> None:
    """A counter the row says must be 0 FAILs some test of the row when it is not; one it
    says must be non-zero is required by some test of the row."""
    tests = [TESTS[n] for n in names]
    for counter in _ZERO.findall(passes):
        assert any(counter in t.fail_if for t in tests), counter
    for counter in _NONZERO.findall(passes):
        assert any(counter in t.require for t in tests), counter


def test_the_promise_of_200_zf_set_stops_is_kept() -> None:
    """The README's 200 ZF-set stops of the single-step check: the rule requires 200."""
    for name in ("cs-fixup-singlestep-64", "cs-fixup-singlestep-list32",
                 "cs-fixup-singlestep-32bit"):
        assert dict(TESTS[name].minimum)["hits_zf_set"] == 200
