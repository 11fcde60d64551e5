# SPDX-License-Identifier: GPL-2.0
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from harness.commands import run
from harness.errors import CommandError, CommandTimeout


def test_output_is_logged_and_streamed(tmp_path: Path) -> None:
    seen: list[str] = []
    log = tmp_path / "x.log"
    done = run(["sh", "-c", "echo one; echo two >&2"], log_file=log, timeout=10,
               on_line=seen.append)
    assert done.returncode == 0
    assert seen == ["one\n", "two\n"]
    text = log.read_text()
    assert text.startswith("$ sh -c 'echo one; echo two >&2'\n") and "two" in text


def test_failure_carries_tail(tmp_path: Path) -> None:
    with pytest.raises(CommandError) as err:
        run(["sh", "-c", "echo boom; exit 3"], log_file=tmp_path / "x.log", timeout=10)
    assert "exited with 3" in str(err.value) and "boom" in err.value.tail


def test_unchecked_failure_returns_code(tmp_path: Path) -> None:
    done = run(["sh", "-c", "exit 4"], log_file=tmp_path / "x.log", timeout=10, check=False)
    assert done.returncode == 4


def test_missing_command(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="no-such-tool: command not found"):
        run(["no-such-tool"], log_file=tmp_path / "x.log", timeout=10)


@pytest.fixture(params=["pidfd", "no-pidfd"])
def exit_wait(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways a command's exit is awaited: its pidfd, or Popen.wait where the kernel
    has no pidfd_open."""
    if request.param == "no-pidfd":
        def no_pidfd(pid: int) -> int:
            raise OSError(38, "Function not implemented")
        monkeypatch.setattr(os, "pidfd_open", no_pidfd)
    return str(request.param)


def test_an_exit_is_seen_whichever_way_it_is_awaited(tmp_path: Path, exit_wait: str) -> None:
    done = run(["sh", "-c", "sleep 0.3; exit 5"], log_file=tmp_path / "x.log", timeout=10,
               check=False)
    assert done.returncode == 5
    reasons = iter([None, "the watchdog says stop"])
    with pytest.raises(CommandTimeout, match="the watchdog says stop"):
        run(["sleep", "30"], log_file=tmp_path / "x.log", timeout=20,
            watchdog=lambda _: next(reasons))


def test_timeout_kills_the_whole_group(tmp_path: Path, exit_wait: str) -> None:
    pidfile = tmp_path / "child.pid"
    start = time.monotonic()
    with pytest.raises(CommandTimeout, match="timed out after 1s"):
        run(["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"],
            log_file=tmp_path / "x.log", timeout=1)
    assert time.monotonic() - start < 10
    child = int(pidfile.read_text())
    time.sleep(0.2)
    assert not Path(f"/proc/{child}").exists() or _is_zombie(child)


def test_non_utf8_output(tmp_path: Path) -> None:
    done = run(["printf", "a\\377b\\n"], log_file=tmp_path / "x.log", timeout=10)
    assert done.tail == "a\\xffb\n"


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_environment_is_extended(tmp_path: Path) -> None:
    done = run(["sh", "-c", "echo $HARNESS_X $HOME"], log_file=tmp_path / "x.log", timeout=10,
               env={"HARNESS_X": "set"})
    assert done.tail == f"set {os.environ['HOME']}\n"
