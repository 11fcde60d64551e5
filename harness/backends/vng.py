# SPDX-License-Identifier: GPL-2.0
"""The virtme-ng backend: boot the built kernel and run the guest runner, under a deadline.

KVM is used only when a probe boot shows it works here (the answer is cached per host
kernel); otherwise TCG. The console is kept for triage."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shlex
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from harness.backends import BackendConfig, SuiteRequest, SuiteResult, roots
from harness.commands import retrying, run
from harness.errors import CommandError, CommandTimeout, InfraError, UserError
from harness.guest import protocol
from harness.guest.plan import GuestPlan
from harness.paths import venv_tool
from harness.stages.kconfig import kbuild_arch

log = logging.getLogger("harness")

KERNEL_BANNER = "Linux version"
# virtme-ng's init when the guest has no /dev/virtio-ports/virtme.*: it then runs the script
# on the console and cannot send its exit status back, and vng returns 255 whatever the
# script did (virtme/commands/run.py: "special error code 255 in case of unexpected exit").
NO_SCRIPT_PORTS = "cannot find script I/O ports"
NO_STATUS = 255


@dataclass(frozen=True)
class BootRequest:
    bzimage: Path
    plan: GuestPlan
    logs: Path
    cache: Path
    accel: str
    boot_timeout: float
    probe_timeout: float
    memory: str
    cpus: int
    guest_python: str
    # Extra QEMU options, used only under TCG.
    tcg_qemu_opts: tuple[str, ...] = ()
    console_name: str = "console.log"
    # Appended to the kernel command line, one --append each.
    kernel_args: tuple[str, ...] = ()
    # A directory of no-op programs that virtme-ng's init finds first (PATH=, init_skips).
    init_path: Path | None = None
    # A kernel of another architecture (i386) and the root it boots on; None: the host's
    # architecture and root.
    arch: str | None = None
    root: Path | None = None
    # The lane of the plan this VM runs (guest/lanes.py); None: the whole plan.
    lane: int | None = None

    @property
    def tests_timeout(self) -> float:
        return self.plan.total_timeout if self.lane is None else self.plan.lane_timeout(self.lane)


@dataclass(frozen=True)
class Accel:
    kvm: bool
    reason: str

    @property
    def name(self) -> str:
        return "kvm" if self.kvm else "tcg"


@dataclass(frozen=True)
class BootResult:
    accel: Accel
    qemu_opts: tuple[str, ...]
    console: Path
    returncode: int | None
    timed_out: bool
    runner_started: bool
    runner_finished: bool
    seconds: float


def vng_path() -> str:
    """vng from the harness's own venv, else from PATH."""
    found = shutil.which(venv_tool("vng"))
    if not found:
        raise InfraError("vng (virtme-ng) not found; run 'make deps' or pip install virtme-ng")
    if not shutil.which("qemu-system-x86_64"):
        raise InfraError("qemu-system-x86_64 not found; install the qemu-system-x86 package")
    return found


def vng_env() -> dict[str, str]:
    """vng runs virtme-run and friends by name: they sit next to it, maybe off PATH."""
    return {"PATH": f"{Path(vng_path()).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"}


def no_op_dir(cache: Path, names: tuple[str, ...]) -> Path | None:
    """A directory in which each of names is a link to true(1); None for no names. The
    guest's root is the host's, so the guest finds it at the same path."""
    if not names:
        return None
    where = cache / "guest-init-skips"
    where.mkdir(parents=True, exist_ok=True)
    true = shutil.which("true") or "/bin/true"
    for name in names:
        link = where / name
        if not link.is_symlink() or str(link.readlink()) != true:
            link.unlink(missing_ok=True)
            link.symlink_to(true)
    return where


def vng_argv(req: BootRequest, kvm: bool, command: list[str]) -> list[str]:
    # A 9p root always: no wait for a virtiofsd that may not start, and no FUSE or DAX
    # needed in the guest kernel.
    argv = [vng_path(), "-v", "--run", str(req.bzimage), "--force-9p", "--memory", req.memory,
            "--cpus", str(req.cpus)]
    if req.root is None:
        argv += ["--rwdir", str(req.plan.rwdir)]
    else:
        # An i386 kernel on an i386 root. Not `vng --arch i386`: vng knows no i386
        # ("unsupported architecture (i386), available: amd64 arm64 armhf ppc64el s390x
        # riscv64", virtme_ng/run.py ARCH_MAPPING); qemu-system-x86_64 boots a 32-bit
        # kernel as it is. vng then thinks the guest native and would start its x86_64
        # virtme-ng-init, which an i386 kernel cannot execute: its bash virtme-init instead.
        # On another root vng takes a bare --rwdir as relative to that root; the guest must
        # see it at the host's path, which the plan's arguments name.
        argv += ["--no-virtme-ng-init", "--root", str(req.root),
                 f"--rwdir={req.plan.rwdir}={req.plan.rwdir}"]
    for arg in req.kernel_args:
        argv += ["--append", arg]
    # Not on another root: the no-op directory is a path of the host's root, absent there,
    # and there vng's first init is the root's /bin/sh -c "mount ...; mkdir ...; exec
    # virtme-init", which takes PATH from the kernel as it is. PATH=<that directory> alone
    # made it print "mount: not found", "mkdir: not found" and exit 127 (a kernel panic).
    # Without PATH, dash searches its default (/usr/local/sbin:...:/sbin:/bin), and the
    # bash virtme-init appends its own directories.
    if req.init_path and req.root is None:
        argv += ["--append", f"PATH={req.init_path}"]
    if not kvm:
        argv.append("--disable-kvm")
        if req.tcg_qemu_opts:
            argv.append(f"--qemu-opts={' '.join(req.tcg_qemu_opts)}")
    return [*argv, "--exec", shlex.join(command)]


def choose_accel(req: BootRequest) -> Accel:
    """KVM only if a standard guest really boots with it; the answer is cached per host kernel."""
    if req.accel == "tcg":
        return Accel(False, "TCG requested")
    dev = Path("/dev/kvm")
    if not dev.exists() or not os.access(dev, os.R_OK | os.W_OK):
        if req.accel == "kvm":
            raise UserError("KVM requested but /dev/kvm is missing or not accessible")
        return Accel(False, "/dev/kvm missing or not accessible: TCG")
    probe = _probe_kvm(req)
    if req.accel == "kvm" and not probe.kvm:
        raise UserError(f"KVM requested but unusable: {probe.reason}")
    return probe


def _probe_kvm(req: BootRequest) -> Accel:
    cache_file = req.cache / "kvm-probe.json"
    host = os.uname().release
    try:
        known = json.loads(cache_file.read_text())
    except (OSError, json.JSONDecodeError):
        known = {}
    if host in known:
        entry = known[host]
        return Accel(bool(entry["kvm"]), entry["reason"] + " (cached probe)")
    log.info("probing KVM: booting the kernel with KVM for at most %.0fs", req.probe_timeout)
    start = time.monotonic()
    try:
        run(vng_argv(req, True, ["true"]), log_file=req.logs / "kvm-probe.log",
            timeout=req.probe_timeout, env=vng_env())
        accel = Accel(True, f"KVM probe booted a guest in {time.monotonic() - start:.0f}s")
    except CommandTimeout:
        accel = Accel(False, f"/dev/kvm opens but a standard guest hung for "
                              f"{req.probe_timeout:.0f}s{_pvm_hint()}: TCG")
    except CommandError as exc:
        kvm_error = _qemu_kvm_error(req.logs / "kvm-probe.log")
        if kvm_error is None:
            # Not cached: the cause may be this kernel or this run, not the host's KVM.
            return Accel(False, f"KVM probe failed ({str(exc).splitlines()[0]}): TCG")
        accel = Accel(False, f"QEMU's KVM failed before the kernel started ({kvm_error}): TCG")
    known[host] = {"kvm": accel.kvm, "reason": accel.reason}
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    cache_file.write_text(json.dumps(known, indent=1) + "\n")
    return accel


def _qemu_kvm_error(probe_log: Path) -> str | None:
    """QEMU's own KVM error, when QEMU died on it before the guest kernel printed a line:
    a property of the host's KVM (a paravirtual one that refuses an MSR, say), the same for
    every kernel, so the answer may be cached. Without it, every boot pays for the probe."""
    try:
        text = probe_log.read_text(errors="replace")
    except OSError:
        return None
    if "Linux version" in text:
        return None
    qemu = [line.split(": ", 1)[-1] for line in text.splitlines()
            if line.startswith("qemu-system")]
    return qemu[0] if any("kvm" in line.lower() for line in qemu) else None


def _pvm_hint() -> str:
    pvm = Path("/sys/module/kvm_pvm").exists()
    return " (kvm_pvm, a paravirtual KVM, is loaded)" if pvm else ""


def boot(req: BootRequest, accel: Accel | None = None,
         stop: threading.Event | None = None) -> BootResult:
    """Boot once, run every planned test (or the lane's); a hang is cut off and reported,
    not raised. Setting stop kills the VM within about a second."""
    if accel is None:
        accel = choose_accel(req)
        log.info("boot: %s (%s)", accel.name, accel.reason)
    console = req.logs / req.console_name
    start = time.monotonic()
    returncode: int | None = None
    timed_out = False
    try:
        returncode = retrying("starting the VM", attempts=2)(_session)(req, accel, console,
                                                                       stop)
    except CommandTimeout as exc:
        timed_out = True
        log.warning("boot: %s; the VM was killed", str(exc).split(": ", 1)[-1])
    except CommandError as exc:
        log.warning("boot: %s", exc)
        returncode = -1
    text = console.read_text(errors="replace")
    opts = () if accel.kvm else req.tcg_qemu_opts
    return BootResult(accel, opts, console, returncode, timed_out, protocol.STARTED in text,
                      protocol.FINISHED in text, time.monotonic() - start)


def _session(req: BootRequest, accel: Accel, console: Path,
             stop: threading.Event | None = None) -> int:
    """One VM session. A VM that dies before the kernel says anything is QEMU failing to
    start, which is worth one retry; anything later is the kernel's doing."""
    # -S: the runner needs the standard library only; skipping site-packages and their .pth
    # files saves 0.1 to 0.3 s of interpreter start-up under TCG (bench/results/boot-time.md).
    command = [req.guest_python, "-S", "-c", protocol.RUN_RUNNER, str(req.plan.runner.parent),
               str(req.plan.rwdir), *([] if req.lane is None else [str(req.lane)])]
    started: list[bool] = []
    printed: list[bool] = []

    def watch_console(line: str) -> None:
        if protocol.STARTED in line:
            started.append(True)
        if KERNEL_BANNER in line:
            printed.append(True)

    def no_runner(elapsed: float) -> str | None:
        if stop is not None and stop.is_set():
            return "stopped: the run ended while this VM ran"
        if not started and elapsed > req.boot_timeout:
            return f"no sign of the guest runner after {req.boot_timeout:.0f}s"
        return None

    done = run(vng_argv(req, accel.kvm, command), log_file=console,
               timeout=req.boot_timeout + req.tests_timeout, check=False, env=vng_env(),
               on_line=watch_console, watchdog=no_runner)
    if done.returncode != 0 and not printed:
        raise CommandError(f"the VM exited with {done.returncode} before the kernel printed "
                           f"anything (console: {console})", done.tail)
    return done.returncode


def boot_lanes(req: BootRequest) -> tuple[BootResult, ...]:
    """One VM per lane of the plan, all at once, each with a console of its own; a plan
    in one lane boots one VM that runs it whole, as before lanes."""
    lanes = req.plan.lanes
    if len(lanes) == 1:
        return (boot(req),)
    accel = choose_accel(req)
    log.info("boot: %s (%s), %d VMs side by side, one per lane", accel.name, accel.reason,
             len(lanes))
    stem = req.console_name.removesuffix(".log")
    stop = threading.Event()
    pool = ThreadPoolExecutor(len(lanes))
    booting = [pool.submit(boot, dataclasses.replace(
        req, lane=lane, console_name=req.console_name if lane == lanes[0]
        else f"{stem}-lane{lane}.log"), accel, stop) for lane in lanes]
    try:
        return tuple(b.result() for b in booting)
    except BaseException:
        # The run's limit or ^C, raised in this thread: the VMs go down with it rather
        # than run on to their own timeouts.
        stop.set()
        raise
    finally:
        pool.shutdown(wait=True)


def boot_detail(b: BootResult) -> str:
    """The boot stage's detail: how the VM ended, in words a reader can trust."""
    if b.timed_out:
        started = "the runner had begun" if b.runner_started else "the runner never began"
        return f"timed out, VM killed ({started})"
    if not b.runner_started:
        return f"the guest runner never started (vng exit {b.returncode}); see {b.console}"
    opts = f" {' '.join(b.qemu_opts)}" if b.qemu_opts else ""
    return f"{b.accel.name}{opts}, {_vng_status(b)}"


def _vng_status(b: BootResult) -> str:
    """vng's exit status, said so that a reader can trust it."""
    finished = "the runner finished" if b.runner_finished else "the runner did not finish"
    if b.returncode == NO_STATUS and NO_SCRIPT_PORTS in b.console.read_text(errors="replace"):
        return (f"{finished}; vng exit 255 means no status came back: the guest had no "
                "virtio script ports, so virtme-ng ran the script on the console")
    return f"{finished}; vng exit {b.returncode}"


class VngBackend:
    """Boots the build under virtme-ng, once per suite."""

    stage = "boot"

    def __init__(self, config: BackendConfig) -> None:
        self._config = config

    def check(self) -> None:
        """Nothing to check before the build: vng and QEMU are looked up at boot."""

    def boot_request(self, req: SuiteRequest) -> BootRequest:
        s = self._config.settings
        suite = s.suites[req.suite]
        return BootRequest(
            req.build_dir / s.bzimage, req.plan, req.logs, self._config.cache,
            self._config.accel, suite.boot_timeout or s.timeouts.boot, s.timeouts.kvm_probe,
            s.memory,
            suite.cpus, s.guest_python, suite.tcg_qemu_opts,
            "console.log" if req.suite == "default" else f"console-{req.suite}.log",
            s.kernel_args, no_op_dir(self._config.cache, s.init_skips),
            kbuild_arch(req.build_dir))

    def _on_own_root(self, req: BootRequest, logs: Path) -> BootRequest:
        """A kernel of another architecture boots on its own root (settings.toml [roots]),
        built into the cache the first time; the host's architecture keeps the host's root."""
        if req.arch is None:
            return req
        spec = self._config.settings.roots.get(req.arch)
        if spec is None:
            raise UserError(f"the kernel is built for {req.arch}, and settings.toml has no "
                            f"[roots.{req.arch}] to boot it on; it has: "
                            f"{', '.join(self._config.settings.roots) or '(none)'}")
        root = roots.ensure_root(spec, self._config.cache, logs,
                                 self._config.settings.timeouts.apt)
        roots.mount_point(root, req.plan.rwdir)
        return dataclasses.replace(req, root=root)

    def test_suite(self, req: SuiteRequest) -> SuiteResult:
        start = time.monotonic()
        booted = boot_lanes(self._on_own_root(self.boot_request(req), req.logs))
        first = booted[0]
        details = list(dict.fromkeys(boot_detail(b) for b in booted))
        detail = "; ".join(details)
        if len(booted) > 1:
            each = ", each" if len(details) == 1 else ""
            detail = f"{len(booted)} VMs side by side{each}: {detail}"
        return SuiteResult(
            runner_started=all(b.runner_started for b in booted),
            finished=all(b.runner_finished for b in booted),
            timed_out=any(b.timed_out for b in booted), detail=detail,
            seconds=time.monotonic() - start, accel=first.accel.name,
            accel_reason=first.accel.reason, qemu_opts=first.qemu_opts,
            consoles=tuple(b.console for b in booted))
