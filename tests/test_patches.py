# SPDX-License-Identifier: GPL-2.0
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from fake_tree import fake_tree

from harness import gittree
from harness.errors import UserError
from harness.patches import PatchRequest, apply_series, expand_series
from harness.source import SourceResult, user_tree

GOOD = """From: a <a@example.org>
Subject: [PATCH] init: return one

---
--- a/init/main.c
+++ b/init/main.c
@@ -1 +1 @@
-int start_kernel(void) { return 0; }
+int start_kernel(void) { return 1; }
"""

BAD = GOOD.replace("[PATCH] init: return one", "[PATCH] init: stale").replace(
    "-int start_kernel(void) { return 0; }", "-int start_kernel(void) { return 7; }")


def tree_digest(tree: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(tree.rglob("*")):
        h.update(str(p.relative_to(tree)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / "series" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def owned(tmp_path: Path) -> SourceResult:
    tree = fake_tree(tmp_path)
    gittree.import_base(tree, tmp_path / "git.log", 60)
    return SourceResult(tree, "fake", "fake", owned=True)


def req(tmp_path: Path, src: SourceResult, series: Path | None) -> PatchRequest:
    return PatchRequest(src, series, tmp_path / "cache", tmp_path / "logs", 60)


def test_expand_series_forms(tmp_path: Path) -> None:
    one = write(tmp_path, "0001-a.patch", GOOD)
    two = write(tmp_path, "0002-b.patch", GOOD)
    assert expand_series(one) == [one]
    assert expand_series(one.parent) == [one, two]
    (one.parent / "series").write_text("# quilt\n0002-b.patch -p1\n0001-a.patch\n")
    assert expand_series(one.parent) == [two, one]


def test_expand_series_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        expand_series(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="neither a 'series' file nor"):
        expand_series(tmp_path / "empty")
    write(tmp_path, "series", "missing.patch\n")
    with pytest.raises(UserError, match=r"lists patches that are not there: missing\.patch"):
        expand_series(tmp_path / "series")


def test_owned_tree_is_reset_between_revisions(tmp_path: Path) -> None:
    src = owned(tmp_path)
    patched = apply_series(req(tmp_path, src, write(tmp_path, "a.patch", GOOD)))
    assert patched.applied == ("[PATCH] init: return one",)
    assert "return 1" in (src.tree / "init/main.c").read_text()
    base = apply_series(req(tmp_path, src, None))
    assert "return 0" in (src.tree / "init/main.c").read_text()
    assert base.tree_id and base.tree_id != patched.tree_id


def test_patch_that_does_not_apply(tmp_path: Path) -> None:
    src = owned(tmp_path)
    with pytest.raises(UserError) as err:
        apply_series(req(tmp_path, src, write(tmp_path, "bad.patch", BAD)))
    text = str(err.value)
    assert "patch does not apply" in text and "[PATCH] init: stale" in text
    assert "init/main.c" in text
    assert list((tmp_path / "logs" / "rejects").glob("*.rej"))
    assert "return 0" in (src.tree / "init/main.c").read_text()


def test_user_tree_is_never_modified(tmp_path: Path) -> None:
    src = user_tree(fake_tree(tmp_path))
    before = tree_digest(src.tree)
    patched = apply_series(req(tmp_path, src, write(tmp_path, "a.patch", GOOD)))
    assert patched.tree != src.tree and "return 1" in (patched.tree / "init/main.c").read_text()
    assert tree_digest(src.tree) == before
    unpatched = apply_series(req(tmp_path, src, None))
    assert unpatched.tree == src.tree and unpatched.tree_id is None
