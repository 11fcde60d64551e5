# SPDX-License-Identifier: GPL-2.0
"""Where the harness keeps its caches (unpacked sources, work trees, build dirs, ccache), the
locks that keep two runs from writing the same entry, and where its own data files live."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("harness")

PACKAGE = Path(__file__).resolve().parent
# The checkout's top-level directories that a wheel carries inside the package, under this
# name (pyproject.toml maps them there), so an installed harness needs no checkout.
SHIPPED = "_shipped"
SHIPPED_DIRS = ("data", "kernel-config", "guest-tests", "patches")


def shipped_dir(name: str) -> Path:
    """The harness's own directory name (one of SHIPPED_DIRS): the copy installed inside the
    package when there is one, else the checkout's."""
    if name not in SHIPPED_DIRS:
        raise ValueError(f"{name!r} is not one of {SHIPPED_DIRS}")
    # The installed copy wins: next to an installed package, ../data may be anyone's.
    installed = PACKAGE / SHIPPED / name
    return installed if installed.is_dir() else PACKAGE.parent / name


# virtme-ng refuses a --rwdir path with any other character (its _SAFE_PATH_PATTERN), and a
# revision's guest directory is one: the labels of a multi-kernel run hold '@' and '~'.
_NOT_IN_A_DIR_NAME = re.compile(r"[^A-Za-z0-9_+./-]")


def revision_dir(run_dir: Path, label: str) -> Path:
    """Where a revision's logs and guest files go in a run directory: its label, with each
    character virtme-ng would refuse made '_' (base@7.2-minimal: base_7.2-minimal)."""
    return run_dir / _NOT_IN_A_DIR_NAME.sub("_", label)


def cache_root() -> Path:
    """$FUTEX_HARNESS_CACHE, else $XDG_CACHE_HOME/futex-harness, else ~/.cache/futex-harness."""
    if os.environ.get("FUTEX_HARNESS_CACHE"):
        return Path(os.environ["FUTEX_HARNESS_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "futex-harness"


def venv_tool(name: str) -> str:
    """A tool the harness's venv installs (vng, b4, virtme-configkernel): from PATH, else
    from the venv, which make does not activate; the bare name when neither has it."""
    local = Path(sys.executable).parent / name
    return shutil.which(name) or (str(local) if local.exists() else name)


def path_key(path: Path) -> str:
    """A short stable name for a user's directory, for cache entries derived from it."""
    resolved = path.resolve()
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    return f"{resolved.name}-{digest}"


@contextlib.contextmanager
def cache_lock(path: Path, holder: str) -> Iterator[None]:
    """An exclusive flock on path; says what it waits for when another run holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another harness run %s (%s)", holder, path)
            fcntl.flock(f, fcntl.LOCK_EX)
        yield
