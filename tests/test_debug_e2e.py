# SPDX-License-Identifier: GPL-2.0
"""The debug kernel's detectors, for real: the mutants whose header says `Variant: debug`
(bugs that only KASAN, UBSAN or lockdep and might_sleep() report) on Debian's Linux 7.3,
each built on the default config (minimal) and on the debug variant (minimal plus the
detectors, kernel-config/debug/), in one run.

On minimal every check the mutant's path runs must pass: the bug is invisible there. On
debug the same guest tests pass too, and the console check fails on the detector's report.
Kept cheap: no base (the pristine debug kernel's whole suite is a test-full
run, tests/test_debug_full.py, recorded in bench/results/debug/), and only the guest tests
named in each mutant's `Only:` header. The first run builds the debug kernel cold (KASAN
instruments every object: see the README's timings); after that each is an incremental
rebuild and a boot.

FUTEX_HARNESS_KERNEL_SRC=<tree> runs it on a Linux 7.3 tree of your own instead of Debian's
(test_e2e.kernel_args)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from test_e2e import harness_run

from harness.stages.patches import caught_by, mutant_variant

ROOT = Path(__file__).resolve().parent.parent
VARIANT = "debug"
DEFAULT = "minimal"
MUTANTS = [p for p in sorted((ROOT / "patches" / "mutants").glob("*.patch"))
           if mutant_variant(p)[0] == VARIANT]
# The guest tests on a mutant's path: `Only: <pattern> [<pattern>...]` in its header.
_ONLY = re.compile(r"^Only:\s*(.+)$", re.MULTILINE)
# What the console check's detail must name for the detector that caught each mutant:
# `Splat: <text>` in its header.
_SPLAT = re.compile(r"^Splat:\s*(.+)$", re.MULTILINE)

# In make test-full, not make test: a cold debug build (663 s wall at best on 2 cores,
# 754 s CPU) on top of make test's 65 minutes from a clean machine passes its 75-minute
# budget. Its first complete run: bench/results/debug/test_debug_e2e.txt.
pytestmark = [pytest.mark.e2e, pytest.mark.full]


def only(patch: Path) -> list[str]:
    match = _ONLY.search(patch.read_text())
    assert match, f"{patch.name} has no Only: header"
    return match.group(1).split()


def splat(patch: Path) -> str:
    match = _SPLAT.search(patch.read_text())
    assert match, f"{patch.name} has no Splat: header"
    return match.group(1).strip()


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    args = ["--no-base", "--config-variant", DEFAULT, "--config-variant", VARIANT]
    for pattern in sorted({p for m in MUTANTS for p in only(m)}):
        args += ["--only", pattern]
    return harness_run(tmp_path_factory.mktemp("e2e-debug") / "run", args, MUTANTS, 60 * 60)


def checks(record: dict[str, Any], patch: Path, variant: str) -> dict[str, dict[str, Any]]:
    """The checks of one mutant on one variant; its stages all finished."""
    # A job is <kernel>:<variant>:<revision>, a label <revision>@<kernel>-<variant>.
    found = [r for r in record["revisions"]
             if r["job"].split(":")[1] == variant and r["label"].split("@")[0] == patch.stem]
    assert len(found) == 1, ([(r["label"], r["job"]) for r in record["revisions"]],
                             record["_report"])
    assert all(s["status"] == "ok" for s in found[0]["stages"]), found[0]["stages"]
    return {c["name"]: c for c in found[0]["checks"]}


def test_there_is_a_debug_mutant() -> None:
    assert MUTANTS, "no patches/mutants/*.patch says Variant: debug"
    assert all(mutant_variant(p) == (VARIANT, None) for p in MUTANTS)
    assert all(caught_by(p) == "console" for p in MUTANTS)


@pytest.mark.parametrize("patch", MUTANTS, ids=lambda p: p.stem)
def test_the_default_kernel_does_not_see_it(both: dict[str, Any], patch: Path) -> None:
    found = checks(both, patch, DEFAULT)
    assert any(not n.startswith(("elf-", "disasm-", "console")) for n in found), found.keys()
    bad = {n: (c["verdict"], c["detail"]) for n, c in found.items() if c["verdict"] != "PASS"}
    assert not bad, (bad, both["_report"])


@pytest.mark.parametrize("patch", MUTANTS, ids=lambda p: p.stem)
def test_the_debug_kernel_reports_it_on_the_console(both: dict[str, Any], patch: Path) -> None:
    found = checks(both, patch, VARIANT)
    console = found[caught_by(patch) or ""]
    assert console["verdict"] == "FAIL", (console, both["_report"])
    assert splat(patch) in console["detail"], console["detail"]
    # Only the detector sees it: every guest test on the path passes on debug too.
    bad = {n: c["verdict"] for n, c in found.items()
           if n != "console" and c["verdict"] != "PASS"}
    assert not bad, (bad, both["_report"])


def test_exit_code_says_a_check_failed(both: dict[str, Any]) -> None:
    assert both["_exit"] == 1, both["_report"]
