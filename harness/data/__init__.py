# SPDX-License-Identifier: GPL-2.0
"""The shipped data files, where they are and how one is read; a loader module per file."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.paths import shipped_dir

DATA = shipped_dir("data")
EXPECTATIONS = DATA / "expectations"
KERNEL_CONFIG = shipped_dir("kernel-config")
GUEST_TESTS = shipped_dir("guest-tests")
PATCHES = shipped_dir("patches")


def read_toml(path: Path) -> dict[str, Any]:
    """Parse one TOML file; a syntax error names the file."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: {exc}") from exc


def as_paths(value: str | list[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)
