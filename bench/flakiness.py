#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""How often does the guest suite lie? Runs the whole harness N times on pristine Linux 7.3
and N times on one known-bad revision, then reports false failures (a pristine check that
did not pass) and misses (the mutant's Caught-by check that did not fail).

Run on demand, not in CI: N=20 takes about 12 minutes on 2 cores under TCG (lean config).

    .venv/bin/python bench/flakiness.py -n 20
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.patches import caught_by  # noqa: E402


def one_run(run_dir: Path, series: Path | None) -> dict[str, str]:
    """Verdict per check of one harness run (its only revision)."""
    argv = [sys.executable, "-m", "harness", "run", "--run-dir", str(run_dir)]
    if series:
        argv += ["--series", str(series), "--no-base"]
    subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    record = json.loads((run_dir / "results.json").read_text())
    rev = record["revisions"][0]
    verdicts = {c["name"]: c["verdict"] for c in rev["checks"]}
    for stage in rev["stages"]:
        if stage["status"] == "error":
            verdicts[f"stage-{stage['name']}"] = "ERROR"
    return verdicts


def campaign(n: int, out: Path, series: Path | None) -> list[dict[str, str]]:
    runs = []
    for i in range(n):
        start = time.monotonic()
        runs.append(one_run(out / f"{'mutant' if series else 'pristine'}-{i:02d}", series))
        print(f"  run {i + 1}/{n}: {time.monotonic() - start:.0f}s", file=sys.stderr)
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20)
    parser.add_argument("--mutant", type=Path,
                        default=ROOT / "patches" / "mutants" / "no-fixup-call.patch")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-flakiness")
    args = parser.parse_args()
    check = caught_by(args.mutant)
    start = time.monotonic()
    pristine = campaign(args.n, args.out, None)
    mutant = campaign(args.n, args.out, args.mutant)
    false_failures = Counter(name for run in pristine for name, v in run.items() if v != "PASS")
    misses = sum(1 for run in mutant if run.get(check) != "FAIL")
    result = {
        "date": time.strftime("%F"), "n": args.n, "mutant": args.mutant.name, "caught_by": check,
        "pristine_runs_with_a_false_failure": sum(1 for r in pristine
                                                  if any(v != "PASS" for v in r.values())),
        "false_failures_by_check": dict(false_failures),
        "mutant_misses": misses,
        "minutes": round((time.monotonic() - start) / 60, 1),
    }
    print(f"{'campaign':<10} {'runs':>5} {'bad runs':>9}  detail")
    print(f"{'pristine':<10} {args.n:>5} {result['pristine_runs_with_a_false_failure']:>9}  "
          f"{dict(false_failures) or 'no false failures'}")
    print(f"{'mutant':<10} {args.n:>5} {misses:>9}  {check} missed {args.mutant.name} "
          f"{misses} times")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "flakiness.json").write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
