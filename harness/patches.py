# SPDX-License-Identifier: GPL-2.0
"""Stage 2, patches: apply a series to a tree the harness owns; the user's tree is never written."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from harness import gittree
from harness.errors import CommandError, UserError
from harness.paths import path_key
from harness.run import run
from harness.source import SourceResult

log = logging.getLogger("harness")


@dataclass(frozen=True)
class PatchRequest:
    source: SourceResult
    series: Path | None
    cache: Path
    logs: Path
    timeout: float


@dataclass(frozen=True)
class PatchResult:
    tree: Path
    applied: tuple[str, ...]
    # Content hash of the patched tree, when the harness owns it; None for a user tree in place.
    tree_id: str | None


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


def subject(patch: Path) -> str:
    match = re.search(r"^Subject:\s*(.+)$", patch.read_text(errors="replace"), re.MULTILINE)
    return match.group(1).strip() if match else patch.name


def apply_series(req: PatchRequest) -> PatchResult:
    """Reset the owned tree (or a copy of the user's) to base and apply the series in order."""
    log_file = req.logs / "patches.log"
    patches = expand_series(req.series) if req.series else []
    if req.source.owned:
        tree = req.source.tree
        gittree.reset_to_base(tree, log_file)
    elif patches:
        tree = req.cache / "work" / path_key(req.source.tree)
        log.info("copying %s to %s to apply the series", req.source.tree, tree)
        gittree.sync_copy(req.source.tree, tree, log_file, req.timeout)
    else:
        return PatchResult(req.source.tree, (), None)
    for patch in patches:
        _apply(tree, patch, req.logs, log_file)
    return PatchResult(tree, tuple(subject(p) for p in patches), gittree.tree_id(tree, log_file))


def _apply(tree: Path, patch: Path, logs: Path, log_file: Path) -> None:
    log.info("applying %s", subject(patch))
    try:
        run([*gittree.GIT, "-C", str(tree), "apply", "--index", "--whitespace=nowarn",
             str(patch.resolve())], log_file=log_file, timeout=120)
    except CommandError as exc:
        rejects = _keep_rejects(tree, patch, logs, log_file)
        raise UserError(
            f"patch does not apply: {patch} ('{subject(patch)}')\n{exc.tail.strip()}"
            + (f"\nrejected hunks kept in {rejects}" if rejects else "")
        ) from exc


def _keep_rejects(tree: Path, patch: Path, logs: Path, log_file: Path) -> Path | None:
    """Apply again with --reject so the failing hunks are written out, and keep them."""
    run([*gittree.GIT, "-C", str(tree), "apply", "--reject", "--whitespace=nowarn",
         str(patch.resolve())], log_file=log_file, timeout=120, check=False)
    rejects = sorted(tree.rglob("*.rej"))
    if not rejects:
        return None
    dest = logs / "rejects"
    dest.mkdir(parents=True, exist_ok=True)
    for rej in rejects:
        (dest / str(rej.relative_to(tree)).replace("/", "__")).write_bytes(rej.read_bytes())
    gittree.reset_to_base(tree, log_file)
    return dest
