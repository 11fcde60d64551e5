#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Speed figures, side by side in one run: cold builds of the minimal and lean configs
against virtme-ng's full config, the boot plus the twelve vDSO checks on minimal and lean, a
warm re-test after a one-file change (with its per-stage breakdown), the same re-test with
--changed-only (the guest tests the changed file selects, data/changed-only.toml), each
from the pristine build, so with the rebuild the change needs, the
default guest suite (in its lanes, and in one VM with --lanes 1), and the power of the
stress suite. Prints a table and the goals (data/bench.toml), and writes
runs/bench-speed/speed.json.

Run on demand, not in CI. Cold builds use a private cache (no ccache, fresh build dirs)
that links to the already unpacked source, so they cost about 25 minutes together on
2 cores; --skip-cold leaves them out, and --cold picks the variants (without vng in the
run, the ratios use the vng figure of bench/results/speed.json, and say so). The whole run
takes about 35 minutes.

    .venv/bin/python bench/speed.py [--skip-cold] [--cold minimal --cold lean] [--skip-warm]
        [--skip-stress] [--boot-runs N] [--boot-variant minimal]
    .venv/bin/python bench/speed.py --report bench/results/speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.data import DATA, read_toml  # noqa: E402
from harness.data.settings import load_settings  # noqa: E402
from harness.outputs.record import Run  # noqa: E402
from harness.outputs.report import SLOWEST, exit_code, load_record  # noqa: E402
from harness.paths import cache_root  # noqa: E402

ONE_FILE = ROOT / "patches" / "mutants" / "no-fixup-call.patch"
# A one-file change that data/changed-only.toml narrows (no-fixup-call's common.c runs
# everything): a comment in kernel/futex/pi.c.
NARROWED_FILE = ROOT / "bench" / "one-file-pi.patch"
GOALS = read_toml(DATA / "bench.toml")["speed"]
# The latest committed figures: the vng cold build when this run leaves it out.
COMMITTED = ROOT / "bench" / "results" / "speed.json"
COLD_VARIANTS = ("minimal", "lean", "vng")
# The twelve vDSO checks of the original default suite (the boot-time goal), as --only
# patterns of the harness.
# The twelve of the first measurements, so that the figures stay comparable: the 32-bit
# legacy control came later.
# Named one by one: patterns would take in the checks added since (the x32 builds).
VDSO_TWELVE = ("vdso-runtime-image-64", "vdso-runtime-image-32bit",
               "unlock-semantics-64", "unlock-semantics-list32", "unlock-semantics-32bit",
               "cs-fixup-singlestep-64", "cs-fixup-singlestep-list32",
               "cs-fixup-singlestep-32bit", "vdso-mremap", "remap-exit-vdso-64",
               "remap-exit-vdso-32bit", "remap-exit-legacy")
BOOT_VARIANTS = ("minimal", "lean")
GOAL_COLD_RATIO = float(GOALS["cold_build_ratio_minimal_to_vng"])
GOAL_BOOT_VDSO_S = float(GOALS["boot_vdso12_s"])
GOAL_SUITE_S = float(GOALS["default_suite_s"])
GOAL_RETEST_S = float(GOALS["one_file_retest_s"])


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
    # Seconds the run waited for another run's lock on the tree: not its own time.
    waited: float = 0.0

    @property
    def own(self) -> float:
        """The wall time less the wait for the tree's lock."""
        return round(self.wall - self.waited, 1)


def harness(run_dir: Path, *args: str, env: dict[str, str] | None = None,
            command: str = "run") -> Measured:
    start, cpu = time.monotonic(), children_cpu()
    subprocess.run([sys.executable, "-m", "harness", command, "--run-dir", str(run_dir), *args],
                   cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return Measured(load_record(run_dir), time.monotonic() - start, children_cpu() - cpu,
                    lock_wait(run_dir / "harness.log"))


_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def lock_wait(log: Path) -> float:
    """Seconds from harness.log's "waiting for another harness run" to its next line: other
    runs (other users of the machine) held the tree's lock that long."""
    waited, since = 0.0, None
    for line in log.read_text(errors="replace").splitlines() if log.is_file() else ():
        stamp = _STAMP.match(line)
        if not stamp:
            continue
        when = time.mktime(time.strptime(stamp.group(1)[:19], "%Y-%m-%d %H:%M:%S")) + \
            int(stamp.group(1)[20:]) / 1000
        if since is not None:
            waited, since = waited + when - since, None
        if "waiting for another harness run" in line:
            since = when
    return round(waited, 1)


def stage_seconds(run: Measured, name: str, rev: int = -1) -> float:
    stages = run.record.revisions[rev].stages
    return next((s.seconds for s in stages if s.name == name), 0.0)


def cold_cache(base: Path) -> dict[str, str]:
    """A cache whose build dirs are empty and whose ccache is off, sharing the source and
    its locks: the source tree is the shared one, so a run here must queue behind any other
    run on it exactly as it would in the shared cache."""
    shutil.rmtree(base, ignore_errors=True)
    (base / "apt").mkdir(parents=True)
    (base / "src").symlink_to(cache_root() / "src")
    (cache_root() / "locks").mkdir(parents=True, exist_ok=True)
    (base / "locks").symlink_to(cache_root() / "locks")
    if (cache_root() / "kvm-probe.json").exists():
        shutil.copy(cache_root() / "kvm-probe.json", base / "kvm-probe.json")
    return {"FUTEX_HARNESS_CACHE": str(base), "CCACHE_DISABLE": "1"}


def stage_detail(run: Measured, name: str, rev: int = -1) -> str:
    return next((s.detail for s in run.record.revisions[rev].stages if s.name == name), "")


def objects(run: Measured) -> int:
    """The objects the build compiled, from its stage detail ("2460 objects ...")."""
    detail = next((s.detail for s in run.record.revisions[0].stages if s.name == "build"), "")
    found = re.search(r"(\d+) objects", detail)
    return int(found.group(1)) if found else 0


def cold_builds(out: Path, variants: tuple[str, ...]) -> dict[str, Any]:
    """The configs from nothing, one after the other; the build subcommand, so no boot
    adds to the CPU time. Each is compared with vng: this run's, else the committed one."""
    figures: dict[str, Any] = {}
    for variant in variants:
        env = cold_cache(out / f"cold-cache-{variant}")
        record = harness(out / f"cold-{variant}", "--config-variant", variant, env=env,
                         command="build")
        if exit_code(record.record) == 2:
            raise SystemExit(f"cold {variant} build failed: see {out / f'cold-{variant}'}")
        figures[f"cold_build_{variant}_s"] = stage_seconds(record, "build", 0)
        figures[f"cold_build_{variant}_cpu_s"] = round(record.cpu, 1)
        figures[f"cold_build_{variant}_objects"] = objects(record)
        shutil.rmtree(out / f"cold-cache-{variant}", ignore_errors=True)
    if "vng" not in variants:
        committed = json.loads(COMMITTED.read_text())
        figures["cold_build_vng_from"] = f"{COMMITTED.relative_to(ROOT)} ({committed['date']})"
        for kind in ("", "_cpu"):
            figures[f"cold_build_vng{kind}_s"] = committed[f"cold_build_vng{kind}_s"]
    figures.update(ratios(figures, variants))
    return figures


def ratios(figures: dict[str, Any], variants: tuple[str, ...]) -> dict[str, float]:
    """Each cold build against vng's, wall and CPU. Three decimals: the goal is 0.25, and
    two would round 0.2511 down to a goal met."""
    return {f"cold_build{kind}_ratio_{variant}_to_vng": round(
                figures[f"cold_build_{variant}{kind}_s"]
                / max(figures[f"cold_build_vng{kind}_s"], 1), 3)
            for variant in variants if variant != "vng" for kind in ("", "_cpu")}


def boot_vdso(out: Path, variants: tuple[str, ...], runs: int) -> dict[str, float]:
    """The boot stage (VM start to power-off) with only the twelve vDSO checks, the variants
    taking turns so that they share the machine's load alike; the fastest and the median,
    and for the fastest how much of it the twelve programs took in the guest."""
    times: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
    only = [a for p in VDSO_TWELVE for a in ("--only", p)]
    for n in range(runs):
        for variant in variants:
            run_dir = out / f"boot-vdso-{variant}-{n}"
            record = harness(run_dir, "--config-variant", variant, *only)
            if exit_code(record.record) != 0:
                raise SystemExit(f"{variant} boot with the vDSO checks did not pass: see {run_dir}")
            times[variant].append((stage_seconds(record, "boot"), in_programs(record)))
    figures = {}
    for variant, seconds in times.items():
        fastest = min(seconds)
        figures[f"boot_vdso12_{variant}_min_s"] = fastest[0]
        figures[f"boot_vdso12_{variant}_min_in_programs_s"] = fastest[1]
        figures[f"boot_vdso12_{variant}_median_s"] = round(
            statistics.median(s for s, _ in seconds), 2)
    return figures


def in_programs(run: Measured) -> float:
    """Seconds the guest programs of the run's first boot took, in the guest."""
    boots = run.record.revisions[-1].boots
    return round(boots[0].seconds_in_tests, 2) if boots else 0.0


def slowest_programs(run: Measured) -> str:
    boots = run.record.revisions[-1].boots
    tests = boots[0].slowest(SLOWEST) if boots else []
    return ", ".join(f"{name} {s:.1f} s" for name, s in tests)


def goals(figures: dict[str, Any]) -> list[str]:
    """One line per goal: the measured figure, and met or the shortfall and where it went."""
    lines = []
    if (ratio := figures.get("cold_build_ratio_minimal_to_vng")) is not None:
        cpu = figures["cold_build_cpu_ratio_minimal_to_vng"]
        source = f", vng from {figures['cold_build_vng_from']}" \
            if "cold_build_vng_from" in figures else ""
        lines.append(_goal(f"cold build minimal / vng <= {GOAL_COLD_RATIO} (wall; CPU {cpu}"
                           f"{source})", ratio, GOAL_COLD_RATIO, _objects(figures)))
    if (wall := figures.get("one_file_retest_wall_s")) is not None:
        stages = figures["one_file_retest_stages"]
        big = sorted(stages.items(), key=lambda kv: -kv[1]["s"])[:3]
        lines.append(_goal(f"one-file re-test on {figures['variant']} <= {GOAL_RETEST_S:.0f} s "
                           f"(wall)", wall, GOAL_RETEST_S,
                           ", ".join(f"{name} {v['s']:.1f} s" for name, v in big)))
    if (narrowed := figures.get("one_file_retest_changed_only_wall_s")) is not None:
        why = figures.get("one_file_retest_changed_only_everything") or \
            f"{figures.get('one_file_retest_changed_only_not_run', 0)} guest tests not run"
        lines.append(_goal(f"one-file re-test --changed-only on {figures['variant']} <= "
                           f"{GOAL_RETEST_S:.0f} s (wall, with its rebuild)", narrowed,
                           GOAL_RETEST_S, _with_stages(figures, "_changed_only", why)))
    if (pi := figures.get("one_file_retest_pi_changed_only_wall_s")) is not None:
        why = f"{figures.get('one_file_retest_pi_changed_only_not_run', 0)} guest tests not run"
        lines.append(_goal(f"one-file re-test of {NARROWED_FILE.name} --changed-only <= "
                           f"{GOAL_RETEST_S:.0f} s (wall, with its rebuild; "
                           f"{figures['one_file_retest_pi_wall_s']} s without the option)", pi,
                           GOAL_RETEST_S, _with_stages(figures, "_pi_changed_only", why)))
    if (boot := figures.get("boot_vdso12_minimal_min_s")) is not None:
        programs = figures.get("boot_vdso12_minimal_min_in_programs_s", 0.0)
        lines.append(_goal(f"boot + 12 vDSO checks on minimal <= {GOAL_BOOT_VDSO_S:.0f} s "
                           f"(fastest of the runs)", boot, GOAL_BOOT_VDSO_S,
                           f"the 12 programs {programs:.1f} s, the rest {boot - programs:.1f} s "
                           f"(QEMU, kernel, virtme-ng's init, the runner's start)"))
    if (suite := figures.get("suite_boot_s")) is not None:
        lines.append(_goal(f"boot + whole default suite on {figures['variant']} <= "
                           f"{GOAL_SUITE_S:.0f} s{_one_vm(figures)}", suite, GOAL_SUITE_S,
                           f"slowest: {figures.get('suite_slowest', '')}"))
    return lines


def _with_stages(figures: dict[str, Any], how: str, why: str) -> str:
    """Why a re-test took what it took: its build and boot stages, then what the map chose."""
    stages = figures.get(f"one_file_retest{how}_stages", {})
    spent = [f"{name} {stages[name]['s']:.1f} s" for name in ("build", "boot") if name in stages]
    return ", ".join([*spent, why])


def _one_vm(figures: dict[str, Any]) -> str:
    one_vm = figures.get("suite_one_vm_boot_s")
    return "" if one_vm is None else f" (in one VM, --lanes 1: {one_vm} s)"


def _objects(figures: dict[str, Any]) -> str:
    counts = [f"{v} {figures[f'cold_build_{v}_objects']}" for v in COLD_VARIANTS
              if f"cold_build_{v}_objects" in figures]
    return "objects compiled: " + ", ".join(counts) if counts else ""


def _goal(what: str, measured: float, target: float, where: str = "") -> str:
    if measured <= target:
        return f"goal: {what}: {measured} (met)"
    return f"goal: {what}: {measured} (short by {round(measured - target, 3)}" + \
        (f"; {where})" if where else ")")


def warm(out: Path, variant: str) -> dict[str, Any]:
    pristine = harness(out / "warm-pristine", "--config-variant", variant)
    # The same suite in one VM, right after: what the lanes side by side saved.
    one_vm = harness(out / "warm-pristine-one-vm", "--config-variant", variant, "--lanes", "1")
    # Each re-test starts from the pristine build, as a maintainer's does after an edit:
    # the build stage rebuilds what the one file changes, with or without --changed-only.
    changed = retest(out / "warm-one-file", variant, ONE_FILE)
    narrowed = retest(out / "warm-one-file-changed-only", variant, ONE_FILE, "--changed-only")
    pi_full = retest(out / "warm-pi", variant, NARROWED_FILE)
    pi_narrowed = retest(out / "warm-pi-changed-only", variant, NARROWED_FILE,
                         "--changed-only")
    return {**changed_only_figures(changed, narrowed),
            **changed_only_figures(pi_full, pi_narrowed, "pi"),
            "suite_boot_s": stage_seconds(pristine, "boot"),
            "suite_boot_detail": stage_detail(pristine, "boot"),
            "suite_one_vm_boot_s": stage_seconds(one_vm, "boot"),
            "suite_in_programs_s": in_programs(pristine),
            "suite_slowest": slowest_programs(pristine),
            "pristine_run_wall_s": pristine.own,
            "pristine_run_lock_wait_s": pristine.waited,
            "one_file_retest_wall_s": changed.own,
            "one_file_rebuild_s": stage_seconds(changed, "build"),
            "one_file_retest_goal_s": GOAL_RETEST_S,
            "one_file_retest_ratio_to_goal": round(changed.own / GOAL_RETEST_S, 2),
            "one_file_retest_over_goal_s": round(max(changed.own - GOAL_RETEST_S, 0.0), 1),
            "one_file_retest_stages": breakdown(changed)}


def retest(run_dir: Path, variant: str, patch: Path, *flags: str) -> Measured:
    """A re-test of the one-file patch, then the pristine build back (one cheap guest test:
    only its build matters), so that the next re-test rebuilds from pristine too."""
    measured = harness(run_dir, "--config-variant", variant, "--series", str(patch),
                       "--no-base", *flags)
    harness(run_dir.with_name(run_dir.name + "-restore"), "--config-variant", variant,
            "--only", VDSO_TWELVE[0])
    return measured


def changed_only_figures(full: Measured, narrowed: Measured,
                         which: str = "") -> dict[str, Any]:
    """A one-file re-test with --changed-only next to the full one: wall times less any
    wait for the tree's lock, exit codes, what the map chose, and the stages. which: ""
    for no-fixup-call, "pi" for the change the map narrows."""
    chosen = narrowed.record.revisions[-1].changed_only
    key = f"one_file_retest{'_' + which if which else ''}"
    figures: dict[str, Any] = {f"{key}_exit": exit_code(full.record),
                               f"{key}_lock_wait_s": full.waited}
    if which:  # the no-fixup-call ones are warm()'s own
        figures.update({f"{key}_wall_s": full.own, f"{key}_stages": breakdown(full)})
    return {**figures,
            f"{key}_changed_only_wall_s": narrowed.own,
            f"{key}_changed_only_lock_wait_s": narrowed.waited,
            f"{key}_changed_only_exit": exit_code(narrowed.record),
            f"{key}_changed_only_not_run": len(chosen.not_run) if chosen else 0,
            f"{key}_changed_only_everything": chosen.everything if chosen else "",
            f"{key}_changed_only_stages": breakdown(narrowed)}


def breakdown(run: Measured) -> dict[str, dict[str, Any]]:
    """Seconds and detail of each stage of the run's last revision, and the time the run
    spent outside any stage (starting Python, the source check, writing the reports)."""
    stages = run.record.revisions[-1].stages
    out = {s.name: {"s": s.seconds, "detail": s.detail} for s in stages}
    out["outside stages"] = {"s": round(run.wall - sum(s.seconds for s in stages), 2),
                             "detail": "interpreter start, reports"}
    if run.waited:
        # The source stage holds the wait for the tree's lock.
        out["source"] = {**out.get("source", {"detail": ""}),
                         "s": round(out.get("source", {"s": 0.0})["s"] - run.waited, 2)}
        out["lock wait"] = {"s": run.waited, "detail": "another run held the tree (left out)"}
    return out


def breakdown_lines(figures: dict[str, Any], how: str = "") -> list[str]:
    """The per-stage table of the one-file re-test (how: "" or "_changed_only"), against
    the goal."""
    stages = figures[f"one_file_retest{how}_stages"]
    wall = figures[f"one_file_retest{how}_wall_s"]
    goal = figures["one_file_retest_goal_s"]
    flag = " --changed-only" if how.endswith("changed_only") else ""
    name = NARROWED_FILE.name if how.startswith("_pi") else ONE_FILE.name
    lines = [f"one-file re-test ({name}{flag}), per stage:"]
    lines += [f"  {name:<18} {v['s']:>6.1f} s  {v['detail'][:60]}" for name, v in stages.items()]
    lines.append(f"  {'total (wall)':<18} {wall:>6.1f} s  goal {goal:.0f} s: "
                 f"{wall / goal:.1f} x the goal, {max(wall - goal, 0.0):.1f} s over")
    return lines


def stress(out: Path, variant: str) -> dict[str, float]:
    record = harness(out / "stress", "--config-variant", variant, "--stress")
    checks = {c.name: c.counters for c in record.record.revisions[0].checks}
    vdso, legacy = checks["stress-remap-exit-vdso"], checks["stress-remap-exit-legacy"]
    return {"stress_boot_s": stage_seconds(record, "boot-stress"),
            "legacy_first_corruption_ms": legacy["first_corruption_ms"],
            "vdso_window_hits_per_s": round(vdso["window_hits"] / vdso["seconds"], 2),
            "vdso_fixups_per_s": round(vdso["fixups"] / vdso["seconds"], 2)}


def machine() -> str:
    """The host, its cores and CPU model: figures from different machines do not compare."""
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown CPU")
    return f"{platform.node()} {os.cpu_count()} cores, {model}"


def print_figures(figures: dict[str, Any]) -> None:
    for key, value in figures.items():
        if not isinstance(value, dict) and not key.endswith("_stages"):
            print(f"{key:<40} {value}")
    for how in ("", "_changed_only", "_pi", "_pi_changed_only"):
        if f"one_file_retest{how}_stages" in figures:
            print("\n".join(breakdown_lines(figures, how)))
    for line in goals(figures):
        print(line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default=load_settings().config_variant,
                        help="config for the warm figures (default: the default variant)")
    parser.add_argument("--skip-cold", action="store_true")
    parser.add_argument("--cold", action="append", choices=COLD_VARIANTS,
                        help="a variant to build cold (repeatable; default: all three)")
    parser.add_argument("--boot-runs", type=int, default=3,
                        help="boots with the twelve vDSO checks per variant (0: none)")
    parser.add_argument("--boot-variant", action="append", choices=BOOT_VARIANTS,
                        help="a variant to boot with the twelve checks (repeatable; "
                             "default: both)")
    parser.add_argument("--skip-warm", action="store_true",
                        help="leave out the one-file re-test and the whole default suite")
    parser.add_argument("--skip-stress", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-speed")
    parser.add_argument("--report", type=Path, metavar="SPEED_JSON",
                        help="measure nothing: print the figures and goals of a saved run")
    args = parser.parse_args()
    if args.report:
        figures = json.loads(args.report.read_text())
        figures.update(ratios(figures, tuple(v for v in COLD_VARIANTS
                                             if f"cold_build_{v}_s" in figures)))
        print_figures(figures)
        return 0
    figures = {"date": time.strftime("%F"), "machine": machine(), "variant": args.variant}
    if not args.skip_cold:
        figures.update(cold_builds(args.out, tuple(args.cold or COLD_VARIANTS)))
    if args.boot_runs:
        figures.update(boot_vdso(args.out, tuple(args.boot_variant or BOOT_VARIANTS),
                                 args.boot_runs))
    if not args.skip_warm:
        figures.update(warm(args.out, args.variant))
    if not args.skip_stress:
        figures.update(stress(args.out, args.variant))
    print_figures(figures)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "speed.json").write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
