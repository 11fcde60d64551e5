# SPDX-License-Identifier: GPL-2.0
"""Trees the harness owns are git repositories with a tag 'base', so that resetting them and
applying patches touches only the files that change, and incremental builds stay correct."""

from __future__ import annotations

from pathlib import Path

from harness.commands import run

BASE = "base"
# Fixed identity and no background gc: these repositories are the harness's, not the user's.
GIT = ["git", "-c", "user.name=futex-harness", "-c", "user.email=futex-harness@localhost",
       "-c", "gc.auto=0", "-c", "core.excludesFile=/dev/null"]


def git(tree: Path, *args: str, log_file: Path, timeout: float = 600) -> str:
    return run([*GIT, "-C", str(tree), *args], log_file=log_file, timeout=timeout).tail


def import_base(tree: Path, log_file: Path, timeout: float) -> None:
    """Commit everything in tree, ignored files included, as tag 'base'."""
    if not (tree / ".git").exists():
        git(tree, "init", "-q", log_file=log_file)
    git(tree, "add", "-A", "-f", log_file=log_file, timeout=timeout)
    git(tree, "commit", "-q", "--allow-empty", "-m", "base", log_file=log_file, timeout=timeout)
    git(tree, "tag", "-f", BASE, log_file=log_file)


def reset_to_base(tree: Path, log_file: Path) -> None:
    """Undo any earlier patches: files equal to base keep their mtimes."""
    git(tree, "reset", "-q", "--hard", BASE, log_file=log_file)
    git(tree, "clean", "-q", "-f", "-d", "-x", log_file=log_file)


def sync_copy(src: Path, work: Path, log_file: Path, timeout: float,
              cache: Path | None = None) -> None:
    """Mirror the user's tree into work (their .git excluded, and the harness's cache when it
    lies inside the tree) and record it as base."""
    work.mkdir(parents=True, exist_ok=True)
    if (work / ".git").exists():
        reset_to_base(work, log_file)
    run(["rsync", "-a", "--delete", "--exclude=/.git", *_cache_exclude(src, cache), f"{src}/",
         f"{work}/"], log_file=log_file, timeout=timeout)
    import_base(work, log_file, timeout)


def _cache_exclude(src: Path, cache: Path | None) -> list[str]:
    # GitLab CI caches only paths inside the checkout, so the cache (and work, in it) can
    # sit in the very tree being copied: copying it would copy the copy.
    if cache is None or not cache.resolve().is_relative_to(src.resolve()):
        return []
    inside = cache.resolve().relative_to(src.resolve())
    return [f"--exclude=/{inside}"] if inside.parts else []


def tree_id(tree: Path, log_file: Path) -> str:
    """A hash of the tree's content, patches included: its index, which reset_to_base (or
    import_base) and git apply --index keep equal to the files. No git add -A: its walk of
    every file took 0.3 s of each run, to find nothing."""
    return git(tree, "write-tree", log_file=log_file).strip().splitlines()[-1]


def user_identity(log_file: Path, cwd: Path | None = None) -> str | None:
    """"Name <email>" from the user's own git config (not the harness's), or None if unset."""
    # Plain git: GIT above would answer with the harness's fixed identity.
    values = []
    for key in ("user.name", "user.email"):
        done = run(["git", "config", "--get", key], log_file=log_file, timeout=30, cwd=cwd,
                   check=False)
        lines = done.tail.strip().splitlines()
        if done.returncode != 0 or not lines:
            return None
        values.append(lines[-1].strip())
    return f"{values[0]} <{values[1]}>"
