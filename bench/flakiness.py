#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""How often does the guest suite lie? Runs the whole harness N times on pristine Linux 7.3
and N times on one known-bad revision, then reports false failures (a pristine check that
did not pass, or was N/A in some runs only) and misses (the mutant's Caught-by check that
did not fail).

With --stress it runs `run --stress` N times on pristine 7.3 instead. A run whose boot died
before the guest runner started is lost; a check of a stress suite (console included) that
did not pass is a false failure. Each run's stress counters and the time each stress boot
took to start its runner are kept and summarised.

Run on demand, not in CI: N=20 takes about 45 minutes on 2 cores under TCG (a boot plus
the whole default suite is about a minute);
with --stress about 50 minutes (nice it: it keeps both cores busy).

    .venv/bin/python bench/flakiness.py -n 20 [--config-variant minimal]
    nice -n 10 .venv/bin/python bench/flakiness.py --stress -n 20 [--resume]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.data.guest_tests import load_guest_tests  # noqa: E402
from harness.data.settings import load_settings  # noqa: E402
from harness.errors import HarnessError  # noqa: E402
from harness.guest.protocol import STARTED  # noqa: E402
from harness.outputs.report import load_record  # noqa: E402
from harness.paths import revision_dir  # noqa: E402
from harness.stages.patches import caught_by  # noqa: E402
from harness.verdicts.checks import Verdict, stage_check, suite_check  # noqa: E402

# The counters kept per run of a stress check.
STRESS_COUNTERS = ("kills", "window_hits", "fixups", "corruptions", "first_corruption_ms")


def one_run(run_dir: Path, series: Path | None, extra: tuple[str, ...] = (),
            reruns: dict[str, dict[str, int]] | None = None,
            boots: list[float] | None = None) -> dict[str, str]:
    """Verdict per check of one harness run (its only revision). The run dir starts empty: a
    harness run refuses one that holds a run. Checks with attempts (the timing-sensitive
    kselftest subtests) add their counters to `reruns`; the boot stage's seconds (boot plus
    the whole suite, in all its VMs) go to `boots`."""
    shutil.rmtree(run_dir, ignore_errors=True)
    argv = [sys.executable, "-m", "harness", "run", "--run-dir", str(run_dir), *extra]
    if series:
        argv += ["--series", str(series), "--no-base"]
    subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rev = load_record(run_dir).revisions[0]
    verdicts = {c.name: c.verdict.value for c in rev.checks}
    verdicts.update({stage_check(s.name): "ERROR" for s in rev.stages if s.failed})
    if boots is not None:
        boots += [s.seconds for s in rev.stages if s.name == "boot"]
    for c in rev.checks:
        if reruns is not None and "attempts" in c.counters:
            total = reruns.setdefault(c.name, {"runs": 0, "attempts": 0, "failures": 0,
                                               "runs_with_a_failed_attempt": 0})
            total["runs"] += 1
            total["attempts"] += c.counters["attempts"]
            total["failures"] += c.counters.get("failures", 0)
            total["runs_with_a_failed_attempt"] += bool(c.counters.get("failures"))
    return verdicts


def ok(verdict: str) -> bool:
    """PASS, or N/A with the reason the expectations give (the nocompat variant's list32
    checks, the kselftests a kernel config leaves out)."""
    return Verdict(verdict).ok


def campaign(n: int, out: Path, series: Path | None, extra: tuple[str, ...] = (),
             reruns: dict[str, dict[str, int]] | None = None,
             boots: list[float] | None = None) -> list[dict[str, str]]:
    runs = []
    for i in range(n):
        start = time.monotonic()
        runs.append(one_run(out / f"{'mutant' if series else 'pristine'}-{i:02d}", series,
                            extra, reruns, boots))
        print(f"  run {i + 1}/{n}: {time.monotonic() - start:.0f}s", file=sys.stderr)
    return runs


def stress_suites() -> dict[str, tuple[str, ...]]:
    """Each suite that boots only with --stress, with the checks it produces."""
    tests = load_guest_tests()
    return {suite.name: (*(t.name for t in tests if t.suite == suite.name),
                         suite_check("console", suite.name))
            for suite in load_settings().suites.values() if suite.with_stress}


def finished(run_dir: Path) -> bool:
    """A run that ended on its own: its record has no stage still running."""
    try:
        rev = load_record(run_dir).revisions[0]
    except (HarnessError, IndexError):  # load_record raises UserError
        return False
    return bool(rev.stages) and all(s.status != "running" for s in rev.stages)


def stress_run(run_dir: Path, suites: dict[str, tuple[str, ...]],
               resume: bool = False, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """One run of the stress boots on pristine 7.3: lost or not, verdicts, counters, boot
    times. Only the stress suites boot (the default suite's flakiness is the plain mode's).
    With resume, a run that already finished in run_dir is read instead of repeated."""
    argv = [sys.executable, "-m", "harness", "run", "--run-dir", str(run_dir),
            *(a for name in suites for a in ("--suite", name)), *extra]
    start = time.monotonic()
    reused = resume and finished(run_dir)
    if not reused:
        shutil.rmtree(run_dir, ignore_errors=True)
        subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = None if reused else round(time.monotonic() - start, 1)
    out: dict[str, Any] = {"run": run_dir.name, "wall_s": wall, "lost": None}
    try:
        rev = load_record(run_dir).revisions[0]
    except (HarnessError, IndexError):  # load_record raises UserError
        out["lost"] = "no results.json"
        return out
    stages = {s.name: s for s in rev.stages}
    boots = [f"boot-{name}" for name in suites]
    died = next((stages[b] for b in boots if b in stages and stages[b].failed), None)
    missing = [b for b in boots if b not in stages]
    if died or missing:
        out["lost"] = f"{died.name}: {died.detail}" if died else f"no {', '.join(missing)}"
    logs = revision_dir(run_dir, rev.label) / "logs"
    out["boot_s"] = {name: runner_start(logs / f"console-{name}.log") for name in suites}
    stress_checks = [c for names in suites.values() for c in names]
    out["verdicts"] = {n: c.verdict.value for n in stress_checks if (c := rev.check(n))}
    out["other_not_passed"] = sorted(c.name for c in rev.checks
                                     if c.name not in stress_checks and not c.verdict.ok)
    out["counters"] = {n: {k: c.counters[k] for k in STRESS_COUNTERS if k in c.counters}
                       for n in stress_checks if (c := rev.check(n)) and c.counters}
    for figures in out["counters"].values():
        if not figures.get("corruptions"):
            figures.pop("first_corruption_ms", None)  # 0 there means "never"
    return out


def runner_start(console: Path) -> float | None:
    """Guest uptime when the runner said it started (TCG guest time follows the host's)."""
    try:
        text = console.read_text(errors="replace")
    except OSError:
        return None
    found = re.search(r"\[\s*(\d+\.\d+)\][^\n]*" + re.escape(STARTED), text)
    return round(float(found.group(1)), 1) if found else None


def spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"min": min(values), "median": round(statistics.median(values), 1),
            "max": max(values), "total": round(sum(values), 1)}


def stress_campaign(n: int, out: Path, resume: bool, extra: tuple[str, ...] = ()) -> int:
    suites = stress_suites()
    start = time.monotonic()
    runs = []
    for i in range(n):
        runs.append(stress_run(out / f"stress-{i:02d}", suites, resume, extra))
        r = runs[-1]
        wall = "reused" if r["wall_s"] is None else f"{r['wall_s']:.0f}s"
        print(f"  run {i + 1}/{n}: {wall}  lost={r['lost']}  "
              f"boot={r.get('boot_s')}  {r.get('counters')}", file=sys.stderr)
    kept = [r for r in runs if not r["lost"]]
    names = [c for checks in suites.values() for c in checks]
    false_failures = Counter(name for r in kept for name in names
                             if r["verdicts"].get(name) != "PASS")
    counters = {name: {k: spread([r["counters"][name][k] for r in kept
                                  if k in r["counters"].get(name, {})])
                       for k in STRESS_COUNTERS}
                for name in names}
    summary: dict[str, Any] = {
        "counters": {name: {k: v for k, v in c.items() if v} for name, c in counters.items()
                     if any(c.values())},
        "boot_s": {name: spread([b for r in runs if (b := r.get("boot_s", {}).get(name))])
                   for name in suites},
        "wall_s": spread([r["wall_s"] for r in runs if r["wall_s"] is not None]),
    }
    result = {
        "date": time.strftime("%F"), "n": n, "campaign": "stress",
        "suites": {s.name: {"cpus": s.cpus, "tcg_qemu_opts": list(s.tcg_qemu_opts)}
                   for s in load_settings().suites.values() if s.name in suites},
        "lost_runs": sum(1 for r in runs if r["lost"]),
        "runs_with_a_false_failure": sum(1 for r in kept
                                         if any(r["verdicts"].get(c) != "PASS" for c in names)),
        "false_failures_by_check": dict(false_failures),
        # Host-side checks and the stress boots' console triage.
        "other_not_passed": dict(Counter(c for r in kept for c in r["other_not_passed"])),
        # The target: every run reaches the unlock window on every path.
        "runs_without_window_hits": sum(
            1 for r in kept if any(not f.get("window_hits") for f in r["counters"].values())),
        "summary": summary,
        "minutes": round((time.monotonic() - start) / 60, 1),
        "runs": runs,
    }
    print(f"{'campaign':<10} {'runs':>5} {'lost':>5} {'false':>6} {'no hits':>8}  detail")
    print(f"{'stress':<10} {n:>5} {result['lost_runs']:>5} "
          f"{result['runs_with_a_false_failure']:>6} {result['runs_without_window_hits']:>8}  "
          f"{dict(false_failures) or 'no false failures'}")
    for name, figures in summary["counters"].items():
        print(f"  {name}: " + "  ".join(f"{k} {v['min']}..{v['max']} (median {v['median']})"
                                        for k, v in figures.items()))
    for name, b in summary["boot_s"].items():
        if b:
            print(f"  boot-{name}: runner up after {b['min']}..{b['max']} s "
                  f"(median {b['median']})")
    out.mkdir(parents=True, exist_ok=True)
    (out / "flakiness-stress.json").write_text(json.dumps(result, indent=1) + "\n")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20)
    parser.add_argument("--mutant", type=Path,
                        default=ROOT / "patches" / "mutants" / "no-fixup-call.patch")
    parser.add_argument("--stress", action="store_true",
                        help="run the stress suite N times on pristine 7.3 instead")
    parser.add_argument("--resume", action="store_true",
                        help="with --stress: keep the runs already finished in --out")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-flakiness")
    parser.add_argument("--config-variant", help="passed to every harness run (default: "
                                                 "the settings' default variant)")
    parser.add_argument("--kernel-src", type=Path,
                        help="a kernel tree of your own instead of Debian's 7.3 (a copy of it "
                             "lets the campaign run beside another run on the shared tree)")
    parser.add_argument("--pristine-only", action="store_true",
                        help="only the pristine campaign: false failures, no misses")
    args = parser.parse_args()
    extra = ("--config-variant", args.config_variant) if args.config_variant else ()
    if args.kernel_src:
        extra += ("--kernel-src", str(args.kernel_src.resolve()))
    if args.stress:
        return stress_campaign(args.n, args.out, args.resume, extra)
    check = caught_by(args.mutant)
    start = time.monotonic()
    reruns: dict[str, dict[str, int]] = {}
    boots: list[float] = []
    pristine = campaign(args.n, args.out, None, extra, reruns, boots)
    mutant = [] if args.pristine_only else campaign(args.n, args.out, args.mutant, extra)
    false_failures = Counter(name for run in pristine for name, v in run.items() if not ok(v))
    # An N/A is decided by the expectations, so the same checks must be N/A in every run;
    # one that is N/A only sometimes is as flaky as a false failure.
    not_applicable = Counter(name for run in pristine for name, v in run.items() if v == "N/A")
    unstable = sorted(name for name, count in not_applicable.items() if count != args.n)
    misses = None if args.pristine_only else sum(
        1 for run in mutant if check is None or run.get(check) != "FAIL")
    result = {
        "date": time.strftime("%F"), "n": args.n, "mutant": args.mutant.name, "caught_by": check,
        "config_variant": args.config_variant or load_settings().config_variant,
        "pristine_runs_with_a_false_failure": sum(1 for r in pristine
                                                  if any(not ok(v) for v in r.values())),
        "false_failures_by_check": dict(false_failures),
        "checks_per_pristine_run": [len(r) for r in pristine],
        "not_applicable_by_check": dict(not_applicable),
        "not_applicable_in_some_runs_only": unstable,
        "mutant_misses": misses,
        # Each timing-sensitive subtest's attempts and failures over the pristine runs.
        "reruns": reruns,
        # The pristine runs' boot stage: boot plus the whole suite, in all its VMs.
        "boot_s": spread([round(b, 1) for b in boots]),
        "lanes": load_settings().suites["default"].lanes,
        "minutes": round((time.monotonic() - start) / 60, 1),
    }
    print(f"{'campaign':<10} {'runs':>5} {'bad runs':>9}  detail")
    print(f"{'pristine':<10} {args.n:>5} {result['pristine_runs_with_a_false_failure']:>9}  "
          f"{dict(false_failures) or 'no false failures'}")
    if unstable:
        print(f"N/A in some runs only: {', '.join(unstable)}")
    for name, r in sorted(reruns.items()):
        print(f"  {name}: {r['failures']} of {r['attempts']} attempts failed, in "
              f"{r['runs_with_a_failed_attempt']} of {r['runs']} runs")
    if result["boot_s"]:
        b = result["boot_s"]
        print(f"  boot plus suite: {b['min']} to {b['max']} s (median {b['median']})")
    if misses is not None:
        print(f"{'mutant':<10} {args.n:>5} {misses:>9}  {check} missed {args.mutant.name} "
              f"{misses} times")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "flakiness.json").write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
