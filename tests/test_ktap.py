# SPDX-License-Identifier: GPL-2.0
"""KTAP/TAP parsing on captured kselftest output (tests/data/ktap/SOURCES.md says where each
file came from) and on small hand-written documents for what no capture shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.kselftest import ktap
from harness.kselftest.ktap import Directive, KtapPlan

KTAP = Path(__file__).resolve().parent / "data" / "ktap"


def doc(name: str) -> ktap.KtapDocument:
    return ktap.parse_document((KTAP / name).read_bytes())


def by_name(results: tuple[ktap.KtapResult, ...] | list[ktap.KtapResult]
            ) -> dict[str, ktap.KtapResult]:
    return {r.name: r for r in results}


def test_host_robust_list_every_subtest_in_order() -> None:
    d = doc("host-6.18-robust_list.txt")
    assert d.plan == KtapPlan(17)
    assert [r.number for r in d.results] == list(range(1, 18))
    assert d.results[0].name == "global.test_robustness"
    assert all(r.complete for r in d.results)


def test_inner_skip_belongs_to_the_running_test() -> None:
    """The trap: the harness prints `ok 10 name` for a test that skipped inside."""
    r = by_name(doc("host-6.18-robust_list.txt").results)[
        "vdso_unlock.64.test_robust_try_unlock_uncontended"]
    assert r.number == 10
    assert r.ok and r.skipped
    assert r.reason == "__vdso_futex_robust_list64_try_unlock not found"
    assert [(i.number, i.name, i.directive) for i in r.inner] == [(1, "", Directive.SKIP)]
    assert r.diagnostics == ("ok 1 # SKIP __vdso_futex_robust_list64_try_unlock not found",)


def test_inner_skip_does_not_leak_into_the_next_test() -> None:
    results = by_name(doc("host-6.18-robust_list.txt").results)
    assert results["global.test_circular_list"].directive is None
    op = results["futex_op.wake.test_futex_robust_unlock"]
    assert not op.ok and op.directive is None and op.inner == ()
    assert op.diagnostics[0].endswith("Expected ret (-1) == 0 (0)")


def test_harness_skip_on_the_result_line() -> None:
    (r,) = doc("host-6.18-futex_numa_mpol.txt").results
    assert r.name == "global.futex_numa_mpol"
    assert r.ok and r.skipped
    assert r.reason == "futex2 MPOL hints test requires libnuma 2.0.18+"
    assert "futex_numa_mpol.c:159:futex_numa_mpol:Regular test" in r.diagnostics


def test_an_inner_not_ok_fails_a_test_the_harness_calls_ok() -> None:
    text = ("TAP version 13\n1..1\n#  RUN           global.t ...\n"
            "not ok 1 set_robust_list error\n#            OK  global.t\nok 1 global.t\n")
    (r,) = ktap.parse(text)
    assert not r.ok
    assert r.reason == "reported inside: set_robust_list error"


def test_truncated_mid_line_is_an_incomplete_result() -> None:
    d = doc("derived-robust_list.truncated.txt")
    assert len(d.results) == 10
    last = d.results[-1]
    assert last.name == "vdso_unlock.64.test_robust_try_unlock_uncontended"
    assert not last.complete and not last.ok and last.number is None
    assert "output ended while it ran" in last.reason
    assert sum(r.complete for r in d.results) == 9


def test_killed_while_running() -> None:
    d = doc("host-6.18-futex_wait_uninitialized_heap.killed.txt")
    (r,) = d.results
    assert r.name == "global.futex_wait_uninitialized_heap"
    assert not r.complete
    assert d.plan == KtapPlan(1)


def test_output_the_test_child_kept_writing_after_a_kill() -> None:
    (r,) = doc("host-6.18-futex_wait_private_mapped_file.killed.txt").results
    assert not r.complete
    assert r.diagnostics[-1].endswith("futex_wait: ret = 0, errno = 0")


def test_harness_ok_line_without_result_line_is_noted() -> None:
    text = "1..1\n#  RUN           global.t ...\n#            OK  global.t\n"
    (r,) = ktap.parse(text)
    assert not r.complete
    assert r.reason.endswith("the harness had printed OK")


def test_non_utf8_bytes_and_carriage_returns() -> None:
    d = doc("derived-robust_list.non-utf8.txt")
    assert [r.number for r in d.results] == list(range(1, 18))
    assert by_name(d.results)["global.test_get_robust_list_self"].ok
    assert ktap.parse(b"ok 1 caf\xe9\n")[0].name == "caf\\xe9"


def test_nested_ktap() -> None:
    d = doc("hand-nested.ktap")
    assert d.plan == KtapPlan(2)
    suite, truncated = d.results
    assert (suite.name, suite.ok, suite.complete) == ("futex_robust", False, True)
    assert [(s.name, s.ok, s.directive) for s in suite.subtests] == [
        ("uncontended", True, None), ("contended", False, None),
        ("list32", True, Directive.SKIP)]
    assert suite.subtests[1].diagnostics == (
        "contended: EXPECTATION FAILED at kernel/futex/test.c:42",)
    assert (truncated.name, truncated.complete) == ("truncated_suite", False)
    assert [s.name for s in truncated.subtests] == ["first"]


def test_no_plan_repeated_numbers_directives_and_bail_out() -> None:
    d = doc("hand-no-plan.tap")
    assert d.plan is None
    assert d.bail_out == "the test program gave up"
    got = [(r.number, r.name, r.ok, r.directive, r.reason) for r in d.results]
    assert got == [
        (1, "first", True, None, ""),
        (1, "first again, numbered twice", True, None, ""),
        (2, "second", False, Directive.TODO, "not written yet"),
        (None, "third without a number", True, None, ""),
        (4, "escaped # hash", False, Directive.ERROR, "the ksft_test_result_error form"),
        (5, "name", True, None, "message after a double space"),
    ]


def test_whole_program_skipped() -> None:
    d = doc("hand-skip-all.tap")
    assert d.results == ()
    assert d.plan == KtapPlan(0, "futex2 is not supported by this kernel")


@pytest.mark.parametrize("text", ["", "\n\n", "garbage only\n", "\x00\x00"])
def test_nothing_to_parse(text: str) -> None:
    assert ktap.parse(text) == []


@pytest.mark.parametrize("path", sorted(KTAP.iterdir()), ids=lambda p: p.name)
def test_every_golden_parses_and_is_described(path: Path) -> None:
    ktap.parse_document(path.read_bytes())
    if path.name != "SOURCES.md":
        assert f"`{path.name}`" in (KTAP / "SOURCES.md").read_text()


def test_only_whole_ok_words_start_a_result() -> None:
    (result,) = ktap.parse("okay then\nok, done\nnot okay\nok\n")
    assert (result.number, result.name, result.ok) == (None, "", True)
    assert result.diagnostics == ("okay then", "ok, done", "not okay")
    assert [r.name for r in ktap.parse("progress 50%\rok 1 fake\nok 2 real\n")] == ["real"]


def test_harness_failures_from_a_stderr_kept_apart() -> None:
    stderr = (KTAP / "guest-7.3-mutant-contended-jumps-to-store.robust_list.stderr").read_text()
    assert ktap.harness_failures(stderr) == [
        ("test_robust_try_unlock_contended", (
            "robust_list.c:713:test_robust_try_unlock_contended:Expected "
            "head.list_op_pending (140724603453440) == &lock.list (140726521792680)",
            "test_robust_try_unlock_contended: Test terminated by assertion")),
        ("test_robust_try_unlock_contended", (
            "robust_list.c:713:test_robust_try_unlock_contended:Expected "
            "head.list_op_pending (0) == &lock.list (140726521792680)",
            "test_robust_try_unlock_contended: Test terminated by assertion")),
    ]
    assert ktap.harness_failures("") == []


def test_an_inner_xfail_marks_a_test_the_harness_calls_ok() -> None:
    text = ("TAP version 13\n1..1\n#  RUN           global.t ...\n"
            "ok 1 # XFAIL known broken\n#            OK  global.t\nok 1 global.t\n")
    (r,) = ktap.parse(text)
    assert r.ok and r.directive == Directive.XFAIL and r.reason == "known broken"
