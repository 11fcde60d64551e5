# SPDX-License-Identifier: GPL-2.0
"""robust-unlock-errors: its case file is valid, in the TOML subset its guest program parses,
travels with the plan, and the program runs every case on the host kernel (which lacks the
series, so only its own machinery is judged here)."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from test_guest import BOTH_PASS, BUILT, FACTS, OPS, ROLES

from harness.data import DATA, GUEST_TESTS
from harness.data.expectations import load_expectations
from harness.errors import UserError
from harness.guest.plan import GuestPlanRequest, copy_files, make_plan
from harness.guest.protocol import read_plan
from harness.stages.vdso import VdsoResult

CASES_FILE = DATA / "robust-unlock-errors.toml"
CASES = tomllib.loads(CASES_FILE.read_text())["cases"]
NAMES = ("robust-unlock-errors-64", "robust-unlock-errors-list32", "robust-unlock-errors-32bit")
TESTS = {t.name: t for t in BUILT if t.name in NAMES}
SOURCE = (GUEST_TESTS / "robust_unlock_errors.c").read_text()
# Every value the guest program understands, per key; its defaults are the first.
CHOICES = {
    "ops": {"wake", "bitset", "pi", "command"},
    "call": {"futex", "futex_wake", "futex_wait", "futex_waitv", "futex_requeue"},
    "extra": {"none", "clock_realtime", "list32_only"},
    "lock": {"mine_waiters", "mine", "other", "zero", "owner_died"},
    "uaddr": {"aligned", "unaligned", "unmapped"},
    "pop": {"mark", "unmapped", "readonly", "kernel"},
    "val3": {"bits", "zero"},
    "waiter": {"none", "asleep", "woken"},
    "lock_after": {"same", "zero"},
}
# One key = value per line: a string without quotes inside, a number, a one-line array.


def planned(tmp_path: Path) -> dict[str, list[str]]:
    """The three tests' argv in a plan of their own."""
    make_plan(GuestPlanRequest(tuple(TESTS.values()), VdsoResult(BOTH_PASS, FACTS, ROLES),
                               tmp_path / "rw", tmp_path / "logs", 120, ops=OPS))
    return {e.name: list(e.argv) for e in read_plan(tmp_path / "rw").entries}


_LINE = re.compile(r'^(#.*|\[\[cases\]\]|\[syscalls\]|\[futex2\]|'
                   r'\w+ = ("[^"]*"|\d+|\[[^\]]*\]))?$')


def test_the_file_is_in_the_subset_the_guest_program_parses() -> None:
    bad = [ln for ln in CASES_FILE.read_text().splitlines() if not _LINE.match(ln.strip())]
    assert bad == []


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_every_case_is_one_the_program_can_run(case: dict[str, object]) -> None:
    for key, allowed in CHOICES.items():
        values = case.get(key, [])
        for value in values if isinstance(values, list) else [values]:
            assert value in allowed, (key, value)
    # Exactly one outcome, an errno the program knows, and the source named.
    assert ("errno" in case) != ("ret" in case)
    assert "errno" not in case or f'{{ "{case["errno"]}",' in SOURCE
    assert re.search(r"\b\w+\.c\b", str(case["why"]))
    assert set(case["abi"]) <= {64, 32} and case["abi"]
    ops = load_expectations("upstream").ops or {}
    if case["ops"] == ["command"] and case.get("call", "futex") == "futex":
        assert case["command"] in ops
    # A plain FUTEX_WAIT waiter on a PI word changes the error (pi-plain-waiter's EINVAL).
    if case["ops"] == ["pi"] and case.get("pop", "mark") != "mark":
        assert case["waiter"] == "none"


def test_every_class_is_required_and_every_required_class_exists() -> None:
    classes = {f"{c['class']}_cases" for c in CASES}
    for test in TESTS.values():
        assert classes == {r for r in test.require if r.endswith("_cases")}, test.name
    # The 32-bit program runs no kernel-address case; every class still has cases there.
    assert classes == {f"{c['class']}_cases" for c in CASES if 32 in c["abi"]}


def test_the_plan_ships_the_file_and_names_it(tmp_path: Path) -> None:
    entries = planned(tmp_path)
    for name in NAMES:
        argv = entries[name]
        shipped = Path(argv[argv.index("--cases") + 1])
        assert shipped == tmp_path / "rw" / "bin" / CASES_FILE.name
        assert shipped.read_text() == CASES_FILE.read_text()


def test_a_missing_data_file_is_the_users_error(tmp_path: Path) -> None:
    test = dataclasses.replace(TESTS["robust-unlock-errors-64"], files=("no-such.toml",))
    with pytest.raises(UserError, match=r"reads .*no-such\.toml, which does not exist"):
        copy_files(test, tmp_path)


@pytest.mark.parametrize("name", ["robust-unlock-errors-64", "robust-unlock-errors-32bit"])
def test_every_case_runs_on_this_host(tmp_path: Path, name: str) -> None:
    # The host kernel predates the series: its errnos differ, but every case is set up and
    # run, and the dying runner's robust mutex is still handed over with EOWNERDEAD.
    done = subprocess.run(planned(tmp_path)[name], capture_output=True, text=True, timeout=120)
    record = json.loads(done.stdout)
    runs = record["cases"]
    assert runs == sum(v for k, v in record.items() if k.startswith("case_")) > 100
    assert record["all_set_up"] == record["owner_died_checked"] == 1
    assert record["robust_list_lost"] == record["canary_bad"] == 0, done.stderr


def test_an_unknown_key_stops_the_program(tmp_path: Path) -> None:
    argv = planned(tmp_path)["robust-unlock-errors-64"]
    broken = tmp_path / "broken.toml"
    broken.write_text('[[cases]]\nname = "x"\nerrnos = "EFAULT"\n')
    argv[argv.index("--cases") + 1] = str(broken)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and f"{broken}:3: unknown key" in done.stderr
