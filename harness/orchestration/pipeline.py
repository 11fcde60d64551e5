# SPDX-License-Identifier: GPL-2.0
"""The pipeline: source, patches, config, build, vDSO checks, boot and guest tests, in order.

Stage errors stop the revision; check failures do not. The run record is rewritten after
every stage, so results.json is valid whatever happens next."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness import progress
from harness.backends import Backend, BackendConfig, SuiteRequest, SuiteResult, get_backend
from harness.data.changed_only import load_change_map
from harness.data.expectations import Expectations, load_expectations
from harness.data.guest_tests import GuestTest, load_guest_tests
from harness.data.settings import Settings, Suite
from harness.errors import HarnessError, InfraError, RunTimeout
from harness.guest import altinstr, protocol, uapi
from harness.guest import plan as guest
from harness.orchestration import bisection, rangediff, selection
from harness.orchestration.jobs import Job, Kernel
from harness.outputs import report
from harness.outputs.record import Boot, Run, Stage
from harness.outputs.record import Revision as RevisionRecord
from harness.paths import cache_lock, path_key, revision_dir
from harness.stages import build, disasm, kconfig, patches, source, vdso
from harness.stages.kconfig_drift import Config
from harness.verdicts import console
from harness.verdicts import guest as guest_verdicts
from harness.verdicts.checks import Check, suite_check

log = logging.getLogger("harness")


@dataclass(frozen=True)
class RunRequest:
    settings: Settings
    run_dir: Path
    cache: Path
    # The jobs to run, in order (orchestration/jobs.py): revisions on kernels and config
    # variants.
    jobs: tuple[Job, ...]
    expect: str
    # Each config variant's fragments; each variant has its own build dir.
    fragments: Mapping[str, tuple[Path, ...]]
    make_jobs: int
    # Where the guest suites run: a virtme-ng boot, or an SSH target.
    backend: BackendConfig
    stress: bool = False
    # Boot only these suites (settings.toml [suites]); empty: the default ones, and the
    # stress ones with --stress.
    suites: tuple[str, ...] = ()
    # False for the build subcommand: stop after the host-side checks.
    boot: bool = True
    # Find the first bad patch of a series that breaks what passes on its base.
    bisect: bool = False
    # A local mbox in which b4 finds the message-id series (--mbox), instead of lore.
    mbox: Path | None = None
    # Each variant's own base config target (tinyconfig); None: the settings' defconfig
    # plus virtme-ng's config items.
    bases: Mapping[str, str | None] = field(default_factory=dict)
    # Each variant's Kbuild ARCH when it is not the host's (i386); None: the host's.
    arches: Mapping[str, str | None] = field(default_factory=dict)
    # Run only the guest tests matching these shell patterns (--only); empty: all.
    only: tuple[str, ...] = ()
    # Run only the guest tests the files of each revision's patches select
    # (data/changed-only.toml, --changed-only); the run then gives no series verdict.
    changed_only: bool = False
    # At most this many VMs side by side per suite (--lanes); None: the suite's settings.
    lanes: int | None = None


def build_dir_for(cache: Path, tree_key: str, variant: str) -> Path:
    """One build dir per source tree and config variant, so switching never rebuilds all."""
    return cache / "build" / (tree_key + ("" if variant == "vng" else f"-{variant}"))


@dataclass
class Recorder:
    """The run record, written to the run dir after every change."""

    run_dir: Path
    record: Run = field(default_factory=Run)
    # The KCIDB origin of kcidb.json; None: the environment's or data/kcidb.toml's.
    kcidb_origin: str | None = None

    def revision(self, label: str) -> RevisionRecord:
        rev = RevisionRecord(label)
        self.record.revisions.append(rev)
        self.flush()
        return rev

    def flush(self) -> None:
        report.write_reports(self.run_dir, self.record, self.kcidb_origin)

    @contextlib.contextmanager
    def stage(self, rev: RevisionRecord, name: str) -> Iterator[Stage]:
        entry = Stage(name)
        rev.stages.append(entry)
        self.flush()
        start = time.monotonic()
        log.info("stage %s", name)
        try:
            yield entry
            entry.status = "ok"
        except HarnessError as exc:
            entry.status, entry.detail = "error", str(exc)
            raise
        except BaseException:
            entry.status, entry.detail = "error", "interrupted"
            raise
        finally:
            entry.seconds = round(time.monotonic() - start, 2)
            log.info("stage %s: %s in %.1fs", name, entry.status, entry.seconds)
            self.flush()


@dataclass
class _Shared:
    """What every job of a run shares: each source tree, prepared once, and its lock, held
    until the run ends so that no other run resets the tree between two revisions; and the
    backend that runs the guest suites."""

    held: contextlib.ExitStack
    backend: Backend | None
    sources: dict[Kernel, source.SourceResult] = field(default_factory=dict)
    # Each (kernel, variant)'s base record, which a bisection compares with.
    bases: dict[tuple[Kernel, str], RevisionRecord] = field(default_factory=dict)
    # Each revision's patch files by label, for the range-diff against the next one.
    patch_files: dict[str, tuple[Path, ...]] = field(default_factory=dict)


def test_all(req: RunRequest, rec: Recorder) -> None:
    """Run every job in order. A stage error ends that job only; it is recorded."""
    # Bad names and bad SSH inputs fail before anything is downloaded or built.
    load_expectations(req.expect)
    guest.select(load_guest_tests(), req.only)
    if req.changed_only:
        load_change_map()
    backend = get_backend(req.backend) if req.boot else None
    with contextlib.ExitStack() as held:
        shared = _Shared(held, backend)
        for job in req.jobs:
            try:
                test_job(req, job, rec, shared)
            except RunTimeout:
                raise
            except HarnessError as exc:
                log.error("%s: %s", job.label, exc)
            rev = rec.record.revisions[-1]
            if job.is_base:
                shared.bases[(job.kernel, job.variant)] = rev
            elif req.bisect:
                _bisect(req, job, rec, rev, shared)


def test_job(req: RunRequest, job: Job, rec: Recorder, shared: _Shared) -> RevisionRecord:
    """Test one job end to end; returns its record. HarnessError propagates after recording."""
    rev = rec.revision(job.label)
    rev.job, rev.kernel, rev.variant = job.id, job.kernel.name, job.variant
    logs = revision_dir(req.run_dir, job.label) / "logs"
    with rec.stage(rev, "source") as st:
        src = _source(req, job.kernel, shared, logs)
        rev.origin = st.detail = src.origin
    return _test_locked(req, job, rec, rev, src, shared, logs)


def _source(req: RunRequest, kernel: Kernel, shared: _Shared,
            logs: Path) -> source.SourceResult:
    """The kernel's tree, prepared and locked on first use."""
    if kernel not in shared.sources:
        src = source.prepare_source(source.SourceRequest(
            kernel.tree, kernel.debian, req.cache, logs), req.settings)
        # One run at a time per source tree: they share its work tree and build dir.
        shared.held.enter_context(cache_lock(req.cache / "locks" / f"{src.key}.lock",
                                             "on the same tree"))
        shared.sources[kernel] = src
    return shared.sources[kernel]


def _test_locked(req: RunRequest, job: Job, rec: Recorder, rev: RevisionRecord,
                src: source.SourceResult, shared: _Shared, logs: Path,
                upto: int | None = None,
                behind: tuple[str, ...] | None = None) -> RevisionRecord:
    """The stages after the source. A bisection step applies only the first `upto` patches
    and runs only the guest tests behind the checks in `behind` (None: every test)."""
    s, revision = req.settings, job.revision
    expectations = load_expectations(req.expect)
    tests = guest.select(load_guest_tests(), req.only)
    with rec.stage(rev, "patches") as st:
        rev.series = revision.series
        patched = patches.apply_series(patches.PatchRequest(
            src, revision.series, req.cache, logs, s.timeouts, revision.version,
            copy=any(j.revision.series for j in req.jobs if j.kernel == job.kernel), upto=upto,
            mbox=req.mbox))
        rev.applied = list(patched.applied)
        rev.patchset_hash = patched.patchset_hash
        st.detail = f"{len(patched.applied)} applied" if revision.series else "none"
    if upto is None:  # a bisection step is no revision of its own
        _note_changes(rev, patched, shared, rec, logs, s.timeouts.patch)
        if req.changed_only:
            # Only the suites this run boots: a stress test is no test left out.
            booted = {suite.name for suite in _suites(req)}
            tests = _changed_only(rev, tuple(t for t in tests if t.suite in booted), patched)
    # One build dir per source tree: Kbuild's O= dir belongs to one srctree.
    tree_key = src.key if patched.tree == src.tree else path_key(patched.tree)
    build_dir = build_dir_for(req.cache, tree_key, job.variant)
    with rec.stage(rev, "config") as st:
        cfg = kconfig.configure(kconfig.ConfigRequest(
            patched.tree, build_dir, req.fragments[job.variant],
            req.bases.get(job.variant) or s.defconfig, s.arch, logs, s.timeouts.config,
            s.timeouts.config_tool, expectations.kconfig, job.variant,
            indexed=patched.tree_id is not None,
            virtme_items=req.bases.get(job.variant) is None,
            kbuild_arch=req.arches.get(job.variant)))
        st.detail = f"{job.variant} config, {len(cfg.requested)} options checked"
        st.detail += ", unchanged (skipped)" if cfg.skipped else \
            ", changed" if cfg.changed else ", unchanged"
        if cfg.absent:
            rev.series_absent = f"the tree has no {', '.join(cfg.absent)}"
            st.detail += f"; series absent: no {', '.join(cfg.absent)} in this tree"
            log.warning("series absent: this tree has no %s", ", ".join(cfg.absent))
    with rec.stage(rev, "build") as st:
        built = build.build(build.BuildRequest(
            patched.tree, build_dir, s.targets, patched.tree_id, logs, req.cache / "ccache",
            s.timeouts.build, req.make_jobs))
        st.detail = "up to date" if built.skipped else f"{built.objects} objects built"
    with rec.stage(rev, "vdso"):
        elf = vdso.check_vdso(vdso.VdsoRequest(build_dir, expectations, cfg.final,
                                               rev.series_absent))
        rev.checks += elf.checks
    with rec.stage(rev, "disasm"):
        code_checks, windows = disasm.check_disasm(build_dir, expectations, elf)
        rev.checks += code_checks
    if shared.backend is None:
        return rev
    built_tree = _BuiltTree(patched.tree, build_dir, elf, windows, expectations, cfg.final)
    for suite in _suites(req):
        chosen = tuple(t for t in tests if t.suite == suite.name
                       and (behind is None or _behind(t, suite.name, behind)))
        if chosen:
            _test_suite(req, rec, rev, shared.backend, suite.name, chosen, built_tree, logs)
    return rev


def _suites(req: RunRequest) -> list[Suite]:
    """The suites the run boots: those asked for, else the default ones (and the stress
    ones with --stress)."""
    return ([req.settings.suite(n) for n in req.suites] if req.suites
            else list(req.settings.suites_for(req.stress)))


def _changed_only(rev: RevisionRecord, tests: tuple[GuestTest, ...],
                  patched: patches.PatchResult) -> tuple[GuestTest, ...]:
    """The tests the revision's patches select; the choice goes into the record."""
    chosen, rev.changed_only = selection.select_for_patches(tests, patched.patches,
                                                            load_change_map())
    if rev.changed_only.everything:
        log.info("changed-only: every guest test runs: %s", rev.changed_only.everything)
    else:
        log.info("changed-only: %d guest tests run, %d not run (%s)", len(chosen),
                 len(rev.changed_only.not_run), ", ".join(rev.changed_only.files))
    return chosen


def _behind(test: GuestTest, suite: str, checks: tuple[str, ...]) -> bool:
    """Whether the test produces one of the checks (its own, a subtest, or its boot's console)."""
    console = suite_check("console", suite)
    return any(c in (test.name, console) or c.startswith(test.name + "/") for c in checks)


def _bisect(req: RunRequest, job: Job, rec: Recorder, rev: RevisionRecord,
            shared: _Shared) -> None:
    """Bisect the job's series against its base, each step through the same stages."""
    def test_step(step_rev: RevisionRecord, k: int, behind: tuple[str, ...] | None) -> None:
        _test_locked(req, job, rec, step_rev, shared.sources[job.kernel], shared,
                     revision_dir(req.run_dir, step_rev.label) / "logs", upto=k, behind=behind)

    bisection.bisect_revision(rev, shared.bases.get((job.kernel, job.variant)), test_step,
                              rec.flush)


def _note_changes(rev: RevisionRecord, patched: patches.PatchResult, shared: _Shared,
                  rec: Recorder, logs: Path, timeout: float) -> None:
    """What changed in the series since the previous revision's (git range-diff); never fatal."""
    shared.patch_files[rev.label] = patched.patches
    rev.changes = rangediff.against_previous(rec.record.revisions, rev, shared.patch_files,
                                             patched.tree, logs, timeout)


@dataclass(frozen=True)
class _BuiltTree:
    """What the guest suites of one revision need from the stages before them."""

    tree: Path
    build_dir: Path
    elf: vdso.VdsoResult
    windows: dict[str, disasm.Window]
    expectations: Expectations
    config: Config


def _test_suite(req: RunRequest, rec: Recorder, rev: RevisionRecord, backend: Backend,
               suite: str, tests: tuple[GuestTest, ...], built: _BuiltTree,
               logs: Path) -> None:
    """Build one suite's guest tests, run them all in one go, and judge every one."""
    tag = "" if suite == "default" else f"-{suite}"
    with rec.stage(rev, f"guest-build{tag}") as st:
        rwdir = revision_dir(req.run_dir, rev.label) / f"guest{tag}"
        plan = guest.make_plan(guest.GuestPlanRequest(
            tests, built.elf, rwdir, logs, req.settings.timeouts.guest_compile,
            rev.series_absent, built.windows,
            None if built.expectations.disasm else disasm.no_table(built.expectations),
            _op_numbers(req, rev, tests, built, logs), tree=built.tree,
            build_dir=built.build_dir, config=dict(built.config), cache=req.cache / "guest",
            alt_layout=altinstr.read_alt_layout(built.tree), lanes=_lanes(req, suite)))
        st.detail = f"{plan.compiled} compiled, {plan.reused} reused"
    images = {i.name: i.path(built.build_dir, i.stripped) for i in built.expectations.images}
    with rec.stage(rev, f"{backend.stage}{tag}") as st:
        done = _timed(f"{backend.stage}{tag}", built.build_dir, lambda: backend.test_suite(
            SuiteRequest(plan, built.build_dir, logs, suite, images)))
        rev.accel, rev.accel_reason, rev.target = done.accel, done.accel_reason, done.target
        outcomes = protocol.read_outcomes(plan.rwdir)
        seconds = guest_verdicts.test_seconds(plan, outcomes)
        rev.boots.append(Boot(suite, done.accel, done.qemu_opts, seconds))
        st.detail = done.detail
        rev.checks += guest_verdicts.judge_plan(plan, images, outcomes)
        if done.consoles:
            # A splat fails the run even when every test passed.
            rev.checks.append(_console_check(done.consoles, suite))
        if not done.runner_started:
            raise InfraError(st.detail)


def _lanes(req: RunRequest, suite: str) -> int:
    """How many VMs may share one suite: one on an SSH target (one machine), and never more
    than the host's cores, each of which runs one VM's only vCPU."""
    if req.backend.target:
        return 1
    wanted = req.lanes or req.settings.suites[suite].lanes
    return max(1, min(wanted, os.cpu_count() or 1))


def _op_numbers(req: RunRequest, rev: RevisionRecord, tests: tuple[GuestTest, ...],
                built: _BuiltTree, logs: Path) -> uapi.OpNumbers:
    """The op numbers for the tests that take any, from the built tree's uapi header as the
    expectations confirm them. A tree without the series has no such tests to run."""
    if rev.series_absent or not any(uapi.op_keys(t) for t in tests):
        return uapi.OpNumbers()
    return uapi.op_numbers(built.expectations, built.tree, built.build_dir, logs,
                           req.settings.timeouts.guest_compile)


def _timed(step: str, build_dir: Path, boot: Callable[[], SuiteResult]) -> SuiteResult:
    """Run a suite under a progress view against the last boot of this build dir; only a
    boot whose runner finished sets the next expectation."""
    history = progress.history_file(build_dir)
    with progress.Meter(step, progress.load_history(history, step)) as meter:
        done = boot()
    if done.runner_started:
        progress.save_history(history, step, progress.History(0, meter.elapsed))
    return done


def _console_check(logs: tuple[Path, ...], suite: str) -> Check:
    triage = console.consoles_check(logs)
    return dataclasses.replace(triage, name=suite_check(triage.name, suite))
