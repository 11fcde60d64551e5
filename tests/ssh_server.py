# SPDX-License-Identifier: GPL-2.0
"""A throwaway OpenSSH server for the remote-target tests: keys, config, process."""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from conftest import sh

SSHD = Path("/usr/sbin/sshd")
SFTP_SERVER = Path("/usr/lib/openssh/sftp-server")
# sshd refuses to start without its privilege separation directory; systemd makes it.
PRIVSEP_DIR = Path("/run/sshd")


def keygen(path: Path) -> Path:
    """A new ed25519 key pair without a passphrase; returns the private key's path."""
    sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", path])
    return path


def fingerprint(key: Path) -> str:
    """SHA256:... of a key, from ssh-keygen -lf itself."""
    return sh(["ssh-keygen", "-lf", f"{key}.pub"]).split()[1]


def public(key: Path) -> str:
    """The 'type base64' part of a public key."""
    return " ".join(Path(f"{key}.pub").read_text().split()[:2])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float) -> None:
    """Until something accepts on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")
        time.sleep(0.05)


def write_config(directory: Path, port: int, listen: str, pam: bool) -> Path:
    """An sshd_config using only files in directory: host key, authorized_keys, pid file."""
    config = directory / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress {listen}\nHostKey {directory / 'host_key'}\n"
        f"PidFile {directory / 'sshd.pid'}\nAuthorizedKeysFile {directory / 'authorized_keys'}\n"
        f"StrictModes no\nUsePAM {'yes' if pam else 'no'}\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPrintMotd no\n"
        f"Subsystem sftp {SFTP_SERVER}\nLogLevel VERBOSE\n")
    return config


def prepare(directory: Path, user_key: Path, port: int, listen: str = "127.0.0.1",
            pam: bool = False) -> Path:
    """Host key, authorized user key and config in directory; returns the config.
    Without PAM, sshd itself refuses a locked account (password '!'), as virtme-ng's
    guests have for root; with PAM, public keys work there too."""
    directory.mkdir(parents=True, exist_ok=True)
    keygen(directory / "host_key")
    (directory / "authorized_keys").write_text(public(user_key) + "\n")
    return write_config(directory, port, listen, pam)


@dataclass
class SshServer:
    directory: Path
    port: int
    user_key: Path
    process: subprocess.Popen[bytes]

    @property
    def host_key(self) -> Path:
        return self.directory / "host_key"

    @property
    def url(self) -> str:
        return f"ssh://{user()}@127.0.0.1:{self.port}"

    def known_hosts_line(self, key: Path | None = None) -> str:
        return f"[127.0.0.1]:{self.port} {public(key or self.host_key)}\n"

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def user() -> str:
    """This process's user name: the test server's only login."""
    return pwd.getpwuid(os.getuid()).pw_name


def start(directory: Path, timeout: float = 10) -> SshServer:
    """sshd -D on a free loopback port, with a fresh host key and user key."""
    directory.mkdir(parents=True, exist_ok=True)
    user_key = keygen(directory / "user_key")
    port = free_port()
    config = prepare(directory / "server", user_key, port)
    PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    log = (directory / "sshd.log").open("wb")
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", config], stdout=log, stderr=log,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    server = SshServer(directory / "server", port, user_key, process)
    try:
        wait_port(port, timeout)
    except TimeoutError:
        server.stop()
        raise
    return server


def kill_tree(root: int) -> None:
    """SIGKILL root and all its descendants at once: as far as a client can tell, the
    machine is gone."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(stat.parent.name))
    todo, found = [root], []
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    for pid in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def gone(pid: int) -> bool:
    """The process has exited (a zombie counts: nobody in the container may reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")
