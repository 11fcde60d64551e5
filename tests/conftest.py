# SPDX-License-Identifier: GPL-2.0
"""Every test runs with HOME and caches in tmp_path, except e2e tests, which need the real cache."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Lines a test wants shown after the run, such as the e2e config times.
SUMMARY = pytest.StashKey[list[str]]()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in terminalreporter.config.stash.get(SUMMARY, []):
        terminalreporter.write_line(line)


@pytest.fixture(autouse=True)
def isolated_home(request: pytest.FixtureRequest, tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("e2e"):
        return
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("FUTEX_HARNESS_CACHE", str(home / ".cache" / "futex-harness"))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


def sh(argv: list[str | os.PathLike[str]], cwd: Path | None = None) -> str:
    return subprocess.run([str(a) for a in argv], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout


@pytest.fixture
def fake_vng(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """tests/fakebin's vng and QEMU first on PATH; returns the file vng logs its argv to."""
    from plans import FAKEBIN  # not at the top: plans imports from this module
    monkeypatch.setenv("PATH", f"{FAKEBIN}:/usr/bin:/bin")
    argv_log = tmp_path / "vng-argv"
    monkeypatch.setenv("FAKE_VNG_ARGV", str(argv_log))
    return argv_log
