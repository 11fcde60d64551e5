# SPDX-License-Identifier: GPL-2.0
"""Shared tables in the data files: an expectations file's `base`, a template's template."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.data.expectations import load_expectations
from harness.data.guest_tests import load_guest_tests
from harness.errors import UserError

UPSTREAM_LIKE = """
version = "LINUX_2.6"
kconfig = ["FUTEX_ROBUST_UNLOCK"]
[[images]]
name = "vdso64"
dbg = "a.dbg"
stripped = "a.so"
generated = "a.c"
elf_class = 64
[ops]
wake = 7
"""


def write(directory: Path, name: str, text: str) -> None:
    (directory / f"{name}.toml").write_text(text)


def test_shipped_nocompat_takes_upstreams_tables() -> None:
    upstream, nocompat = load_expectations("upstream"), load_expectations("nocompat")
    assert nocompat.ops == upstream.ops and nocompat.ops
    assert nocompat.disasm == upstream.disasm and nocompat.disasm is not None
    assert [i.name for i in nocompat.images] == ["vdso64", "vdso32"]
    assert nocompat.images != upstream.images


def test_a_key_of_its_own_wins_over_the_base(tmp_path: Path) -> None:
    write(tmp_path, "up", UPSTREAM_LIKE)
    write(tmp_path, "child", 'base = "up"\nversion = "LINUX_9"\n[ops]\nwake = 8\n')
    child = load_expectations("child", tmp_path)
    assert child.version == "LINUX_9" and child.ops == {"wake": 8}
    assert [i.name for i in child.images] == ["vdso64"]


def test_a_base_cycle_is_named(tmp_path: Path) -> None:
    write(tmp_path, "a", 'base = "b"\n')
    write(tmp_path, "b", 'base = "a"\n')
    with pytest.raises(UserError, match="leads back to itself"):
        load_expectations("a", tmp_path)


def test_an_unknown_base_lists_the_files(tmp_path: Path) -> None:
    write(tmp_path, "a", 'base = "nope"\n')
    with pytest.raises(UserError, match=r"base 'nope' names no file.*choose one of: a"):
        load_expectations("a", tmp_path)


TESTS = """
[templates.root]
sources = ["x.c"]
timeout = 10
args = ["--check", "{name}"]
require = ["hits"]
[templates.mid]
template = "root"
extra_args = ["--spawn", "fork"]
fail_if = ["bad"]
[[tests]]
name = "t"
template = "mid"
extra_args = ["--exec-bin", "y"]
"""


def test_a_template_takes_its_own_template(tmp_path: Path) -> None:
    path = tmp_path / "guest-tests.toml"
    path.write_text(TESTS)
    (test,) = load_guest_tests(path)
    assert test.args == ("--check", "{name}", "--spawn", "fork", "--exec-bin", "y")
    assert test.require == ("hits",) and test.fail_if == ("bad",)


def test_a_template_cycle_is_named(tmp_path: Path) -> None:
    path = tmp_path / "guest-tests.toml"
    path.write_text(TESTS.replace('[templates.root]\n', '[templates.root]\ntemplate = "mid"\n'))
    with pytest.raises(UserError, match="template 'mid' leads back to itself"):
        load_guest_tests(path)
