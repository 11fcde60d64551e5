# SPDX-License-Identifier: GPL-2.0
"""What changed between two revisions of a series: git range-diff on the two patch lists.

Each series is committed on top of tag 'base' of the harness's own tree, but into a
temporary index and object directory (the tree's objects are only read, as alternates), so
the tree, its index, HEAD and refs stay exactly as they were."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from harness.commands import run
from harness.errors import CommandError, HarnessError, RunTimeout
from harness.outputs.record import Changes, PatchChange, Revision
from harness.stages import gittree
from harness.stages.patches import subject

# "1:  abc1234 ! 1:  def5678 subject"; "-" and "-------" stand for the missing side.
_PAIR = re.compile(r"^\s*(\d+|-):\s+(?:[0-9a-f]+|-+)\s+([=!<>])\s+(\d+|-):\s+"
                   r"(?:[0-9a-f]+|-+)\s")
# The "[PATCH v2 1/3]" prefix differs between revisions; the commit subject leaves it out.
_PREFIX = re.compile(r"^(\[[^\]]*\]\s*)+")


def bare_subject(text: str) -> str:
    """A patch subject without its [PATCH ...] prefix."""
    return _PREFIX.sub("", text).strip() or text


def numbered(patches: Sequence[Path]) -> list[str]:
    """Each patch as "N/M subject": its place in the series, then its bare subject."""
    return [f"{i}/{len(patches)} {bare_subject(subject(p))}" for i, p in enumerate(patches, 1)]


def parse(text: str, old: Sequence[str], new: Sequence[str]) -> tuple[PatchChange, ...]:
    """The pair lines of git range-diff output, with each side named from old and new."""
    out = []
    for line in text.splitlines():
        m = _PAIR.match(line)
        if m:
            left, kind, right = m.group(1), m.group(2), m.group(3)
            out.append(PatchChange(kind, old[int(left) - 1] if left != "-" else None,
                                   new[int(right) - 1] if right != "-" else None))
    return tuple(out)


def range_diff(tree: Path, old: Sequence[Path], new: Sequence[Path], out: Path,
               log_file: Path, timeout: float) -> tuple[PatchChange, ...]:
    """git range-diff of two patch lists, each applied on tag 'base' of tree (a git repo);
    its whole output, the diff of each changed patch's diff included, is kept in out."""
    with tempfile.TemporaryDirectory(prefix="futex-harness-rangediff-") as tmp:
        scratch = Path(tmp)
        (scratch / "objects").mkdir()
        env = {"GIT_INDEX_FILE": str(scratch / "index"),
               "GIT_OBJECT_DIRECTORY": str(scratch / "objects"),
               "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(_objects(tree, log_file, timeout))}
        tips = [_commit_series(tree, series, env, log_file, timeout) for series in (old, new)]
        out.parent.mkdir(parents=True, exist_ok=True)
        run([*gittree.GIT, "-C", str(tree), "range-diff", "--no-color",
             f"{gittree.BASE}..{tips[0]}", f"{gittree.BASE}..{tips[1]}"],
            log_file=log_file, timeout=timeout, env=env, stdout_file=out)
        return parse(out.read_text(errors="replace"), numbered(old), numbered(new))


def _objects(tree: Path, log_file: Path, timeout: float) -> Path:
    """The tree's object directory (its .git may be a file, in a worktree)."""
    got = run([*gittree.GIT, "-C", str(tree), "rev-parse", "--git-path", "objects"],
              log_file=log_file, timeout=timeout).tail.strip().splitlines()[-1]
    return (tree / got).resolve()


def _commit_series(tree: Path, patches: Sequence[Path], env: dict[str, str], log_file: Path,
                   timeout: float) -> str:
    """Commit each patch on base, in the temporary index; returns the last commit."""
    git = [*gittree.GIT, "-C", str(tree)]

    def out(*args: str) -> str:
        done = run([*git, *args], log_file=log_file, timeout=timeout, env=env)
        return done.tail.strip().splitlines()[-1]

    run([*git, "read-tree", gittree.BASE], log_file=log_file, timeout=timeout, env=env)
    tip = out("rev-parse", f"{gittree.BASE}^{{commit}}")
    for patch in patches:
        try:
            run([*git, "apply", "--cached", "--whitespace=nowarn", str(patch.resolve())],
                log_file=log_file, timeout=timeout, env=env)
        except CommandError as exc:
            raise CommandError(f"'{subject(patch)}' does not apply on base", exc.tail) from exc
        tip = out("commit-tree", out("write-tree"), "-p", tip, "-m",
                  bare_subject(subject(patch)))
    return tip


def previous(revisions: Sequence[Revision], rev: Revision) -> Revision | None:
    """The last revision before rev with a series, of the same kernel and config variant."""
    found = None
    for r in revisions:
        if r is rev:
            break
        if r.series and r.kernel == rev.kernel and r.variant == rev.variant:
            found = r
    return found


def against_previous(revisions: Sequence[Revision], rev: Revision,
                     patch_files: dict[str, tuple[Path, ...]], tree: Path, logs: Path,
                     timeout: float) -> Changes | None:
    """rev's series compared with the previous one's, the range-diff kept in logs; why
    not, when they cannot be compared."""
    prev = previous(revisions, rev)
    if prev is None or not rev.series:
        return None
    if prev.label not in patch_files:
        return Changes(prev.label, error=f"the series of {prev.label} did not apply")
    try:
        return Changes(prev.label, range_diff(
            tree, patch_files[prev.label], patch_files[rev.label], logs / "range-diff.txt",
            logs / "range-diff.log", timeout))
    except RunTimeout:
        raise
    except (HarnessError, OSError) as exc:
        # A comparison is information, never a reason to stop testing the revision.
        return Changes(prev.label, error=str(exc).splitlines()[0])
