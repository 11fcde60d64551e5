# SPDX-License-Identifier: GPL-2.0
from __future__ import annotations

from pathlib import Path

import pytest
from fake_tree import fake_tree

from harness.errors import UserError
from harness.stages.build import BuildRequest, build, first_errors


def request(tmp_path: Path, tree: Path, tree_id: str | None = "abc") -> BuildRequest:
    build_dir = tmp_path / "build"
    build_dir.mkdir(exist_ok=True)
    (build_dir / ".config").write_text("CONFIG_FUTEX=y\n")
    return BuildRequest(tree, build_dir, ("bzImage",), tree_id, tmp_path / "logs",
                        tmp_path / "ccache", 120, 2)


def test_build_counts_objects_then_skips_when_unchanged(tmp_path: Path) -> None:
    req = request(tmp_path, fake_tree(tmp_path))
    first = build(req)
    assert not first.skipped and first.objects == 1
    assert (req.build_dir / "arch/x86/boot/bzImage").is_file()
    assert build(req).skipped
    (req.build_dir / ".config").write_text("CONFIG_FUTEX=y\nCONFIG_RSEQ=y\n")
    assert not build(req).skipped


def test_user_tree_always_runs_make(tmp_path: Path) -> None:
    req = request(tmp_path, fake_tree(tmp_path), tree_id=None)
    assert not build(req).skipped
    assert not build(req).skipped


def test_compile_error_reports_first_error_lines(tmp_path: Path) -> None:
    tree = fake_tree(tmp_path)
    (tree / "init/main.c").write_text("int start_kernel(void) { return nope; }\n")
    with pytest.raises(UserError) as err:
        build(request(tmp_path, tree))
    assert "kernel build failed" in str(err.value)
    assert "main.c:1:33: error:" in str(err.value) and "nope" in str(err.value)


def test_first_errors_without_errors(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    log.write_text("  CC  a.o\nKilled\n")
    assert "no compiler error found" in first_errors(log)
