# SPDX-License-Identifier: GPL-2.0
"""A series by message-id: b4 am on a local thread mbox (two revisions), fully offline."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from fake_tree import fake_tree, fragment
from plans import FAKEBIN
from test_rangediff import THREAD, V1_MSGID, owned

from harness.cli import main
from harness.data.settings import load_settings
from harness.errors import UserError
from harness.orchestration.jobs import revisions
from harness.stages import lore
from harness.stages.patches import PatchRequest, apply_series

TIMEOUTS = load_settings().timeouts
V2_PATCH_MSGID = "20261109100000.2-robust-v2@example.org"


@pytest.mark.parametrize(("series", "msgid"), [
    (f"msgid:{V1_MSGID}", V1_MSGID),
    (f"msgid:<{V1_MSGID}>", V1_MSGID),
    (f"https://lore.kernel.org/lkml/{V1_MSGID}/", V1_MSGID),
    (f"https://lore.kernel.org/all/{V1_MSGID}/T/#u", V1_MSGID),
    ("https://lore.kernel.org/r/a%2Fb@example.org", "a/b@example.org"),
    ("https://lore.kernel.org/lkml/", None),
    ("patches/a.patch", None),
    ("v7.3..robust-v2", None),
    ("thread.mbox", None),
])
def test_message_id_forms(series: str, msgid: str | None) -> None:
    assert lore.message_id(series) == msgid


def test_empty_message_id() -> None:
    with pytest.raises(UserError, match="names no message-id"):
        lore.message_id("msgid:")


def request(tmp_path: Path, series: str, version: int | None,
            mbox: Path | None = THREAD) -> PatchRequest:
    return PatchRequest(owned(tmp_path), series, tmp_path / "cache",
                        tmp_path / "run" / "rev" / "logs", TIMEOUTS, version, mbox=mbox)


def test_pick_v2_by_the_v1_cover_and_apply_it(tmp_path: Path) -> None:
    req = request(tmp_path, f"msgid:{V1_MSGID}", 2)
    result = apply_series(req)
    assert result.applied == ("[PATCH v2 1/3] init: return the unlock result",
                              "[PATCH v2 2/3] x86: describe 32-bit emulation",
                              "[PATCH v2 3/3] Documentation: the robust unlock")
    tree = req.source.tree
    assert "unlocked = 2" in (tree / "init/main.c").read_text()
    assert (tree / "Documentation/robust-unlock.txt").is_file()
    # The mbox b4 wrote stays in the revision's directory of the run, with the cover.
    kept = tmp_path / "run" / "rev" / "series.mbx"
    assert "[PATCH v2 3/3] Documentation: the robust unlock" in kept.read_text()
    assert (tmp_path / "run" / "rev" / "series.cover").is_file()


def test_without_a_version_b4_takes_the_newest(tmp_path: Path) -> None:
    result = apply_series(request(tmp_path, f"msgid:{V2_PATCH_MSGID}", None))
    assert result.applied[0].startswith("[PATCH v2 1/3]")
    v1 = apply_series(request(tmp_path / "again", f"msgid:{V2_PATCH_MSGID}", 1))
    assert v1.applied[2] == "[PATCH 3/3] init: mark the first try"


def test_unknown_message_id_is_named(tmp_path: Path) -> None:
    with pytest.raises(UserError) as err:
        apply_series(request(tmp_path, "msgid:nobody@example.org", 2))
    text = str(err.value)
    assert "b4 cannot resolve message-id <nobody@example.org>" in text
    assert str(THREAD) in text and "Could not find nobody@example.org" in text


def test_revision_not_in_the_thread(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"b4 found no v3 of series in the thread of <"
                                        + V1_MSGID.replace(".", r"\.") + ">.*revision 3"):
        apply_series(request(tmp_path, f"msgid:{V1_MSGID}", 3))


def test_missing_mbox(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"--mbox .*nowhere\.mbox does not exist"):
        apply_series(request(tmp_path, f"msgid:{V1_MSGID}", 1, tmp_path / "nowhere.mbox"))


def test_labels_of_message_id_series_and_several_versions() -> None:
    revs = revisions([f"msgid:{V1_MSGID}"], [1, 2])
    assert [r.label for r in revs] == ["base", "v1", "v2"]
    assert [r.version for r in revs] == [None, 1, 2]
    assert revs[1].series == revs[2].series == f"msgid:{V1_MSGID}"
    assert [r.label for r in revisions([f"msgid:{V1_MSGID}"], [])] == \
        ["base", "20261102100000.0-robust-v1"]
    assert [r.label for r in revisions(["t.mbox", "msgid:a@b"], [2])] == ["base", "t-v2", "v2"]
    assert [r.label for r in revisions(["msgid:a@b", "msgid:c@d"], 2)] == ["base", "v2", "v2-2"]


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A fake kernel tree and a plain fragment directory (no minimal variant), as in
    test_catalogue."""
    monkeypatch.setenv("PATH", f"{FAKEBIN}:{os.environ['PATH']}")
    frags = fragment(tmp_path, "s.config", "CONFIG_FUTEX=y\nCONFIG_RSEQ=y\n").parent
    return {"tree": fake_tree(tmp_path), "frags": frags, "run": tmp_path / "run"}


def build(w: dict[str, Path], *extra: str) -> int:
    return main(["build", "--kernel-src", str(w["tree"]), "--config-dir", str(w["frags"]),
                 "--run-dir", str(w["run"]), "--config-variant", "vng", *extra])


def test_unknown_message_id_exits_2(world: dict[str, Path],
                                    capsys: pytest.CaptureFixture[str]) -> None:
    code = build(world, "--series", "msgid:nobody@example.org", "--mbox", str(THREAD),
                 "--no-base")
    assert code == 2
    err = capsys.readouterr().err
    assert "b4 cannot resolve message-id <nobody@example.org>" in err
    assert "Could not find nobody@example.org" in err
    saved = json.loads((world["run"] / "results.json").read_text())
    patches_stage = saved["revisions"][0]["stages"][-1]
    assert patches_stage["name"] == "patches" and patches_stage["status"] == "error"


def test_mbox_without_a_message_id_series(world: dict[str, Path],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert build(world, "--series", str(THREAD), "--mbox", str(THREAD), "-v", "1") == 2
    assert "no --series names one" in capsys.readouterr().err


def test_two_revisions_by_message_id_side_by_side(world: dict[str, Path],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """The maintainer's first step, offline: v1 and v2 of a thread by its message-id,
    compared, with what changed between them."""
    code = build(world, "--series", f"msgid:{V1_MSGID}", "--mbox", str(THREAD),
                 "-v", "1", "-v", "2")
    # The fake tree has no vDSO: every revision's ELF checks fail, which is exit 1.
    assert code == 1
    saved = json.loads((world["run"] / "results.json").read_text())
    labels = [r["label"] for r in saved["revisions"]]
    assert labels == ["base", "v1", "v2"]
    v1, v2 = saved["revisions"][1:]
    assert v1["changes"] is None and len(v1["applied"]) == 3
    assert v2["changes"]["against"] == labels[1] and v2["changes"]["error"] == ""
    assert [p["kind"] for p in v2["changes"]["patches"]] == ["!", "=", "<", ">"]
    out = capsys.readouterr().out
    assert "   v1 -> v2: 1 changed, 1 added, 1 dropped, 1 unchanged" in out
    assert "     > 3/3 Documentation: the robust unlock" in out
    for label in labels[1:]:
        assert (world["run"] / label / "series.mbx").is_file()
        assert (world["run"] / label / "logs").is_dir()
    assert (world["run"] / labels[2] / "logs" / "range-diff.txt").is_file()
