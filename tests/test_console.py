# SPDX-License-Identifier: GPL-2.0
"""Console triage: golden consoles (captured and hand-written), single headlines, the check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.errors import UserError
from harness.verdicts.checks import Check, Verdict
from harness.verdicts.console import (
    DETAIL_TITLES,
    PATTERNS,
    Splat,
    console_check,
    default_patterns,
    load_patterns,
    scan,
)

CONSOLES = Path(__file__).resolve().parent / "data" / "consoles"
LOGS = sorted(CONSOLES.glob("*.log"))


def expected(log: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(log.with_suffix(".expected.json").read_text())
    return data


def read_console(log: Path) -> str:
    """The same decoding console_check uses."""
    return log.read_text(encoding="utf-8", errors="backslashreplace")


def summary(splats: list[Splat]) -> list[tuple[int, str, str]]:
    return [(s.line, s.kind, s.title) for s in splats]


@pytest.mark.parametrize("log", LOGS, ids=[p.stem for p in LOGS])
def test_golden_console(log: Path) -> None:
    want = expected(log)
    assert want["source"].startswith(("captured", "hand-written")), "say where the log came from"
    got = scan(read_console(log))
    assert summary(got) == [(s["line"], s["kind"], s["title"]) for s in want["splats"]]
    for splat, spec in zip(got, want["splats"], strict=True):
        if "lines" in spec:
            assert list(splat.lines) == spec["lines"]


def test_every_expected_file_has_its_log() -> None:
    orphans = [p.name for p in CONSOLES.glob("*.expected.json")
               if not p.with_name(p.name.replace(".expected.json", ".log")).exists()]
    assert not orphans


def test_goldens_cover_every_kind_and_hard_case() -> None:
    kinds = {s["kind"] for log in LOGS for s in expected(log)["splats"]}
    patterns = default_patterns()
    known = {h.kind for h in patterns.headlines} | {p.kind for p in patterns.preambles}
    assert known <= kinds
    raw = {log.stem: log.read_bytes() for log in LOGS}
    assert any(not expected(CONSOLES / f"{n}.log")["splats"] for n in raw), "a clean console"
    assert any(not b.endswith(b"\n") for b in raw.values()), "a console cut mid-line"
    assert any(_not_utf8(b) for b in raw.values()), "a console with non-UTF-8 bytes"
    mid_test = expected(CONSOLES / "panic-mid-test.log")["splats"]
    assert "futex-harness: start" in read_console(CONSOLES / "panic-mid-test.log")
    assert [s["kind"] for s in mid_test] == ["bug", "panic"]


def _not_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return True
    return False


@pytest.mark.parametrize(("line", "kind"), [
    ("BUG: KASAN: invalid-access", "kasan"),
    ("BUG: KFENCE: memory corruption in kfree+0x5e/0x3d0", "kfence"),
    ("UBSAN: signed-integer-overflow in kernel/futex/core.c:12:3", "ubsan"),
    ("WARNING: possible recursive locking detected", "lockdep"),
    ("WARNING: HARDIRQ-safe -> HARDIRQ-unsafe lock order detected", "lockdep"),
    ("WARNING: bad unlock balance detected!", "lockdep"),
    ("WARNING: suspicious RCU usage", "lockdep"),
    ("BUG: MAX_LOCKDEP_CHAINS too low!", "lockdep"),
    ("INFO: trying to register non-static key.", "lockdep"),
    ("NMI watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [remap_exit:81]", "soft-lockup"),
    ("NMI watchdog: Watchdog detected hard LOCKUP on cpu 1", "hard-lockup"),
    ("INFO: task Web Content:812 blocked in I/O wait for more than 122 seconds.", "hung-task"),
    ("INFO: rcu_tasks detected stalls on tasks:", "rcu-stall"),
    ("rcu: INFO: rcu_preempt detected stall, but suppressed full report due to a stuck CSD-lock.",
     "rcu-stall"),
    ("Kernel panic - not syncing: RCU Stall", "panic"),
    ("BUG: Bad page state in process remap_exit  pfn:0b3e1", "bug"),
    ("BUG: sleeping function called from invalid context at kernel/locking/mutex.c:580", "bug"),
    ("Internal error: Oops: 0000000096000004 [#1] PREEMPT SMP", "oops"),
    ("stack segment: 0000 [#1] PREEMPT SMP KASAN NOPTI", "oops"),
    ("WARNING: at futex_cleanup+0x5f8/0x6e0, CPU#1: remap_exit/404", "warning"),
    # The first lines the debug variant's detectors print, as 7.3's sources write them
    # (kernel/locking/lockdep.c, mm/kasan/report.c, lib/ubsan.c, kernel/sched/core.c,
    # kernel/hung_task.c, kernel/watchdog.c, kernel/rcu/tree_stall.h, kernel/panic.c).
    ("WARNING: chain_key collision", "lockdep"),
    ("WARNING: kworker/u4:1/37 still has locks held!", "lockdep"),
    ("WARNING: lock held when returning to user space!", "lockdep"),
    ("WARNING: possible circular locking dependency detected", "lockdep"),
    ("BUG: KASAN: slab-use-after-free in futex_unqueue+0x2a/0x90", "kasan"),
    ("UBSAN: array-index-out-of-bounds in kernel/futex/core.c:2048:3", "ubsan"),
    ("BUG: sleeping function called from invalid context at kernel/futex/core.c:1216", "bug"),
    ("BUG: assuming atomic context at kernel/futex/core.c:1216", "bug"),
    ("INFO: task robust_exit_wal:96 blocked for more than 120 seconds.", "hung-task"),
    ("watchdog: BUG: soft lockup - CPU#0 stuck for 26s! [kill_in_window:88]", "soft-lockup"),
    ("rcu: INFO: rcu_preempt self-detected stall on CPU", "rcu-stall"),
    ("WARNING: lib/list_debug.c:32 at __list_add_valid_or_report+0x5c/0xa0, CPU#0: a/1",
     "warning"),
])
def test_headline_kind(line: str, kind: str) -> None:
    assert [s.kind for s in scan(f"[   12.000001] {line}\n")] == [kind]


@pytest.mark.parametrize("line", [
    "---[ end Kernel panic - not syncing: Fatal exception ]---",
    'PCI: Using host bridge windows from ACPI; if necessary, use "pci=nocrs" and report a bug',
    "Kernel command line: console=ttyS0 panic=-1 softlockup_panic=1",
    "INFO: task remap_exit:433 is blocked on a mutex likely owned by task remap_exit:435.",
    "NMI backtrace for cpu 1",
    "WARNING: the RDMA driver is deprecated",
    "rcu: INFO: Stall ended before state dump start",
    "futex-harness: start remap-exit-vdso-64",
])
def test_not_a_report(line: str) -> None:
    assert scan(f"[   12.000001] {line}\n") == []


def kernel(*lines: str) -> str:
    return "".join(f"[   {5 + i / 1000:.6f}] {text}\r\n" for i, text in enumerate(lines))


def test_oops_joins_its_bug_only_when_close() -> None:
    bug = ["BUG: kernel NULL pointer dereference, address: 0000000000000000",
           "#PF: supervisor write access in kernel mode"]
    assert [s.kind for s in scan(kernel(*bug, "Oops: Oops: 0002 [#1] SMP NOPTI"))] == ["bug"]
    far = kernel(*bug, *["RAX: 0"] * 20, "Oops: general protection fault: 0000 [#2] SMP")
    assert [s.kind for s in scan(far)] == ["bug", "oops"]


def test_report_lines_stop_at_end_marker_and_skip_decoration() -> None:
    text = kernel("------------[ cut here ]------------", "why it warned",
                  "WARNING: a.c:1 at f+0x1/0x2, CPU#0: t/1", "", "---[ end trace ]---",
                  "an unrelated line")
    (splat,) = scan(text)
    assert splat.lines == ("why it warned", "WARNING: a.c:1 at f+0x1/0x2, CPU#0: t/1")
    assert splat.line == 3


def test_closing_rule_ends_a_short_report() -> None:
    rule = "=" * 66
    text = kernel(rule, "BUG: KASAN: invalid-access", "Asynchronous fault: no details available",
                  "", rule, "Disabling lock debugging due to kernel taint")
    (splat,) = scan(text)
    assert splat.lines == ("BUG: KASAN: invalid-access", "Asynchronous fault: no details available")


def test_guest_output_inside_a_report_is_left_out() -> None:
    text = kernel("Kernel panic - not syncing: Fatal exception") + "guest says hi\n"
    text += kernel("Kernel Offset: disabled")
    (splat,) = scan(text)
    assert splat.lines == ("Kernel panic - not syncing: Fatal exception", "Kernel Offset: disabled")


def test_caller_ids_and_control_characters() -> None:
    (splat,) = scan("[    3.100000][  T404] BUG: bad \x1b[0m byte\r\n")
    assert splat.title == "BUG: bad \\x1b[0m byte"


def test_console_without_time_stamps() -> None:
    text = "Kernel panic - not syncing: VFS: Unable to mount root fs\nKernel Offset: disabled\n"
    assert summary(scan(text)) == [(1, "panic", "Kernel panic - not syncing: VFS: Unable to mount "
                                                "root fs")]


def test_check_clean_console_passes() -> None:
    check = console_check(CONSOLES / "clean-boot.log")
    assert check == Check("console", Verdict.PASS)


def test_check_fails_with_titles_first_lines_and_counts() -> None:
    check = console_check(CONSOLES / "panic-mid-test.log")
    assert check.verdict == Verdict.FAIL
    assert check.counters == {"bug": 1, "panic": 1}
    assert "BUG: unable to handle page fault for address: ffff800000000000" in check.detail
    assert "Kernel panic - not syncing: Fatal exception" in check.detail
    assert "#PF: supervisor write access in kernel mode" in check.detail
    assert Check.from_json(json.loads(json.dumps(check.to_json()))) == check


def test_check_reads_non_utf8_bytes() -> None:
    check = console_check(CONSOLES / "non-utf8.log")
    assert check.verdict == Verdict.FAIL and "note=caf\\xe9" in check.detail


def test_check_lists_a_bounded_number_of_titles(tmp_path: Path) -> None:
    console = tmp_path / "console.log"
    console.write_text(kernel(*[f"BUG: number {i}" for i in range(DETAIL_TITLES + 3)]))
    check = console_check(console)
    assert check.counters == {"bug": DETAIL_TITLES + 3}
    assert "... and 3 more" in check.detail and "BUG: number 12" not in check.detail


@pytest.mark.parametrize("content", [None, ""])
def test_check_without_a_console_is_an_error(tmp_path: Path, content: str | None) -> None:
    console = tmp_path / "console.log"
    if content is not None:
        console.write_text(content)
    check = console_check(console)
    assert check.verdict == Verdict.ERROR and str(console) in check.detail


def test_bad_regex_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "patterns.toml"
    bad.write_text(PATTERNS.read_text().replace("'^UBSAN: '", "'^UBSAN: ('", 1))
    with pytest.raises(UserError, match=r"patterns\.toml: bad regex"):
        load_patterns(bad)
