# SPDX-License-Identifier: GPL-2.0
"""The pipeline: source, patches, config, build, vDSO checks, boot and guest tests, in order.

Stage errors stop the revision; check failures do not. The run record is rewritten after
every stage, so results.json is valid whatever happens next."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from harness import (
    build,
    console,
    disasm,
    guest,
    kconfig,
    patches,
    report,
    source,
    vdso,
)
from harness.backends import Backend, BackendConfig, SuiteRequest, get_backend
from harness.data import (
    Expectations,
    GuestTest,
    Settings,
    load_expectations,
    load_guest_tests,
)
from harness.errors import HarnessError, InfraError, RunTimeout
from harness.paths import cache_lock, path_key
from harness.record import Boot, Run, Stage
from harness.record import Revision as RevisionRecord
from harness.results import Check, suite_check

log = logging.getLogger("harness")


@dataclass(frozen=True)
class Revision:
    """One column of the report: the base tree, or the base plus one series."""

    label: str
    series: str | None = None
    # The revision of a thread mbox to pick.
    version: int | None = None


@dataclass(frozen=True)
class RunRequest:
    settings: Settings
    run_dir: Path
    cache: Path
    kernel_src: Path | None
    debian: str
    revisions: tuple[Revision, ...]
    expect: str
    fragments: tuple[Path, ...]
    jobs: int
    # The config variant; each has its own build dir so switching never rebuilds all.
    variant: str
    # Where the guest suites run: a virtme-ng boot, or an SSH target.
    backend: BackendConfig
    stress: bool = False
    # Boot only these suites (settings.toml [suites]); empty: the default ones, and the
    # stress ones with --stress.
    suites: tuple[str, ...] = ()
    # False for the build subcommand: stop after the host-side checks.
    boot: bool = True
    # The variant's own base config target (tinyconfig); None: the settings' defconfig
    # plus virtme-ng's config items.
    base: str | None = None
    # Run only the guest tests matching these shell patterns (--only); empty: all.
    only: tuple[str, ...] = ()


def build_dir_for(cache: Path, tree_key: str, variant: str) -> Path:
    """One build dir per source tree and config variant, so switching never rebuilds all."""
    return cache / "build" / (tree_key + ("" if variant == "vng" else f"-{variant}"))


@dataclass
class Recorder:
    """The run record, written to the run dir after every change."""

    run_dir: Path
    record: Run = field(default_factory=Run)

    def revision(self, label: str) -> RevisionRecord:
        rev = RevisionRecord(label)
        self.record.revisions.append(rev)
        self.flush()
        return rev

    def flush(self) -> None:
        report.write_reports(self.run_dir, self.record)

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
    """What every revision of a run shares: the source tree, prepared once, and its lock,
    held until the run ends so that no other run resets the tree between two revisions;
    and the backend that runs the guest suites."""

    held: contextlib.ExitStack
    backend: Backend | None
    src: source.SourceResult | None = None


def run_all(req: RunRequest, rec: Recorder) -> None:
    """Test every revision in order. A stage error ends that revision only; it is recorded."""
    # Bad names and bad SSH inputs fail before anything is downloaded or built.
    load_expectations(req.expect)
    guest.select(load_guest_tests(), req.only)
    backend = get_backend(req.backend) if req.boot else None
    with contextlib.ExitStack() as held:
        shared = _Shared(held, backend)
        for revision in req.revisions:
            try:
                run_revision(req, revision, rec, shared)
            except RunTimeout:
                raise
            except HarnessError as exc:
                log.error("%s: %s", revision.label, exc)


def run_revision(req: RunRequest, revision: Revision, rec: Recorder,
                 shared: _Shared) -> RevisionRecord:
    """Test one revision end to end; returns its record. HarnessError propagates after recording."""
    rev = rec.revision(revision.label)
    rev.kernel = str(req.kernel_src) if req.kernel_src else req.debian
    rev.variant = req.variant
    rev.job = f"{rev.kernel}/{rev.variant}/{revision.series or 'base'}"
    logs = req.run_dir / revision.label / "logs"
    with rec.stage(rev, "source") as st:
        if shared.src is None:
            shared.src = source.prepare_source(source.SourceRequest(
                req.kernel_src, req.debian, req.cache, logs), req.settings)
            # One run at a time per source tree: they share its work tree and build dir.
            shared.held.enter_context(cache_lock(req.cache / "locks" / f"{shared.src.key}.lock",
                                                 "on the same tree"))
        rev.origin = st.detail = shared.src.origin
    return _run_locked(req, revision, rec, rev, shared, logs)


def _run_locked(req: RunRequest, revision: Revision, rec: Recorder, rev: RevisionRecord,
                shared: _Shared, logs: Path) -> RevisionRecord:
    assert shared.src is not None
    src, s = shared.src, req.settings
    expectations = load_expectations(req.expect)
    tests = guest.select(load_guest_tests(), req.only)
    with rec.stage(rev, "patches") as st:
        rev.series = revision.series
        patched = patches.apply_series(patches.PatchRequest(
            src, revision.series, req.cache, logs, s.timeouts, revision.version,
            copy=any(r.series for r in req.revisions)))
        rev.applied = list(patched.applied)
        rev.patchset_hash = patched.patchset_hash
        st.detail = f"{len(patched.applied)} applied" if revision.series else "none"
    # One build dir per source tree: Kbuild's O= dir belongs to one srctree.
    tree_key = src.key if patched.tree == src.tree else path_key(patched.tree)
    build_dir = build_dir_for(req.cache, tree_key, req.variant)
    with rec.stage(rev, "config") as st:
        cfg = kconfig.configure(kconfig.ConfigRequest(
            patched.tree, build_dir, req.fragments, req.base or s.defconfig, s.arch, logs,
            s.timeouts.config, s.timeouts.config_tool, expectations.kconfig,
            virtme_items=req.base is None))
        st.detail = f"{req.variant} config, {len(cfg.requested)} options checked"
        st.detail += ", changed" if cfg.changed else ", unchanged"
        if cfg.absent:
            rev.series_absent = f"the tree has no {', '.join(cfg.absent)}"
            st.detail += f"; series absent: no {', '.join(cfg.absent)} in this tree"
            log.warning("series absent: this tree has no %s", ", ".join(cfg.absent))
    with rec.stage(rev, "build") as st:
        built = build.build(build.BuildRequest(
            patched.tree, build_dir, s.targets, patched.tree_id, logs, req.cache / "ccache",
            s.timeouts.build, req.jobs))
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
    chosen_suites = ([req.settings.suite(n) for n in req.suites] if req.suites
                     else req.settings.suites_for(req.stress))
    for suite in chosen_suites:
        chosen = tuple(t for t in tests if t.suite == suite.name)
        if chosen:
            _run_suite(req, rec, rev, shared.backend, suite.name, chosen, built_tree, logs)
    return rev


@dataclass(frozen=True)
class _BuiltTree:
    """What the guest suites of one revision need from the stages before them."""

    tree: Path
    build_dir: Path
    elf: vdso.VdsoResult
    windows: dict[str, disasm.Window]
    expectations: Expectations
    config: kconfig.Config


def _run_suite(req: RunRequest, rec: Recorder, rev: RevisionRecord, backend: Backend,
               suite: str, tests: tuple[GuestTest, ...], built: _BuiltTree,
               logs: Path) -> None:
    """Build one suite's guest tests, run them all in one go, and judge every one."""
    tag = "" if suite == "default" else f"-{suite}"
    with rec.stage(rev, f"guest-build{tag}"):
        rwdir = req.run_dir / rev.label / f"guest{tag}"
        plan = guest.plan(guest.GuestPlanRequest(
            tests, built.elf, rwdir, logs, req.settings.timeouts.guest_compile,
            rev.series_absent, built.windows, built.expectations.ops, tree=built.tree,
            build_dir=built.build_dir, config=dict(built.config)))
    images = {i.name: i.path(built.build_dir, i.stripped) for i in built.expectations.images}
    with rec.stage(rev, f"{backend.stage}{tag}") as st:
        done = backend.run(SuiteRequest(plan, built.build_dir, logs, suite, images))
        rev.accel, rev.accel_reason, rev.target = done.accel, done.accel_reason, done.target
        rev.boots.append(Boot(suite, done.accel, done.qemu_opts))
        st.detail = done.detail
        rev.checks += guest.judge_plan(plan, images)
        if done.console is not None:
            # A splat fails the run even when every test passed.
            rev.checks.append(_console_check(done.console, suite))
        if not done.runner_started:
            raise InfraError(st.detail)


def _console_check(log_file: Path, suite: str) -> Check:
    triage = console.console_check(log_file)
    return dataclasses.replace(triage, name=suite_check(triage.name, suite))
