# SPDX-License-Identifier: GPL-2.0
"""Result files replaced whole, so that a reader never sees half of one."""

from __future__ import annotations

from pathlib import Path

from harness.errors import InfraError


def write_atomic(path: Path, data: bytes) -> None:
    """Write a whole file or leave the old one; a full disk is the machine's fault."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InfraError(f"cannot write {path}: {exc.strerror}") from exc
