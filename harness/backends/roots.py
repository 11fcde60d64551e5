# SPDX-License-Identifier: GPL-2.0
"""Guest roots of another architecture (i386): Debian packages unpacked by mmdebstrap into
the cache once, then shared read-only with every boot of that architecture."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from harness.commands import run
from harness.data.settings import GuestRoot
from harness.errors import CommandError, InfraError

log = logging.getLogger("harness")

# Written last: a root without it is a build that did not finish, and is made again.
DONE = ".harness-root-done"


def root_dir(cache: Path, spec: GuestRoot) -> Path:
    return cache / "roots" / spec.name


def ensure_root(spec: GuestRoot, cache: Path, logs: Path, timeout: float) -> Path:
    """The root for spec, built with mmdebstrap when the cache has no finished one."""
    root = root_dir(cache, spec)
    if (root / DONE).is_file():
        return root
    tool = shutil.which("mmdebstrap")
    if tool is None:
        raise InfraError(f"no {spec.arch} guest root in {root.parent}, and mmdebstrap is not "
                         "installed to build one; run scripts/install-deps")
    scratch = root.with_name(root.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    # mmdebstrap makes the target but not its parent ("unable to get absolute path of
    # target directory" on a fresh cache).
    scratch.parent.mkdir(parents=True, exist_ok=True)
    log.info("guest root: building %s with mmdebstrap (once; about 100 s)", root)
    try:
        run([tool, "--variant=minbase", f"--architectures={spec.arch}",
             f"--include={','.join(spec.packages)}", spec.suite, str(scratch), spec.mirror],
            log_file=logs / f"root-{spec.arch}.log", timeout=timeout)
    except CommandError as exc:
        raise InfraError(f"cannot build the {spec.arch} guest root "
                         f"(log: {logs / f'root-{spec.arch}.log'})") from exc
    (scratch / DONE).write_text(f"{spec.name}\n")
    shutil.rmtree(root, ignore_errors=True)
    scratch.rename(root)
    return root


def mount_point(root: Path, guest_path: Path) -> None:
    """Make guest_path (absolute) exist in root, so that a share can be mounted there: the
    root is read-only in the guest, and virtme-ng's init cannot make the directory."""
    (root / guest_path.relative_to("/")).mkdir(parents=True, exist_ok=True)
