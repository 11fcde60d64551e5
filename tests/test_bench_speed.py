# SPDX-License-Identifier: GPL-2.0
"""bench/speed.py's pure parts: which checks it times, and how it states the goals."""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from harness.data.guest_tests import load_guest_tests
from harness.guest.plan import select

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


def test_goals_say_met_or_the_shortfall_and_where_the_time_went() -> None:
    lines = speed().goals({
        "variant": "minimal", "cold_build_ratio_minimal_to_vng": 0.2,
        "cold_build_cpu_ratio_minimal_to_vng": 0.18, "cold_build_vng_from": "speed.json (x)",
        "cold_build_minimal_objects": 900, "cold_build_vng_objects": 4000,
        "one_file_retest_wall_s": 40.0,
        "one_file_retest_stages": {"boot": {"s": 30.0}, "build": {"s": 8.0},
                                   "config": {"s": 0.2}, "patches": {"s": 1.0}},
        "boot_vdso12_minimal_min_s": 6.5, "boot_vdso12_minimal_min_in_programs_s": 2.5,
        "suite_boot_s": 19.0, "suite_slowest": "a 9.0 s"})
    assert lines == [
        "goal: cold build minimal / vng <= 0.25 (wall; CPU 0.18, vng from speed.json (x)): "
        "0.2 (met)",
        "goal: one-file re-test on minimal <= 15 s (wall): 40.0 (short by 25.0; boot 30.0 s, "
        "build 8.0 s, patches 1.0 s)",
        "goal: boot + 12 vDSO checks on minimal <= 5 s (fastest of the runs): 6.5 "
        "(short by 1.5; the 12 programs 2.5 s, the rest 4.0 s (QEMU, kernel, virtme-ng's "
        "init, the runner's start))",
        "goal: boot + whole default suite on minimal <= 20 s: 19.0 (met)"]
    assert speed().goals({"variant": "minimal"}) == []
    figures = {"cold_build_minimal_s": 264.28, "cold_build_vng_s": 1052.38,
               "cold_build_minimal_cpu_s": 521.0, "cold_build_vng_cpu_s": 2022.3,
               "cold_build_minimal_objects": 1627, "cold_build_vng_objects": 3529}
    figures.update(speed().ratios(figures, ("minimal", "vng")))
    assert speed().goals(figures) == [
        "goal: cold build minimal / vng <= 0.25 (wall; CPU 0.258): 0.251 (short by 0.001; "
        "objects compiled: minimal 1627, vng 3529)"]


def test_the_wait_for_another_runs_lock_is_not_the_runs_own_time(tmp_path: Path) -> None:
    log = tmp_path / "harness.log"
    log.write_text("2026-12-05 11:26:47,500 INFO stage source\n"
                   "2026-12-05 11:26:48,000 INFO waiting for another harness run on the same "
                   "tree (x.lock)\n"
                   "2026-12-05 11:27:20,500 INFO stage source: ok in 33.0s\n")
    assert speed().lock_wait(log) == 32.5
    assert speed().lock_wait(tmp_path / "none.log") == 0.0


def test_the_changed_only_goal_lines_say_what_the_map_chose() -> None:
    lines = speed().goals({
        "variant": "minimal", "one_file_retest_changed_only_wall_s": 50.0,
        "one_file_retest_changed_only_everything": "kernel/entry/common.c is not in the map",
        "one_file_retest_pi_wall_s": 48.0, "one_file_retest_pi_changed_only_wall_s": 14.0,
        "one_file_retest_pi_changed_only_not_run": 29,
        "one_file_retest_changed_only_stages": {"build": {"s": 8.0}, "boot": {"s": 40.0}}})
    assert lines == [
        "goal: one-file re-test --changed-only on minimal <= 15 s (wall, with its rebuild): "
        "50.0 (short by 35.0; build 8.0 s, boot 40.0 s, kernel/entry/common.c is not in the "
        "map)",
        "goal: one-file re-test of one-file-pi.patch --changed-only <= 15 s (wall, with its "
        "rebuild; 48.0 s without the option): 14.0 (met)"]


def test_a_cold_cache_takes_the_shared_trees_lock(tmp_path: Path, monkeypatch) -> None:
    """Fooled case: a cold cache with a locks dir of its own lets a cold build run on the
    shared source tree while another run holds that tree's lock."""
    from harness.paths import cache_root
    monkeypatch.setenv("FUTEX_HARNESS_CACHE", str(tmp_path / "shared"))
    env = speed().cold_cache(tmp_path / "cold")
    cold = Path(env["FUTEX_HARNESS_CACHE"])
    assert (cold / "locks").resolve() == (cache_root() / "locks").resolve()
    assert (cold / "src").resolve() == (cache_root() / "src").resolve()
    assert env["CCACHE_DISABLE"] == "1" and not (cold / "build").exists()
