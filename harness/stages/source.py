# SPDX-License-Identifier: GPL-2.0
"""Stage 1, source: Debian's linux-source unpacked once into the cache, or the user's tree."""

from __future__ import annotations

import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from harness import progress
from harness.commands import retrying, run
from harness.data.settings import DebianRelease, DebianSuite, Settings, Timeouts
from harness.errors import CommandError, InfraError, UserError
from harness.paths import cache_lock, path_key
from harness.stages import gittree

log = logging.getLogger("harness")

# Files every x86 kernel tree has; their absence means the path is not a kernel tree.
TREE_MARKERS = ("Makefile", "Kconfig", "arch/x86/Kconfig", "scripts/kconfig/merge_config.sh")
# How long the last download and unpack took, next to the unpacked trees.
HISTORY = "unpack.history.json"
# One line of apt-cache madison: "package | version | mirror suite/main arch Packages".
_MADISON = re.compile(r"^\s*(\S+)\s*\|\s*(\S+)\s*\|")


@dataclass(frozen=True)
class SourceRequest:
    kernel_src: Path | None
    debian: str
    cache: Path
    logs: Path


@dataclass(frozen=True)
class Offer:
    """A version of a linux-source package that apt offers in one suite."""

    package: str
    version: str
    suite: str


@dataclass(frozen=True)
class SourceResult:
    tree: Path
    key: str
    origin: str
    # True for trees the harness unpacked itself: they are git repositories it may reset.
    owned: bool


def prepare_source(req: SourceRequest, settings: Settings) -> SourceResult:
    """The kernel tree to test: the user's, checked and left untouched, or Debian's, cached:
    a release pinned in settings, or any version of linux-source that apt offers."""
    if req.kernel_src is not None:
        return user_tree(req.kernel_src)
    if req.debian in settings.releases:
        return debian_tree(settings.releases[req.debian], settings, req.cache, req.logs)
    return debian_version(req.debian, settings, req.cache, req.logs)


def user_tree(path: Path) -> SourceResult:
    """Check that path is a readable x86 kernel tree without in-tree build output."""
    if not path.exists():
        raise UserError(f"kernel tree {path} does not exist")
    if not path.is_dir():
        raise UserError(f"kernel tree {path} is not a directory")
    if not os.access(path, os.R_OK | os.X_OK):
        raise UserError(f"kernel tree {path} is not readable")
    missing = [m for m in TREE_MARKERS if not (path / m).is_file()]
    if missing:
        raise UserError(f"{path} is not an x86 kernel tree: missing {', '.join(missing)}")
    if (path / ".config").exists():
        # Kbuild refuses O= builds from a tree that has been configured in place.
        raise UserError(f"{path} has an in-tree .config; run 'make mrproper' there, or copy it")
    return SourceResult(path.resolve(), path_key(path), f"tree {path.resolve()}", owned=False)


def debian_tree(rel: DebianRelease, settings: Settings, cache: Path, logs: Path) -> SourceResult:
    """Unpack the newest linux-source package of rel into the cache, once per version."""
    # Two first runs at once would share one apt state and unpack into one directory.
    with cache_lock(cache / "locks" / f"apt-{rel.suite}.lock", f"fetching from {rel.suite}"):
        return _debian_tree(rel, settings, cache, logs)


def _debian_tree(rel: DebianRelease, settings: Settings, cache: Path, logs: Path) -> SourceResult:
    apt = _apt_options(DebianSuite(rel.suite, rel.mirror), settings.keyring,
                       cache / "apt" / rel.suite)
    try:
        version = _candidate(rel, apt, logs / "source.log", settings.timeouts)
    except CommandError as exc:
        cached = _newest_cached(cache / "src", rel.package)
        if cached is None:
            raise InfraError(f"cannot reach the Debian archive for {rel.package}: {exc}") from exc
        log.warning("Debian archive unreachable; using cached %s", cached.parent.name)
        return _result(cached, rel.package, cached.parent.name.split("_", 1)[1], rel.suite)
    return _fetch(rel, version, apt, settings, cache, logs)


def debian_version(version: str, settings: Settings, cache: Path, logs: Path) -> SourceResult:
    """linux-source at exactly this Debian version: unpacked earlier, or from the first suite
    of settings whose apt offers it. Offered nowhere: the user's error, listing the offers."""
    cached = _cached_version(cache / "src", settings.package_prefix, version)
    if cached is not None:
        return cached
    offers: list[Offer] = []
    unreachable: list[str] = []
    for suite in settings.debian_suites.values():
        try:
            found = suite_offers(suite, settings, cache, logs)
        except CommandError as exc:
            unreachable.append(f"{suite.name}: {str(exc).splitlines()[0]}")
            continue
        match = next((o for o in found if o.version == version), None)
        if match is not None:
            return _fetch_offer(match, suite, settings, cache, logs)
        offers += found
    if unreachable:
        # It may be in a suite apt could not read: not the user's error, as far as we know.
        raise InfraError(f"cannot reach the Debian archive to look for {version!r}: "
                         + "; ".join(unreachable))
    raise UserError(_not_offered(version, settings, offers))


def suite_offers(suite: DebianSuite, settings: Settings, cache: Path,
                 logs: Path) -> tuple[Offer, ...]:
    """Every version of linux-source that apt offers in one suite, its lists updated first."""
    # The suite's apt state is shared with other runs, and with releases pinned to it.
    with cache_lock(cache / "locks" / f"apt-{suite.name}.lock", f"fetching from {suite.name}"):
        apt = _apt_options(suite, settings.keyring, cache / "apt" / suite.name)
        return _offers(suite.name, apt, settings.package_prefix, logs / "source.log",
                       settings.timeouts)


def _fetch_offer(offer: Offer, suite: DebianSuite, settings: Settings, cache: Path,
                 logs: Path) -> SourceResult:
    with cache_lock(cache / "locks" / f"apt-{suite.name}.lock", f"fetching from {suite.name}"):
        apt = _apt_options(suite, settings.keyring, cache / "apt" / suite.name)
        rel = DebianRelease(offer.version, offer.package, suite.mirror, suite.name)
        return _fetch(rel, offer.version, apt, settings, cache, logs)


def _not_offered(name: str, settings: Settings, offers: list[Offer]) -> str:
    """The message for a --debian that is neither a pin nor an offered version."""
    by_package: dict[str, dict[str, list[str]]] = {}
    for o in offers:
        by_package.setdefault(o.package, {}).setdefault(o.suite, []).append(o.version)
    listing = "\n".join(
        f"  {package}: " + "; ".join(f"{', '.join(versions)} ({suite})"
                                     for suite, versions in suites.items())
        for package, suites in sorted(by_package.items()))
    return (f"unknown Debian kernel {name!r}: neither a release of settings.toml "
            f"({', '.join(sorted(settings.releases))}) nor a version of "
            f"{settings.package_prefix}* that apt offers in {', '.join(settings.debian_suites)}; "
            f"apt offers:\n{listing or '  nothing'}")


def _fetch(rel: DebianRelease, version: str, apt: list[str], settings: Settings, cache: Path,
           logs: Path) -> SourceResult:
    """The unpacked tree of rel's package at version; downloaded and unpacked the first time."""
    dest = cache / "src" / f"{rel.package}_{version}"
    if not (dest / "ready").is_file():
        # Minutes, once per version: a progress view against the last unpack of any.
        history = cache / "src" / HISTORY
        with progress.Meter("unpack", progress.load_history(history, "unpack")) as meter:
            _unpack(rel, version, apt, dest, logs / "source.log", settings)
        progress.save_history(history, "unpack", progress.History(0, meter.elapsed))
    return _result(_tree_in(dest), rel.package, version, rel.suite)


def _result(tree: Path, package: str, version: str, suite: str) -> SourceResult:
    key = f"{package}_{version}"
    return SourceResult(tree, key, f"Debian {package} {version} ({suite})", owned=True)


def _cached_version(src_cache: Path, prefix: str, version: str) -> SourceResult | None:
    """A tree of exactly this version, unpacked earlier: a version never changes, so apt
    need not be asked again (and the run works offline)."""
    if not src_cache.is_dir():
        return None
    for dest in sorted(src_cache.iterdir()):
        package, _, got = dest.name.partition("_")
        if package.startswith(prefix) and got == version and (dest / "ready").is_file():
            # "package version suite"; trees unpacked before the suite was kept have two words.
            words = (dest / "ready").read_text().split()
            return _result(_tree_in(dest), package, version,
                           words[2] if len(words) > 2 else "cached")
    return None


def _tree_in(dest: Path) -> Path:
    dirs = [d for d in dest.iterdir() if d.is_dir()]
    if len(dirs) != 1:
        raise InfraError(f"{dest}: expected one unpacked tree, found {len(dirs)}")
    return dirs[0]


def _newest_cached(src_cache: Path, package: str) -> Path | None:
    ready = sorted(src_cache.glob(f"{package}_*/ready"), key=lambda p: p.stat().st_mtime)
    return _tree_in(ready[-1].parent) if ready else None


def _apt_options(suite: DebianSuite, keyring: Path, apt_dir: Path) -> list[str]:
    """apt-get options for a private sources list and state: the system's apt stays untouched."""
    for sub in ("etc/sources.list.d", "etc/preferences.d", "lists/partial",
                "cache/archives/partial"):
        (apt_dir / sub).mkdir(parents=True, exist_ok=True)
    sources = apt_dir / "etc" / "sources.list"
    sources.write_text(f"deb [signed-by={keyring}] {suite.mirror} {suite.name} main\n")
    opts = {
        "Dir::Etc::SourceList": sources,
        "Dir::Etc::SourceParts": apt_dir / "etc" / "sources.list.d",
        "Dir::Etc::Preferences": apt_dir / "etc" / "preferences",
        "Dir::Etc::PreferencesParts": apt_dir / "etc" / "preferences.d",
        "Dir::State::Lists": apt_dir / "lists",
        "Dir::Cache": apt_dir / "cache",
    }
    return [arg for k, v in opts.items() for arg in ("-o", f"{k}={v}")]


@retrying("apt-get update")
def _candidate(rel: DebianRelease, apt: list[str], log_file: Path, timeouts: Timeouts) -> str:
    run(["apt-get", "-q", *apt, "update"], log_file=log_file, timeout=timeouts.apt)
    policy = run(["apt-cache", *apt, "policy", rel.package], log_file=log_file,
                 timeout=timeouts.apt_query)
    match = re.search(r"Candidate:\s*(\S+)", policy.tail)
    if not match or match.group(1) == "(none)":
        raise InfraError(f"{rel.package} is not available from {rel.mirror} {rel.suite}")
    return match.group(1)


@retrying("apt-get update")
def _offers(suite: str, apt: list[str], prefix: str, log_file: Path,
            timeouts: Timeouts) -> tuple[Offer, ...]:
    """Every version of every package named prefix* that apt offers in the suite."""
    run(["apt-get", "-q", *apt, "update"], log_file=log_file, timeout=timeouts.apt)
    names = log_file.with_name(f"apt-{suite}-packages.txt")
    run(["apt-cache", *apt, "pkgnames", prefix], log_file=log_file,
        timeout=timeouts.apt_query, stdout_file=names)
    packages = sorted(names.read_text().split())
    if not packages:
        return ()
    # Whole output to a file: the run's tail keeps only the last lines.
    listing = log_file.with_name(f"apt-{suite}-versions.txt")
    run(["apt-cache", *apt, "madison", *packages], log_file=log_file,
        timeout=timeouts.apt_query, stdout_file=listing)
    return tuple(Offer(m.group(1), m.group(2), suite) for line in listing.read_text().splitlines()
                 if (m := _MADISON.match(line)))


def _unpack(
    rel: DebianRelease, version: str, apt: list[str], dest: Path, log_file: Path, settings: Settings
) -> None:
    """Download the .deb, unpack its tarball, and make the tree a git repository at tag 'base'."""
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    staging = partial / ".deb"
    staging.mkdir(parents=True)
    log.info("downloading %s %s from %s", rel.package, version, rel.suite)
    retrying("apt-get download")(run)(
        ["apt-get", "-q", *apt, "download", f"{rel.package}={version}"],
        log_file=log_file, timeout=settings.timeouts.apt, cwd=staging)
    debs = list(staging.glob("*.deb"))
    if len(debs) != 1:
        raise InfraError(f"apt-get download left {len(debs)} .deb files in {staging}")
    run(["dpkg-deb", "-x", debs[0], staging / "root"], log_file=log_file,
        timeout=settings.timeouts.unpack)
    tarballs = list((staging / "root" / "usr" / "src").glob("linux-source-*.tar.*"))
    if len(tarballs) != 1:
        raise InfraError(f"{debs[0].name} does not hold one linux-source tarball")
    log.info("unpacking %s", tarballs[0].name)
    run(["tar", "-xf", tarballs[0], "-C", partial], log_file=log_file,
        timeout=settings.timeouts.unpack)
    shutil.rmtree(staging)
    gittree.import_base(_tree_in(partial), log_file, settings.timeouts.unpack)
    (partial / "ready").write_text(f"{rel.package} {version} {rel.suite}\n")
    shutil.rmtree(dest, ignore_errors=True)
    partial.rename(dest)
