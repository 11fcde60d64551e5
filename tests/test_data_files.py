# SPDX-License-Identifier: GPL-2.0
"""Shared tables in the data files: an expectations file's `base`, a template's template."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.data import DATA
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
    assert [i.name for i in nocompat.images] == ["vdso64", "vdso32", "vdsox32"]
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
class = "shared"
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


@pytest.mark.parametrize(("edit", "message"), [
    ('class = "shared"\n', "test t has no class; give one of: exclusive, waits, shared"),
    ('class = "shared"\n', "test t has class 'parallel'; choose one of"),
])
def test_a_test_without_a_known_class(tmp_path: Path, edit: str, message: str) -> None:
    path = tmp_path / "guest-tests.toml"
    new = "" if "no class" in message else 'class = "parallel"\n'
    path.write_text(TESTS.replace(edit, new))
    with pytest.raises(UserError, match=message):
        load_guest_tests(path)


def test_a_ktap_test_takes_its_classes_from_the_kselftest_file(tmp_path: Path) -> None:
    path = tmp_path / "guest-tests.toml"
    path.write_text('[[tests]]\nname = "k"\nkind = "ktap"\nclass = "shared"\nargs = []\n'
                    "timeout = 1\n")
    with pytest.raises(UserError, match=r"its programs' classes are in data/kselftest\.toml"):
        load_guest_tests(path)


@pytest.mark.parametrize("name", ["guest-tests.toml", "kselftest.toml"])
def test_every_exclusive_or_waits_class_says_why(name: str) -> None:
    """The comment right above each class = "exclusive" or "waits" line gives the reason."""
    lines = (DATA / name).read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("class = ") and "shared" not in line:
            assert lines[i - 1].startswith("#"), f"{name}:{i + 1}: {line} without a why"
            assert line.split('"')[1] in lines[i - 1] or lines[i - 2].startswith("#"), i


def test_code_bits_default_to_the_elf_class(tmp_path: Path) -> None:
    """An image's code is decoded as its ELF class unless it says otherwise; upstream's x32
    image says otherwise: an ELF32 file of x86-64 code."""
    write(tmp_path, "up", UPSTREAM_LIKE)
    [image] = load_expectations("up", tmp_path).images
    assert (image.elf_class, image.code_bits) == (64, 64)
    x32 = next(i for i in load_expectations("upstream").images if i.name == "vdsox32")
    assert (x32.elf_class, x32.code_bits, x32.requires) == (32, 64, "CONFIG_X86_X32_ABI")
    assert [(f.role, f.pop_width) for f in x32.functions] == [("list64", 8), ("list32", 4)]
