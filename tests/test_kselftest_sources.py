# SPDX-License-Identifier: GPL-2.0
"""Series subtests against the tree's own selftest source: data/kselftest.toml's [series] is
a floor, every other reported subtest is judged too, and a listed subtest the tree's
robust_list.c lacks is a FAIL that says so (a rename), not "not reported" (a kernel bug)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from test_kselftest import KSELFTEST_TEST, tiny_tree

from harness.guest.plan import GuestPlanRequest, make_plan
from harness.kselftest import ktap
from harness.kselftest import programs as ks
from harness.kselftest.programs import KselftestBinary, RunOutcome
from harness.kselftest.sources import (
    ProgramSource,
    defined_subtests,
    rerun_sources,
    series_sources,
)
from harness.kselftest.spec import load_spec
from harness.stages.vdso import VdsoResult
from harness.verdicts.checks import Check, Verdict
from harness.verdicts.kselftest import judge

DATA = Path(__file__).resolve().parent / "data"
SOURCE = (DATA / "kselftest-sources" / "robust_list.c").read_text()
OUTPUT = (DATA / "ktap" / "guest-7.3-robust_list.txt").read_text()
SPEC = load_spec()
OLD = "test_robust_try_unlock_uncontended"
NEW = "test_try_unlock_uncontended"
LISTED = "vdso_unlock.64." + OLD


def name(subtest: str = "") -> str:
    return SPEC.check_name("robust_list", subtest)


def judged(output: str, source: str | None, series_present: bool = True) -> dict[str, Check]:
    """robust_list's checks from one run's output, with the tree's source when given."""
    # The main run only: robust_list has no reruns.
    runs = ks.plan_runs([KselftestBinary("robust_list", Path("/bin/robust_list"), 45.0)], SPEC)
    sources = {}
    if source is not None:
        names = defined_subtests(source)
        assert names is not None
        sources["robust_list"] = ProgramSource("robust_list.c", names)
    checks = judge(SPEC, runs, {runs[0].name: RunOutcome(output, 0, False, 1.0)},
                   series_present, None, sources)
    return {c.name: c for c in checks if c.name.startswith(name() + "/")}


def test_the_7_3_skeleton_defines_exactly_what_7_3_printed() -> None:
    printed = {r.name for r in ktap.parse(OUTPUT)}
    assert defined_subtests(SOURCE) == printed
    assert len(printed) == 17


def test_a_fixture_without_variants_and_comments() -> None:
    text = ("FIXTURE(f) {};\nTEST_F(f, plain) {}\nTEST_F_TIMEOUT(f, slow, 60) {}\n"
            "TEST_SIGNAL(dies, SIGABRT) {}\n/* TEST(commented_out) */\n// TEST(too)\n"
            "TEST_HARNESS_MAIN\n")
    assert defined_subtests(text) == {"f.plain", "f.slow", "global.dies"}


def test_a_program_without_kselftest_harness_is_not_read() -> None:
    """futex_numa and its like print no harness names: nothing can be said of them."""
    assert defined_subtests("int main(void) { ksft_print_header(); }\n") is None


def test_a_renamed_series_subtest_reads_as_a_rename() -> None:
    """The fooled case: a revision renames a series subtest in robust_list.c. Its output
    lacks the listed name, which read "not reported, but the series provides it", as if
    the kernel had lost the subtest."""
    output = OUTPUT.replace(OLD, NEW)
    checks = judged(output, SOURCE.replace(OLD, NEW))
    renamed = [c for c in checks.values() if c.verdict != Verdict.PASS]
    assert [c.name for c in renamed] == [name("vdso_unlock.32." + OLD), name(LISTED)]
    assert checks[name(LISTED)].detail.startswith(
        f"the tree's robust_list.c has no {LISTED}: data/kselftest.toml's [series] lists it")
    # The new names are judged too, as any reported subtest is.
    assert checks[name("vdso_unlock.64." + NEW)].verdict == Verdict.PASS
    # Without the source to read, the same output still fails, the old way.
    assert judged(output, None)[name(LISTED)].detail == ("not reported, but the series "
                                                         "provides it")


def test_a_series_subtest_the_source_defines_but_never_reported_is_the_kernels() -> None:
    output = "\n".join(ln for ln in OUTPUT.splitlines() if "64." + OLD not in ln)
    check = judged(output, SOURCE)[name(LISTED)]
    assert (check.verdict, check.detail) == (Verdict.FAIL,
                                            "not reported, but the series provides it")


def test_without_the_series_a_missing_subtest_is_not_applicable_as_before() -> None:
    output = OUTPUT.replace(OLD, NEW)
    check = judged(output, SOURCE.replace(OLD, NEW), series_present=False)[name(LISTED)]
    assert (check.verdict, check.detail) == (Verdict.NOT_APPLICABLE,
                                            "series absent (not reported)")


def test_a_reported_subtest_the_data_file_does_not_list_is_judged_too() -> None:
    """The list is a floor: a new subtest that fails is a FAIL, not ignored."""
    extra = "not ok 18 vdso_unlock.64.test_new_thing\n"
    output = OUTPUT.replace("1..17", "1..18").replace("# PASSED", extra + "# PASSED")
    checks = judged(output, SOURCE)
    assert checks[name("vdso_unlock.64.test_new_thing")].verdict == Verdict.FAIL


def test_the_plan_reads_the_tree_whose_selftests_did_not_build(tmp_path: Path) -> None:
    """The series subtests of selftests that did not build also name the ones the tree's
    robust_list.c lacks."""
    tree = tiny_tree(tmp_path)
    functional = tree / SPEC.directory
    (functional / "second.c").write_text("int main(void) { return nope; }\n")
    (functional / "robust_list.c").write_text(SOURCE.replace(OLD, NEW))
    (tmp_path / "logs").mkdir()
    plan = make_plan(GuestPlanRequest((KSELFTEST_TEST,), VdsoResult((), {}), tmp_path / "rw",
                                      tmp_path / "logs", 60.0, tree=tree,
                                      build_dir=tmp_path / "build"))
    checks = {c.name: c for c in plan.skipped}
    assert checks[name(LISTED)].detail.startswith(f"the tree's robust_list.c has no {LISTED}")
    assert checks[name("vdso_unlock.64.test_robust_try_unlock_contended")].detail == (
        "robust_list was not built: the selftests did not build, but the series provides it")


def test_series_sources_skips_what_cannot_be_read(tmp_path: Path) -> None:
    (tmp_path / SPEC.directory).mkdir(parents=True)
    assert series_sources(SPEC, tmp_path) == {}
    (tmp_path / SPEC.directory / "robust_list.c").write_text(SOURCE)
    assert series_sources(SPEC, tmp_path)["robust_list"].file == "robust_list.c"


def test_the_selftests_get_lib_mks_gnu_source(tmp_path: Path) -> None:
    """lib.mk builds every selftest with -D_GNU_SOURCE=; 6.12's futex programs print
    basename(argv[0]) from <string.h> alone, which declares it only then. Built without it,
    each died of SIGSEGV after its TAP plan (6.12's column in bench/results/kernels/, before)."""
    source = tmp_path / "uses_basename.c"
    source.write_text("#include <string.h>\n"
                      "int main(int argc, char **argv) { return *basename(argv[0]) == 0; }\n")
    flags = load_spec().build.cflags
    done = subprocess.run(["gcc", "-Werror=implicit-function-declaration", *flags, "-c",
                           str(source), "-o", str(tmp_path / "out.o")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


OUTPUT_6_12 = (DATA / "ktap" / "guest-6.12-futex_wait.txt").read_text()
LISTED_WAIT = SPEC.check_name("futex_wait", "global.private_futex")
NOT_HARNESS = ProgramSource("futex_wait.c", frozenset(), harness=False)


def futex_wait(output: str, source: ProgramSource | None,
               exit_code: int = 0) -> dict[str, Check]:
    """futex_wait's checks, its main run and reruns all giving this output."""
    runs = ks.plan_runs([KselftestBinary("futex_wait", Path("/bin/futex_wait"), 45.0)], SPEC)
    outcomes = {r.name: RunOutcome(output, exit_code, False, 1.0) for r in runs}
    checks = judge(SPEC, runs, outcomes, True, None,
                   {"futex_wait": source} if source else None)
    return {c.name: c for c in checks if c.name.startswith(SPEC.check_name("futex_wait"))}


def test_a_timing_sensitive_subtest_an_older_program_does_not_define_is_not_applicable() -> None:
    """The fooled case: 6.12's futex_wait.c is no kselftest_harness program and names its
    subtests "futex_wake private succeeds"; the reruns of 7.3's global.private_futex read
    ERROR "not reported", as if the program had lost the subtest."""
    checks = futex_wait(OUTPUT_6_12, NOT_HARNESS)
    assert checks[LISTED_WAIT].verdict == Verdict.NOT_APPLICABLE
    assert checks[LISTED_WAIT].detail.startswith(
        "the tree's futex_wait.c, which is no kselftest_harness program, defines no "
        "global.private_futex")
    # Its own subtests are judged, and the source unread keeps the old ERROR.
    assert checks[SPEC.check_name("futex_wait", "futex_wake private succeeds")].verdict \
        == Verdict.PASS
    assert futex_wait(OUTPUT_6_12, None)[LISTED_WAIT].verdict == Verdict.ERROR


def test_a_timing_sensitive_subtest_the_source_defines_and_a_crash_still_count() -> None:
    defines = ProgramSource("futex_wait.c",
                            frozenset({"global.private_futex", "global.file_backed"}))
    assert futex_wait(OUTPUT_6_12, defines)[LISTED_WAIT].verdict == Verdict.ERROR
    crashed = futex_wait("TAP version 13\n1..3\n", NOT_HARNESS, exit_code=-11)
    assert crashed[SPEC.check_name("futex_wait")].verdict == Verdict.ERROR


def test_rerun_sources_reads_harness_and_plain_programs(tmp_path: Path) -> None:
    functional = tmp_path / SPEC.directory
    functional.mkdir(parents=True)
    (functional / "futex_wait.c").write_text("int main(void) { return 0; }\n")
    (functional / "futex_waitv.c").write_text("TEST(private_waitv) {}\nTEST_HARNESS_MAIN\n")
    found = rerun_sources(SPEC, tmp_path)
    assert found["futex_wait"] == NOT_HARNESS
    assert found["futex_waitv"].subtests == {"global.private_waitv"}
    assert found["futex_waitv"].harness
    assert "futex_requeue_pi" not in found
