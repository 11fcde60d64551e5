# SPDX-License-Identifier: GPL-2.0
from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import pytest
from plans import script_plan as make_plan
from plans import verdicts

from harness.backends import vng as boot
from harness.data.settings import load_settings
from harness.guest.plan import GuestPlan, protocol
from harness.verdicts.checks import Verdict
from harness.verdicts.counters import judge


def request(tmp_path: Path, plan: GuestPlan, accel: str = "tcg",
            boot_timeout: float = 20) -> boot.BootRequest:
    return boot.BootRequest(tmp_path / "bzImage", plan, tmp_path / "logs", tmp_path / "cache",
                            accel, boot_timeout, 2, "1G", 2, sys.executable)


def test_guest_results_come_back_through_rwdir(tmp_path: Path, fake_vng: Path) -> None:
    plan = make_plan(tmp_path, {
        "good": 'echo \'{"check": "good", "hits": 5, "bad": 0}\'\n',
        "hangs": "sleep 30\n",
        "crashes": "echo oops >&2; kill -SEGV $$\n",
    })
    result = boot.boot(request(tmp_path, plan))
    assert result.accel.name == "tcg" and result.runner_started and result.runner_finished
    assert "--disable-kvm" in fake_vng.read_text() and "--rwdir" in fake_vng.read_text()
    assert "--force-9p" in fake_vng.read_text()
    assert verdicts(plan) == {"good": Verdict.PASS, "hangs": Verdict.TIMEOUT,
                              "crashes": Verdict.ERROR}


def test_hung_vm_is_killed_and_reported(tmp_path: Path, fake_vng: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_VNG_MODE", "hang")
    plan = make_plan(tmp_path, {"good": "true\n"})
    start = time.monotonic()
    result = boot.boot(request(tmp_path, plan, boot_timeout=1))
    assert time.monotonic() - start < 15
    assert result.timed_out and not result.runner_started
    outcome = protocol.read_outcomes(plan.rwdir).get("good")
    assert judge(plan.planned[0], outcome).verdict == Verdict.ERROR


def test_panic_leaves_console(tmp_path: Path, fake_vng: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_VNG_MODE", "panic")
    result = boot.boot(request(tmp_path, make_plan(tmp_path, {"good": "true\n"})))
    assert result.returncode == 255 and not result.runner_started
    assert "Kernel panic" in result.console.read_text()


@pytest.mark.parametrize(("mode", "reason"), [
    ("hang", "hung"),
    # QEMU's KVM error before the kernel started: the host's, so cached.
    ("kvmfail", "failed to set MSR"),
])
def test_a_kvm_probe_that_says_the_host_cannot_falls_back_to_tcg_and_is_cached(
        tmp_path: Path, fake_vng: Path, monkeypatch: pytest.MonkeyPatch, mode: str,
        reason: str) -> None:
    monkeypatch.setenv("FAKE_VNG_MODE", mode)
    req = request(tmp_path, make_plan(tmp_path, {}), accel="auto")
    accel = boot._probe_kvm(req)
    assert not accel.kvm and reason in accel.reason
    monkeypatch.setenv("FAKE_VNG_MODE", "run")
    again = boot._probe_kvm(req)
    assert not again.kvm and "cached probe" in again.reason


def test_a_probe_that_fails_another_way_is_not_cached(
        tmp_path: Path, fake_vng: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # QEMU dying without a KVM message, or a kernel that booted and failed (exit 255 on a
    # root without udev), may be this run's or this kernel's fault: probe again next time.
    for mode in ("nostart", "panic"):
        monkeypatch.setenv("FAKE_VNG_MODE", mode)
        req = request(tmp_path, make_plan(tmp_path, {}), accel="auto")
        assert "KVM probe failed" in boot._probe_kvm(req).reason
        assert not (req.cache / "kvm-probe.json").exists()


def test_missing_vng_is_an_infrastructure_error(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    with pytest.raises(boot.InfraError, match=r"vng \(virtme-ng\) not found"):
        boot.vng_path()


def test_qemu_that_dies_at_start_is_retried_once(tmp_path: Path, fake_vng: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_VNG_MODE", "nostart")
    result = boot.boot(request(tmp_path, make_plan(tmp_path, {"good": "true\n"})))
    assert len(fake_vng.read_text().splitlines()) == 2
    assert result.returncode == -1 and not result.runner_started


def test_exit_255_without_script_ports_is_explained(tmp_path: Path) -> None:
    console = tmp_path / "console.log"
    console.write_text("virtme-ng-init: virtme-init: cannot find script I/O ports; make sure "
                       "virtio-serial is available\nfutex-harness: runner finished\n")
    booted = boot.BootResult(boot.Accel(False, "TCG requested"), (), console, 255, False, True,
                             True, 9.0)
    detail = boot.boot_detail(booted)
    assert "the runner finished" in detail and "no status came back" in detail
    plain = boot.boot_detail(boot.BootResult(boot.Accel(False, ""), (), console, 0, False,
                                             True, True, 9.0))
    assert plain.endswith("the runner finished; vng exit 0")


def test_kernel_args_reach_vng_one_append_each(tmp_path: Path, fake_vng: Path) -> None:
    """settings.toml [boot] kernel_args: root=/dev/root lets a kernel without CONFIG_BLOCK
    mount virtme-ng's 9p root."""
    assert "root=/dev/root" in load_settings().kernel_args
    plan = make_plan(tmp_path, {"good": 'echo \'{"check": "good", "hits": 1}\'\n'})
    req = dataclasses.replace(request(tmp_path, plan), kernel_args=("root=/dev/root", "lpj=1"))
    boot.boot(req)
    argv = fake_vng.read_text().split()
    assert argv[argv.index("--append") + 1] == "root=/dev/root"
    assert argv.count("--append") == 2 and "lpj=1" in argv


def test_init_skips_reach_the_guest_as_a_path_of_no_ops(tmp_path: Path, fake_vng: Path) -> None:
    """settings.toml [boot] init_skips: virtme-ng's init looks systemd-tmpfiles up on a PATH
    the kernel command line starts, and finds true(1) there."""
    assert "systemd-tmpfiles" in load_settings().init_skips
    where = boot.no_op_dir(tmp_path / "cache", ("systemd-tmpfiles",))
    assert where is not None and boot.no_op_dir(tmp_path / "cache", ()) is None
    assert subprocess.run([where / "systemd-tmpfiles", "--create", "--boot"]).returncode == 0
    plan = make_plan(tmp_path, {"good": 'echo \'{"check": "good", "hits": 1}\'\n'})
    boot.boot(dataclasses.replace(request(tmp_path, plan), init_path=where))
    argv = fake_vng.read_text().split()
    assert argv[argv.index(f"PATH={where}") - 1] == "--append"
