# SPDX-License-Identifier: GPL-2.0
"""Target backend over SSH: run the guest suite on a machine already booted into the build.

The target must prove it runs the build under test (its kernel release and its mapped vDSO)
before anything is copied to it. The planned tests, their binaries and the guest runner go
to a fresh temporary directory there; results come back into the plan's rwdir as soon as
each test finishes, so a target that drops off mid-run leaves its earlier results behind."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import re
import shlex
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import paramiko
import tenacity

from harness.errors import HarnessError, InfraError, UserError
from harness.guest import GuestPlan
from harness.vdso import compare_image

log = logging.getLogger("harness")

RELEASE_FILE = Path("include/config/kernel.release")
VDSO64 = Path("arch/x86/entry/vdso/vdso64/vdso64.so")
# Where kernels before 7.x keep it.
OLD_VDSO64 = Path("arch/x86/entry/vdso/vdso64.so")
# Each connection attempt: TCP connect, banner, key exchange, authentication.
ATTEMPT_TIMEOUT = 15.0
# A short command on the target: uname, the vDSO dump, mktemp, kill, rm.
COMMAND_TIMEOUT = 60.0
# An SFTP request taking longer than this means the target has gone.
SFTP_TIMEOUT = 30.0
POLL_SECONDS = 1.0
PIN = re.compile(r"SHA256:[A-Za-z0-9+/]{43}")
# Runs on the target: writes this process's mapped vDSO to stdout; exit 3 without one.
DUMP_VDSO = """import sys
for line in open('/proc/self/maps'):
    if line.rstrip().endswith('[vdso]'):
        lo, hi = (int(x, 16) for x in line.split()[0].split('-'))
        with open('/proc/self/mem', 'rb', 0) as mem:
            mem.seek(lo)
            sys.stdout.buffer.write(mem.read(hi - lo))
        sys.exit(0)
sys.exit(3)
"""
# Runs on the target: kill a process group (the runner and the test it is running).
KILL_GROUP = "import os, sys; os.killpg(int(sys.argv[1]), 9)"
# Runs on the target: print our process group, then become the guest runner. sshd starts
# each command in a session of its own, so that group holds the runner and its tests only.
# The runner's progress lines go to stderr, which comes back over the channel.
RUNNER_WRAPPER = ("import os, sys; print(os.getpgid(0), flush=True); "
                  "os.environ['FUTEX_HARNESS_KMSG'] = '/dev/stderr'; "
                  "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])")
# Losing the connection shows up as any of these, from paramiko or the socket.
LOST = (OSError, EOFError, paramiko.SSHException)


@dataclass(frozen=True)
class Target:
    """Where to run: ssh://user@host[:port]."""

    user: str
    host: str
    port: int = 22

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ssh://{self.user}@{host}:{self.port}"

    @property
    def known_hosts_name(self) -> str:
        """The host's name in known_hosts: OpenSSH writes [host]:port off port 22."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


@dataclass(frozen=True)
class RemoteRequest:
    target: Target
    # A private key file; None: the SSH agent's keys. Nothing else is tried.
    key_file: Path | None
    # None: ~/.ssh/known_hosts. Not read when a fingerprint is pinned.
    known_hosts: Path | None
    # SHA256:... as ssh-keygen -lf prints it; the host key must have exactly this one.
    fingerprint: str | None
    build_dir: Path
    plan: GuestPlan
    logs: Path
    # How long to keep trying to reach the target (it may still be booting).
    wait_seconds: float
    # Added to the sum of the planned tests' timeouts for the whole suite.
    margin_seconds: float = 60.0
    python: str = "python3"
    # Where the temporary directory is made on the target.
    remote_tmp: str = "/tmp"


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
    # The connection dropped, or the target failed us, before the runner was done.
    connection_lost: bool = False
    # Files brought back into the plan's rwdir/results.
    downloaded: tuple[str, ...] = ()
    # compare_image counters: the target's mapped vDSO against the built vdso64.so.
    vdso: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Credentials:
    pkey: paramiko.PKey | None
    describe: str


@dataclass
class _Progress:
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


class Journal:
    """logs/remote.log: every command, transfer and event on the target, with the time."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8")

    def note(self, text: str) -> None:
        """Append text, one stamped line per line."""
        stamp = time.strftime("%H:%M:%S")
        for line in text.splitlines() or [""]:
            self._file.write(f"{stamp} {line}\n")
        self._file.flush()

    def close(self) -> None:
        """Close the log file."""
        self._file.close()


@dataclass(frozen=True)
class _Session:
    req: RemoteRequest
    creds: _Credentials
    journal: Journal


class _JournalHandler(logging.Handler):
    """Sends paramiko's own log lines to the journal instead of the console."""

    def __init__(self, journal: Journal) -> None:
        super().__init__(logging.INFO)
        self._journal = journal

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(ValueError):
            self._journal.note(f"paramiko: {record.getMessage()}")


# --- the target URL and credentials ------------------------------------------------------

def parse_target(url: str) -> Target:
    """ssh://user@host[:port] as a Target; anything else is a UserError naming the problem."""
    parts = urlsplit(url)
    if parts.scheme != "ssh":
        raise UserError(f"target {url!r}: expected ssh://user@host[:port]")
    try:
        port = parts.port or 22
    except ValueError:
        raise UserError(f"target {url!r}: the port must be a number from 1 to 65535") from None
    problem = _url_problem(parts.username, parts.password, parts.hostname,
                           parts.path + parts.query + parts.fragment)
    if problem:
        raise UserError(f"target {url!r}: {problem}; expected ssh://user@host[:port]")
    assert parts.username is not None and parts.hostname is not None
    return Target(unquote(parts.username), parts.hostname, port)


def _url_problem(user: str | None, password: str | None, host: str | None,
                 rest: str) -> str | None:
    if not user:
        return "no user name"
    if password is not None:
        return "a password in the URL (use a key)"
    if not host:
        return "no host name"
    if rest not in ("", "/"):
        return f"unexpected path or query {rest!r}"
    return None


def fingerprint_of(key: paramiko.PKey) -> str:
    """SHA256:... of a public key, as ssh-keygen -l prints it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _pin(fingerprint: str) -> str:
    pin = fingerprint.strip().rstrip("=")
    if not PIN.fullmatch(pin):
        raise UserError(f"host key fingerprint {fingerprint!r}: expected SHA256:<43 base64 "
                        f"characters>, as 'ssh-keygen -lf <host key>.pub' prints it")
    return pin


def _credentials(req: RemoteRequest) -> _Credentials:
    """The key file's key, or else the agent's keys; nothing else is tried."""
    if req.key_file is not None:
        return _Credentials(_load_key(req.key_file), f"key {req.key_file}")
    try:
        agent = paramiko.Agent()
        count = len(agent.get_keys())
        agent.close()
    except paramiko.SSHException as exc:
        raise UserError(f"cannot use the SSH agent (SSH_AUTH_SOCK): {exc}") from None
    if not count:
        raise UserError("no SSH key: give a key file (--ssh-key) or add a key to the SSH "
                        "agent (SSH_AUTH_SOCK, ssh-add)")
    return _Credentials(None, f"the SSH agent's {count} key(s)")


def _load_key(path: Path) -> paramiko.PKey:
    try:
        return paramiko.PKey.from_path(path)
    except paramiko.PasswordRequiredException:
        raise UserError(f"SSH key {path} has a passphrase: add it to the SSH agent "
                        "(ssh-add) and leave out --ssh-key") from None
    except OSError as exc:
        raise UserError(f"cannot read SSH key {path}: {exc.strerror or exc}") from None
    except (paramiko.SSHException, ValueError) as exc:
        raise UserError(f"SSH key {path} is not a private key paramiko can use: {exc}") \
            from None


# --- host keys and connecting ------------------------------------------------------------

class _PinnedKey(paramiko.MissingHostKeyPolicy):
    """Accepts exactly the host key with the pinned fingerprint."""

    def __init__(self, target: Target, pin: str) -> None:
        self._target, self._pin = target, pin

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> None:
        got = fingerprint_of(key)
        if got != self._pin:
            raise UserError(f"{self._target}: the host key ({key.get_name()} {got}) does not "
                            f"match the pinned fingerprint {self._pin}; refusing to connect")


class _UnknownKey(paramiko.MissingHostKeyPolicy):
    """Refuses a host that known_hosts does not know; never adds it."""

    def __init__(self, target: Target, known_hosts: Path) -> None:
        self._target, self._known_hosts = target, known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> None:
        t = self._target
        raise UserError(
            f"{t}: unknown host key for {hostname}: {key.get_name()} {fingerprint_of(key)} is "
            f"not in {self._known_hosts}; refusing to connect. If that is the target's key, "
            f"add it (ssh-keyscan -p {t.port} {t.host}, after checking the fingerprint) or "
            f"pin its fingerprint")


def _known_hosts(req: RemoteRequest) -> Path:
    path = req.known_hosts or Path.home() / ".ssh" / "known_hosts"
    if req.known_hosts is not None and not path.is_file():
        raise UserError(f"known_hosts file {path} does not exist")
    return path


def _client(req: RemoteRequest) -> paramiko.SSHClient:
    """A client that checks the host key against the pin, or known_hosts, and nothing else."""
    client = paramiko.SSHClient()
    if req.fingerprint is not None:
        client.set_missing_host_key_policy(_PinnedKey(req.target, _pin(req.fingerprint)))
        return client
    path = _known_hosts(req)
    if path.is_file():
        try:
            # "system" keys: read only, never written back.
            client.load_system_host_keys(str(path))
        except (OSError, paramiko.SSHException, ValueError) as exc:
            raise UserError(f"cannot read known_hosts file {path}: {exc}") from None
    client.set_missing_host_key_policy(_UnknownKey(req.target, path))
    return client


def _attempt(req: RemoteRequest, creds: _Credentials, timeout: float) -> paramiko.SSHClient:
    """One connection attempt; a refused host key or key is a UserError."""
    client = _client(req)
    t = req.target
    try:
        client.connect(t.host, t.port, username=t.user, pkey=creds.pkey,
                       allow_agent=creds.pkey is None, look_for_keys=False, timeout=timeout,
                       banner_timeout=timeout, auth_timeout=timeout, channel_timeout=timeout)
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise UserError(
            f"{t}: host key mismatch for {t.known_hosts_name}: the host offered "
            f"{exc.key.get_name()} {fingerprint_of(exc.key)}, but {_known_hosts(req)} has "
            f"{exc.expected_key.get_name()} {fingerprint_of(exc.expected_key)}; refusing to "
            "connect (reinstalled host, or someone in the middle)") from None
    except paramiko.AuthenticationException:
        client.close()
        raise UserError(f"{t}: the target refused {creds.describe} for user {t.user}") \
            from None
    except BaseException:
        client.close()
        raise
    return client


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, LOST) and not isinstance(
        exc, paramiko.AuthenticationException | paramiko.BadHostKeyException)


def connect(req: RemoteRequest, creds: _Credentials) -> paramiko.SSHClient:
    """Connect, retrying while the target is down or booting, for at most wait_seconds."""
    t = req.target
    timeout = max(3.0, min(ATTEMPT_TIMEOUT, req.wait_seconds))
    retry = tenacity.Retrying(
        retry=tenacity.retry_if_exception(_transient),
        stop=tenacity.stop_before_delay(req.wait_seconds),
        wait=tenacity.wait_exponential(multiplier=0.5, max=5),
        before_sleep=lambda state: log.warning(
            "remote: %s not reachable yet (attempt %d, %.0fs of %.0fs): %s", t,
            state.attempt_number, state.seconds_since_start, req.wait_seconds,
            _first_line(state.outcome.exception() if state.outcome else None)),
        reraise=True)
    try:
        return retry(_attempt, req, creds, timeout)
    except LOST as exc:
        raise InfraError(f"cannot reach {t.host} port {t.port} over SSH within "
                         f"{req.wait_seconds:.0f}s: {_first_line(exc)}") from exc


def _first_line(exc: BaseException | None) -> str:
    text = str(exc or "").strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _alive(client: paramiko.SSHClient) -> bool:
    transport = client.get_transport()
    return transport is not None and transport.is_active()


@contextlib.contextmanager
def _guard(target: Target, what: str) -> Iterator[None]:
    """Turn a dropped or stalled connection into an InfraError saying what was going on."""
    try:
        yield
    except TimeoutError as exc:
        raise InfraError(f"{target}: {what} timed out") from exc
    except LOST as exc:
        raise InfraError(f"{target}: connection lost while {what}: {_first_line(exc)}") \
            from exc


# --- commands on the target --------------------------------------------------------------

@dataclass(frozen=True)
class Reply:
    code: int
    out: bytes
    err: str


def execute(client: paramiko.SSHClient, argv: list[str], journal: Journal,
            timeout: float = COMMAND_TIMEOUT) -> Reply:
    """Run argv on the target (quoted for its shell), with a deadline; logged to the journal."""
    command = shlex.join(argv)
    journal.note(f"$ {command}")
    transport = client.get_transport()
    if transport is None or not transport.is_active():
        raise InfraError(f"connection lost before running {argv[0]}")
    chan = transport.open_session(timeout=timeout)
    try:
        chan.settimeout(timeout)
        chan.exec_command(command)
        out, err = _read_all(chan.recv), _read_all(chan.recv_stderr)
        if not chan.status_event.wait(timeout):
            raise TimeoutError(f"{argv[0]}: no exit status after {timeout:.0f}s")
        code = chan.recv_exit_status()
    finally:
        chan.close()
    text = err.decode(errors="backslashreplace")
    journal.note(f"  exit {code}, {len(out)} bytes of output" + (f"\n  {text}" if text else ""))
    return Reply(code, out, text)


def _read_all(recv: Callable[[int], bytes]) -> bytes:
    chunks = []
    while chunk := recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def built_release(build_dir: Path) -> str:
    """The kernel release of the build, from its include/config/kernel.release."""
    path = build_dir / RELEASE_FILE
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise UserError(f"cannot read the build's kernel release {path}: "
                        f"{exc.strerror or exc}; is {build_dir} a built kernel?") from None


def built_vdso(build_dir: Path) -> Path:
    """The build's stripped 64-bit vDSO image, which the target must have mapped."""
    for rel in (VDSO64, OLD_VDSO64):
        if (build_dir / rel).is_file():
            return build_dir / rel
    raise UserError(f"the build has no {VDSO64} in {build_dir}; is it a built kernel?")


def check_release(client: paramiko.SSHClient, s: _Session) -> str:
    """The target's uname -r, which must equal the build's kernel release."""
    want = built_release(s.req.build_dir)
    with _guard(s.req.target, "running uname -r"):
        reply = execute(client, ["uname", "-r"], s.journal)
    got = reply.out.decode(errors="replace").strip()
    if reply.code != 0 or got != want:
        raise UserError(f"{s.req.target} runs kernel {got or '?'}, but the build in "
                        f"{s.req.build_dir} is {want}: boot the target into the build first")
    return got


def check_vdso(client: paramiko.SSHClient, s: _Session) -> dict[str, int]:
    """Dump the target's mapped vDSO and compare it with the built vdso64.so."""
    image = built_vdso(s.req.build_dir)
    with _guard(s.req.target, "dumping the vDSO"):
        reply = execute(client, [s.req.python, "-c", DUMP_VDSO], s.journal)
    if reply.code == 3:
        raise UserError(f"{s.req.target}: no [vdso] mapping in a process on the target")
    if reply.code != 0 or not reply.out:
        raise UserError(f"{s.req.target}: cannot dump the vDSO with {s.req.python} "
                        f"(exit {reply.code}): {reply.err.strip()[-300:]}")
    (s.req.logs / "remote-vdso64.bin").write_bytes(reply.out)
    counters = compare_image(reply.out, image)
    s.journal.note(f"vDSO comparison with {image}: {counters}")
    if counters["image_mismatch"]:
        raise UserError(f"{s.req.target}: the mapped vDSO differs from {image} in "
                        f"{counters['image_mismatch']} bytes outside boot-time alternatives "
                        "(image_mismatch): the target does not run this build")
    return counters


# --- the suite ---------------------------------------------------------------------------

def remote_plan(rwdir: Path, workdir: str) -> dict[str, Any]:
    """plan.json with every path under the local rwdir moved to workdir on the target."""
    raw: dict[str, Any] = json.loads((rwdir / "plan.json").read_text())
    prefix = str(rwdir)

    def move(arg: str) -> str:
        if arg == prefix or arg.startswith(prefix + "/"):
            return workdir + arg[len(prefix):]
        return arg

    for test in raw["tests"]:
        test["argv"] = [move(a) for a in test["argv"]]
    return raw


def _is_workdir(path: str, base: str) -> bool:
    """A directory our mktemp made, so that rm -rf cannot reach anything else."""
    name = path.removeprefix(base.rstrip("/") + "/")
    return name != path and name.startswith("futex-harness.") and "/" not in name


def make_workdir(client: paramiko.SSHClient, s: _Session) -> str:
    """A fresh temporary directory on the target."""
    template = f"{s.req.remote_tmp.rstrip('/')}/futex-harness.XXXXXXXX"
    with _guard(s.req.target, "making a temporary directory"):
        reply = execute(client, ["mktemp", "-d", template], s.journal)
    path = reply.out.decode(errors="replace").strip()
    if reply.code != 0 or not _is_workdir(path, s.req.remote_tmp):
        raise InfraError(f"{s.req.target}: mktemp -d {template} failed (exit {reply.code}): "
                         f"{reply.err.strip()}")
    return path


def upload(sftp: paramiko.SFTPClient, s: _Session, workdir: str) -> None:
    """Copy bin/ (tests and runner) and a plan.json pointing into workdir to the target."""
    for sub in ("bin", "results"):
        sftp.mkdir(f"{workdir}/{sub}")
    for path in sorted((s.req.plan.rwdir / "bin").iterdir()):
        if path.is_file():
            dest = f"{workdir}/bin/{path.name}"
            sftp.put(str(path), dest)
            sftp.chmod(dest, path.stat().st_mode & 0o777)
            s.journal.note(f"put {path} -> {dest} ({path.stat().st_size} bytes)")
    text = json.dumps(remote_plan(s.req.plan.rwdir, workdir), indent=1) + "\n"
    with sftp.open(f"{workdir}/plan.json", "w") as f:
        f.write(text)
    s.journal.note(f"put plan.json -> {workdir}/plan.json:\n{text}")


def start_runner(client: paramiko.SSHClient, s: _Session, workdir: str) -> paramiko.Channel:
    """Start the guest runner on the target; its progress lines come back on stderr."""
    runner = f"{workdir}/bin/{s.req.plan.runner.name}"
    argv = [s.req.python, "-c", RUNNER_WRAPPER, runner, workdir]
    command = shlex.join(argv)
    s.journal.note(f"$ {command}")
    transport = client.get_transport()
    assert transport is not None
    chan = transport.open_session(timeout=COMMAND_TIMEOUT)
    chan.exec_command(command)
    return chan


def _take_output(chan: paramiko.Channel, p: _Progress, journal: Journal) -> None:
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
        p.started = p.started or "runner started" in line


def fetch_results(sftp: paramiko.SFTPClient, s: _Session, p: _Progress) -> None:
    """Bring new or changed result files back into rwdir/results, each one atomically."""
    remote = f"{p.workdir}/results"
    local = s.req.plan.rwdir / "results"
    local.mkdir(parents=True, exist_ok=True)
    entries = {a.filename: a for a in sftp.listdir_attr(remote)}
    for name, attr in sorted(entries.items()):
        # A .json is written atomically by the runner; a .bin is complete once its
        # test's .json exists.
        if not (name.endswith(".json") or
                (name.endswith(".bin") and name.removesuffix(".bin") + ".json" in entries)):
            continue
        stamp = (attr.st_size or 0, attr.st_mtime or 0)
        if p.fetched.get(name) == stamp:
            continue
        part = local / f".{name}.part"
        sftp.get(f"{remote}/{name}", str(part))
        part.replace(local / name)
        p.fetched[name] = stamp
        s.journal.note(f"get {remote}/{name} -> {local / name} ({stamp[0]} bytes)")


def supervise(chan: paramiko.Channel, sftp: paramiko.SFTPClient, s: _Session,
              p: _Progress) -> None:
    """Follow the runner until it exits, the connection drops or the suite's time is up."""
    limit = s.req.plan.total_timeout + s.req.margin_seconds
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
            p.lost = f"the connection closed while the runner was running ({_first_line(why)})"
            return
        if time.monotonic() > deadline:
            p.timed_out = True
            s.journal.note(f"the suite ran past {limit:.0f}s")
            return
        try:
            fetch_results(sftp, s, p)
        except LOST as exc:
            p.lost = f"{_first_line(exc)} while fetching results"
            return
        chan.status_event.wait(POLL_SECONDS)


def _exited(chan: paramiko.Channel) -> bool:
    """The runner ended: an exit status came, or the server ended the channel in order (a
    signal's exit). A channel closed only because the connection dropped has neither."""
    return chan.status_event.is_set() and (chan.exit_status != -1 or bool(chan.eof_received))


def _kill_runner(client: paramiko.SSHClient, s: _Session, p: _Progress) -> None:
    if p.pgid is None:
        s.journal.note("the runner's process group is unknown: nothing to kill")
        return
    p.killed = True
    with _guard(s.req.target, "killing the runner"):
        execute(client, [s.req.python, "-c", KILL_GROUP, str(p.pgid)], s.journal)


def _final_fetch(client: paramiko.SSHClient, sftp: paramiko.SFTPClient, s: _Session,
                 p: _Progress) -> None:
    """Whatever results can still be fetched; a failure is noted, not raised."""
    if not _alive(client):
        return
    try:
        fetch_results(sftp, s, p)
    except LOST as exc:
        p.lost = p.lost or f"{_first_line(exc)} while fetching the last results"
        s.journal.note(f"last fetch failed: {exc}")


def _run_suite(client: paramiko.SSHClient, s: _Session) -> _Progress:
    """Upload, run and fetch; the temporary directory on the target is removed in any case."""
    p = _Progress()
    try:
        p.workdir = make_workdir(client, s)
        with _guard(s.req.target, "uploading the tests"):
            sftp = client.open_sftp()
            channel = sftp.get_channel()
            if channel is not None:
                channel.settimeout(SFTP_TIMEOUT)
            upload(sftp, s, p.workdir)
            chan = start_runner(client, s, p.workdir)
        supervise(chan, sftp, s, p)
        if p.timed_out and _alive(client):
            _kill_runner(client, s, p)
        _final_fetch(client, sftp, s, p)
        chan.close()
    except InfraError as exc:
        p.lost = str(exc)
        s.journal.note(f"error: {exc}")
    finally:
        p.cleanup = _cleanup(client, s, p)
    return p


def _cleanup(client: paramiko.SSHClient, s: _Session, p: _Progress) -> str:
    """Remove the work dir, reconnecting once if needed; a note when it could not be."""
    if p.workdir is None:
        return ""
    fresh = None
    try:
        if not _alive(client):
            s.journal.note("reconnecting once to clean up")
            client = fresh = _attempt(s.req, s.creds, max(3.0, min(10.0, s.req.wait_seconds)))
        if p.exit_code is None and p.pgid is not None and not p.killed:
            _kill_runner(client, s, p)
        with _guard(s.req.target, "removing the temporary directory"):
            reply = execute(client, ["rm", "-rf", "--", p.workdir], s.journal)
        if reply.code == 0:
            return ""
        problem = f"rm exited with {reply.code}"
    except (HarnessError, *LOST) as exc:
        problem = _first_line(exc)
    finally:
        if fresh is not None:
            fresh.close()
    s.journal.note(f"could not remove {p.workdir}: {problem}")
    log.warning("remote: %s left on %s: %s", p.workdir, s.req.target, problem)
    return f"; {p.workdir} left on the target ({problem})"


# --- the entry point ---------------------------------------------------------------------

@contextlib.contextmanager
def _paramiko_logs(journal: Journal) -> Iterator[None]:
    """paramiko's log lines (connection, authentication, errors) go to the journal only."""
    logger = logging.getLogger("paramiko")
    handler = _JournalHandler(journal)
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


def run_remote(req: RemoteRequest) -> RemoteResult:
    """Check that the target runs the build under test, then run the planned tests there.

    A refused host key or key, or a target that does not run the build, is a UserError; a
    target that cannot be reached within wait_seconds is an InfraError. Once the checks
    pass, a dropped connection or a suite past its time is reported in the result, with
    whatever results were brought back; the tests without one are judged ERROR."""
    start = time.monotonic()
    req.logs.mkdir(parents=True, exist_ok=True)
    # Everything that can be checked here is, before waiting for the target.
    built_release(req.build_dir)
    built_vdso(req.build_dir)
    session = _Session(req, _credentials(req), Journal(req.logs / "remote.log"))
    try:
        return _on_target(session, start)
    except Exception as exc:
        session.journal.note(f"stopped: {exc}")
        raise
    finally:
        session.journal.close()


def _on_target(s: _Session, start: float) -> RemoteResult:
    """Connect, check the target, run the suite; the connection is closed in any case."""
    with _paramiko_logs(s.journal):
        s.journal.note(f"target {s.req.target}, build {s.req.build_dir}, {s.creds.describe}")
        client = connect(s.req, s.creds)
        try:
            release = check_release(client, s)
            vdso = check_vdso(client, s)
            progress = _run_suite(client, s)
        finally:
            client.close()
    result = _result(s.req, release, vdso, progress, time.monotonic() - start)
    s.journal.note(f"done: {result.detail}")
    return result


def _result(req: RemoteRequest, release: str, vdso: dict[str, int], p: _Progress,
            seconds: float) -> RemoteResult:
    finished = p.exit_code == 0 and "done.json" in p.fetched and not (p.lost or p.timed_out)
    return RemoteResult(
        str(req.target), release, p.started or bool(p.fetched), finished, _detail(req, p),
        seconds, p.exit_code, p.timed_out, p.lost is not None, tuple(sorted(p.fetched)), vdso)


def _detail(req: RemoteRequest, p: _Progress) -> str:
    got = sum(1 for n in p.fetched if n.endswith(".json") and n != "done.json")
    if p.lost:
        head = f"stopped early on {req.target}: {p.lost}"
    elif p.timed_out:
        limit = req.plan.total_timeout + req.margin_seconds
        head = f"the suite ran past {limit:.0f}s; the runner was killed"
    elif p.exit_code != 0:
        head = f"the runner exited with {p.exit_code}"
    else:
        head = "runner finished"
    return f"{head}; {got} of {len(req.plan.planned)} results brought back{p.cleanup}"
