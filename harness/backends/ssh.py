# SPDX-License-Identifier: GPL-2.0
"""The SSH backend: run the guest suite on a machine already booted into the build.

ssh_connect reaches and trusts the target, ssh_identity proves it runs the build under
test, and ssh_suite runs the plan there. This module puts them in order."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from harness.backends import BackendConfig, SuiteRequest, SuiteResult
from harness.backends.ssh_connect import (
    Journal,
    JournalHandler,
    SshOptions,
    check_inputs,
    connect,
    parse_target,
)
from harness.backends.ssh_identity import built_release, built_vdso, check_release, check_vdso
from harness.backends.ssh_suite import Session, SuiteState, run_suite
from harness.guest import protocol


@dataclass(frozen=True)
class RemoteResult:
    target: str
    kernel_release: str
    runner_started: bool
    finished: bool
    detail: str
    seconds: float
    exit_code: int | None = None
    timed_out: bool = False
    # compare_image counters: the target's mapped vDSO against the built vdso64.so.
    vdso: dict[str, int] = field(default_factory=dict)


@contextlib.contextmanager
def _paramiko_logs(journal: Journal) -> Iterator[None]:
    """paramiko's log lines (connection, authentication, errors) go to the journal only."""
    logger = logging.getLogger("paramiko")
    handler = JournalHandler(journal)
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def run_remote(opts: SshOptions, suite: SuiteRequest) -> RemoteResult:
    """Check that the target runs the build under test, then run the planned tests there.

    A refused host key or key, or a target that does not run the build, is a UserError; a
    target that cannot be reached within wait_seconds is an InfraError. Once the checks
    pass, a dropped connection or a suite past its time is reported in the result, with
    whatever results were brought back; the tests without one are judged ERROR."""
    start = time.monotonic()
    suite.logs.mkdir(parents=True, exist_ok=True)
    # Everything that can be checked here is, before waiting for the target.
    built_release(suite.build_dir)
    built_vdso(suite.images, suite.build_dir)
    session = Session(opts, suite, check_inputs(opts), Journal(suite.logs / "remote.log"))
    try:
        return _on_target(session, start)
    except Exception as exc:
        session.journal.note(f"stopped: {exc}")
        raise
    finally:
        session.journal.close()


def _on_target(s: Session, start: float) -> RemoteResult:
    """Connect, check the target, run the suite; the connection is closed in any case."""
    with _paramiko_logs(s.journal):
        s.journal.note(f"target {s.opts.target}, build {s.suite.build_dir}, "
                       f"{s.creds.describe}")
        client = connect(s.opts, s.creds)
        try:
            release = check_release(client, s.opts, s.journal, s.suite.build_dir)
            vdso = check_vdso(client, s.opts, s.journal,
                              built_vdso(s.suite.images, s.suite.build_dir), s.suite.logs,
                              s.suite.plan.alt_layout)
            state = run_suite(client, s)
        finally:
            client.close()
    result = _result(s, release, vdso, state, time.monotonic() - start)
    s.journal.note(f"done: {result.detail}")
    return result


def _result(s: Session, release: str, vdso: dict[str, int], p: SuiteState,
            seconds: float) -> RemoteResult:
    finished = p.exit_code == 0 and protocol.DONE in p.fetched and not (p.lost or p.timed_out)
    return RemoteResult(
        str(s.opts.target), release, p.started or bool(p.fetched), finished, _detail(s, p),
        seconds, p.exit_code, p.timed_out, vdso)


def _detail(s: Session, p: SuiteState) -> str:
    got = sum(1 for n in p.fetched if protocol.is_outcome_file(n))
    if p.lost:
        head = f"stopped early on {s.opts.target}: {p.lost}"
    elif p.timed_out:
        limit = s.suite.plan.total_timeout + s.opts.margin_seconds
        head = f"the suite ran past {limit:.0f}s; the runner was killed"
    elif p.exit_code != 0:
        head = f"the runner exited with {p.exit_code}"
    else:
        head = "the runner went through the plan"
    return f"{head}; {got} of {len(s.suite.plan.entries)} results brought back{p.cleanup}"


def ssh_options(config: BackendConfig) -> SshOptions:
    """The run's SSH options, with the timeouts and the interpreter from settings.toml."""
    assert config.target is not None
    t, s = config.settings.timeouts, config.settings
    return SshOptions(parse_target(config.target), config.ssh_key, config.known_hosts,
                      config.host_key, t.target_wait, t.target_connect, t.target_command,
                      t.target_sftp, t.target_margin, s.guest_python)


class SshBackend:
    """Runs each suite on the target named by the run, over SSH."""

    stage = "remote"

    def __init__(self, config: BackendConfig) -> None:
        self._opts = ssh_options(config)

    def check(self) -> None:
        """The URL, the pin, known_hosts and the key, before anything is built."""
        check_inputs(self._opts)

    def test_suite(self, req: SuiteRequest) -> SuiteResult:
        done = run_remote(self._opts, req)
        return SuiteResult(
            runner_started=done.runner_started, finished=done.finished,
            timed_out=done.timed_out, detail=f"{done.target}: {done.detail}",
            seconds=done.seconds, accel="remote",
            accel_reason=f"target {done.target}, kernel {done.kernel_release}",
            target=done.target)
