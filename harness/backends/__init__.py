# SPDX-License-Identifier: GPL-2.0
"""Where the guest suite runs: a virtme-ng boot of the build, or a machine already booted
into it over SSH. Both take a SuiteRequest and return a SuiteResult; get_backend picks one,
the way tuxrun picks a runtime. The pipeline knows nothing else about them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from harness.data.settings import Settings
from harness.guest.plan import GuestPlan


@dataclass(frozen=True)
class SuiteRequest:
    """One suite of one revision: its plan, the build it tests, and where logs go."""

    plan: GuestPlan
    build_dir: Path
    logs: Path
    # The suite's name in settings.toml [suites]: its vCPUs and QEMU options.
    suite: str
    # The built vDSO images by name (vdso64, vdso32), as the expectations file places them.
    images: dict[str, Path]


@dataclass(frozen=True)
class SuiteResult:
    """What every backend reports. The outcomes themselves are in the plan's rwdir."""

    # The guest runner said it started: without that, no missing result is the tests' fault.
    runner_started: bool
    # The runner went through the whole plan and the backend saw it end in order.
    finished: bool
    timed_out: bool
    # One line for the stage's detail: what happened, in words a reader can trust.
    detail: str
    seconds: float
    # kvm, tcg or remote, and why.
    accel: str
    accel_reason: str
    qemu_opts: tuple[str, ...] = ()
    # The console logs to triage for splats, one per VM; none where the backend has no
    # console.
    consoles: tuple[Path, ...] = ()
    # The machine that ran the suite, when it is not a VM of ours.
    target: str | None = None


@dataclass(frozen=True)
class BackendConfig:
    """What a run says about where its suites run; target None means a virtme-ng boot."""

    settings: Settings
    cache: Path
    accel: str = "auto"
    target: str | None = None
    ssh_key: Path | None = None
    known_hosts: Path | None = None
    host_key: str | None = None


class Backend(Protocol):
    # The name of the stage that runs a suite: "boot" or "remote".
    stage: str

    def check(self) -> None:
        """Raise a UserError for bad input now, before anything is built."""

    def test_suite(self, req: SuiteRequest) -> SuiteResult:
        """Run the plan; a hang or a lost machine is reported in the result, not raised."""


def get_backend(config: BackendConfig) -> Backend:
    """The backend a run asked for; its inputs are checked before it is returned."""
    # Imported here so that a run without --target never loads paramiko.
    if config.target:
        from harness.backends.ssh import SshBackend
        backend: Backend = SshBackend(config)
    else:
        from harness.backends.vng import VngBackend
        backend = VngBackend(config)
    backend.check()
    return backend
