# SPDX-License-Identifier: GPL-2.0
"""The guest binary cache, with real gcc: a second build reuses, and a changed source,
header, flag or uapi header compiles again."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

from test_guest import BOTH_PASS, BUILT, FACTS, OPS, ROLES
from test_kselftest import request, tiny_tree

from harness.guest.cache import BinaryCache
from harness.guest.plan import GuestPlanRequest, make_plan
from harness.kselftest import programs as ks
from harness.stages.vdso import VdsoResult

PROGRAM = '#include <stdio.h>\n#include "value.h"\nint main(void) { printf("%d\\n", VALUE); }\n'


def program(tmp_path: Path, value: int) -> Path:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "value.h").write_text(f"#define VALUE {value}\n")
    (src / "main.c").write_text(PROGRAM)
    return src / "main.c"


def build(tmp_path: Path, source: Path, *flags: str) -> tuple[bool, str, BinaryCache]:
    """Build with a fresh cache object (as a new run would), run the binary."""
    binaries = BinaryCache(tmp_path / "cache")
    out = tmp_path / "out" / "prog"
    out.parent.mkdir(exist_ok=True)
    reused = binaries.compile(["gcc", "-O2", *flags, source], out, log_file=tmp_path / "log",
                              timeout=60)
    return reused, subprocess.run([out], check=True, capture_output=True, text=True).stdout, \
        binaries


def test_same_sources_and_flags_reuse_the_binary(tmp_path: Path) -> None:
    source = program(tmp_path, 1)
    assert build(tmp_path, source)[:2] == (False, "1\n")
    (tmp_path / "out" / "prog").unlink()
    reused, out, binaries = build(tmp_path, source)
    assert (reused, out, binaries.compiled, binaries.reused) == (True, "1\n", 0, 1)


def test_a_changed_header_source_or_flag_compiles_again(tmp_path: Path) -> None:
    source = program(tmp_path, 1)
    build(tmp_path, source)
    (source.parent / "value.h").write_text("#define VALUE 2\n")
    assert build(tmp_path, source)[:2] == (False, "2\n")
    source.write_text(PROGRAM.replace("%d\\n", "v%d\\n"))
    assert build(tmp_path, source)[:2] == (False, "v2\n")
    assert build(tmp_path, source, "-DEXTRA")[:2] == (False, "v2\n")
    assert build(tmp_path, source, "-DEXTRA")[:2] == (True, "v2\n")
    # Back to an earlier header: that binary is still in the cache.
    (source.parent / "value.h").write_text("#define VALUE 1\n")
    source.write_text(PROGRAM)
    assert build(tmp_path, source)[:2] == (True, "1\n")


def test_no_cache_always_compiles(tmp_path: Path) -> None:
    source = program(tmp_path, 3)
    binaries = BinaryCache(None)
    for _ in range(2):
        assert not binaries.compile(["gcc", source], tmp_path / "prog",
                                    log_file=tmp_path / "log", timeout=60)
    assert binaries.compiled == 2 and not (tmp_path / "cache").exists()


def test_selftests_reuse_until_the_uapi_headers_change(tmp_path: Path) -> None:
    tree = tiny_tree(tmp_path)

    def selftests() -> tuple[BinaryCache, str]:
        binaries = BinaryCache(tmp_path / "cache")
        built = ks.build(dataclasses.replace(request(tmp_path, tree), binaries=binaries))
        return binaries, subprocess.run([built[0].path], check=True, capture_output=True,
                                        text=True).stdout

    first, out = selftests()
    assert (first.compiled, first.reused, out) == (2, 0, "1..1\nok 1 tiny 512\n")
    again, _ = selftests()
    assert (again.compiled, again.reused) == (0, 2)
    makefile = tree / "Makefile"
    makefile.write_text(makefile.read_text().replace("512", "513"))
    changed, out = selftests()
    assert (changed.compiled, changed.reused, out) == (2, 0, "1..1\nok 1 tiny 513\n")


def test_second_plan_reuses_every_compiled_test(tmp_path: Path) -> None:
    tests = tuple(t for t in BUILT if t.name in ("fork-exec-64", "fork-exec-32bit"))
    vdso = VdsoResult(BOTH_PASS, FACTS, ROLES)

    def make(run: str) -> tuple[int, int, bytes]:
        done = make_plan(GuestPlanRequest(tests, vdso, tmp_path / run, tmp_path / "logs", 120,
                                     ops=OPS, cache=tmp_path / "cache"))
        return done.compiled, done.reused, (tmp_path / run / "bin" / "fork-exec-64").read_bytes()

    first, second = make("one"), make("two")
    assert first[:2] == (2, 0) and second[:2] == (0, 2) and first[2] == second[2]


def test_a_cache_that_cannot_keep_the_binary_still_builds(tmp_path: Path) -> None:
    source = program(tmp_path, 4)
    (tmp_path / "cache").write_text("a file where the cache directory should be\n")
    reused, out, binaries = build(tmp_path, source)
    assert (reused, out, binaries.compiled) == (False, "4\n", 1)
