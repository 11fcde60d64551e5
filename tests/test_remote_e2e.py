# SPDX-License-Identifier: GPL-2.0
"""The SSH backend against the real kernel: the built Linux 7.3 boots under virtme-ng (TCG)
with its own sshd behind a loopback port, and the real default guest suite runs on it
through run_remote, with the host key checked against a known_hosts entry.

The guest runs sshd, so it boots the lean variant (IPv4 and virtio-net; the default,
minimal, has no network). The build dir that FUTEX_HARNESS_E2E_BUILD names is used, else the
harness cache's lean build of Debian 7.3, which the harness's own `build` makes when it is
missing (a cold lean build: about 5 minutes on 2 cores, less with ccache).
Another run may rebuild that directory at any moment, so the files this test reads are
first copied, with their relative paths, into a private build dir, and the copy is used.

A comparison run leaves its last revision, a known-bad one, in that build dir. Only the
pristine base (its build stamp names the source's 'base' tree) must pass everything; for
any other revision the suite also runs through the virtme-ng boot path, and the SSH path
must give the same verdicts."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import ssh_server
from test_disasm import assert_windows_match_labels

from harness.backends import BackendConfig, SuiteRequest
from harness.backends.ssh import run_remote
from harness.backends.ssh_connect import SshOptions, parse_target
from harness.backends.ssh_identity import RELEASE_FILE
from harness.backends.vng import VngBackend
from harness.data.expectations import load_expectations
from harness.data.guest_tests import load_guest_tests
from harness.data.settings import load_settings
from harness.guest import plan as guest
from harness.guest import protocol, uapi
from harness.guest.altinstr import read_alt_layout
from harness.orchestration.pipeline import build_dir_for
from harness.stages.build import STAMP
from harness.stages.disasm import check_disasm
from harness.stages.kconfig import parse_config
from harness.stages.vdso import VdsoRequest, check_vdso
from harness.verdicts import guest as guest_verdicts
from harness.verdicts.checks import Verdict

pytestmark = pytest.mark.e2e

CACHE = Path(os.environ.get("FUTEX_HARNESS_CACHE", Path.home() / ".cache" / "futex-harness"))
BZIMAGE = "arch/x86/boot/bzImage"
VDSO = "arch/x86/entry/vdso"
SNAPSHOT = (BZIMAGE, ".config", str(RELEASE_FILE), STAMP,
            *(f"{VDSO}/vdso{n}/{f}" for n in (64, 32)
              for f in (f"vdso{n}.so", f"vdso{n}.so.dbg", f"vdso{n}-image.c")),
            # The x32 image is built in vdso64/ (compat.config turns x32 on).
            *(f"{VDSO}/vdso64/{f}" for f in ("vdsox32.so", "vdsox32.so.dbg", "vdsox32-image.c")))
# The variant with the guest network sshd needs.
VARIANT = "lean"
# A cold lean build on 2 cores, with room for a busy machine.
BUILD_SECONDS = 60 * 60
# TCG boot (about 15 s) and sshd start, with room for a busy machine.
BOOT_SECONDS = 300
# Where QEMU's user-mode network puts the guest; hostfwd forwards there by default.
GUEST_ADDRESS = "10.0.2.15/24"


def lean_build(work: Path) -> Path:
    """The build dir of Debian's 7.3 source with the lean config (built now if missing), or
    the one FUTEX_HARNESS_E2E_BUILD names."""
    if "FUTEX_HARNESS_E2E_BUILD" in os.environ:
        return Path(os.environ["FUTEX_HARNESS_E2E_BUILD"])
    if found := _built(VARIANT):
        return found
    done = subprocess.run([sys.executable, "-m", "harness", "build", "--config-variant", VARIANT,
                           "--run-dir", str(work / "lean-build")], check=False,
                          capture_output=True, text=True, timeout=BUILD_SECONDS)
    found = _built(VARIANT)
    assert done.returncode == 0 and found, f"the lean build failed:\n{done.stderr[-3000:]}"
    return found


def _built(variant: str) -> Path | None:
    for src in sorted((CACHE / "src").glob("linux-source-7.3_*")):
        if (build := build_dir_for(CACHE, src.name, variant)).joinpath(BZIMAGE).is_file():
            return build
    return None


def _stamps(build: Path) -> list[tuple[int, int]] | None:
    """Size and mtime of every file to copy; None while a build is under way (no stamp)."""
    try:
        return [((s := (build / rel).stat()).st_size, s.st_mtime_ns) for rel in SNAPSHOT]
    except FileNotFoundError:
        return None


def snapshot(source: Path, dest: Path) -> None:
    """Copy the files the test reads from a finished build; again when any changed."""
    for _ in range(60):
        before = _stamps(source)
        if before is not None:
            for rel in SNAPSHOT:
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source / rel, dest / rel)
            if _stamps(source) == before:
                return
        time.sleep(10)
    pytest.fail(f"{source} was being rebuilt for 10 minutes; no stable build to copy")


def is_pristine(source: Path, copy: Path) -> bool:
    """Whether the copied build is of the source's base tree, with no series applied."""
    done = subprocess.run(["git", "-C", str(source / "source"), "rev-parse", "base^{tree}"],
                          capture_output=True, text=True, check=False)
    return done.returncode == 0 and (copy / STAMP).read_text().split()[0] == done.stdout.strip()


@dataclass(frozen=True)
class Build:
    path: Path
    pristine: bool
    # The build dir it was copied from, whose source tree gives the uapi headers.
    origin: Path


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    source = lean_build(tmp_path_factory.mktemp("work"))
    dest = tmp_path_factory.mktemp("build")
    snapshot(source, dest)
    return Build(dest, is_pristine(source, dest), source)


@dataclass(frozen=True)
class Guest:
    port: int
    user_key: Path
    known_hosts: Path
    console: Path


GUEST_SCRIPT = """#!/bin/sh
# Runs in the guest as virtme-ng's --exec command: network up, then sshd in the foreground.
set -e
mkdir -p /run/sshd
ip link set lo up
for dev in $(ls /sys/class/net); do
	[ "$dev" = lo ] && continue
	ip link set "$dev" up
	ip addr add {address} dev "$dev"
	break
done
exec /usr/sbin/sshd -D -e -f {config}
"""


def vng_argv(bzimage: Path, vm: Path, port: int) -> list[str]:
    net = (f"-netdev user,id=ssh,hostfwd=tcp:127.0.0.1:{port}-:22 "
           "-device virtio-net-pci,netdev=ssh")
    return [str(Path(sys.executable).parent / "vng"), "--run", str(bzimage), "--force-9p",
            "--disable-kvm", "--memory", "1G", "--cpus", "1", "--rwdir", str(vm),
            # As the pipeline's boots (settings [boot] kernel_args): lean has KASLR, and
            # robust-unlock-kernel-pop needs the direct map at its fixed base.
            "--append", "nokaslr",
            f"--qemu-opts={net}", "--exec", f"sh {vm / 'start-sshd.sh'}"]


@pytest.fixture
def booted(tmp_path: Path, build: Build) -> Iterator[Guest]:
    """The built kernel under TCG, its sshd on a loopback port; killed, whole group, after."""
    vm = tmp_path / "vm"
    user_key = ssh_server.keygen(tmp_path / "user_key")
    port = ssh_server.free_port()
    # virtme-ng's guest /etc/shadow locks root: sshd must leave that to PAM.
    config = ssh_server.prepare(vm, user_key, 22, listen="0.0.0.0", pam=True)
    (vm / "start-sshd.sh").write_text(GUEST_SCRIPT.format(address=GUEST_ADDRESS, config=config))
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {ssh_server.public(vm / 'host_key')}\n")
    console = tmp_path / "console.log"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    with console.open("wb") as out:
        vm_process = subprocess.Popen(vng_argv(build.path / BZIMAGE, vm, port), env=env,
                                      stdin=subprocess.DEVNULL, stdout=out,
                                      stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield Guest(port, user_key, known_hosts, console)
    finally:
        os.killpg(vm_process.pid, signal.SIGKILL)
        vm_process.wait()


def plan_default_suite(build: Path, rwdir: Path, logs: Path, tree: Path) -> guest.GuestPlan:
    """ELF and disassembly checks on the copied build, then the guest plan, as the pipeline
    does it; the op numbers from the uapi headers of tree, installed into the copy."""
    expectations = load_expectations("upstream")
    config = parse_config((build / ".config").read_text(), str(build / ".config"))
    elf = check_vdso(VdsoRequest(build, expectations, config))
    assert all(c.verdict == Verdict.PASS for c in elf.checks), elf.checks
    code, windows = check_disasm(build, expectations, elf)
    assert all(c.verdict == Verdict.PASS for c in code), code
    # The kernel's own selftests need the source tree, which this copied build lacks; the
    # backend is what is under test here, and every other kind of test goes through it.
    tests = tuple(t for t in load_guest_tests() if t.suite == "default" and t.kind != "ktap")
    ops = uapi.op_numbers(expectations, tree, build, logs, 120)
    return guest.make_plan(guest.GuestPlanRequest(tests, elf, rwdir, logs, 120, None, windows,
                                             ops=ops, alt_layout=read_alt_layout(tree)))


def images(build: Path) -> dict[str, Path]:
    return {i.name: i.path(build, i.stripped) for i in load_expectations("upstream").images}


def verdicts(plan: guest.GuestPlan, build: Path) -> dict[str, tuple[Verdict, str]]:
    """Judge every planned test from the results in the plan's rwdir, as the pipeline does."""
    return {c.name: (c.verdict, c.detail) for c in guest_verdicts.judge_plan(
        plan, images(build), protocol.read_outcomes(plan.rwdir))}


def suite(plan: guest.GuestPlan, build: Path, logs: Path) -> SuiteRequest:
    return SuiteRequest(plan, build, logs, "default", images(build))


def through_virtme_ng(build: Build, tmp_path: Path) -> dict[str, tuple[Verdict, str]]:
    """The same suite on the same kernel through the pipeline's own boot path."""
    plan = plan_default_suite(build.path, tmp_path / "guest-vng", tmp_path / "logs-vng",
                              build.origin / "source")
    backend = VngBackend(BackendConfig(load_settings(), tmp_path / "cache", "tcg"))
    done = backend.test_suite(suite(plan, build.path, tmp_path / "logs-vng"))
    assert done.finished, done
    return verdicts(plan, build.path)


def test_real_suite_runs_over_ssh_on_the_real_kernel(tmp_path: Path, build: Build,
                                                     booted: Guest) -> None:
    logs = tmp_path / "logs"
    plan = plan_default_suite(build.path, tmp_path / "guest", logs, build.origin / "source")
    assert plan.planned and not plan.skipped
    start = time.monotonic()
    opts = SshOptions(parse_target(f"ssh://root@127.0.0.1:{booted.port}"), booted.user_key,
                      booted.known_hosts, None, wait_seconds=BOOT_SECONDS,
                      python="/usr/bin/python3")
    result = run_remote(opts, suite(plan, build.path, logs))
    print(f"run_remote: {time.monotonic() - start:.1f}s: {result.detail}")
    console = booted.console.read_text(errors="replace")[-3000:]
    assert result.kernel_release == (build.path / RELEASE_FILE).read_text().strip()
    assert result.vdso["image_mismatch"] == 0
    assert result.finished, f"{result.detail}\n--- console ---\n{console}"
    assert "$ rm -rf" in (logs / "remote.log").read_text()
    over_ssh = verdicts(plan, build.path)
    if build.pristine:
        failed = {n: v for n, v in over_ssh.items() if v[0] != Verdict.PASS}
        assert not failed, failed
        return
    print("the cached build is a patched revision: comparing with the virtme-ng path")
    direct = through_virtme_ng(build, tmp_path)
    assert {n: v[0] for n, v in over_ssh.items()} == {n: v[0] for n, v in direct.items()}
    assert all(v[0] in (Verdict.PASS, Verdict.FAIL) for v in over_ssh.values()), over_ssh


def test_disasm_windows_on_the_real_images(build: Build) -> None:
    """Capstone on the vDSO images the e2e run really built. When the check passes (always on
    the base, and on any revision that leaves the vDSO alone), the unlock windows it finds
    are the labelled ranges, one per function."""
    exp = load_expectations("upstream")
    config = parse_config((build.path / ".config").read_text(), str(build.path / ".config"))
    elf = check_vdso(VdsoRequest(build.path, exp, config))
    checks, windows = check_disasm(build.path, exp, elf)
    passed = bool(checks) and all(c.verdict == Verdict.PASS for c in checks)
    if not passed and not build.pristine:
        pytest.skip("the cached build is a patched revision whose disassembly check does "
                    f"not pass ({[(c.name, c.verdict) for c in checks]}): no windows to compare")
    assert passed, [(c.name, c.verdict, c.detail) for c in checks]
    assert_windows_match_labels(elf, windows)
    # list64 and list32 in vdso64 and in vdsox32, list32 in vdso32.
    assert len(windows) == 5
