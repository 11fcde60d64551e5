# SPDX-License-Identifier: GPL-2.0
"""The SSH target backend against a real OpenSSH server on 127.0.0.1, started per test.

The target is this machine, so the build under test is made to be this machine's kernel:
kernel.release is the host's uname -r, and the built vdso64.so is the vDSO this very
process has mapped. The check itself is the real one, and a single changed byte fails it."""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import paramiko
import pytest
import ssh_server
from conftest import sh
from elf_fixtures import ALT_7_3
from elftools.elf.elffile import ELFFile
from plans import GOOD, verdicts
from plans import script_plan as plain_plan

from harness.backends import SuiteRequest
from harness.backends import ssh as remote
from harness.backends.ssh_connect import SshOptions, Target, fingerprint_of, parse_target
from harness.backends.ssh_identity import RELEASE_FILE
from harness.errors import InfraError, UserError
from harness.guest.plan import GuestPlan, protocol
from harness.verdicts.checks import Verdict
from harness.verdicts.image import alternative_ranges

VDSO64 = Path("arch/x86/entry/vdso/vdso64/vdso64.so")

pytestmark = pytest.mark.skipif(not ssh_server.SSHD.exists(),
                                reason="openssh-server is not installed (scripts/install-deps)")


def make_plan(tmp_path: Path, scripts: dict[str, str], timeouts: dict[str, float] | None = None,
              suite_timeout: float = 2) -> GuestPlan:
    """Each script gets --out <its .bin> as $1 $2, as the vDSO dump tests do."""
    return plain_plan(tmp_path, scripts, timeouts, suite_timeout, out_arg=True)


def host_vdso() -> bytes:
    """The vDSO this process has mapped: on this host, exactly what the target maps."""
    for line in Path("/proc/self/maps").read_text().splitlines():
        if line.endswith("[vdso]"):
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            with Path("/proc/self/mem").open("rb", buffering=0) as mem:
                mem.seek(lo)
                return mem.read(hi - lo)
    pytest.skip("this host maps no vDSO")


@pytest.fixture
def build_dir(tmp_path: Path) -> Path:
    """A build of 'this machine's kernel': its release and its vDSO image."""
    build = tmp_path / "build"
    (build / "include/config").mkdir(parents=True)
    (build / RELEASE_FILE).write_text(os.uname().release + "\n")
    (build / VDSO64).parent.mkdir(parents=True)
    (build / VDSO64).write_bytes(host_vdso())
    return build


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ssh_server.SshServer]:
    srv = ssh_server.start(tmp_path / "sshd")
    yield srv
    srv.stop()


class Request:
    """The two halves of a remote run: how to reach the target, and the suite."""

    def __init__(self, opts: SshOptions, suite: SuiteRequest) -> None:
        self.opts, self.suite = opts, suite
        self.remote_tmp, self.logs = opts.remote_tmp, suite.logs


def request(tmp_path: Path, srv: ssh_server.SshServer, build: Path, plan: GuestPlan,
            **changes: Any) -> Request:
    known = tmp_path / "known_hosts"
    if not known.exists():
        known.write_text(srv.known_hosts_line())
    target = tmp_path / "target-tmp"
    target.mkdir(exist_ok=True)
    opts = SshOptions(
        target=parse_target(srv.url), key_file=srv.user_key, known_hosts=known,
        fingerprint=None, wait_seconds=5, margin_seconds=10, remote_tmp=str(target))
    suite = SuiteRequest(plan, build, tmp_path / "logs", "default",
                         {"vdso64": build / VDSO64})
    return Request(replace(opts, **changes), suite)


def run_remote(req: Request) -> remote.RemoteResult:
    return remote.run_remote(req.opts, req.suite)


def test_suite_runs_on_the_target_and_results_come_back(
        tmp_path: Path, server: ssh_server.SshServer, build_dir: Path) -> None:
    plan = make_plan(tmp_path, {
        # $2 is the --out path: it must have been moved into the target's directory.
        "good": 'printf dump > "$2"\n' + GOOD % "good",
        "crashes": "echo oops >&2; kill -SEGV $$\n",
        "hangs": "sleep 30\n",
    }, timeouts={"hangs": 1})
    req = request(tmp_path, server, build_dir, plan)
    result = run_remote(req)
    assert result.finished and result.runner_started and result.exit_code == 0, result
    assert result.kernel_release == os.uname().release
    assert result.target == server.url
    assert result.vdso["image_mismatch"] == 0 and result.vdso["dump_bytes"] > 0
    assert verdicts(plan) == {"good": Verdict.PASS, "crashes": Verdict.ERROR,
                              "hangs": Verdict.TIMEOUT}
    assert (plan.rwdir / "results" / "good.bin").read_bytes() == b"dump"
    argv = protocol.read_outcomes(plan.rwdir)["good"].argv
    assert argv[0].startswith(f"{req.remote_tmp}/futex-harness.") and argv[2].startswith(
        argv[0].rsplit("/bin/", 1)[0] + "/results/")
    assert "3 of 3 results" in result.detail
    # The temporary directory on the target is gone, and the journal says what was done.
    assert list(Path(req.remote_tmp).iterdir()) == []
    journal = (req.logs / "remote.log").read_text()
    assert "$ uname -r" in journal and "put " in journal and "get " in journal
    assert "runner: futex-harness: runner finished" in journal and "$ rm -rf" in journal


def test_pinned_fingerprint_is_accepted(tmp_path: Path, server: ssh_server.SshServer,
                                        build_dir: Path) -> None:
    plan = make_plan(tmp_path, {"good": GOOD % "good"})
    # No known_hosts anywhere: only the pin can vouch for the host.
    req = request(tmp_path, server, build_dir, plan, known_hosts=None,
                  fingerprint=ssh_server.fingerprint(server.host_key))
    assert run_remote(req).finished
    assert verdicts(plan) == {"good": Verdict.PASS}


def test_hashed_known_hosts_entry_is_accepted(tmp_path: Path, server: ssh_server.SshServer,
                                             build_dir: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(server.known_hosts_line())
    sh(["ssh-keygen", "-q", "-H", "-f", known])
    assert "127.0.0.1" not in known.read_text()
    plan = make_plan(tmp_path, {"good": GOOD % "good"})
    assert run_remote(request(tmp_path, server, build_dir, plan)).finished


def test_wrong_pinned_fingerprint_is_refused(tmp_path: Path, server: ssh_server.SshServer,
                                             build_dir: Path) -> None:
    other = ssh_server.fingerprint(ssh_server.keygen(tmp_path / "other"))
    req = request(tmp_path, server, build_dir, make_plan(tmp_path, {}), fingerprint=other)
    with pytest.raises(UserError, match="does not match the pinned") as err:
        run_remote(req)
    assert ssh_server.fingerprint(server.host_key) in str(err.value) and other in str(err.value)


@pytest.mark.parametrize("pin", ["abc", "MD5:00:11", "SHA256:tooshort"])
def test_malformed_fingerprint_is_a_user_error(tmp_path: Path, server: ssh_server.SshServer,
                                               build_dir: Path, pin: str) -> None:
    req = request(tmp_path, server, build_dir, make_plan(tmp_path, {}), fingerprint=pin)
    with pytest.raises(UserError, match="expected SHA256:"):
        run_remote(req)


def test_unknown_host_key_is_refused(tmp_path: Path, server: ssh_server.SshServer,
                                     build_dir: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{server.port + 1} {ssh_server.public(server.host_key)}\n")
    req = request(tmp_path, server, build_dir, make_plan(tmp_path, {}))
    with pytest.raises(UserError, match="unknown host key") as err:
        run_remote(req)
    message = str(err.value)
    assert ssh_server.fingerprint(server.host_key) in message
    assert f"[127.0.0.1]:{server.port}" in message
    # Refused, not added.
    assert known.read_text().count("\n") == 1


def test_changed_host_key_is_refused(tmp_path: Path, server: ssh_server.SshServer,
                                     build_dir: Path) -> None:
    impostor = ssh_server.keygen(tmp_path / "old_host_key")
    (tmp_path / "known_hosts").write_text(server.known_hosts_line(impostor))
    req = request(tmp_path, server, build_dir, make_plan(tmp_path, {}))
    with pytest.raises(UserError, match="host key mismatch") as err:
        run_remote(req)
    assert ssh_server.fingerprint(server.host_key) in str(err.value)
    assert ssh_server.fingerprint(impostor) in str(err.value)


def test_default_known_hosts_and_agent_keys(tmp_path: Path, server: ssh_server.SshServer,
                                            build_dir: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    ssh_dir = Path.home() / ".ssh"
    ssh_dir.mkdir()
    (ssh_dir / "known_hosts").write_text(server.known_hosts_line())
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        subprocess.run(["ssh-add", "-q", str(server.user_key)], check=True,
                       capture_output=True)
        plan = make_plan(tmp_path, {"good": GOOD % "good"})
        req = request(tmp_path, server, build_dir, plan, key_file=None, known_hosts=None)
        result = run_remote(req)
    finally:
        agent.kill()
        agent.wait()
    assert result.finished and verdicts(plan) == {"good": Verdict.PASS}
    assert "the SSH agent's 1 key(s)" in (req.logs / "remote.log").read_text()


def test_no_key_and_no_agent_is_a_user_error(tmp_path: Path, server: ssh_server.SshServer,
                                             build_dir: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    req = request(tmp_path, server, build_dir, make_plan(tmp_path, {}), key_file=None)
    with pytest.raises(UserError, match="no SSH key"):
        run_remote(req)


def test_key_the_target_does_not_accept_is_refused(
        tmp_path: Path, server: ssh_server.SshServer, build_dir: Path) -> None:
    stranger = ssh_server.keygen(tmp_path / "stranger")
    req = request(tmp_path, server, build_dir, make_plan(tmp_path, {}), key_file=stranger)
    start = time.monotonic()
    with pytest.raises(UserError, match=f"refused key {stranger}"):
        run_remote(req)
    # Not retried: a refused key is an answer, not an outage.
    assert time.monotonic() - start < 5


def test_unreadable_key_file_is_a_user_error(tmp_path: Path, server: ssh_server.SshServer,
                                             build_dir: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_text("not a key\n")
    for key in (junk, tmp_path / "missing"):
        req = request(tmp_path, server, build_dir, make_plan(tmp_path / f"plan-{key.name}", {}),
                      key_file=key)
        with pytest.raises(UserError, match=str(key)):
            run_remote(req)


def test_nothing_listening_is_an_infra_error_within_the_bound(
        tmp_path: Path, build_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    port = ssh_server.free_port()
    known = tmp_path / "known_hosts"
    known.write_text("")
    opts = SshOptions(parse_target(f"ssh://root@127.0.0.1:{port}"),
                      ssh_server.keygen(tmp_path / "key"), known, None, wait_seconds=3)
    req = Request(opts, SuiteRequest(make_plan(tmp_path, {}), build_dir, tmp_path / "logs",
                                     "default", {"vdso64": build_dir / VDSO64}))
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="harness"), \
            pytest.raises(InfraError, match=f"cannot reach 127.0.0.1 port {port}"):
        run_remote(req)
    assert time.monotonic() - start < 3 + 2
    retries = [r for r in caplog.records if "not reachable yet" in r.getMessage()]
    assert len(retries) >= 2


def test_target_running_another_kernel_is_refused(
        tmp_path: Path, server: ssh_server.SshServer, build_dir: Path) -> None:
    (build_dir / RELEASE_FILE).write_text("7.3.4+\n")
    req = request(tmp_path, server, build_dir, make_plan(tmp_path, {}))
    with pytest.raises(UserError, match=f"runs kernel {os.uname().release}, but the build "
                                        f"in {build_dir} is 7.3.4\\+"):
        run_remote(req)


def test_target_whose_vdso_differs_from_the_build_is_refused(
        tmp_path: Path, server: ssh_server.SshServer, build_dir: Path) -> None:
    image = build_dir / VDSO64
    data = bytearray(image.read_bytes())
    data[text_byte_outside_alternatives(image)] ^= 0xFF
    image.write_bytes(bytes(data))
    req = request(tmp_path, server, build_dir, make_plan(tmp_path, {"good": GOOD % "good"}))
    with pytest.raises(UserError, match=r"differs from .* in 1 bytes"):
        run_remote(req)
    # Refused before anything was copied to the target.
    assert list(Path(req.remote_tmp).iterdir()) == []


def text_byte_outside_alternatives(image: Path) -> int:
    """An offset in the image's .text that no boot-time alternative may patch."""
    with image.open("rb") as f:
        text = ELFFile(f).get_section_by_name(".text")
        start, size = text["sh_offset"], text["sh_size"]
    alts = alternative_ranges(image, ALT_7_3)
    return next(i for i in range(start + size // 2, start + size)
                if not any(s <= i < e for s, e in alts))


def test_target_going_away_mid_run_keeps_earlier_results(
        tmp_path: Path, server: ssh_server.SshServer, build_dir: Path) -> None:
    started = tmp_path / "slow-started"
    plan = make_plan(tmp_path, {
        "first": GOOD % "first",
        "slow": f"touch {started}\nsleep 60\n",
        "third": GOOD % "third",
    }, timeouts={"slow": 60}, suite_timeout=60)
    req = request(tmp_path, server, build_dir, plan)
    first = plan.rwdir / "results" / "first.json"

    def vanish() -> None:
        deadline = time.monotonic() + 30
        while not (started.exists() and first.exists()) and time.monotonic() < deadline:
            time.sleep(0.05)
        ssh_server.kill_tree(server.process.pid)

    killer = threading.Thread(target=vanish)
    killer.start()
    start = time.monotonic()
    result = run_remote(req)
    killer.join()
    assert time.monotonic() - start < 20
    assert result.runner_started and not result.finished and not result.timed_out
    assert "connection closed" in result.detail and "1 of 3 results" in result.detail
    assert "left on the target" in result.detail
    assert verdicts(plan) == {"first": Verdict.PASS, "slow": Verdict.ERROR,
                              "third": Verdict.ERROR}


def test_suite_past_its_time_is_killed_and_cleaned_up(
        tmp_path: Path, server: ssh_server.SshServer, build_dir: Path) -> None:
    pid_file = tmp_path / "pid"
    # The runner would wait 60 s for this test; the suite may take 1 + 1 s.
    plan = make_plan(tmp_path, {"stuck": f"echo $$ > {pid_file}\nexec sleep 60\n"},
                     timeouts={"stuck": 60}, suite_timeout=1)
    req = request(tmp_path, server, build_dir, plan, margin_seconds=1)
    start = time.monotonic()
    result = run_remote(req)
    assert time.monotonic() - start < 10
    assert result.timed_out and result.runner_started and not result.finished
    assert "ran past 2s; the runner was killed" in result.detail
    deadline = time.monotonic() + 5
    pid = int(pid_file.read_text())
    while not ssh_server.gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ssh_server.gone(pid)
    assert list(Path(req.remote_tmp).iterdir()) == []
    assert verdicts(plan) == {"stuck": Verdict.ERROR}


def test_plan_paths_move_into_the_target_directory(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, {"t": "true\n"})
    moved = protocol.read_plan(plan.rwdir).moved(plan.rwdir, "/tmp/futex-harness.x")
    assert moved.entries[0].argv == ("/tmp/futex-harness.x/bin/t", "--out",
                                     "/tmp/futex-harness.x/results/t.bin")
    assert moved.entries[0].timeout == 2


@pytest.mark.parametrize(("url", "want"), [
    ("ssh://root@host", Target("root", "host", 22)),
    ("ssh://me@10.0.0.2:2222", Target("me", "10.0.0.2", 2222)),
    ("ssh://me@[::1]:22/", Target("me", "::1", 22)),
])
def test_parse_target(url: str, want: Target) -> None:
    assert parse_target(url) == want


@pytest.mark.parametrize(("url", "problem"), [
    ("host", "expected ssh://"),
    ("http://me@host", "expected ssh://"),
    ("ssh://host", "no user name"),
    ("ssh://me:secret@host", "password"),
    ("ssh://me@:22", "no host name"),
    ("ssh://me@host:99999", "port"),
    ("ssh://me@host:ssh", "port"),
    ("ssh://me@host/tmp", "unexpected path"),
])
def test_bad_target_url_is_a_user_error(url: str, problem: str) -> None:
    with pytest.raises(UserError, match=problem):
        parse_target(url)


def test_fingerprint_matches_ssh_keygen(tmp_path: Path) -> None:
    key = ssh_server.keygen(tmp_path / "k")
    assert fingerprint_of(paramiko.PKey.from_path(key)) == ssh_server.fingerprint(key)
    assert sh(["ssh-keygen", "-lf", f"{key}.pub"]).split()[1].startswith("SHA256:")
