# SPDX-License-Identifier: GPL-2.0
"""git range-diff between two revisions of a thread, on a real git tree the harness owns."""

from __future__ import annotations

from pathlib import Path

from conftest import HERE, sh
from fake_tree import fake_tree

from harness.data.settings import load_settings
from harness.orchestration import rangediff
from harness.outputs.record import Changes, PatchChange, Revision
from harness.stages import gittree
from harness.stages.patches import PatchRequest, PatchResult, apply_series
from harness.stages.source import SourceResult

TIMEOUTS = load_settings().timeouts
THREAD = HERE / "data" / "threads" / "robust-unlock.mbox"
V1_MSGID = "20261102100000.0-robust-v1@example.org"


def owned(tmp_path: Path) -> SourceResult:
    tree = fake_tree(tmp_path)
    gittree.import_base(tree, tmp_path / "git.log", 60)
    return SourceResult(tree, "fake", "fake", owned=True)


def pick(tmp_path: Path, src: SourceResult, version: int) -> PatchResult:
    return apply_series(PatchRequest(src, str(THREAD), tmp_path / "cache",
                                     tmp_path / f"v{version}" / "logs", TIMEOUTS, version))


def repo_state(tree: Path) -> str:
    """Everything range-diff must leave alone: HEAD, refs, index, files and objects."""
    git = ["git", "-C", str(tree)]
    return "\n".join([sh([*git, "rev-parse", "HEAD"]), sh([*git, "show-ref"]),
                      sh([*git, "status", "--porcelain"]), sh([*git, "ls-files", "-s"]),
                      sh([*git, "count-objects", "-v"])])


def test_two_revisions_of_a_thread(tmp_path: Path) -> None:
    src = owned(tmp_path)
    v1, v2 = pick(tmp_path, src, 1), pick(tmp_path, src, 2)
    before = repo_state(src.tree)
    changes = rangediff.range_diff(src.tree, v1.patches, v2.patches, tmp_path / "rd.txt",
                                   tmp_path / "rd.log", 60)
    assert changes == (
        PatchChange("!", "1/3 init: return the unlock result",
                    "1/3 init: return the unlock result"),
        PatchChange("=", "2/3 x86: describe 32-bit emulation",
                    "2/3 x86: describe 32-bit emulation"),
        PatchChange("<", "3/3 init: mark the first try", None),
        PatchChange(">", None, "3/3 Documentation: the robust unlock"),
    )
    # The whole range-diff is kept: the changed line of the changed patch is in it.
    kept = (tmp_path / "rd.txt").read_text()
    assert "    -+\tint unlocked = 1;" in kept and "    ++\tint unlocked = 2;" in kept
    # v2 is still what the tree holds, and nothing in its repository moved.
    assert repo_state(src.tree) == before
    assert "unlocked = 2" in (src.tree / "init/main.c").read_text()


def test_identical_series_are_all_unchanged(tmp_path: Path) -> None:
    src = owned(tmp_path)
    v2 = pick(tmp_path, src, 2)
    changes = rangediff.range_diff(src.tree, v2.patches, v2.patches, tmp_path / "rd.txt",
                                   tmp_path / "rd.log", 60)
    assert [c.kind for c in changes] == ["=", "=", "="]


def test_parse_names_each_side_from_the_series() -> None:
    text = ("1:  53df628 ! 1:  020e14d init: one\n"
            "    @@ init/main.c\n"
            "    -+a1\n"
            "    ++b1\n"
            "-:  ------- > 2:  d524a29 g: three\n"
            "2:  dc7bf08 < -:  ------- g: two\n")
    assert rangediff.parse(text, ["1/2 init: one", "2/2 g: two"],
                           ["1/2 init: one", "2/2 g: three"]) == (
        PatchChange("!", "1/2 init: one", "1/2 init: one"),
        PatchChange(">", None, "2/2 g: three"),
        PatchChange("<", "2/2 g: two", None))


def test_bare_subject() -> None:
    assert rangediff.bare_subject("[PATCH v2 1/3] init: one") == "init: one"
    assert rangediff.bare_subject("[RFC] [PATCH 2/2] x86: two") == "x86: two"
    assert rangediff.bare_subject("no prefix") == "no prefix"


def rev(label: str, series: str | None, kernel: str = "7.3", variant: str = "lean") -> Revision:
    return Revision(label, series=series, kernel=kernel, variant=variant)


def test_previous_is_the_last_series_of_the_same_kernel_and_variant() -> None:
    base, v1 = rev("base", None), rev("v1", "a.mbx")
    other = rev("v1@nocompat", "a.mbx", variant="nocompat")
    v2 = rev("v2", "b.mbx")
    revs = [base, v1, other, v2]
    assert rangediff.previous(revs, v2) is v1
    assert rangediff.previous(revs, v1) is None
    assert rangediff.previous(revs, other) is None


def test_a_series_that_cannot_be_compared_is_recorded_not_raised(tmp_path: Path) -> None:
    from test_patches import BAD, GOOD

    src = owned(tmp_path)
    good, bad = tmp_path / "good.patch", tmp_path / "bad.patch"
    good.write_text(GOOD)
    bad.write_text(BAD)
    v1, v2 = rev("v1", str(bad)), rev("v2", str(good))
    revs = [rev("base", None), v1, v2]
    # v1 never applied, so the pipeline has no patch files for it.
    assert rangediff.against_previous(revs, v2, {"v2": (good,)}, src.tree, tmp_path, 60) == \
        Changes("v1", error="the series of v1 did not apply")
    # Patch files that do not apply on base: the reason is kept, the revision goes on.
    found = rangediff.against_previous(revs, v2, {"v1": (bad,), "v2": (good,)}, src.tree,
                                       tmp_path, 60)
    assert found is not None and found.against == "v1" and not found.patches
    assert "'[PATCH] init: stale' does not apply on base" in found.error
    assert rangediff.against_previous(revs, v1, {}, src.tree, tmp_path, 60) is None
