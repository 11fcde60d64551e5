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
from harness.data.settings import DebianRelease, Settings, Timeouts
from harness.errors import CommandError, InfraError, UserError
from harness.paths import cache_lock, path_key
from harness.stages import gittree

log = logging.getLogger("harness")

# Files every x86 kernel tree has; their absence means the path is not a kernel tree.
TREE_MARKERS = ("Makefile", "Kconfig", "arch/x86/Kconfig", "scripts/kconfig/merge_config.sh")
# How long the last download and unpack took, next to the unpacked trees.
HISTORY = "unpack.history.json"


@dataclass(frozen=True)
class SourceRequest:
    kernel_src: Path | None
    debian: str
    cache: Path
    logs: Path


@dataclass(frozen=True)
class SourceResult:
    tree: Path
    key: str
    origin: str
    # True for trees the harness unpacked itself: they are git repositories it may reset.
    owned: bool


def prepare_source(req: SourceRequest, settings: Settings) -> SourceResult:
    """The kernel tree to test: the user's, checked and left untouched, or Debian's, cached."""
    if req.kernel_src is not None:
        return user_tree(req.kernel_src)
    return debian_tree(settings.release(req.debian), settings, req.cache, req.logs)


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
    apt = _apt_options(rel, settings, cache / "apt" / rel.suite)
    try:
        version = _candidate(rel, apt, logs / "source.log", settings.timeouts)
    except CommandError as exc:
        cached = _newest_cached(cache / "src", rel.package)
        if cached is None:
            raise InfraError(f"cannot reach the Debian archive for {rel.package}: {exc}") from exc
        log.warning("Debian archive unreachable; using cached %s", cached.parent.name)
        return _result(cached, rel, cached.parent.name.split("_", 1)[1])
    key = f"{rel.package}_{version}"
    dest = cache / "src" / key
    if not (dest / "ready").is_file():
        # Minutes, once per version: a progress view against the last unpack of any.
        history = cache / "src" / HISTORY
        with progress.Meter("unpack", progress.load_history(history, "unpack")) as meter:
            _unpack(rel, version, apt, dest, logs / "source.log", settings)
        progress.save_history(history, "unpack", progress.History(0, meter.elapsed))
    return _result(_tree_in(dest), rel, version)


def _result(tree: Path, rel: DebianRelease, version: str) -> SourceResult:
    key = f"{rel.package}_{version}"
    return SourceResult(tree, key, f"Debian {rel.package} {version} ({rel.suite})", owned=True)


def _tree_in(dest: Path) -> Path:
    dirs = [d for d in dest.iterdir() if d.is_dir()]
    if len(dirs) != 1:
        raise InfraError(f"{dest}: expected one unpacked tree, found {len(dirs)}")
    return dirs[0]


def _newest_cached(src_cache: Path, package: str) -> Path | None:
    ready = sorted(src_cache.glob(f"{package}_*/ready"), key=lambda p: p.stat().st_mtime)
    return _tree_in(ready[-1].parent) if ready else None


def _apt_options(rel: DebianRelease, settings: Settings, apt_dir: Path) -> list[str]:
    """apt-get options for a private sources list and state: the system's apt stays untouched."""
    for sub in ("etc/sources.list.d", "etc/preferences.d", "lists/partial",
                "cache/archives/partial"):
        (apt_dir / sub).mkdir(parents=True, exist_ok=True)
    sources = apt_dir / "etc" / "sources.list"
    sources.write_text(f"deb [signed-by={settings.keyring}] {rel.mirror} {rel.suite} main\n")
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
    (partial / "ready").write_text(f"{rel.package} {version}\n")
    shutil.rmtree(dest, ignore_errors=True)
    partial.rename(dest)
