# SPDX-License-Identifier: GPL-2.0
"""run --changed-only: which files a patch touches, what data/changed-only.toml selects for
them, the fooled cases (a file outside the map, a patch that names no file, two areas in
one patch), and how every output says that such a run is no series verdict."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from fake_tree import fake_tree, fragment
from plans import FAKEBIN
from test_kcidb import valid

from harness.cli import main
from harness.data import PATCHES
from harness.data.changed_only import ALL, ChangeMap, Group, PathEntry, load_change_map
from harness.data.guest_tests import GuestTest, load_guest_tests
from harness.errors import UserError
from harness.guest.plan import select as select_tests
from harness.kselftest.spec import load_spec
from harness.orchestration.selection import select, select_for_patches
from harness.outputs import kcidb
from harness.outputs.email import render_email
from harness.outputs.record import ChangedOnly, NotRun, Revision, Run
from harness.outputs.report import load_record, render_junit, render_table, write_reports
from harness.paths import cache_root
from harness.stages.patches import caught_by, touched_files
from harness.verdicts.checks import Check, Verdict

TESTS = load_guest_tests()
MAP = load_change_map()
MUTANTS = sorted((PATCHES / "mutants").glob("*.patch"))
SELFTEST_PROGRAMS = tuple(load_spec().programs)
TREE_73 = cache_root() / "src" / "linux-source-7.3_7.3.4-1~bpo13+1" / "linux-source-7.3"


def names(tests: tuple[GuestTest, ...]) -> set[str]:
    return {t.name for t in tests}


def diff(*paths: str) -> str:
    return "".join(f"diff --git a/{p} b/{p}\n--- a/{p}\n+++ b/{p}\n@@ -1 +1 @@\n-a\n+b\n"
                   for p in paths)


def patch(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(f"From: a <a@example.org>\nSubject: [PATCH] {name}\n\n---\n{text}")
    return path


# Which files a patch touches.

def test_a_git_patch_names_each_file_once(tmp_path: Path) -> None:
    p = patch(tmp_path, "two.patch", diff("kernel/futex/pi.c", "Documentation/a.rst"))
    assert touched_files(p) == ("Documentation/a.rst", "kernel/futex/pi.c")


def test_a_new_file_a_rename_and_a_quilt_patch(tmp_path: Path) -> None:
    new = patch(tmp_path, "new.patch", "diff --git a/x/new.c b/x/new.c\nnew file mode 100644\n"
                "--- /dev/null\n+++ b/x/new.c\n@@ -0,0 +1 @@\n+a\n")
    assert touched_files(new) == ("x/new.c",)
    moved = patch(tmp_path, "mv.patch", "diff --git a/old/f.c b/new/f.c\nsimilarity index 100%\n"
                  "rename from old/f.c\nrename to new/f.c\n")
    assert touched_files(moved) == ("new/f.c", "old/f.c")
    quilt = tmp_path / "quilt.patch"
    quilt.write_text("Index: linux/kernel/futex/pi.c\n--- linux.orig/kernel/futex/pi.c\n"
                     "+++ linux/kernel/futex/pi.c\n@@ -1 +1 @@\n-a\n+b\n")
    assert touched_files(quilt) == ("kernel/futex/pi.c",)


def test_the_commit_message_separator_is_no_file(tmp_path: Path) -> None:
    assert touched_files(patch(tmp_path, "none.patch", "just words\n")) == ()


# What the map selects.

def test_pi_c_selects_the_ops_and_the_pi_selftests() -> None:
    chosen, record = select(TESTS, ("kernel/futex/pi.c",), MAP)
    assert names(chosen) == {t.name for t in TESTS if t.name.startswith(
        ("robust-unlock-ops-", "robust-unlock-errors-", "robust-unlock-kernel-pop",
         "kselftest-futex", "fuzz-robust-unlock"))}
    assert not record.everything
    assert [e.match for e in record.entries] == ["kernel/futex/pi.c"]
    assert record.entries[0].files == ("kernel/futex/pi.c",)
    left = {n.test: n.groups for n in record.not_run}
    assert left["cs-fixup-singlestep-64"] == ("singlestep",)
    assert left["cs-fixup-singlestep-32bit"] == ("singlestep", "compat")
    assert left["kselftest-futex/futex_numa"] == ("selftests-not-pi",)
    whole = {n for n in left if "/" not in n}
    assert names(chosen).isdisjoint(whole) and len(chosen) + len(whole) == len(TESTS)
    selftests = next(t for t in chosen if t.name == "kselftest-futex")
    assert [p for p in SELFTEST_PROGRAMS if selftests.programs.runs(p)] == [
        p for p in SELFTEST_PROGRAMS if p in MAP.groups["selftests-pi"].programs(selftests.name)]
    assert selftests.programs.runs("robust_list") and not selftests.programs.runs("futex_numa")


def test_a_selftest_program_no_group_names_still_runs() -> None:
    """The fooled case: a program a newer tree adds is in no group, so a narrowed run must
    not drop it."""
    chosen, _ = select(TESTS, ("kernel/futex/pi.c",), MAP)
    selftests = next(t for t in chosen if t.name == "kselftest-futex")
    assert selftests.programs.runs("futex_new_in_7_4")


def test_a_whole_test_group_beats_its_program_groups() -> None:
    """tools/testing/selftests/ selects the whole selftests group: every program runs."""
    chosen, record = select(TESTS, ("kernel/futex/pi.c", "tools/testing/selftests/x.c"), MAP)
    selftests = next(t for t in chosen if t.name == "kselftest-futex")
    assert all(selftests.programs.runs(p) for p in SELFTEST_PROGRAMS)
    assert not [n for n in record.not_run if n.test.startswith("kselftest-futex")]


def test_every_selftest_program_is_in_a_program_group() -> None:
    """Every program data/kselftest.toml lists (all of 7.3's) is placed, so that an entry
    that selects program groups leaves out only what it means to."""
    placed = {p for g in MAP.groups.values() for p in g.programs("kselftest-futex")}
    assert set(SELFTEST_PROGRAMS) == placed


def test_a_file_outside_the_map_runs_everything() -> None:
    """The fooled case: a narrow file beside one the map does not know must not narrow."""
    chosen, record = select(TESTS, ("kernel/futex/pi.c", "kernel/futex/core.c"), MAP)
    assert chosen == TESTS and record.not_run == ()
    assert record.everything == "kernel/futex/core.c is not in changed-only.toml"


def test_a_patch_touching_two_areas_selects_the_union(tmp_path: Path) -> None:
    p = patch(tmp_path, "two.patch", diff("kernel/futex/pi.c",
                                          "arch/x86/entry/vdso/vdso32/vdso32.lds.S"))
    chosen, record = select_for_patches(TESTS, (p,), MAP)
    pi = names(select(TESTS, ("kernel/futex/pi.c",), MAP)[0])
    compat = names(select(TESTS, ("arch/x86/entry/vdso/vdso32/vdso32.lds.S",), MAP)[0])
    assert pi - compat and compat - pi
    assert names(chosen) == pi | compat
    assert {e.match for e in record.entries} == {"kernel/futex/pi.c",
                                                  "arch/x86/entry/vdso/vdso32/"}


def test_the_base_and_a_patch_without_files_run_everything(tmp_path: Path) -> None:
    chosen, record = select_for_patches(TESTS, (), MAP)
    assert chosen == TESTS and "base" in record.everything
    blind = patch(tmp_path, "blind.patch", "nothing git apply reads\n")
    doc = patch(tmp_path, "doc.patch", diff("Documentation/a.rst"))
    chosen, record = select_for_patches(TESTS, (doc, blind), MAP)
    assert chosen == TESTS and record.everything == "blind.patch names no file"


def test_documentation_alone_runs_no_guest_test() -> None:
    chosen, record = select(TESTS, ("Documentation/locking/robust-futexes.rst",), MAP)
    assert chosen == () and len(record.not_run) == len(TESTS)


def test_documentation_kconfig_runs_everything() -> None:
    """The top-level Kconfig sources Documentation/Kconfig: it can change the .config."""
    chosen, record = select(TESTS, ("Documentation/Kconfig",), MAP)
    assert chosen == TESTS and "Documentation/*Kconfig* selects all" in record.everything


def test_the_first_matching_entry_wins_and_all_means_everything() -> None:
    groups = {"a": Group("a", ("t-a",), "a"), "b": Group("b", ("t-b",), "b")}
    tests = tuple(GuestTest(n, (), (), None, None, (), 1, (), ("x",))
                  for n in ("t-a", "t-b", "t-new"))
    change_map = ChangeMap(groups, (PathEntry("d/narrow.c", ("a",), "narrow"),
                                    PathEntry("d/", ("b",), "broad"),
                                    PathEntry("w/*.c", (ALL,), "wide")))
    chosen, _ = select(tests, ("d/narrow.c",), change_map)
    # t-new is in no group: it always runs.
    assert names(chosen) == {"t-a", "t-new"}
    assert names(select(tests, ("d/other.c",), change_map)[0]) == {"t-b", "t-new"}
    chosen, record = select(tests, ("w/x/y.c",), change_map)
    assert chosen == tests and "w/*.c selects all (wide)" in record.everything


# The map itself.

def test_every_guest_test_is_in_a_group() -> None:
    """A new test must be placed in a group (it would run always otherwise)."""
    assert [t.name for t in TESTS if not any(g.holds(t.name) for g in MAP.groups.values())] == []


@pytest.mark.parametrize("group", sorted(MAP.groups))
def test_every_group_pattern_names_a_test(group: str) -> None:
    for pattern in MAP.groups[group].tests:
        test, _, program = pattern.partition("/")
        assert select_tests(TESTS, (test,)), pattern
        assert not program or program in SELFTEST_PROGRAMS, pattern


def test_every_32bit_program_is_in_the_compat_group() -> None:
    """vdso32/ selects compat alone: every test that runs a 32-bit program must be in it."""
    compat = MAP.groups["compat"]
    for t in TESTS:
        if "-m32" in t.cflags or t.image == "vdso32":
            assert compat.holds(t.name), t.name


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.stem for m in MUTANTS])
def test_every_mutant_is_still_caught_with_changed_only(mutant: Path) -> None:
    """The check a known-bad patch declares must catch it runs for that patch's files."""
    check = caught_by(mutant)
    assert check is not None
    chosen, _ = select_for_patches(TESTS, (mutant,), MAP)
    test, _, rest = check.partition("/")
    if test in {t.name for t in TESTS}:
        assert test in names(chosen), (mutant.name, check)
        picked = next(t for t in chosen if t.name == test)
        assert picked.kind != "ktap" or picked.programs.runs(rest.split("/")[0]), check


@pytest.mark.skipif(not TREE_73.is_dir(), reason="Debian's 7.3.4 tree is not unpacked")
def test_every_plain_entry_names_a_path_of_the_73_tree() -> None:
    for entry in MAP.paths:
        if not any(c in entry.match for c in "*?["):
            assert (TREE_73 / entry.match).exists(), entry.match


def test_a_bad_map_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "m.toml"
    bad.write_text('[groups.a]\ntests = ["x"]\nwhy = "w"\n'
                   '[[paths]]\nmatch = "k/"\nselects = ["nope"]\nwhy = "w"\n')
    with pytest.raises(UserError, match=r"k/ selects nope; the groups are: all, a"):
        load_change_map(bad)
    bad.write_text('[groups.a]\ntests = ["x"]\nwhy = "w"\n[[paths]]\nmatch = "k/"\nselects = []\n')
    with pytest.raises(UserError, match="k/ has no why"):
        load_change_map(bad)


# The outputs: never a series verdict.

def narrowed_run() -> Run:
    rev = Revision("series", series="s.patch", checks=[Check("elf-vdso64", Verdict.PASS)])
    rev.changed_only = ChangedOnly(("kernel/futex/pi.c",), "", (),
                                   (NotRun("cs-fixup-singlestep-64", ("singlestep",)),))
    return Run("futex-harness run --changed-only", "2026-12-05T11:00:00+0000", [rev])


def test_the_report_never_reads_as_a_series_pass(tmp_path: Path) -> None:
    run = narrowed_run()
    table = render_table(run)
    assert "overall: PASS" not in table and "verdict: PASS" not in table
    assert "overall: changed-only PASS, not a series verdict (exit 0; 1 guest tests" in table
    assert "singlestep: cs-fixup-singlestep-64" in table
    write_reports(tmp_path, run)
    assert load_record(tmp_path) == run
    assert json.loads((tmp_path / "results.json").read_text())["revisions"][0][
        "changed_only"]["not_run"] == [{"test": "cs-fixup-singlestep-64",
                                        "groups": ["singlestep"]}]


def test_email_junit_and_kcidb_say_what_did_not_run() -> None:
    run = narrowed_run()
    mail = render_email(run, tester="T <t@example.org>")
    assert "Tested-by" not in mail and "changed-only PASS, not a series verdict" in mail
    suite = ET.fromstring(render_junit(run)).find("testsuite")
    assert suite is not None and suite.get("skipped") == "1" and suite.get("tests") == "2"
    doc = valid(kcidb.to_kcidb(run, "futex_harness"))
    left = [t for t in doc["tests"] if t["misc"]["check"] == "cs-fixup-singlestep-64"]
    assert [t["status"] for t in left] == ["SKIP"] and "not run" in left[0]["comment"]
    assert "changed_only" in doc["builds"][0]["misc"]


def test_a_fake_tree_run_of_a_documentation_patch_boots_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pipeline end to end on the fake tree: a patch the map sends to no guest test
    builds and checks the tree, but no guest test is built and nothing boots."""
    monkeypatch.setenv("PATH", f"{FAKEBIN}:{os.environ['PATH']}")
    frags = fragment(tmp_path, "s.config", "CONFIG_FUTEX=y\nCONFIG_RSEQ=y\n").parent
    doc = tmp_path / "doc.patch"
    doc.write_text("From: a <a@example.org>\nSubject: [PATCH] doc\n\n---\n"
                   "diff --git a/Documentation/x.rst b/Documentation/x.rst\nnew file mode 100644\n"
                   "--- /dev/null\n+++ b/Documentation/x.rst\n@@ -0,0 +1 @@\n+words\n")
    main(["run", "--kernel-src", str(fake_tree(tmp_path)), "--config-dir", str(frags),
          "--config-variant", "vng", "--run-dir", str(tmp_path / "run"), "--series", str(doc),
          "--no-base", "--changed-only", "--accel", "tcg"])
    rev = load_record(tmp_path / "run").revisions[0]
    assert rev.changed_only is not None and rev.changed_only.files == ("Documentation/x.rst",)
    # Only the suites the run boots: the stress tests are no tests left out.
    assert {n.test for n in rev.changed_only.not_run} == {t.name for t in TESTS
                                                          if t.suite == "default"}
    assert [s.name for s in rev.stages if s.name.startswith(("guest-build", "boot"))] == []
    assert "not a series verdict" in (tmp_path / "run" / "report.txt").read_text()
