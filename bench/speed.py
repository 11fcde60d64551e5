#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Speed figures, side by side in one run: cold build of the lean config against virtme-ng's
full config, a warm re-test after a one-file change (with its per-stage breakdown against
the goal in data/bench.toml), the default guest suite, and the power of the stress suite.
Prints a table and writes runs/bench-speed/speed.json.

Run on demand, not in CI. Cold builds use a private cache (no ccache, fresh build dirs)
that links to the already unpacked source, so they cost about 17 minutes together on
2 cores; --skip-cold leaves them out. The whole run takes about 25 minutes.

    .venv/bin/python bench/speed.py [--skip-cold] [--skip-stress]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.data import DATA, read_toml  # noqa: E402
from harness.paths import cache_root  # noqa: E402
from harness.record import Run  # noqa: E402
from harness.report import exit_code, load_record  # noqa: E402

ONE_FILE = ROOT / "patches" / "mutants" / "no-fixup-call.patch"
GOALS = read_toml(DATA / "bench.toml")["speed"]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class Measured:
    """One harness run's record, with its wall time and the CPU time of every process it
    started (make waits for its compilers, so those count too)."""

    record: Run
    wall: float
    cpu: float


def harness(run_dir: Path, *args: str, env: dict[str, str] | None = None,
            command: str = "run") -> Measured:
    start, cpu = time.monotonic(), children_cpu()
    subprocess.run([sys.executable, "-m", "harness", command, "--run-dir", str(run_dir), *args],
                   cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return Measured(load_record(run_dir), time.monotonic() - start, children_cpu() - cpu)


def stage_seconds(run: Measured, name: str, rev: int = -1) -> float:
    stages = run.record.revisions[rev].stages
    return next((s.seconds for s in stages if s.name == name), 0.0)


def cold_cache(base: Path) -> dict[str, str]:
    """A cache whose build dirs are empty and whose ccache is off, sharing the source."""
    shutil.rmtree(base, ignore_errors=True)
    (base / "apt").mkdir(parents=True)
    (base / "src").symlink_to(cache_root() / "src")
    if (cache_root() / "kvm-probe.json").exists():
        shutil.copy(cache_root() / "kvm-probe.json", base / "kvm-probe.json")
    return {"FUTEX_HARNESS_CACHE": str(base), "CCACHE_DISABLE": "1"}


def cold_builds(out: Path) -> dict[str, float]:
    """Both configs from nothing, one after the other; the build subcommand, so no boot
    adds to the CPU time."""
    figures = {}
    for variant in ("lean", "vng"):
        env = cold_cache(out / f"cold-cache-{variant}")
        record = harness(out / f"cold-{variant}", "--config-variant", variant, env=env,
                         command="build")
        if exit_code(record.record) == 2:
            raise SystemExit(f"cold {variant} build failed: see {out / f'cold-{variant}'}")
        figures[f"cold_build_{variant}_s"] = stage_seconds(record, "build", 0)
        figures[f"cold_build_{variant}_cpu_s"] = round(record.cpu, 1)
        shutil.rmtree(out / f"cold-cache-{variant}", ignore_errors=True)
    for kind in ("", "_cpu"):
        figures[f"cold_build{kind}_ratio_lean_to_vng"] = round(
            figures[f"cold_build_lean{kind}_s"] / max(figures[f"cold_build_vng{kind}_s"], 1), 2)
    return figures


def warm(out: Path, variant: str) -> dict[str, Any]:
    pristine = harness(out / "warm-pristine", "--config-variant", variant)
    changed = harness(out / "warm-one-file", "--config-variant", variant,
                      "--series", str(ONE_FILE), "--no-base")
    harness(out / "warm-restore", "--config-variant", variant)
    goal = float(GOALS["one_file_retest_s"])
    return {"suite_boot_s": stage_seconds(pristine, "boot"),
            "pristine_run_wall_s": round(pristine.wall, 1),
            "one_file_retest_wall_s": round(changed.wall, 1),
            "one_file_rebuild_s": stage_seconds(changed, "build"),
            "one_file_retest_goal_s": goal,
            "one_file_retest_ratio_to_goal": round(changed.wall / goal, 2),
            "one_file_retest_over_goal_s": round(max(changed.wall - goal, 0.0), 1),
            "one_file_retest_stages": breakdown(changed)}


def breakdown(run: Measured) -> dict[str, dict[str, Any]]:
    """Seconds and detail of each stage of the run's last revision, and the time the run
    spent outside any stage (starting Python, the source check, writing the reports)."""
    stages = run.record.revisions[-1].stages
    out = {s.name: {"s": s.seconds, "detail": s.detail} for s in stages}
    out["outside stages"] = {"s": round(run.wall - sum(s.seconds for s in stages), 2),
                             "detail": "interpreter start, reports"}
    return out


def breakdown_lines(figures: dict[str, Any]) -> list[str]:
    """The per-stage table of the one-file re-test, against the goal."""
    stages, wall = figures["one_file_retest_stages"], figures["one_file_retest_wall_s"]
    goal = figures["one_file_retest_goal_s"]
    lines = [f"one-file re-test ({ONE_FILE.name}), per stage:"]
    lines += [f"  {name:<18} {v['s']:>6.1f} s  {v['detail'][:60]}" for name, v in stages.items()]
    lines.append(f"  {'total (wall)':<18} {wall:>6.1f} s  goal {goal:.0f} s: "
                 f"{figures['one_file_retest_ratio_to_goal']:.1f} x the goal, "
                 f"{figures['one_file_retest_over_goal_s']:.1f} s over")
    return lines


def stress(out: Path, variant: str) -> dict[str, float]:
    record = harness(out / "stress", "--config-variant", variant, "--stress")
    checks = {c.name: c.counters for c in record.record.revisions[0].checks}
    vdso, legacy = checks["stress-remap-exit-vdso"], checks["stress-remap-exit-legacy"]
    return {"stress_boot_s": stage_seconds(record, "boot-stress"),
            "legacy_first_corruption_ms": legacy["first_corruption_ms"],
            "vdso_window_hits_per_s": round(vdso["window_hits"] / vdso["seconds"], 2),
            "vdso_fixups_per_s": round(vdso["fixups"] / vdso["seconds"], 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="lean", help="config for the warm figures")
    parser.add_argument("--skip-cold", action="store_true")
    parser.add_argument("--skip-stress", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-speed")
    args = parser.parse_args()
    figures: dict[str, Any] = {"date": time.strftime("%F"), "machine":
                               f"{platform.node()} {os.cpu_count()} cores", "variant": args.variant}
    if not args.skip_cold:
        figures.update(cold_builds(args.out))
    figures.update(warm(args.out, args.variant))
    if not args.skip_stress:
        figures.update(stress(args.out, args.variant))
    for key, value in figures.items():
        if not isinstance(value, dict):
            print(f"{key:<34} {value}")
    print("\n".join(breakdown_lines(figures)))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "speed.json").write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
