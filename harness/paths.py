# SPDX-License-Identifier: GPL-2.0
"""Where the harness keeps its caches: unpacked sources, work trees, build dirs, ccache."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def cache_root() -> Path:
    """$FUTEX_HARNESS_CACHE, else $XDG_CACHE_HOME/futex-harness, else ~/.cache/futex-harness."""
    if os.environ.get("FUTEX_HARNESS_CACHE"):
        return Path(os.environ["FUTEX_HARNESS_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "futex-harness"


def path_key(path: Path) -> str:
    """A short stable name for a user's directory, for cache entries derived from it."""
    resolved = path.resolve()
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    return f"{resolved.name}-{digest}"
