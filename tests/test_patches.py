# SPDX-License-Identifier: GPL-2.0
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from fake_tree import fake_tree

from harness.data.settings import load_settings
from harness.errors import UserError
from harness.stages import gittree
from harness.stages.patches import PatchRequest, apply_series, expand_series
from harness.stages.source import SourceResult, user_tree

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


TIMEOUTS = load_settings().timeouts

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
    return PatchRequest(src, str(series) if series else None, tmp_path / "cache",
                        tmp_path / "logs", TIMEOUTS)


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


NEW_FILE = """From: a <a@example.org>
Subject: [PATCH] init: a new file

---
--- /dev/null
+++ b/init/new.c
@@ -0,0 +1 @@
+int added;
"""


def test_the_tree_id_is_the_content_a_build_would_see(tmp_path: Path) -> None:
    """It skips a build when it repeats: a file the patch adds changes it, and a stray
    file or edit left in the owned tree since the last run does not survive the reset."""
    src = owned(tmp_path)
    base = apply_series(req(tmp_path, src, None))
    added = apply_series(req(tmp_path, src, write(tmp_path, "new.patch", NEW_FILE)))
    assert added.tree_id != base.tree_id and (src.tree / "init/new.c").is_file()
    (src.tree / "stray.c").write_text("int stray;\n")
    (src.tree / "init/main.c").write_text("int start_kernel(void) { return 9; }\n")
    again = apply_series(req(tmp_path, src, None))
    assert again.tree_id == base.tree_id and not (src.tree / "stray.c").exists()
    assert "return 0" in (src.tree / "init/main.c").read_text()


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


def mail(subject: str, old: str, new: str, msgid: str, reply_to: str | None = None) -> str:
    """One patch mail in mbox form, as git format-patch or a list archive writes it."""
    thread = f"In-Reply-To: <{reply_to}>\nReferences: <{reply_to}>\n" if reply_to else ""
    return (f"From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n"
            f"From: A Developer <dev@example.org>\nDate: Mon, 2 Nov 2026 10:00:00 +0000\n"
            f"Subject: {subject}\nMessage-Id: <{msgid}>\n{thread}\n"
            f"Signed-off-by: A Developer <dev@example.org>\n---\n"
            f" init/main.c | 2 +-\n\n"
            f"diff --git a/init/main.c b/init/main.c\n--- a/init/main.c\n+++ b/init/main.c\n"
            f"@@ -1 +1 @@\n-int start_kernel(void) {{ return {old}; }}\n"
            f"+int start_kernel(void) {{ return {new}; }}\n-- \n2.39.5\n\n")


def test_mbox_with_several_patches_applies_in_order(tmp_path: Path) -> None:
    src = owned(tmp_path)
    mbox = write(tmp_path, "two.mbx", mail("[PATCH 1/2] one", "0", "1", "a@x")
                 + mail("[PATCH 2/2] two", "1", "2", "b@x"))
    result = apply_series(req(tmp_path, src, mbox))
    assert result.applied == ("[PATCH 1/2] one", "[PATCH 2/2] two")
    assert "return 2" in (src.tree / "init/main.c").read_text()


def test_thread_mbox_needs_a_version_and_b4_picks_it(tmp_path: Path) -> None:
    src = owned(tmp_path)
    thread = write(tmp_path, "thread.mbox",
                   mail("[PATCH v1] init: return one", "0", "1", "v1@x")
                   + mail("[PATCH v2] init: return two", "0", "2", "v2@x", reply_to="v1@x"))
    with pytest.raises(UserError, match=r"holds revisions \[1, 2\]; pick one with -v N"):
        apply_series(req(tmp_path, src, thread))
    with pytest.raises(UserError, match=r"has no v3"):
        apply_series(PatchRequest(src, str(thread), tmp_path / "c", tmp_path / "l", TIMEOUTS,
                                  3))
    picked = apply_series(PatchRequest(src, str(thread), tmp_path / "c", tmp_path / "l",
                                       TIMEOUTS, 2))
    assert picked.applied == ("[PATCH v2] init: return two",)
    assert "return 2" in (src.tree / "init/main.c").read_text()


def test_garbage_mbox(tmp_path: Path) -> None:
    src = owned(tmp_path)
    junk = write(tmp_path, "junk.mbx", "From nobody\nSubject: hello\n\nno diff here\n")
    with pytest.raises(UserError, match=r"not a readable mbox|holds no patches"):
        apply_series(req(tmp_path, src, junk))


def test_git_range_of_the_users_repository(tmp_path: Path) -> None:
    from conftest import sh

    user = fake_tree(tmp_path)
    git = ["git", "-C", str(user), "-c", "user.name=u", "-c", "user.email=u@x"]
    sh([*git, "init", "-q"])
    sh([*git, "add", "-A"])
    sh([*git, "commit", "-qm", "base"])
    sh([*git, "tag", "v0"])
    (user / "init/main.c").write_text("int start_kernel(void) { return 5; }\n")
    sh([*git, "commit", "-qam", "init: return five"])
    sh([*git, "reset", "-q", "--hard", "v0"])  # the user's checkout stays at the base
    before = tree_digest(user)
    src = user_tree(user)
    result = apply_series(PatchRequest(src, "v0..HEAD@{1}", tmp_path / "c", tmp_path / "l",
                                       TIMEOUTS))
    assert result.applied == ("[PATCH] init: return five",)
    assert "return 5" in (result.tree / "init/main.c").read_text()
    assert tree_digest(user) == before


def test_caught_by_header() -> None:
    from harness.stages.patches import caught_by

    mutants = sorted((Path(__file__).parent.parent / "patches" / "mutants").glob("*.patch"))
    assert len(mutants) >= 6
    for patch in mutants:
        assert caught_by(patch), patch.name
