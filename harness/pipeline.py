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
from typing import Any

from harness import (
    boot,
    build,
    console,
    disasm,
    guest,
    kconfig,
    patches,
    remote,
    report,
    source,
    vdso,
)
from harness.data import (
    Expectations,
    GuestTest,
    Settings,
    load_expectations,
    load_guest_tests,
)
from harness.errors import HarnessError, InfraError, RunTimeout
from harness.paths import cache_lock, path_key
from harness.results import Check, judge

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
    accel: str
    jobs: int
    # The config variant; each has its own build dir so switching never rebuilds all.
    variant: str
    stress: bool = False
    # False for the build subcommand: stop after the host-side checks.
    boot: bool = True
    # Run the guest suite on this machine over SSH instead of booting under virtme-ng.
    target: remote.Target | None = None
    ssh_key: Path | None = None
    known_hosts: Path | None = None
    host_key: str | None = None


def build_dir_for(cache: Path, tree_key: str, variant: str) -> Path:
    """One build dir per source tree and config variant, so switching never rebuilds all."""
    return cache / "build" / (tree_key + ("" if variant == "vng" else f"-{variant}"))


@dataclass
class Recorder:
    """The run record, written to the run dir after every change."""

    run_dir: Path
    record: dict[str, Any] = field(default_factory=dict)

    def revision(self, label: str) -> dict[str, Any]:
        rev: dict[str, Any] = {"label": label, "stages": [], "checks": []}
        self.record.setdefault("revisions", []).append(rev)
        self.flush()
        return rev

    def flush(self) -> None:
        report.write_reports(self.run_dir, self.record)

    @contextlib.contextmanager
    def stage(self, rev: dict[str, Any], name: str) -> Iterator[dict[str, Any]]:
        entry = {"name": name, "status": "running", "seconds": 0.0, "detail": ""}
        rev["stages"].append(entry)
        self.flush()
        start = time.monotonic()
        log.info("stage %s", name)
        try:
            yield entry
            entry["status"] = "ok"
        except HarnessError as exc:
            entry.update(status="error", detail=str(exc))
            raise
        except BaseException:
            entry.update(status="error", detail="interrupted")
            raise
        finally:
            entry["seconds"] = round(time.monotonic() - start, 2)
            log.info("stage %s: %s in %.1fs", name, entry["status"], entry["seconds"])
            self.flush()


@dataclass
class _Shared:
    """What every revision of a run shares: the source tree, prepared once, and its lock,
    held until the run ends so that no other run resets the tree between two revisions."""

    held: contextlib.ExitStack
    src: source.SourceResult | None = None


def run_all(req: RunRequest, rec: Recorder) -> None:
    """Test every revision in order. A stage error ends that revision only; it is recorded."""
    # Bad names fail before anything is downloaded or built.
    load_expectations(req.expect)
    with contextlib.ExitStack() as held:
        shared = _Shared(held)
        for revision in req.revisions:
            try:
                run_revision(req, revision, rec, shared)
            except RunTimeout:
                raise
            except HarnessError as exc:
                log.error("%s: %s", revision.label, exc)


def run_revision(req: RunRequest, revision: Revision, rec: Recorder,
                 shared: _Shared) -> dict[str, Any]:
    """Test one revision end to end; returns its record. HarnessError propagates after recording."""
    rev = rec.revision(revision.label)
    logs = req.run_dir / revision.label / "logs"
    with rec.stage(rev, "source") as st:
        if shared.src is None:
            shared.src = source.prepare_source(source.SourceRequest(
                req.kernel_src, req.debian, req.cache, logs), req.settings)
            # One run at a time per source tree: they share its work tree and build dir.
            shared.held.enter_context(cache_lock(req.cache / "locks" / f"{shared.src.key}.lock",
                                                 "on the same tree"))
        rev["origin"] = st["detail"] = shared.src.origin
    return _run_locked(req, revision, rec, rev, shared.src, logs)


def _run_locked(req: RunRequest, revision: Revision, rec: Recorder, rev: dict[str, Any],
                src: source.SourceResult, logs: Path) -> dict[str, Any]:
    s = req.settings
    expectations = load_expectations(req.expect)
    tests = load_guest_tests()
    with rec.stage(rev, "patches") as st:
        rev["series"] = revision.series
        patched = patches.apply_series(patches.PatchRequest(
            src, revision.series, req.cache, logs, s.timeouts["unpack"], revision.version,
            copy=any(r.series for r in req.revisions)))
        rev["applied"] = list(patched.applied)
        st["detail"] = f"{len(patched.applied)} applied" if revision.series else "none"
    # One build dir per source tree: Kbuild's O= dir belongs to one srctree.
    tree_key = src.key if patched.tree == src.tree else path_key(patched.tree)
    build_dir = build_dir_for(req.cache, tree_key, req.variant)
    with rec.stage(rev, "config") as st:
        cfg = kconfig.configure(kconfig.ConfigRequest(
            patched.tree, build_dir, req.fragments, s.defconfig, s.arch, logs,
            s.timeouts["config"], expectations.kconfig))
        st["detail"] = f"{req.variant} config, {len(cfg.requested)} options checked"
        st["detail"] += ", changed" if cfg.changed else ", unchanged"
        if cfg.absent:
            rev["series_absent"] = f"the tree has no {', '.join(cfg.absent)}"
            st["detail"] += f"; series absent: no {', '.join(cfg.absent)} in this tree"
            log.warning("series absent: this tree has no %s", ", ".join(cfg.absent))
    with rec.stage(rev, "build") as st:
        built = build.build(build.BuildRequest(
            patched.tree, build_dir, s.targets, patched.tree_id, logs, req.cache / "ccache",
            s.timeouts["build"], req.jobs))
        st["detail"] = "up to date" if built.skipped else f"{built.objects} objects built"
    with rec.stage(rev, "vdso"):
        elf = vdso.check_vdso(vdso.VdsoRequest(build_dir, expectations, cfg.final,
                                               rev.get("series_absent")))
        rev["checks"] += [c.to_json() for c in elf.checks]
    with rec.stage(rev, "disasm"):
        code_checks, windows = disasm.check_disasm(build_dir, expectations, elf)
        rev["checks"] += [c.to_json() for c in code_checks]
    if not req.boot:
        return rev
    suites = ["default", "stress"] if req.stress else ["default"]
    for suite in suites:
        chosen = tuple(t for t in tests if t.suite == suite)
        _run_suite(req, rec, rev, suite, chosen, elf, windows, build_dir, expectations, logs)
    return rev


def _run_suite(req: RunRequest, rec: Recorder, rev: dict[str, Any], suite: str,
               tests: tuple[GuestTest, ...], elf: vdso.VdsoResult,
               windows: dict[str, disasm.Window], build_dir: Path,
               expectations: Expectations, logs: Path) -> None:
    """Build one suite's guest tests, boot once to run them all, and judge every one."""
    s = req.settings
    tag = "" if suite == "default" else f"-{suite}"
    with rec.stage(rev, f"guest-build{tag}"):
        rwdir = req.run_dir / rev["label"] / f"guest{tag}"
        plan = guest.plan(guest.GuestPlanRequest(tests, elf, rwdir, logs,
                                                 s.timeouts["guest_compile"],
                                                 rev.get("series_absent"), windows))
    with rec.stage(rev, f"{'remote' if req.target else 'boot'}{tag}") as st:
        if req.target:
            started, extra = _run_on_target(req, rev, st, plan, build_dir, logs)
        else:
            started, extra = _boot_and_run(req, rev, st, suite, tag, plan, build_dir, logs)
        # Every planned test gets a verdict, even when the VM died before running it.
        outcomes = guest.read_outcomes(plan.rwdir)
        images = {i.name: i.path(build_dir, i.stripped) for i in expectations.images}
        for t in plan.planned:
            if t.compare and t.image:
                guest.add_image_comparison(t, outcomes.get(t.name), plan.rwdir, images[t.image])
        rev["checks"] += [c.to_json() for c in plan.skipped]
        rev["checks"] += [judge(t, outcomes.get(t.name)).to_json() for t in plan.planned]
        rev["checks"] += [c.to_json() for c in extra]
        if not started:
            raise InfraError(st["detail"])


def _boot_and_run(req: RunRequest, rev: dict[str, Any], st: dict[str, Any], suite: str,
                  tag: str, plan: guest.GuestPlan, build_dir: Path,
                  logs: Path) -> tuple[bool, list[Check]]:
    """virtme-ng: boot the build, run the plan; the console is triaged as a check of its own."""
    s = req.settings
    booted = boot.boot(boot.BootRequest(
        build_dir / s.bzimage, plan, logs, req.cache, req.accel, s.timeouts["boot"],
        s.timeouts["kvm_probe"], s.memory, s.stress_cpus if suite == "stress" else s.cpus,
        s.guest_python,
        s.stress_qemu_opts if suite == "stress" else (), f"console{tag}.log"))
    rev.update(accel=booted.accel.name, accel_reason=booted.accel.reason)
    rev.setdefault("boots", []).append(
        {"suite": suite, "accel": booted.accel.name, "qemu_opts": list(booted.qemu_opts)})
    st["detail"] = _boot_detail(booted)
    # A splat fails the run even when every test passed.
    triage = console.console_check(booted.console)
    return booted.runner_started, [dataclasses.replace(triage, name=f"console{tag}")]


def _run_on_target(req: RunRequest, rev: dict[str, Any], st: dict[str, Any],
                   plan: guest.GuestPlan, build_dir: Path,
                   logs: Path) -> tuple[bool, list[Check]]:
    """A machine already running the build, over SSH; there is no console to triage."""
    assert req.target is not None
    done = remote.run_remote(remote.RemoteRequest(
        req.target, req.ssh_key, req.known_hosts, req.host_key, build_dir, plan, logs,
        req.settings.timeouts["target_wait"]))
    rev.update(target=done.target, accel="remote", accel_reason=f"target {done.target}, "
               f"kernel {done.kernel_release}")
    st["detail"] = f"{done.target}: {done.detail}"
    return done.runner_started, []


def _boot_detail(b: boot.BootResult) -> str:
    if b.timed_out:
        started = "runner started" if b.runner_started else "runner never started"
        return f"timed out, VM killed ({started})"
    if not b.runner_started:
        return f"the guest runner never started (vng exit {b.returncode}); see {b.console}"
    opts = f" {' '.join(b.qemu_opts)}" if b.qemu_opts else ""
    return f"{b.accel.name}{opts}, vng exit {b.returncode}"
