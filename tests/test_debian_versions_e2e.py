# SPDX-License-Identifier: GPL-2.0
"""--debian with a version string, against the real Debian archive through the harness's own
apt state: the release candidate in experimental (7.3~rc7-1~exp1 on 2026-12-04, or whatever
experimental offers of linux-source that day) resolves, downloads and unpacks; a version apt
does not offer exits 2 listing what it does offer. The first run downloads the package
(about 170 MB and 2 minutes); after that the unpacked tree is reused without asking apt."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.data.settings import load_settings
from harness.paths import cache_root
from harness.stages import source

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = load_settings()
# The release candidate this test was written against; any other experimental offers will do.
RC = "7.3~rc7-1~exp1"

pytestmark = pytest.mark.e2e


def harness(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=SETTINGS.timeouts.apt * 2)


@pytest.fixture(scope="module")
def experimental(tmp_path_factory: pytest.TempPathFactory) -> source.Offer:
    """The linux-source version experimental offers: RC if it still does."""
    offers = source.suite_offers(SETTINGS.debian_suites["experimental"], SETTINGS, cache_root(),
                                 tmp_path_factory.mktemp("apt-logs"))
    if not offers:
        pytest.skip("experimental offers no linux-source package today")
    return next((o for o in offers if o.version == RC), offers[0])


def test_an_experimental_version_resolves_and_unpacks(experimental: source.Offer) -> None:
    done = harness("source", "--debian", experimental.version)
    assert done.returncode == 0, done.stderr
    tree = Path(done.stdout.strip().splitlines()[-1])
    assert tree.parent.name == f"{experimental.package}_{experimental.version}"
    assert (tree.parent / "ready").read_text().split() == [experimental.package,
                                                           experimental.version, "experimental"]
    # The tree is the kernel the package name says: 7.3~rc7 is VERSION 7, PATCHLEVEL 3.
    makefile = (tree / "Makefile").read_text()
    major, minor = experimental.package.removeprefix(SETTINGS.package_prefix).split(".")
    assert re.search(rf"^VERSION = {major}$", makefile, re.M), makefile[:200]
    assert re.search(rf"^PATCHLEVEL = {minor}$", makefile, re.M), makefile[:200]


def test_a_version_apt_does_not_offer_exits_2_listing_the_offers(
        experimental: source.Offer) -> None:
    done = harness("source", "--debian", "7.3.999-1")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "unknown Debian kernel '7.3.999-1'" in done.stderr
    line = next(x for x in done.stderr.splitlines() if x.startswith(f"  {experimental.package}: "))
    assert experimental.version in line and "(experimental)" in line, line
    for release in SETTINGS.releases.values():
        assert f"  {release.package}: " in done.stderr, release.name
