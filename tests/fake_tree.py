# SPDX-License-Identifier: GPL-2.0
"""Copies of tests/fakelinux, a tiny Kbuild-shaped tree, for the config and build stages."""

from __future__ import annotations

import shutil
from pathlib import Path

FAKELINUX = Path(__file__).resolve().parent / "fakelinux"


def fake_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "linux"
    shutil.copytree(FAKELINUX, tree)
    return tree


def fragment(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / "frags" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
