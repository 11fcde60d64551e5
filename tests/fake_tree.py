# SPDX-License-Identifier: GPL-2.0
"""Copies of tests/fakelinux, a tiny Kbuild-shaped tree, for the config and build stages."""

from __future__ import annotations

import shutil
from pathlib import Path

FAKELINUX = Path(__file__).resolve().parent / "fakelinux"
# struct alt_instr as 7.3 has it: the guest-build stage reads the layout from the tree.
ALTERNATIVE_H = Path(__file__).resolve().parent / "data" / "alt_instr" / "alternative-7.3.h"


def fake_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "linux"
    shutil.copytree(FAKELINUX, tree)
    header = tree / "arch" / "x86" / "include" / "asm" / "alternative.h"
    header.parent.mkdir(parents=True)
    shutil.copy2(ALTERNATIVE_H, header)
    return tree


def fragment(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / "frags" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
