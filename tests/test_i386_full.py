# SPDX-License-Identifier: GPL-2.0
"""Native i386, for real: Debian's 7.3 built with ARCH=i386 (the i386 variant), checked
against the i386 expectations, then booted by virtme-ng on the cached i386 root. Pristine,
every check of the 32-bit vDSO and every 32-bit guest test passes, and every 64-bit and x32
check is N/A with its reason. With its mutant (the list32 range registered for COMPAT only,
which an i386 kernel never has), the 32-bit single-step check fails.

In make test-full: a cold i386 build when it is not cached (25 min on 2 shared cores, the
README's timings), the mmdebstrap root once (about 100 s), then a 12 to 21 s TCG boot per
revision. The pristine run's report and record are kept in bench/results/i386/."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from test_e2e import harness_run, revision

from harness.data.guest_tests import load_guest_tests
from harness.stages.patches import caught_by, mutant_variant

ROOT = Path(__file__).resolve().parent.parent
RECORDED = ROOT / "bench" / "results" / "i386"
VARIANT = "i386"
MUTANTS = [p for p in sorted((ROOT / "patches" / "mutants").glob("*.patch"))
           if mutant_variant(p)[0] == VARIANT]
TESTS = [t for t in load_guest_tests() if t.suite == "default"]
# What an i386 kernel runs: the vdso32 image's checks and the 32-bit programs (a test that
# may run on X86_32, or that needs the vdso32 image and nothing 64-bit).
RUNS = {"elf-vdso32", "disasm-vdso32", "console"} | {
    t.name for t in TESTS
    if "CONFIG_X86_32" in t.requires or (t.image == "vdso32" and not t.requires)}
ARGS = ["--config-variant", VARIANT, "--expect", VARIANT]

pytestmark = [pytest.mark.e2e, pytest.mark.full]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    record = harness_run(tmp_path_factory.mktemp("i386") / "run", ARGS, [], 90 * 60)
    RECORDED.mkdir(parents=True, exist_ok=True)
    for name in ("report.txt", "results.json"):
        shutil.copy2(record["_dir"] / name, RECORDED / name)
    return record


@pytest.fixture(scope="module")
def mutants(pristine: dict[str, Any],
            tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """After the pristine run: its build is cached, the mutant's is incremental."""
    return harness_run(tmp_path_factory.mktemp("i386") / "mutants", [*ARGS, "--no-base"],
                       MUTANTS, 90 * 60)


def test_there_is_an_i386_mutant() -> None:
    assert MUTANTS, "no patches/mutants/*.patch says Variant: i386"
    assert all(mutant_variant(p) == (VARIANT, VARIANT) for p in MUTANTS)


def test_the_32bit_checks_pass(pristine: dict[str, Any]) -> None:
    assert pristine["_exit"] == 0, pristine["_report"]
    found = revision(pristine, "base")
    verdicts = {n: found[n]["verdict"] if n in found else "missing" for n in sorted(RUNS)}
    assert set(verdicts.values()) == {"PASS"}, (verdicts, pristine["_report"])
    # They reached their checks: the window was hit, and a kill landed in it.
    assert found["cs-fixup-singlestep-32bit"]["counters"]["hits_zf_set"] > 0
    assert found["kill-in-window-32bit"]["counters"]["window_kills"] > 0
    assert found["remap-exit-legacy-32bit"]["counters"]["corruptions"] > 0


def test_everything_else_is_not_applicable_with_a_reason(pristine: dict[str, Any]) -> None:
    found = revision(pristine, "base")
    rest = {n: c for n, c in found.items() if n not in RUNS}
    assert {"elf-vdso64", "elf-vdsox32", "kselftest-futex"} <= set(rest)
    for name, check in rest.items():
        assert check["verdict"] == "N/A" and check["detail"], (name, check)


@pytest.mark.parametrize("patch", MUTANTS, ids=lambda p: p.stem)
def test_mutant_is_caught_by_its_check(mutants: dict[str, Any], patch: Path) -> None:
    assert mutants["_exit"] == 1, mutants["_report"]
    check = caught_by(patch)
    found = revision(mutants, patch.stem)
    assert check in found, f"{patch.name} names {check}, which did not run"
    assert found[check]["verdict"] == "FAIL", (check, found[check], mutants["_report"])
    # The image is unchanged: the ELF checks cannot see it.
    assert found["elf-vdso32"]["verdict"] == "PASS"
