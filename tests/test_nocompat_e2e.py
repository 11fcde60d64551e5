# SPDX-License-Identifier: GPL-2.0
"""The real thing without 32-bit compat: Debian's Linux 7.3 on the nocompat config variant
(lean, with IA32_EMULATION, X86_X32_ABI and so COMPAT off), checked against the nocompat
expectations, pristine and with every mutant whose header says `Variant: nocompat`.

On that kernel the 64-bit vDSO must not export the list32 entry (the kernel registers no
list32 critical range) and there is no vdso32 image: every list32 and 32-bit check must
say N/A and why, never go missing, and everything else must pass. The first run builds a
second kernel (about 15 CPU-minutes, ccache holding the lean build); after that each
revision is an incremental rebuild plus a TCG boot (3 minutes for base and mutant)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_e2e import harness_run, revision

from harness.data.guest_tests import load_guest_tests
from harness.kselftest.spec import load_spec
from harness.stages.patches import caught_by, mutant_variant

ROOT = Path(__file__).resolve().parent.parent
VARIANT = "nocompat"
MUTANTS = [p for p in sorted((ROOT / "patches" / "mutants").glob("*.patch"))
           if mutant_variant(p)[0] == VARIANT]
TESTS = [t for t in load_guest_tests() if t.suite == "default"]
# Checks that need COMPAT: the list32 entry of the 64-bit vDSO, the vdso32 or vdsox32
# image (x32 turns COMPAT on), or a 32-bit program.
NEED_COMPAT = {"elf-vdso32", "disasm-vdso32", "elf-vdsox32", "disasm-vdsox32"} | {
    t.name for t in TESTS
    if t.entry == "list32" or t.image in ("vdso32", "vdsox32")
    or {"CONFIG_COMPAT", "CONFIG_IA32_EMULATION"} & set(t.requires)}
# The rest of the checks whose names are known before the run; a ktap test reports one
# check per subtest instead (kselftest-futex/<program>/<subtest>).
MUST_PASS = ({"elf-vdso64", "disasm-vdso64", "console"}
             | {t.name for t in TESTS if t.kind != "ktap"}) - NEED_COMPAT

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def comparison(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return harness_run(tmp_path_factory.mktemp("e2e-nocompat") / "run",
                       ["--config-variant", VARIANT, "--expect", VARIANT], MUTANTS, 60 * 60)


def test_there_is_a_nocompat_mutant() -> None:
    assert MUTANTS, "no patches/mutants/*.patch says Variant: nocompat"
    assert all(mutant_variant(p) == (VARIANT, VARIANT) for p in MUTANTS)


def test_every_compat_check_is_not_applicable_with_a_reason(comparison: dict[str, Any]) -> None:
    found = revision(comparison, "base")
    missing = sorted(NEED_COMPAT - set(found))
    assert not missing, f"never reported: {missing}\n{comparison['_report']}"
    for name in sorted(NEED_COMPAT):
        assert found[name]["verdict"] == "N/A", (name, found[name], comparison["_report"])
        assert found[name]["detail"], f"{name} is N/A without a reason"
    list32 = [found[n]["detail"] for n in NEED_COMPAT if "list32" in n]
    assert list32 and all("CONFIG_COMPAT" in d for d in list32), list32


def test_everything_else_passes(comparison: dict[str, Any]) -> None:
    found = revision(comparison, "base")
    verdicts = {n: found[n]["verdict"] if n in found else "missing" for n in MUST_PASS}
    assert set(verdicts.values()) == {"PASS"}, (verdicts, comparison["_report"])
    # The ELF check proved the list32 export absent, and the 64-bit checks really ran.
    assert found["elf-vdso64"]["counters"]["absent"] == 1
    assert found["cs-fixup-singlestep-64"]["counters"]["hits_zf_set"] > 0
    assert found["remap-exit-legacy"]["counters"]["corruptions"] > 0


def test_kernel_selftests_pass_or_say_why_not(comparison: dict[str, Any]) -> None:
    """None may fail. N/A needs a reason: the series' 32-bit subtests for CONFIG_COMPAT
    (series_requires in data/kselftest.toml), the others for what this machine lacks."""
    found = revision(comparison, "base")
    spec = load_spec()
    compat = []
    for name, check in found.items():
        if not name.startswith(f"{spec.suite}/") or check["verdict"] == "PASS":
            continue
        program, subtest = name.removeprefix(f"{spec.suite}/").partition("/")[::2]
        assert check["verdict"] == "N/A" and check["detail"], (name, check)
        if spec.is_series(program, subtest):
            assert spec.missing_option(program, subtest, {}) == "COMPAT", (name, check)
            assert "CONFIG_COMPAT" in check["detail"], (name, check)
            compat.append(name)
    assert compat, f"no series selftest reported N/A for CONFIG_COMPAT\n{comparison['_report']}"


@pytest.mark.parametrize("patch", MUTANTS, ids=lambda p: p.stem)
def test_mutant_is_caught_by_its_check(comparison: dict[str, Any], patch: Path) -> None:
    check = caught_by(patch)
    found = revision(comparison, patch.stem)
    assert check in found, f"{patch.name} names {check}, which did not run"
    assert found[check]["verdict"] == "FAIL", (check, found[check], comparison["_report"])


def test_exit_code_says_a_check_failed(comparison: dict[str, Any]) -> None:
    assert comparison["_exit"] == 1
