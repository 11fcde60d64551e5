# SPDX-License-Identifier: GPL-2.0
"""The harness's cache inside the kernel tree, as the generated GitLab pipeline has it
(GitLab caches only paths in the checkout): a series run must not copy the cache along."""

from __future__ import annotations

from pathlib import Path

from fake_tree import fake_tree
from test_patches import GOOD, TIMEOUTS, write

from harness.stages.patches import PatchRequest, apply_series
from harness.stages.source import user_tree


def test_series_copy_leaves_the_cache_inside_the_tree_out(tmp_path: Path) -> None:
    tree = fake_tree(tmp_path)
    cache = tree / ".futex-harness" / "cache"
    (cache / "ccache").mkdir(parents=True)
    (cache / "ccache" / "big.o").write_bytes(b"\0" * 4096)
    series = write(tmp_path, "a.patch", GOOD)
    request = PatchRequest(user_tree(tree), str(series), cache, tmp_path / "logs", TIMEOUTS)
    for _ in range(2):  # the second time syncs into the existing copy
        patched = apply_series(request)
        assert patched.tree.is_relative_to(cache / "work")
        assert "return 1" in (patched.tree / "init/main.c").read_text()
        assert (patched.tree / "init").is_dir()
        assert not (patched.tree / ".futex-harness" / "cache").exists()
    assert (tree / ".futex-harness" / "cache" / "ccache" / "big.o").is_file()
