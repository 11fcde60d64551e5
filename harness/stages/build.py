# SPDX-License-Identifier: GPL-2.0
"""Stage 4, build: bzImage and the vDSO images, out of tree, with progress and first errors."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from harness import progress
from harness.commands import run
from harness.errors import CommandError, CommandTimeout, UserError
from harness.stages.kconfig import arch_args

log = logging.getLogger("harness")

_OBJECT = re.compile(r"^\s+(CC|AS|LD|AR|HOSTCC|CC \[M\])\s")
_ERROR = re.compile(r"(^\S+:\d+:(\d+:)? (fatal )?error:|^make\[\d+\]: \*\*\*|Error \d+$)")
STAMP = ".harness-stamp"
# How a compile failure's message starts: KCIDB tells it (FAIL) from a build that could not
# run or finish (ERROR).
FAILED = "kernel build failed"


@dataclass(frozen=True)
class BuildRequest:
    tree: Path
    build_dir: Path
    targets: tuple[str, ...]
    # The content hash of the tree when the harness owns it; lets an unchanged build be skipped.
    tree_id: str | None
    logs: Path
    ccache_dir: Path
    timeout: float
    jobs: int = os.cpu_count() or 1


@dataclass(frozen=True)
class BuildResult:
    build_dir: Path
    objects: int
    skipped: bool
    seconds: float


def make_argv(req: BuildRequest) -> list[str]:
    """The make command line. It must stay the same between runs: Kbuild rebuilds what it
    compiled with a different command, so ccache is chosen by presence, not per run."""
    argv = ["make", "-C", str(req.tree), f"O={req.build_dir}", *arch_args(req.build_dir),
            f"-j{req.jobs}"]
    if shutil.which("ccache"):
        argv.append("CC=ccache gcc")
    return argv + list(req.targets)


def _stamp(req: BuildRequest) -> str | None:
    if req.tree_id is None:
        return None
    config = (req.build_dir / ".config").read_bytes()
    return f"{req.tree_id} {hashlib.sha256(config).hexdigest()} {' '.join(make_argv(req))}\n"


def history_step(build_dir: Path) -> str:
    """The history entry to compare with: a build from scratch and an incremental one
    differ a hundredfold."""
    return "build-incremental" if (build_dir / "vmlinux").exists() else "build-full"


def build(req: BuildRequest) -> BuildResult:
    """Run make; skip it when the tree content, config and command equal the last build's."""
    stamp_file = req.build_dir / STAMP
    stamp = _stamp(req)
    if stamp and stamp_file.exists() and stamp_file.read_text() == stamp:
        log.info("build: nothing changed since the last build, skipping make")
        return BuildResult(req.build_dir, 0, True, 0.0)
    stamp_file.unlink(missing_ok=True)
    log_file = req.logs / "build.log"
    history, step = progress.history_file(req.build_dir), history_step(req.build_dir)
    env = {"CCACHE_DIR": str(req.ccache_dir)}
    with progress.Meter("build", progress.load_history(history, step), "objects") as meter:
        try:
            done = run(make_argv(req), log_file=log_file, timeout=req.timeout, env=env,
                       on_line=lambda line: meter.advance() if _OBJECT.match(line) else None)
        except CommandTimeout:
            raise
        except CommandError as exc:
            errors = first_errors(log_file)
            raise UserError(f"{FAILED} (log: {log_file}):\n{errors}") from exc
    if stamp:
        stamp_file.write_text(stamp)
    progress.save_history(history, step, progress.History(meter.done, done.seconds))
    log.info("build: %d objects in %.0fs", meter.done, done.seconds)
    return BuildResult(req.build_dir, meter.done, False, done.seconds)


def first_errors(log_file: Path, limit: int = 12) -> str:
    """The first compiler error lines of a build log, with a line of context after each."""
    lines = log_file.read_text(errors="replace").splitlines()
    # Indices, so that an error line that is also the previous error's context (make's
    # "*** Error" lines come in runs) is shown once.
    picked: dict[int, None] = {}
    for i, line in enumerate(lines):
        if _ERROR.search(line):
            picked.update(dict.fromkeys(j for j in (i, i + 1) if j < len(lines)))
        if len(picked) >= limit:
            break
    return "\n".join(lines[i] for i in list(picked)[:limit]) or \
        "(no compiler error found; see the log)"
