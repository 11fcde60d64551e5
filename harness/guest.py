# SPDX-License-Identifier: GPL-2.0
"""Build the guest tests on the host (static C) and write the plan the guest runner follows."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.data import GUEST_TESTS, GuestTest
from harness.disasm import Window
from harness.errors import CommandError, InfraError
from harness.results import Check, Verdict
from harness.run import run
from harness.vdso import Facts, VdsoResult, compare_image

CFLAGS = ("-static", "-O2", "-Wall", "-Wextra", "-Werror", "-mno-red-zone")


@dataclass(frozen=True)
class GuestPlanRequest:
    tests: tuple[GuestTest, ...]
    vdso: VdsoResult
    rwdir: Path
    logs: Path
    timeout: float
    # Set when the tree predates the series: its vDSO checks are not applicable.
    series_absent: str | None = None
    # The unlock window of each entry as the disassembly sees it, keyed image:function.
    windows: dict[str, Window] = field(default_factory=dict)


@dataclass(frozen=True)
class GuestPlan:
    rwdir: Path
    runner: Path
    planned: tuple[GuestTest, ...]
    # Tests that cannot run, already judged: for example no offsets for their function.
    skipped: tuple[Check, ...]

    @property
    def total_timeout(self) -> float:
        return sum(t.timeout for t in self.planned)


def compile_test(test: GuestTest, out: Path, log_file: Path, timeout: float) -> Path:
    """gcc -static the test's sources; a compile failure is an infrastructure problem."""
    binary = out / test.name
    sources = [GUEST_TESTS / s for s in test.sources]
    try:
        run(["gcc", *CFLAGS, *test.cflags, "-o", binary, *sources],
            log_file=log_file, timeout=timeout)
    except CommandError as exc:
        # The linker names the cause one line before collect2's summary.
        last = " / ".join([ln for ln in exc.tail.splitlines() if ln.strip()][-2:]) or "no output"
        hint = " (is gcc-multilib installed?)" if "-m32" in test.cflags else ""
        raise InfraError(f"cannot build guest test {test.name}{hint}: {last}\n{exc}") from exc
    return binary


def dump_path(rwdir: Path, test: GuestTest) -> Path:
    return rwdir / "results" / f"{test.name}.bin"


def test_argv(test: GuestTest, binary: Path, facts: Facts | None, window: Window | None,
              rwdir: Path) -> list[str]:
    """The test's arguments from the data file, filled in with the vDSO stage's offsets and
    the disassembly's window (the labels' own offsets when there is no window)."""
    values = {"name": test.name, "out": str(dump_path(rwdir, test))}
    if facts:
        values.update(function=facts.function, pop_width=str(facts.pop_width),
                      start=hex(facts.start), success=hex(facts.success), end=hex(facts.end))
        win = window or Window(facts.start, facts.success, facts.end)
        values.update(win_start=hex(win.start), win_store=hex(win.success))
    return [str(binary), *(a.format(**values) for a in test.args)]


def _cannot_run(test: GuestTest, vdso: VdsoResult, absent: str | None) -> Check | None:
    """Why a test cannot run on this build, as its verdict; None when it can."""
    if test.image is None:
        return None
    if absent:
        return Check(test.name, Verdict.NOT_APPLICABLE, f"series absent: {absent}")
    image = next((c for c in vdso.checks if c.name == f"elf-{test.image}"), None)
    if image and image.verdict == Verdict.NOT_APPLICABLE:
        return Check(test.name, Verdict.NOT_APPLICABLE, f"{test.image}: {image.detail}")
    if image is None or image.verdict != Verdict.PASS:
        return Check(test.name, Verdict.ERROR, f"not run: the {test.image} ELF check did not pass")
    if test.entry and vdso.entry(test.image, test.entry) is None:
        return Check(test.name, Verdict.ERROR,
                     f"not run: no checked offsets for the {test.entry} entry of {test.image}")
    return None


def plan(req: GuestPlanRequest) -> GuestPlan:
    """Compile what can run, copy the runner, and write plan.json into the rwdir."""
    bin_dir = req.rwdir / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    runner = bin_dir / "runner.py"
    shutil.copyfile(GUEST_TESTS / "runner.py", runner)
    entries: list[dict[str, Any]] = []
    planned, skipped = [], []
    (req.rwdir / "results").mkdir(exist_ok=True)
    for test in req.tests:
        blocked = _cannot_run(test, req.vdso, req.series_absent)
        if blocked:
            skipped.append(blocked)
            continue
        facts = req.vdso.entry(test.image, test.entry) if test.image and test.entry else None
        binary = compile_test(test, bin_dir, req.logs / "guest-build.log", req.timeout)
        window = req.windows.get(f"{test.image}:{facts.function}") if facts else None
        entries.append({"name": test.name,
                        "argv": test_argv(test, binary, facts, window, req.rwdir),
                        "timeout": test.timeout})
        planned.append(test)
    (req.rwdir / "plan.json").write_text(json.dumps({"tests": entries}, indent=1) + "\n")
    return GuestPlan(req.rwdir, runner, tuple(planned), tuple(skipped))


def add_image_comparison(test: GuestTest, outcome: dict[str, Any] | None, rwdir: Path,
                         image: Path) -> None:
    """Give a dump test's record the host-side comparison counters."""
    dump = dump_path(rwdir, test)
    if outcome is None or not dump.is_file():
        return
    for record in outcome.get("records", []):
        if record.get("check") == test.name:
            record.update(compare_image(dump.read_bytes(), image))


def read_outcomes(rwdir: Path) -> dict[str, dict[str, Any]]:
    """Whatever results the guest left behind, by test name."""
    out = {}
    for path in sorted((rwdir / "results").glob("*.json")):
        if path.name == "done.json":
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        out[str(data.get("name", path.stem))] = data
    return out
