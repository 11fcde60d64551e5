# SPDX-License-Identifier: GPL-2.0
"""Result files replaced whole, so that a reader never sees half of one."""

from __future__ import annotations

from pathlib import Path

from harness.errors import InfraError
from harness.guest import protocol


def write_atomic(path: Path, data: bytes) -> None:
    """Write a whole file or leave the old one; a full disk is the machine's fault."""
    try:
        protocol.write_atomic(path, data)
    except OSError as exc:
        raise InfraError(f"cannot write {path}: {exc.strerror}") from exc
