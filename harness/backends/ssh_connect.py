# SPDX-License-Identifier: GPL-2.0
"""SSH targets, the connection: the target URL, trust in its host key, our credentials,
connecting with retries while it boots, and running one command there with a deadline."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import re
import shlex
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import paramiko
import tenacity

from harness.errors import InfraError, UserError

log = logging.getLogger("harness")

PIN = re.compile(r"SHA256:[A-Za-z0-9+/]{43}")
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
class SshOptions:
    """How to reach and trust a target; every timeout comes from settings.toml."""

    target: Target
    # A private key file; None: the SSH agent's keys. Nothing else is tried.
    key_file: Path | None
    # None: ~/.ssh/known_hosts. Not read when a fingerprint is pinned.
    known_hosts: Path | None
    # SHA256:... as ssh-keygen -lf prints it; the host key must have exactly this one.
    fingerprint: str | None
    # How long to keep trying to reach the target (it may still be booting).
    wait_seconds: float
    # One connection attempt: TCP connect, banner, key exchange, authentication.
    connect_timeout: float = 15.0
    # A short command on the target: uname, the vDSO dump, mktemp, kill, rm.
    command_timeout: float = 60.0
    # An SFTP request taking longer than this means the target has gone.
    sftp_timeout: float = 30.0
    # Added to the sum of the planned tests' timeouts for the whole suite.
    margin_seconds: float = 60.0
    python: str = "python3"
    # Where the temporary directory is made on the target.
    remote_tmp: str = "/tmp"


@dataclass(frozen=True)
class Credentials:
    pkey: paramiko.PKey | None
    describe: str


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


class JournalHandler(logging.Handler):
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


def check_inputs(opts: SshOptions) -> Credentials:
    """Everything about trust that can be checked before the build: the pinned fingerprint's
    form, the known_hosts file, and the key (or the agent's keys)."""
    if opts.fingerprint is not None:
        _pin(opts.fingerprint)
    else:
        _client(opts).close()
    return credentials(opts)


def credentials(req: SshOptions) -> Credentials:
    """The key file's key, or else the agent's keys; nothing else is tried."""
    if req.key_file is not None:
        return Credentials(_load_key(req.key_file), f"key {req.key_file}")
    try:
        agent = paramiko.Agent()
        count = len(agent.get_keys())
        agent.close()
    except paramiko.SSHException as exc:
        raise UserError(f"cannot use the SSH agent (SSH_AUTH_SOCK): {exc}") from None
    if not count:
        raise UserError("no SSH key: give a key file (--ssh-key) or add a key to the SSH "
                        "agent (SSH_AUTH_SOCK, ssh-add)")
    return Credentials(None, f"the SSH agent's {count} key(s)")


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


def _known_hosts(req: SshOptions) -> Path:
    path = req.known_hosts or Path.home() / ".ssh" / "known_hosts"
    if req.known_hosts is not None and not path.is_file():
        raise UserError(f"known_hosts file {path} does not exist")
    return path


def _client(req: SshOptions) -> paramiko.SSHClient:
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


def attempt(req: SshOptions, creds: Credentials, timeout: float) -> paramiko.SSHClient:
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


def connect(req: SshOptions, creds: Credentials) -> paramiko.SSHClient:
    """Connect, retrying while the target is down or booting, for at most wait_seconds."""
    t = req.target
    timeout = max(3.0, min(req.connect_timeout, req.wait_seconds))
    retry = tenacity.Retrying(
        retry=tenacity.retry_if_exception(_transient),
        stop=tenacity.stop_before_delay(req.wait_seconds),
        wait=tenacity.wait_exponential(multiplier=0.5, max=5),
        before_sleep=lambda state: log.warning(
            "remote: %s not reachable yet (attempt %d, %.0fs of %.0fs): %s", t,
            state.attempt_number, state.seconds_since_start, req.wait_seconds,
            first_line(state.outcome.exception() if state.outcome else None)),
        reraise=True)
    try:
        return retry(attempt, req, creds, timeout)
    except LOST as exc:
        raise InfraError(f"cannot reach {t.host} port {t.port} over SSH within "
                         f"{req.wait_seconds:.0f}s: {first_line(exc)}") from exc


def first_line(exc: BaseException | None) -> str:
    text = str(exc or "").strip()
    return text.splitlines()[0] if text else type(exc).__name__


def alive(client: paramiko.SSHClient) -> bool:
    transport = client.get_transport()
    return transport is not None and transport.is_active()


@contextlib.contextmanager
def guard(target: Target, what: str) -> Iterator[None]:
    """Turn a dropped or stalled connection into an InfraError saying what was going on."""
    try:
        yield
    except TimeoutError as exc:
        raise InfraError(f"{target}: {what} timed out") from exc
    except LOST as exc:
        raise InfraError(f"{target}: connection lost while {what}: {first_line(exc)}") \
            from exc


# --- commands on the target --------------------------------------------------------------

@dataclass(frozen=True)
class Reply:
    code: int
    out: bytes
    err: str


def execute(client: paramiko.SSHClient, argv: list[str], journal: Journal,
            timeout: float) -> Reply:
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
