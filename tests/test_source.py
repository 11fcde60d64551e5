# SPDX-License-Identifier: GPL-2.0
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fake_tree import fake_tree

from harness.data.settings import load_settings
from harness.errors import UserError
from harness.stages import source
from harness.stages.source import user_tree


def test_good_tree(tmp_path: Path) -> None:
    src = user_tree(fake_tree(tmp_path))
    assert not src.owned and src.key.startswith("linux-")


def test_missing_tree(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        user_tree(tmp_path / "nope")


def test_file_is_not_a_tree(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(UserError, match="is not a directory"):
        user_tree(tmp_path / "f")


def test_not_a_kernel_tree(tmp_path: Path) -> None:
    (tmp_path / "Makefile").write_text("")
    with pytest.raises(UserError, match="not an x86 kernel tree: missing Kconfig"):
        user_tree(tmp_path)


def test_configured_in_place(tmp_path: Path) -> None:
    tree = fake_tree(tmp_path)
    (tree / ".config").write_text("")
    with pytest.raises(UserError, match=r"in-tree \.config"):
        user_tree(tree)


def test_unknown_debian_release_lists_choices() -> None:
    expected = r"unknown Debian kernel '9\.9'; choose one of: 6\.12, 7\.2, 7\.3"
    with pytest.raises(UserError, match=expected):
        load_settings().release("9.9")


def test_two_first_runs_unpack_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the lock both would see no 'ready' and unpack into one directory at once."""
    unpacked: list[Path] = []

    def slow_unpack(rel: Any, version: str, apt: Any, dest: Path, *rest: Any) -> None:
        unpacked.append(dest)
        time.sleep(0.5)
        (dest / "linux-source-7.3").mkdir(parents=True)
        (dest / "ready").write_text("done\n")

    monkeypatch.setattr(source, "_candidate", lambda *args: "7.3.4-1")
    monkeypatch.setattr(source, "_unpack", slow_unpack)
    settings = load_settings()
    rel = settings.release("7.3")
    trees: list[Path] = []
    runs = [threading.Thread(target=lambda: trees.append(
        source.debian_tree(rel, settings, tmp_path / "cache", tmp_path).tree)) for _ in range(2)]
    for t in runs:
        t.start()
    for t in runs:
        t.join()
    assert len(unpacked) == 1
    assert trees == [tmp_path / "cache/src/linux-source-7.3_7.3.4-1/linux-source-7.3"] * 2
