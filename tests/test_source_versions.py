# SPDX-License-Identifier: GPL-2.0
"""--debian as a release pinned in settings.toml or as any version of linux-source that apt
offers in the settings' suites, against a fake apt (tests/fakeapt) whose downloads are real
.deb files of the fake kernel tree: the whole source stage runs, dpkg-deb, tar and git
included."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from harness import cli
from harness.data.settings import load_settings
from harness.errors import InfraError, UserError
from harness.paths import cache_root
from harness.stages import source

FAKEAPT = Path(__file__).resolve().parent / "fakeapt"
# What apt offered on 2026-12-04, as the fake serves it (newest first, as madison lists).
ARCHIVE = {
    "trixie-backports": {"linux-source-7.3": ["7.3.4-1~bpo13+1"]},
    "sid": {"linux-source-7.2": ["7.2.13-1"]},
    "experimental": {"linux-source-7.3": ["7.3~rc7-1~exp1"]},
    "bookworm-security": {"linux-source-6.12": ["6.12.118-1~deb12u1", "6.12.117-1~deb12u1"],
                          "linux-source-6.1": ["6.1.158-1"]},
}


@pytest.fixture
def apt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fake apt first on PATH; returns its call log."""
    archive = tmp_path / "archive.json"
    archive.write_text(json.dumps(ARCHIVE))
    calls = tmp_path / "apt-calls.log"
    calls.touch()
    monkeypatch.setenv("PATH", f"{FAKEAPT}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_APT_ARCHIVE", str(archive))
    monkeypatch.setenv("FAKE_APT_LOG", str(calls))
    # An unreachable mirror is retried with backoff; the tests need not wait for it.
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    return calls


def fetch(tmp_path: Path, debian: str) -> source.SourceResult:
    return source.prepare_source(source.SourceRequest(None, debian, tmp_path / "cache",
                                                      tmp_path / "logs"), load_settings())


def updated(calls: Path) -> list[str]:
    return [line.split()[1] for line in calls.read_text().splitlines() if line.endswith(" update")]


def test_a_version_in_experimental_resolves_downloads_and_unpacks(tmp_path: Path,
                                                                  apt: Path) -> None:
    src = fetch(tmp_path, "7.3~rc7-1~exp1")
    assert src.key == "linux-source-7.3_7.3~rc7-1~exp1" and src.owned
    assert src.origin == "Debian linux-source-7.3 7.3~rc7-1~exp1 (experimental)"
    assert src.tree == tmp_path / "cache/src/linux-source-7.3_7.3~rc7-1~exp1/linux-source-7.3"
    assert (src.tree / "arch/x86/Kconfig").is_file() and (src.tree / ".git").is_dir()
    # Asked in the settings' order, until a suite offers it.
    assert updated(apt) == ["trixie-backports", "sid", "experimental"]
    assert "apt-get experimental download linux-source-7.3=7.3~rc7-1~exp1" in apt.read_text()


def test_an_unpacked_version_needs_no_apt(tmp_path: Path, apt: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    first = fetch(tmp_path, "7.3~rc7-1~exp1")
    apt.write_text("")
    monkeypatch.setenv("FAKE_APT_OFFLINE", ",".join(ARCHIVE))
    assert fetch(tmp_path, "7.3~rc7-1~exp1") == first
    assert apt.read_text() == "", "apt was asked again"


def test_an_older_version_of_a_pinned_package(tmp_path: Path, apt: Path) -> None:
    """Not the candidate apt would pick for the pin (6.12.118), but exactly the one asked."""
    src = fetch(tmp_path, "6.12.117-1~deb12u1")
    assert src.origin == "Debian linux-source-6.12 6.12.117-1~deb12u1 (bookworm-security)"


def test_a_pinned_release_takes_its_suites_candidate(tmp_path: Path, apt: Path) -> None:
    """7.3 stays trixie-backports' 7.3.4, though experimental offers linux-source-7.3 too."""
    src = fetch(tmp_path, "7.3")
    assert src.origin == "Debian linux-source-7.3 7.3.4-1~bpo13+1 (trixie-backports)"
    assert updated(apt) == ["trixie-backports"]


@pytest.mark.parametrize("asked", ["7.3.99-1", "9.9", "linux-source-7.3"])
def test_what_apt_does_not_offer_is_the_users_error_listing_the_offers(
        tmp_path: Path, apt: Path, asked: str) -> None:
    with pytest.raises(UserError) as err:
        fetch(tmp_path, asked)
    text = str(err.value)
    assert text.startswith(f"unknown Debian kernel '{asked}': neither a release of "
                           "settings.toml (6.12, 7.2, 7.3) nor a version of linux-source-*")
    assert "  linux-source-7.3: 7.3.4-1~bpo13+1 (trixie-backports); 7.3~rc7-1~exp1 " \
           "(experimental)" in text
    assert "  linux-source-6.12: 6.12.118-1~deb12u1, 6.12.117-1~deb12u1 " \
           "(bookworm-security)\n" in text
    assert "  linux-source-7.2: 7.2.13-1 (sid)" in text
    assert updated(apt) == list(ARCHIVE)
    assert not (tmp_path / "cache" / "src").exists() or \
        not any((tmp_path / "cache" / "src").iterdir())


def test_the_cli_exits_2_naming_the_cause(apt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["source", "--debian", "7.3.99-1"]) == 2
    err = capsys.readouterr().err
    assert "error: unknown Debian kernel '7.3.99-1'" in err
    assert "7.3~rc7-1~exp1 (experimental)" in err


def test_the_cli_prints_the_tree_of_an_offered_version(
        apt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["source", "--debian", "7.3~rc7-1~exp1"]) == 0
    tree = capsys.readouterr().out.strip()
    assert tree == str(cache_root() / "src/linux-source-7.3_7.3~rc7-1~exp1/linux-source-7.3")


def test_an_unreachable_suite_is_not_blamed_on_the_user(
        tmp_path: Path, apt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The version may be in the suite apt could not read: an infrastructure error naming it,
    never 'unknown kernel'."""
    monkeypatch.setenv("FAKE_APT_OFFLINE", "experimental")
    with pytest.raises(InfraError, match=re.escape("cannot reach the Debian archive to look "
                                                   "for '7.3~rc7-1~exp1': experimental: ")):
        fetch(tmp_path, "7.3~rc7-1~exp1")
    assert fetch(tmp_path, "7.2.13-1").origin.endswith("(sid)"), "a reachable suite still serves"
