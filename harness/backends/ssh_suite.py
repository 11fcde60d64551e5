# SPDX-License-Identifier: GPL-2.0
"""SSH targets, the suite: a fresh work directory there, the plan and binaries uploaded, the
runner launched and followed, results fetched as they appear, and the directory removed in
any case. A dropped connection or a suite past its time is recorded, not raised."""

from __future__ import annotations

import logging
import shlex
import time
from dataclasses import dataclass, field

import paramiko

from harness.backends import SuiteRequest
from harness.backends.ssh_connect import (
    LOST,
    Credentials,
    Journal,
    SshOptions,
    alive,
    attempt,
    execute,
    first_line,
    guard,
)
from harness.errors import HarnessError, InfraError
from harness.guest import protocol

log = logging.getLogger("harness")

POLL_SECONDS = 1.0
# Runs on the target: kill a process group (the runner and the test it is running).
# SIGTERM first: the runner then kills the session of the test it is running (tests run in
# sessions of their own), and SIGKILL a second later for whatever is left of the group.
KILL_GROUP = ("import os, sys, time; g = int(sys.argv[1]); os.killpg(g, 15); time.sleep(1); "
              "os.killpg(g, 9)")
# Runs on the target: print our process group, then become the guest runner. sshd starts
# each command in a session of its own, so that group holds the runner and its tests only.
# The runner's progress lines go to stderr, which comes back over the channel.
RUNNER_WRAPPER = ("import os, sys; print(os.getpgid(0), flush=True); "
                  f"os.environ[{protocol.PROGRESS_ENV!r}] = '/dev/stderr'; "
                  "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])")


@dataclass
class SuiteState:
    """What is known about the suite on the target so far."""

    workdir: str | None = None
    pgid: int | None = None
    started: bool = False
    exit_code: int | None = None
    timed_out: bool = False
    killed: bool = False
    lost: str | None = None
    cleanup: str = ""
    fetched: dict[str, tuple[int, int]] = field(default_factory=dict)
    out: str = ""
    err: str = ""


@dataclass(frozen=True)
class Session:
    opts: SshOptions
    suite: SuiteRequest
    creds: Credentials
    journal: Journal


def _is_workdir(path: str, base: str) -> bool:
    """A directory our mktemp made, so that rm -rf cannot reach anything else."""
    name = path.removeprefix(base.rstrip("/") + "/")
    return name != path and name.startswith("futex-harness.") and "/" not in name


def make_workdir(client: paramiko.SSHClient, s: Session) -> str:
    """A fresh temporary directory on the target."""
    template = f"{s.opts.remote_tmp.rstrip('/')}/futex-harness.XXXXXXXX"
    with guard(s.opts.target, "making a temporary directory"):
        reply = execute(client, ["mktemp", "-d", template], s.journal,
                        s.opts.command_timeout)
    path = reply.out.decode(errors="replace").strip()
    if reply.code != 0 or not _is_workdir(path, s.opts.remote_tmp):
        raise InfraError(f"{s.opts.target}: mktemp -d {template} failed (exit {reply.code}): "
                         f"{reply.err.strip()}")
    return path


def upload(sftp: paramiko.SFTPClient, s: Session, workdir: str) -> None:
    """Copy bin/ (tests, their helpers in subdirectories, the runner) and the plan, moved
    into workdir, to the target."""
    for sub in (protocol.BIN, protocol.RESULTS):
        sftp.mkdir(f"{workdir}/{sub}")
    local = s.suite.plan.rwdir / protocol.BIN
    for path in sorted(local.rglob("*")):
        dest = f"{workdir}/{protocol.BIN}/{path.relative_to(local).as_posix()}"
        if path.is_dir():
            sftp.mkdir(dest)
        elif path.is_file():
            sftp.put(str(path), dest)
            sftp.chmod(dest, path.stat().st_mode & 0o777)
            s.journal.note(f"put {path} -> {dest} ({path.stat().st_size} bytes)")
    text = protocol.read_plan(s.suite.plan.rwdir).moved(s.suite.plan.rwdir, workdir).to_json()
    dest = f"{workdir}/{protocol.PLAN}"
    with sftp.open(dest, "w") as f:
        f.write(text)
    s.journal.note(f"put {protocol.PLAN} -> {dest}:\n{text}")


def start_runner(client: paramiko.SSHClient, s: Session, workdir: str) -> paramiko.Channel:
    """Start the guest runner on the target; its progress lines come back on stderr."""
    runner = f"{workdir}/{protocol.BIN}/{s.suite.plan.runner.name}"
    argv = [s.opts.python, "-c", RUNNER_WRAPPER, runner, workdir]
    command = shlex.join(argv)
    s.journal.note(f"$ {command}")
    transport = client.get_transport()
    assert transport is not None
    chan = transport.open_session(timeout=s.opts.command_timeout)
    chan.exec_command(command)
    return chan


def _take_output(chan: paramiko.Channel, p: SuiteState, journal: Journal) -> None:
    """Read what the runner printed so far: its process group first, then progress lines."""
    while chan.recv_ready():
        p.out += chan.recv(4096).decode(errors="backslashreplace")
    first, newline, _ = p.out.partition("\n")
    if newline and p.pgid is None and first.strip().isdigit():
        p.pgid = int(first)
        journal.note(f"runner process group {p.pgid}")
    while chan.recv_stderr_ready():
        p.err += chan.recv_stderr(4096).decode(errors="backslashreplace")
    *lines, p.err = p.err.split("\n")
    for line in lines:
        journal.note(f"runner: {line}")
        p.started = p.started or protocol.STARTED in line


def fetch_results(sftp: paramiko.SFTPClient, s: Session, p: SuiteState) -> None:
    """Bring new or changed result files back into rwdir/results, each one atomically."""
    remote = f"{p.workdir}/{protocol.RESULTS}"
    local = protocol.results_dir(s.suite.plan.rwdir)
    local.mkdir(parents=True, exist_ok=True)
    entries = {a.filename: a for a in sftp.listdir_attr(remote)}
    for name, attr in sorted(entries.items()):
        if not protocol.is_complete(name, entries):
            continue
        stamp = (attr.st_size or 0, attr.st_mtime or 0)
        if p.fetched.get(name) == stamp:
            continue
        part = local / f".{name}.part"
        sftp.get(f"{remote}/{name}", str(part))
        part.replace(local / name)
        p.fetched[name] = stamp
        s.journal.note(f"get {remote}/{name} -> {local / name} ({stamp[0]} bytes)")


def supervise(chan: paramiko.Channel, sftp: paramiko.SFTPClient, s: Session,
              p: SuiteState) -> None:
    """Follow the runner until it exits, the connection drops or the suite's time is up."""
    limit = s.suite.plan.total_timeout + s.opts.margin_seconds
    deadline = time.monotonic() + limit
    transport = chan.get_transport()
    while True:
        _take_output(chan, p, s.journal)
        if _exited(chan):
            p.exit_code = chan.recv_exit_status()
            _take_output(chan, p, s.journal)
            return
        if chan.closed or not transport.is_active():
            why = transport.get_exception()
            p.lost = f"the connection closed while the runner was running ({first_line(why)})"
            return
        if time.monotonic() > deadline:
            p.timed_out = True
            s.journal.note(f"the suite ran past {limit:.0f}s")
            return
        try:
            fetch_results(sftp, s, p)
        except LOST as exc:
            p.lost = f"{first_line(exc)} while fetching results"
            return
        chan.status_event.wait(POLL_SECONDS)


def _exited(chan: paramiko.Channel) -> bool:
    """The runner ended: an exit status came, or the server ended the channel in order (a
    signal's exit). A channel closed only because the connection dropped has neither."""
    return chan.status_event.is_set() and (chan.exit_status != -1 or bool(chan.eof_received))


def _kill_runner(client: paramiko.SSHClient, s: Session, p: SuiteState) -> None:
    if p.pgid is None:
        s.journal.note("the runner's process group is unknown: nothing to kill")
        return
    p.killed = True
    with guard(s.opts.target, "killing the runner"):
        execute(client, [s.opts.python, "-c", KILL_GROUP, str(p.pgid)], s.journal,
                s.opts.command_timeout)


def _final_fetch(client: paramiko.SSHClient, sftp: paramiko.SFTPClient, s: Session,
                 p: SuiteState) -> None:
    """Whatever results can still be fetched; a failure is noted, not raised."""
    if not alive(client):
        return
    try:
        fetch_results(sftp, s, p)
    except LOST as exc:
        p.lost = p.lost or f"{first_line(exc)} while fetching the last results"
        s.journal.note(f"last fetch failed: {exc}")


def run_suite(client: paramiko.SSHClient, s: Session) -> SuiteState:
    """Upload, run and fetch; the temporary directory on the target is removed in any case."""
    p = SuiteState()
    try:
        p.workdir = make_workdir(client, s)
        with guard(s.opts.target, "uploading the tests"):
            sftp = client.open_sftp()
            channel = sftp.get_channel()
            if channel is not None:
                channel.settimeout(s.opts.sftp_timeout)
            upload(sftp, s, p.workdir)
            chan = start_runner(client, s, p.workdir)
        supervise(chan, sftp, s, p)
        if p.timed_out and alive(client):
            _kill_runner(client, s, p)
        _final_fetch(client, sftp, s, p)
        chan.close()
    except InfraError as exc:
        p.lost = str(exc)
        s.journal.note(f"error: {exc}")
    finally:
        p.cleanup = _cleanup(client, s, p)
    return p


def _cleanup(client: paramiko.SSHClient, s: Session, p: SuiteState) -> str:
    """Remove the work dir, reconnecting once if needed; a note when it could not be."""
    if p.workdir is None:
        return ""
    fresh = None
    try:
        if not alive(client):
            s.journal.note("reconnecting once to clean up")
            client = fresh = attempt(s.opts, s.creds, max(3.0, min(10.0, s.opts.wait_seconds)))
        if p.exit_code is None and p.pgid is not None and not p.killed:
            _kill_runner(client, s, p)
        with guard(s.opts.target, "removing the temporary directory"):
            reply = execute(client, ["rm", "-rf", "--", p.workdir], s.journal,
                            s.opts.command_timeout)
        if reply.code == 0:
            return ""
        problem = f"rm exited with {reply.code}"
    except (HarnessError, *LOST) as exc:
        problem = first_line(exc)
    finally:
        if fresh is not None:
            fresh.close()
    s.journal.note(f"could not remove {p.workdir}: {problem}")
    log.warning("remote: %s left on %s: %s", p.workdir, s.opts.target, problem)
    return f"; {p.workdir} left on the target ({problem})"
