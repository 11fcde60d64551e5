# SPDX-License-Identifier: GPL-2.0
"""Bad inputs and bad luck through the whole command line: each ends with a message that
names the cause, exit code 2, bounded time, and a results.json that says what happened."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_tree import fake_tree, fragment
from plans import FAKEBIN

from harness.cli import main


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A fake kernel tree, one fragment and a fake vng first on PATH."""
    monkeypatch.setenv("PATH", f"{FAKEBIN}:{os.environ['PATH']}")
    frags = fragment(tmp_path, "s.config", "CONFIG_FUTEX=y\nCONFIG_RSEQ=y\n").parent
    return {"tree": fake_tree(tmp_path), "frags": frags, "run": tmp_path / "run"}


def harness(w: dict[str, Path], *extra: str) -> int:
    """The fake tree's fragments are plain ones: the base config, no minimal variant."""
    return main(["run", "--kernel-src", str(w["tree"]), "--config-dir", str(w["frags"]),
                 "--run-dir", str(w["run"]), "--accel", "tcg", "--config-variant", "vng",
                 *extra])


def saved(w: dict[str, Path]) -> dict[str, Any]:
    return dict(json.loads((w["run"] / "results.json").read_text()))


def stages(w: dict[str, Path]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in saved(w)["revisions"][0]["stages"]}


@pytest.fixture
def ctrl_c() -> Iterator[None]:
    """Make SIGINT raise KeyboardInterrupt here even when the suite started with SIGINT
    ignored, as every background job of a non-interactive shell does."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def interrupt_when(ready: Path, limit: float = 60) -> threading.Thread:
    """SIGINT this process once the file appears: the step under test has started."""

    def wait_then_interrupt() -> None:
        deadline = time.monotonic() + limit
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=wait_then_interrupt, daemon=True)
    thread.start()
    return thread


def test_compile_error(world: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    (world["tree"] / "init/main.c").write_text("int start_kernel(void) { return nope; }\n")
    assert harness(world) == 2
    assert "kernel build failed" in capsys.readouterr().err
    assert stages(world)["build"]["status"] == "error"
    assert "error:" in stages(world)["build"]["detail"]


def test_unknown_option(world: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    fragment(world["frags"].parent, "x.config", "CONFIG_NOT_A_THING=y\n")
    assert harness(world) == 2
    assert "CONFIG_NOT_A_THING" in capsys.readouterr().err


def test_panic_at_boot_leaves_every_test_reported(
        world: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_VNG_MODE", "panic")
    assert harness(world) == 2
    checks = saved(world)["revisions"][0]["checks"]
    guest = [c for c in checks if not c["name"].startswith("elf-")]
    assert guest and all(c["verdict"] != "PASS" for c in guest)
    assert "never started" in stages(world)["boot"]["detail"]


def test_whole_run_limit(world: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FAKE_VNG_MODE", "hang")
    start = time.monotonic()
    assert harness(world, "--timeout", "15") == 2
    assert time.monotonic() - start < 45
    assert "went past its limit of 15s" in capsys.readouterr().err
    assert stages(world)["boot"]["status"] == "error"


@pytest.mark.usefixtures("ctrl_c")
def test_ctrl_c_during_build_reaps_the_build(world: dict[str, Path],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    pidfile = world["run"].parent / "make.pid"
    makefile = world["tree"] / "Makefile"
    makefile.write_text(makefile.read_text().replace(
        "bzImage:\n", f"bzImage:\n\techo $$$$ > {pidfile}; sleep 60\n"))
    interrupt_when(pidfile)
    assert harness(world) == 2
    assert "interrupted" in capsys.readouterr().err
    assert stages(world)["build"]["status"] == "error"
    assert stages(world)["build"]["detail"] == "interrupted"
    time.sleep(0.5)
    shell = int(pidfile.read_text())
    assert not Path(f"/proc/{shell}").exists() or "Z" in Path(f"/proc/{shell}/stat").read_text()


@pytest.mark.usefixtures("ctrl_c")
def test_ctrl_c_during_boot_kills_the_vm(world: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FAKE_VNG_MODE", "hang")
    child_file = world["run"].parent / "vm-child.pid"
    monkeypatch.setenv("FAKE_VNG_CHILD", str(child_file))
    interrupt_when(child_file)
    start = time.monotonic()
    assert harness(world) == 2
    assert time.monotonic() - start < 60
    assert "interrupted" in capsys.readouterr().err
    assert stages(world)["boot"]["detail"] == "interrupted"
    # The fake VM's own child (a sleep) went with its process group.
    child = Path(f"/proc/{int(child_file.read_text())}")
    time.sleep(0.5)
    assert not child.exists() or "Z" in (child / "stat").read_text().split()[2]


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 48 KiB tmpfs: room for the first results and logs, not for a whole run."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(mnt)],
                      capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_disk_while_writing_results(world: dict[str, Path], tiny_disk: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    world["run"] = tiny_disk / "run"
    start = time.monotonic()
    assert harness(world) == 2
    assert time.monotonic() - start < 120
    assert "No space left on device" in capsys.readouterr().err
    # What was written before the disk filled is still valid JSON.
    json.loads((world["run"] / "results.json").read_text())


def test_conflicting_fragments(world: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    fragment(world["frags"].parent, "y.config", "# CONFIG_RSEQ is not set\n")
    assert harness(world) == 2
    err = capsys.readouterr().err
    assert "conflict on CONFIG_RSEQ" in err and "s.config" in err and "y.config" in err


def test_unmet_dependency(world: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    fragment(world["frags"].parent, "s.config",
             "CONFIG_FUTEX_ROBUST_UNLOCK=y\n# CONFIG_RSEQ is not set\n")
    assert harness(world) == 2
    assert "probably an unmet dependency" in capsys.readouterr().err


def test_patch_that_does_not_apply(world: dict[str, Path],
                                   capsys: pytest.CaptureFixture[str]) -> None:
    from test_patches import BAD

    bad = world["run"].parent / "bad.patch"
    bad.write_text(BAD)
    assert harness(world, "--series", str(bad), "--no-base") == 2
    err = capsys.readouterr().err
    assert "patch does not apply" in err and "init: stale" in err


def test_garbage_mbox(world: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    junk = world["run"].parent / "junk.mbx"
    junk.write_text("From nobody\nSubject: hello\n\nno diff here\n")
    assert harness(world, "--series", str(junk), "--no-base") == 2
    err = capsys.readouterr().err
    assert "junk.mbx" in err and ("not a readable mbox" in err or "holds no patches" in err)


def test_qemu_missing(world: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                      capsys: pytest.CaptureFixture[str]) -> None:
    only_vng = tmp_path / "only-vng"
    only_vng.mkdir()
    (only_vng / "vng").symlink_to(FAKEBIN / "vng")
    monkeypatch.setenv("PATH", f"{only_vng}:/usr/bin:/bin")
    if Path("/usr/bin/qemu-system-x86_64").exists():
        which = shutil.which
        monkeypatch.setattr("shutil.which", lambda name, *a, **k:
                            None if name.startswith("qemu") else which(name, *a, **k))
    assert harness(world) == 2
    assert "qemu-system-x86_64 not found" in capsys.readouterr().err


def test_fragment_dir_without_the_default_variant(world: dict[str, Path],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--kernel-src", str(world["tree"]), "--config-dir",
                 str(world["frags"]), "--run-dir", str(world["run"])])
    assert code == 2
    assert f"no config variant 'minimal' in {world['frags']}; choose one of: vng" in \
        capsys.readouterr().err


def test_build_subcommand_stops_before_boot(world: dict[str, Path]) -> None:
    code = main(["build", "--kernel-src", str(world["tree"]), "--config-dir",
                 str(world["frags"]), "--run-dir", str(world["run"]), "--config-variant", "vng"])
    names = list(stages(world))
    assert names[-1] == "disasm" and "boot" not in names
    # The fake tree has no vDSO, so the ELF checks fail: a check failure, exit 1.
    assert code == 1


def test_only_runs_the_matching_guest_tests(world: dict[str, Path],
                                            monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """--only narrows the plan (a VM that dies still reports every selected test, and only
    those); a pattern that matches nothing stops the run before anything is built."""
    monkeypatch.setenv("FAKE_VNG_MODE", "panic")
    assert harness(world, "--only", "remap-exit-*") == 2
    guest = sorted(c["name"] for c in saved(world)["revisions"][0]["checks"]
                   if not c["name"].startswith(("elf-", "disasm-", "console")))
    assert guest == ["remap-exit-legacy", "remap-exit-legacy-32bit", "remap-exit-vdso-32bit",
                     "remap-exit-vdso-64"]
    shutil.rmtree(world["run"])
    assert harness(world, "--only", "nope") == 2
    assert "--only nope matches no guest test" in capsys.readouterr().err
    assert saved(world)["revisions"] == []
