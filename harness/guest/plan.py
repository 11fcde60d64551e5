# SPDX-License-Identifier: GPL-2.0
"""Guest tests: build them on the host, write the plan the guest runner follows, and judge
what came back. The plan's file layout is protocol.py's; this module decides its content."""

from __future__ import annotations

import fnmatch
import os
import py_compile
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from harness.data import DATA, GUEST_TESTS
from harness.data.guest_tests import GuestTest, param_values
from harness.data.lanes import load_lane_costs
from harness.errors import CommandError, HarnessError, InfraError, UserError
from harness.guest import lanes, protocol, uapi
from harness.guest.altinstr import AltLayout
from harness.guest.cache import BinaryCache
from harness.kselftest import programs as kselftest
from harness.kselftest.sources import ProgramSource, rerun_sources, series_sources
from harness.kselftest.spec import load_spec
from harness.stages.disasm import Window
from harness.stages.vdso import Facts, VdsoResult
from harness.verdicts import before_run
from harness.verdicts.checks import Check, entry_key
from harness.verdicts.kselftest_unbuilt import selftests_unbuilt

CFLAGS = ("-static", "-O2", "-Wall", "-Wextra", "-Werror", "-mno-red-zone")
PROTOCOL_SOURCE = Path(protocol.__file__)
# The guest shares the host's root file system (virtme-ng, or the SSH guest's own Debian).
ENV = "/usr/bin/env"
# A python test runs with -S: the venv's site machinery (its .pth files, the harness's
# editable-install finder among them) took 0.1 to 0.3 s of each run under TCG, for scripts
# that need the standard library alone (guest-tests/python/vdso_helpers.py).


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
    # Why no entry has a window at all (the expectations have no [disasm] table): the tests
    # that take {win_start}/{win_store} are not run rather than judged on the labels alone.
    no_windows: str | None = None
    # The op numbers the tests take as {op_<key>}: [ops] of the expectations file as the
    # built tree's uapi header confirms them (uapi.op_numbers).
    ops: uapi.OpNumbers = field(default_factory=uapi.OpNumbers)
    # The interpreter of python tests: the harness's own (the guest sees the same root).
    python: str = sys.executable
    # ktap tests build the tree's own selftests against its built uapi headers.
    tree: Path | None = None
    build_dir: Path | None = None
    # The built .config: series subtests that need an option it lacks are N/A.
    config: dict[str, str] | None = None
    # Where compiled binaries are kept for reuse (cache_root()/guest); None: no reuse.
    cache: Path | None = None
    # struct alt_instr as the tree's header lays it out (altinstr.read_alt_layout), for the
    # image comparisons; None: no tree was read, and a comparison is an error.
    alt_layout: AltLayout | None = None
    # How many VMs the backend may boot side by side for this plan (guest/lanes.py).
    lanes: int = 1


@dataclass(frozen=True)
class GuestPlan:
    rwdir: Path
    runner: Path
    planned: tuple[GuestTest, ...]
    # Tests that cannot run, already judged: for example no offsets for their function.
    skipped: tuple[Check, ...]
    entries: tuple[protocol.Entry, ...] = ()
    # The runs of each ktap test, by test name, to fold back into one check per subtest.
    ktap_runs: dict[str, tuple[kselftest.KselftestRun, ...]] = field(default_factory=dict)
    series_present: bool = True
    config: dict[str, str] | None = None
    # Binaries compiled for this plan, and binaries reused from the cache.
    compiled: int = 0
    reused: int = 0
    # Each image's critical ranges [cs_start, cs_end), from the ELF check: the runtime-image
    # comparison excuses no alternative there.
    critical: dict[str, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    # The tree's source of each series program, by test name then program: a listed series
    # subtest it lacks is named as such.
    ktap_sources: dict[str, dict[str, ProgramSource]] = field(default_factory=dict)
    alt_layout: AltLayout | None = None

    @property
    def runner_plan(self) -> protocol.Plan:
        """The entries as the runner's plan, which owns lanes and timeouts (no id: not
        written)."""
        return protocol.Plan(self.entries, id="")

    @property
    def total_timeout(self) -> float:
        return self.runner_plan.timeout()

    @property
    def lanes(self) -> tuple[int, ...]:
        """The lanes that have a test: one VM each (one VM for no test at all)."""
        return self.runner_plan.lanes or (0,)

    def lane_timeout(self, lane: int) -> float:
        return self.runner_plan.timeout(lane)


def select(tests: tuple[GuestTest, ...], patterns: tuple[str, ...]) -> tuple[GuestTest, ...]:
    """The tests whose name matches one of the shell patterns (all when there are none);
    a pattern that matches no test is the user's error, naming the tests there are."""
    if not patterns:
        return tests
    unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(t.name, p) for t in tests)]
    if unmatched:
        raise UserError(f"--only {', '.join(unmatched)} matches no guest test; the tests are: "
                        f"{', '.join(t.name for t in tests)}")
    return tuple(t for t in tests if any(fnmatch.fnmatchcase(t.name, p) for p in patterns))


def compile_test(test: GuestTest, out: Path, log_file: Path, timeout: float,
                 binaries: BinaryCache | None = None) -> Path:
    """gcc -static the test's sources, or reuse the same build from the cache; a compile
    failure is an infrastructure problem."""
    binary = out / test.name
    sources = [GUEST_TESTS / s for s in test.sources]
    try:
        (binaries or BinaryCache(None)).compile(
            ["gcc", *CFLAGS, *test.cflags, *sources], binary, log_file=log_file,
            timeout=timeout)
    except CommandError as exc:
        # The linker names the cause one line before collect2's summary.
        last = " / ".join([ln for ln in exc.tail.splitlines() if ln.strip()][-2:]) or "no output"
        hint = " (is gcc-multilib installed?)" if {"-m32", "-mx32"} & set(test.cflags) else ""
        raise InfraError(f"cannot build guest test {test.name}{hint}: {last}\n{exc}") from exc
    return binary


def test_argv(test: GuestTest, command: list[str], facts: Facts | None, window: Window | None,
              rwdir: Path, ops: dict[str, int] | None = None,
              params: dict[str, str] | None = None) -> list[str]:
    """The test's arguments from the data file, filled in with its params, the vDSO stage's
    offsets and the disassembly's window (the labels' own offsets when there is no window)."""
    values = {**(params or {}), "name": test.name,
              "out": str(protocol.extra_path(rwdir, test.name)), "bin": str(rwdir / protocol.BIN)}
    values.update({f"op_{k}": str(v) for k, v in (ops or {}).items()})
    if facts:
        values.update(function=facts.function, pop_width=str(facts.pop_width),
                      start=hex(facts.start), success=hex(facts.success), end=hex(facts.end))
        win = window or Window(facts.start, facts.success, facts.end)
        values.update(win_start=hex(win.start), win_store=hex(win.success))
    return [*command, *(a.format(**values) for a in test.args)]


def _command(test: GuestTest, req: GuestPlanRequest, bin_dir: Path,
             binaries: BinaryCache) -> list[str]:
    """What runs the test: its binary, or the interpreter and its script. The script's
    directory, with the helpers it imports, is copied under bin/ so that it travels with
    the plan."""
    if test.kind == "python":
        assert test.script is not None
        script = Path(test.script)
        shutil.copytree(GUEST_TESTS / script.parent, bin_dir / script.parent,
                        dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        for module in (bin_dir / script.parent).glob("*.py"):
            compile_for_guest(module)
        return [ENV, req.python, "-S", str(bin_dir / script)]
    return [str(compile_test(test, bin_dir, req.logs / "guest-build.log", req.timeout,
                             binaries))]


def compile_for_guest(module: Path) -> None:
    """Its bytecode next to it, as the guest's interpreter would write it: the guest runs
    the host's python3 (the same root), which then need not compile the module at every
    boot (0.15 s under TCG for protocol.py). Another interpreter, such as an SSH target's
    of another version, sees a foreign magic number and compiles the source itself."""
    py_compile.compile(str(module), doraise=True)


def copy_files(test: GuestTest, bin_dir: Path) -> None:
    """The data files the test reads, next to the binaries, where {bin} finds them in the
    guest; a missing one is the data's own error."""
    for name in test.files:
        source = DATA / name
        if not source.is_file():
            raise UserError(f"guest test {test.name} reads {source}, which does not exist")
        shutil.copyfile(source, bin_dir / source.name)


def _entry(test: GuestTest, req: GuestPlanRequest, bin_dir: Path,
           binaries: BinaryCache) -> protocol.Entry:
    copy_files(test, bin_dir)
    facts = req.vdso.entry(test.image, test.entry) if test.image and test.entry else None
    window = req.windows.get(entry_key(facts.image, facts.function)) if facts else None
    argv = test_argv(test, _command(test, req, bin_dir, binaries), facts, window, req.rwdir,
                     req.ops.values, param_values(test, os.environ))
    return protocol.Entry(test.name, tuple(argv), test.timeout, test.run_class)


def _ktap_runs(test: GuestTest, req: GuestPlanRequest, bin_dir: Path,
               binaries: BinaryCache) -> tuple[kselftest.KselftestRun, ...]:
    """Build the tree's selftests into bin/<test>/; one run per program, plus reruns."""
    assert req.tree is not None and req.build_dir is not None
    spec = load_spec()
    built = kselftest.build(kselftest.KselftestBuildRequest(
        req.tree, req.build_dir, bin_dir / test.name, req.logs, req.timeout, spec, binaries))
    return kselftest.plan_runs([b for b in built if test.programs.runs(b.name)], spec)


def _ktap_sources(req: GuestPlanRequest) -> dict[str, ProgramSource]:
    """The tree's source of each series program, which names a series subtest it lacks,
    and of each program with a timing-sensitive subtest, which names one it does not define."""
    assert req.tree is not None
    spec = load_spec()
    return {**rerun_sources(spec, req.tree), **series_sources(spec, req.tree)}


def _ktap_unbuilt(test: GuestTest, req: GuestPlanRequest, exc: HarnessError) -> list[Check]:
    """Selftests that did not build are that test's verdicts alone, not the revision's
    error: verdicts.kselftest names the missing directory and each series subtest."""
    assert req.tree is not None
    return selftests_unbuilt(
        load_spec(), test.name, req.tree, req.series_absent is None, req.config,
        str(exc))


def _ktap_entry(test: GuestTest, run: kselftest.KselftestRun, bin_dir: Path) -> protocol.Entry:
    """The run's command; a preload library goes in through env(1), so the runner and its
    protocol stay as they are."""
    programs = bin_dir / test.name
    preload = (ENV, f"LD_PRELOAD={programs / run.preload}") if run.preload else ()
    return protocol.Entry(run.name, (*preload, str(programs / run.binary), *run.argv),
                          run.timeout, run.run_class)


def make_plan(req: GuestPlanRequest) -> GuestPlan:
    """Build what can run, copy the runner and the protocol, and write the plan."""
    bin_dir = req.rwdir / protocol.BIN
    # A reused run directory: no binary an earlier plan built may stand in for one this plan
    # did not build (a cross test execs {bin}/<other test>).
    shutil.rmtree(bin_dir, ignore_errors=True)
    bin_dir.mkdir(parents=True)
    runner = bin_dir / protocol.RUNNER
    shutil.copyfile(GUEST_TESTS / protocol.RUNNER, runner)
    shutil.copyfile(PROTOCOL_SOURCE, bin_dir / PROTOCOL_SOURCE.name)
    compile_for_guest(bin_dir / PROTOCOL_SOURCE.name)
    compile_for_guest(runner)
    entries: list[protocol.Entry] = []
    planned, skipped, ktap, sources = [], [], {}, {}
    binaries = BinaryCache(req.cache)
    for test in req.tests:
        blocked = before_run.cannot_run(test, req)
        if blocked:
            skipped.append(blocked)
            continue
        if test.kind == "ktap":
            try:
                ktap[test.name] = _ktap_runs(test, req, bin_dir, binaries)
                sources[test.name] = _ktap_sources(req)
            except HarnessError as exc:
                skipped += _ktap_unbuilt(test, req, exc)
                continue
            entries += [_ktap_entry(test, r, bin_dir) for r in ktap[test.name]]
        else:
            entries.append(_entry(test, req, bin_dir, binaries))
        planned.append(test)
    if req.lanes > 1:
        entries = list(lanes.split(tuple(entries), req.lanes, load_lane_costs()))
    plan = protocol.Plan(tuple(entries))
    copy = protocol.make_bin_copy(req.rwdir, plan.id)
    protocol.write_plan(req.rwdir, plan._replace(bin_copy=str(copy)))
    return GuestPlan(req.rwdir, runner, tuple(planned), tuple(skipped), plan.entries, ktap,
                     req.series_absent is None, req.config, binaries.compiled, binaries.reused,
                     _critical(req.vdso), ktap_sources=sources,
                     alt_layout=req.alt_layout)


def _critical(vdso: VdsoResult) -> dict[str, tuple[tuple[int, int], ...]]:
    ranges: dict[str, tuple[tuple[int, int], ...]] = {}
    for f in vdso.facts.values():
        ranges[f.image] = (*ranges.get(f.image, ()), (f.start, f.end))
    return ranges


