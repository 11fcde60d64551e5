# SPDX-License-Identifier: GPL-2.0
"""bench/speed.py's pure parts: which checks it times, and how it states the goals."""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from harness.data import load_guest_tests
from harness.guest import select

SPEED = Path(__file__).resolve().parent.parent / "bench" / "speed.py"


@functools.cache
def speed() -> ModuleType:
    spec = importlib.util.spec_from_file_location("speed", SPEED)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    # Its dataclasses look their module up by name.
    sys.modules["speed"] = module
    spec.loader.exec_module(module)
    return module


def test_the_twelve_vdso_checks_are_the_original_ones() -> None:
    chosen = select(load_guest_tests(), speed().VDSO_TWELVE)
    assert all(t.suite == "default" for t in chosen)
    assert sorted(t.name for t in chosen) == sorted(
        [f"vdso-runtime-image-{b}" for b in ("64", "32bit")]
        + [f"{c}-{b}" for c in ("unlock-semantics", "cs-fixup-singlestep")
           for b in ("64", "list32", "32bit")]
        + ["vdso-mremap", "remap-exit-vdso-64", "remap-exit-vdso-32bit", "remap-exit-legacy"])


def test_goals_say_met_or_the_shortfall() -> None:
    lines = speed().goals({
        "variant": "lean", "cold_build_ratio_minimal_to_vng": 0.2,
        "cold_build_cpu_ratio_minimal_to_vng": 0.18, "cold_build_vng_from": "speed.json (x)",
        "boot_vdso12_minimal_min_s": 6.5, "suite_boot_s": 19.0})
    assert lines == [
        "goal: cold build minimal / vng <= 0.25 (wall; CPU 0.18, vng from speed.json (x)): "
        "0.2 (met)",
        "goal: boot + 12 vDSO checks on minimal <= 5 s (fastest of the runs): 6.5 "
        "(short by 1.50)",
        "goal: boot + whole default suite on lean <= 20 s: 19.0 (met)"]
    assert speed().goals({"variant": "lean"}) == []
