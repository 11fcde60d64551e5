# SPDX-License-Identifier: GPL-2.0
from __future__ import annotations

import re
from pathlib import Path

import pytest
from elf_fixtures import build_image
from test_report import FAIL, PASS, record

from harness.cli import main
from harness.outputs.report import write_reports

L64, L32 = "__vdso_futex_robust_list64_try_unlock", "__vdso_futex_robust_list32_try_unlock"
P64, P32 = "__futex_list64_try_unlock_cs_", "__futex_list32_try_unlock_cs_"


def test_check_vdso_pass_and_fail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    build_image(tmp_path, "vdso64", 64, {L64: P64, L32: P32})
    build_image(tmp_path, "vdso32", 32, {L32: P32})
    (tmp_path / ".config").write_text("CONFIG_COMPAT=y\nCONFIG_IA32_EMULATION=y\n")
    assert main(["check-vdso", str(tmp_path)]) == 0
    assert "elf-vdso64       PASS" in capsys.readouterr().out
    build_image(tmp_path, "vdso64", 64, {L64: P64})
    assert main(["check-vdso", str(tmp_path)]) == 1
    assert f"export {L32} missing" in capsys.readouterr().out


def test_check_vdso_on_a_non_build_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-vdso", str(tmp_path)]) == 2
    assert "has no .config; is it a kernel build directory?" in capsys.readouterr().err


def test_unknown_expectations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / ".config").write_text("")
    assert main(["check-vdso", str(tmp_path), "--expect", "v99"]) == 2
    assert "no expectations called 'v99'" in capsys.readouterr().err


def test_report_from_saved_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_reports(tmp_path, record(PASS, FAIL))
    assert main(["report", str(tmp_path)]) == 1
    assert "overall: FAIL (exit 1)" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "nowhere")]) == 2


def test_run_with_missing_tree_is_a_user_error(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--kernel-src", str(tmp_path / "nope"), "--run-dir", str(tmp_path / "r"),
                 "--accel", "tcg"])
    assert code == 2
    assert f"kernel tree {tmp_path / 'nope'} does not exist" in capsys.readouterr().err
    # The run directory still says what happened.
    saved = (tmp_path / "r" / "results.json").read_text()
    assert '"status": "error"' in saved and "does not exist" in saved


def test_revision_labels_are_unique_and_base_comes_first() -> None:
    from harness.orchestration.jobs import revisions

    revs = revisions(["patches/a.patch", "v3/", "other/a.mbx", "v7.3..robust"], None)
    assert [r.label for r in revs] == ["base", "a", "v3", "a-2", "v7.3..robust"]
    assert revs[0].series is None and revs[2].series == "v3/"
    assert [r.label for r in revisions(["t.mbox"], 4)] == ["base", "t-v4"]


@pytest.mark.parametrize(("options", "message"), [
    (["--ssh-key", "{tmp}/no-key"], "cannot read SSH key"),
    (["--host-key", "SHA256:short"], "expected SHA256:<43 base64"),
    (["--known-hosts", "{tmp}/no-known-hosts"], "known_hosts file .* does not exist"),
])
def test_ssh_inputs_are_checked_before_the_build(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str],
        message: str) -> None:
    # The tree does not exist either: the SSH input must be named first, before any stage.
    argv = ["run", "--target", "ssh://root@127.0.0.1:2222", "--kernel-src",
            str(tmp_path / "nope"), "--run-dir", str(tmp_path / "r"),
            *(o.format(tmp=tmp_path) for o in options)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and "kernel tree" not in err


def test_unknown_suite_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["run", "--suite", "nightly", "--kernel-src", str(tmp_path / "nope"),
            "--run-dir", str(tmp_path / "r")]
    assert main(argv) == 2
    assert "unknown suite 'nightly'; choose one of: default, stress" in capsys.readouterr().err
