# SPDX-License-Identifier: GPL-2.0
"""Stage 2, patches: apply a series to a tree the harness owns; the user's tree is never written.

A series is a quilt directory, a directory of *.patch, one patch or mbox file, a thread
mbox holding several revisions (one picked with b4), a git range of the user's tree, or a
message-id or lore URL (fetched with b4, see harness/stages/lore.py).
Everything is split into single patches first, then applied in order with git apply."""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from harness.commands import run
from harness.data.settings import Timeouts
from harness.errors import CommandError, UserError
from harness.paths import path_key, venv_tool
from harness.stages import gittree, lore
from harness.stages.source import SourceResult

log = logging.getLogger("harness")

_SUBJECT = re.compile(r"^Subject:\s*(.+(?:\n[ \t].+)*)", re.MULTILINE)
_CAUGHT_BY = re.compile(r"^Caught-by:\s*(\S+)", re.MULTILINE)
# A known-bad patch that shows only on another config variant, with its expectations.
_VARIANT = re.compile(r"^Variant:\s*(\S+)", re.MULTILINE)
_EXPECT = re.compile(r"^Expect:\s*(\S+)", re.MULTILINE)
_VERSION = re.compile(r"\[[^\]]*\bv(\d+)\b[^\]]*\]", re.IGNORECASE)
# The paths a diff names: git's header, its renames and copies, and the ---/+++ lines of
# any unified diff (a quilt patch has no git header). git apply strips one directory (-p1).
_DIFF_GIT = re.compile(r"^diff --git (\S+) (\S+)$", re.MULTILINE)
_RENAME = re.compile(r"^(?:rename|copy) (?:from|to) (.+)$", re.MULTILINE)
_UNIFIED = re.compile(r"^(?:---|\+\+\+) (\S+)", re.MULTILINE)


@dataclass(frozen=True)
class PatchRequest:
    source: SourceResult
    # A path, or a git range such as v7.3..robust-v4 when the source is a git repository.
    series: str | None
    cache: Path
    logs: Path
    timeouts: Timeouts
    # The revision of a thread mbox to pick (b4 am -v).
    version: int | None = None
    # Work on the harness's copy even without a series, so all revisions share one build.
    copy: bool = False
    # Apply only the first `upto` patches of the series (a bisection step).
    upto: int | None = None
    # A local mbox for b4 to find a message-id series in, instead of lore.
    mbox: Path | None = None


@dataclass(frozen=True)
class PatchResult:
    tree: Path
    applied: tuple[str, ...]
    # Content hash of the patched tree, when the harness owns it; None for a user tree in place.
    tree_id: str | None
    # The series' patch files, one per patch, in order (empty for the base).
    patches: tuple[Path, ...] = ()

    @property
    def patchset_hash(self) -> str | None:
        """KCIDB's patchset hash: sha256 over each patch's sha256 (hex, newline-terminated)."""
        if not self.patches:
            return None
        outer = hashlib.sha256()
        for patch in self.patches:
            outer.update(hashlib.sha256(patch.read_bytes()).hexdigest().encode() + b"\n")
        return outer.hexdigest()


def subject(patch: Path) -> str:
    match = _SUBJECT.search(patch.read_text(errors="replace"))
    return " ".join(match.group(1).split()) if match else patch.name


def caught_by(patch: Path) -> str | None:
    """The check a known-bad patch declares must catch it (its Caught-by: header)."""
    match = _CAUGHT_BY.search(patch.read_text(errors="replace"))
    return match.group(1) if match else None


def mutant_variant(patch: Path) -> tuple[str | None, str | None]:
    """The config variant and expectations a known-bad patch must be tested on (its
    Variant: and Expect: headers); None for the defaults."""
    text = patch.read_text(errors="replace")
    variant, expect = _VARIANT.search(text), _EXPECT.search(text)
    return (variant.group(1) if variant else None, expect.group(1) if expect else None)


def touched_files(patch: Path) -> tuple[str, ...]:
    """The tree's paths the patch changes, sorted: both sides of a rename or copy. Empty
    when it names none that git apply would find."""
    text = patch.read_text(errors="replace")
    found = {_strip(p) for m in _DIFF_GIT.finditer(text) for p in m.groups()}
    found |= {m.group(1).strip() for m in _RENAME.finditer(text)}
    found |= {_strip(m.group(1)) for m in _UNIFIED.finditer(text)}
    return tuple(sorted(p for p in found if p and p != "/dev/null"))


def _strip(path: str) -> str:
    """The path as git apply -p1 sees it: without its first directory (a/, b/)."""
    if path == "/dev/null":
        return path
    return path.split("/", 1)[1] if "/" in path else ""


def is_git_range(series: str, source: SourceResult) -> bool:
    return ".." in series and not Path(series).exists() and (source.tree / ".git").exists()


def expand_series(series: Path) -> list[Path]:
    """A quilt directory (its 'series' file), a directory of *.patch, or one patch or mbox file."""
    if not series.exists():
        raise UserError(f"series {series} does not exist")
    if series.is_file():
        return [series]
    listing = series / "series"
    if not listing.is_file():
        found = sorted(series.glob("*.patch"))
        if not found:
            raise UserError(f"{series} has neither a 'series' file nor *.patch files")
        return found
    names = [ln.split("#", 1)[0].split() for ln in listing.read_text().splitlines()]
    paths = [series / n[0] for n in names if n]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise UserError(f"{listing} lists patches that are not there: {', '.join(missing)}")
    return paths


def _is_mbox(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(5) == b"From "


def _revisions(mbox: Path) -> set[int]:
    """The [PATCH vN] revisions a thread mbox holds; an unnumbered series counts as v1."""
    subjects = [" ".join(m.group(1).split())
                for m in _SUBJECT.finditer(mbox.read_text(errors="replace"))]
    return {int(m.group(1)) if (m := _VERSION.search(s)) else 1
            for s in subjects if "PATCH" in s.upper()}


def _pick_revision(mbox: Path, version: int | None, out: Path, log_file: Path,
                   timeout: float) -> Path:
    """b4 am picks one revision of a thread and orders its patches; returns its mbox."""
    found = _revisions(mbox)
    if version is None and len(found) <= 1:
        return mbox
    if version is None:
        raise UserError(f"{mbox} holds revisions {sorted(found)}; pick one with -v N")
    if version not in found:
        raise UserError(f"{mbox} has no v{version}; it holds revisions {sorted(found)}")
    out.mkdir(parents=True, exist_ok=True)
    try:
        run([venv_tool("b4"), "--offline-mode", "am", "-C", "-m", str(mbox),
             "-v", str(version), "-o", str(out), "-n", "picked", "--no-cover"],
            log_file=log_file, timeout=timeout)
    except CommandError as exc:
        raise UserError(f"b4 could not pick v{version} from {mbox}: {exc.tail.strip()}") from exc
    picked = sorted(out.glob("picked*.mbx"))
    if not picked:
        raise UserError(f"b4 found no complete v{version} series in {mbox}")
    return picked[0]


def _split(mbox: Path, out: Path, log_file: Path, timeout: float) -> list[Path]:
    """One file per message, in order (git mailsplit); a garbage mbox is the user's error."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    try:
        run([*gittree.GIT, "mailsplit", f"-o{out}", str(mbox)], log_file=log_file,
            timeout=timeout)
    except CommandError as exc:
        raise UserError(f"{mbox} is not a readable mbox: {exc.tail.strip()}") from exc
    parts = sorted(out.iterdir())
    patches = [p for p in parts if "\n--- " in p.read_text(errors="replace")]
    if not patches:
        raise UserError(f"{mbox} holds no patches ({len(parts)} messages, none with a diff)")
    return patches


def single_patches(req: PatchRequest, tree: Path, log_file: Path) -> list[Path]:
    """Every patch of the series, one per file, in the order to apply them."""
    if req.series is None:
        return []
    work = req.logs / "series"
    msgid = lore.message_id(req.series)
    if msgid:
        # b4 has picked the revision already: the mbox holds that one alone.
        fetched = lore.fetch(lore.FetchRequest(msgid, req.logs.parent, req.version, req.mbox),
                             log_file, req.timeouts.patch_fetch)
        return _split(fetched, work / "split", log_file, req.timeouts.patch)
    if is_git_range(req.series, req.source):
        mbox = req.logs / "git-range.mbox"
        shutil.rmtree(work, ignore_errors=True)
        try:
            run([*gittree.GIT, "-C", str(req.source.tree), "format-patch", "--stdout",
                 req.series], log_file=log_file, timeout=req.timeouts.patch_fetch,
                stdout_file=mbox)
        except CommandError as exc:
            raise UserError(f"git range {req.series} in {req.source.tree}: {exc.tail}") from exc
        return _split(mbox, work / "split", log_file, req.timeouts.patch)
    files = expand_series(Path(req.series))
    if len(files) == 1 and _is_mbox(files[0]):
        picked = _pick_revision(files[0], req.version, work / "b4", log_file,
                                req.timeouts.patch_fetch)
        return _split(picked, work / "split", log_file, req.timeouts.patch)
    if req.version is not None:
        raise UserError(f"-v {req.version} picks a revision of a thread mbox; "
                        f"{req.series} is not one")
    return files


def apply_series(req: PatchRequest) -> PatchResult:
    """Reset the owned tree (or a copy of the user's) to base and apply the series in order."""
    log_file = req.logs / "patches.log"
    if req.source.owned:
        tree = req.source.tree
        gittree.reset_to_base(tree, log_file)
    elif req.series or req.copy:
        tree = req.cache / "work" / path_key(req.source.tree)
        log.info("copying %s to %s to apply the series", req.source.tree, tree)
        gittree.sync_copy(req.source.tree, tree, log_file, req.timeouts.tree_copy, req.cache)
    else:
        return PatchResult(req.source.tree, (), None)
    patches = single_patches(req, tree, log_file)[:req.upto]
    for patch in patches:
        _apply(tree, patch, req.logs, log_file, req.timeouts.patch)
    return PatchResult(tree, tuple(subject(p) for p in patches), gittree.tree_id(tree, log_file),
                       tuple(patches))


def _apply(tree: Path, patch: Path, logs: Path, log_file: Path, timeout: float) -> None:
    log.info("applying %s", subject(patch))
    try:
        run([*gittree.GIT, "-C", str(tree), "apply", "--index", "--whitespace=nowarn",
             str(patch.resolve())], log_file=log_file, timeout=timeout)
    except CommandError as exc:
        rejects = _keep_rejects(tree, patch, logs, log_file, timeout)
        raise UserError(
            f"patch does not apply: {patch} ('{subject(patch)}')\n{exc.tail.strip()}"
            + (f"\nrejected hunks kept in {rejects}" if rejects else "")
        ) from exc


def _keep_rejects(tree: Path, patch: Path, logs: Path, log_file: Path,
                  timeout: float) -> Path | None:
    """Apply again with --reject so the failing hunks are written out, and keep them."""
    run([*gittree.GIT, "-C", str(tree), "apply", "--reject", "--whitespace=nowarn",
         str(patch.resolve())], log_file=log_file, timeout=timeout, check=False)
    rejects = sorted(tree.rglob("*.rej"))
    if not rejects:
        return None
    dest = logs / "rejects"
    dest.mkdir(parents=True, exist_ok=True)
    for rej in rejects:
        (dest / str(rej.relative_to(tree)).replace("/", "__")).write_bytes(rej.read_bytes())
    gittree.reset_to_base(tree, log_file)
    return dest
