# SPDX-License-Identifier: GPL-2.0
"""Verdicts: each check's outcome, and how guest-test counters turn into one."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from harness.data import GuestTest
from harness.guest.protocol import Outcome


def elf_check(image: str) -> str:
    """The name of an image's ELF check."""
    return f"elf-{image}"


def disasm_check(image: str) -> str:
    """The name of an image's disassembly check."""
    return f"disasm-{image}"


def suite_check(check: str, suite: str) -> str:
    """A per-boot check (the console triage) named for a suite other than the default."""
    return check if suite == "default" else f"{check}-{suite}"


def stage_check(stage: str) -> str:
    """A stage that stopped with an error, as a test case in JUnit and the benches."""
    return f"stage-{stage}"


def entry_key(image: str, function: str) -> str:
    """How per-entry facts and windows are keyed: image:function."""
    return f"{image}:{function}"


class Verdict(enum.StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    # The test never reached what it checks; it counts as a failure.
    INCONCLUSIVE = "INCONCLUSIVE"
    # The test produced no result: it crashed, hung, or the VM died first.
    ERROR = "ERROR"
    TIMEOUT = "TIMEOUT"
    NOT_APPLICABLE = "N/A"

    @property
    def ok(self) -> bool:
        return self in (Verdict.PASS, Verdict.NOT_APPLICABLE)


@dataclass(frozen=True)
class Check:
    name: str
    verdict: Verdict
    detail: str = ""
    counters: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "verdict": self.verdict.value, "detail": self.detail,
                "counters": self.counters, "seconds": round(self.seconds, 2)}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Check:
        return cls(raw["name"], Verdict(raw["verdict"]), raw.get("detail", ""),
                   dict(raw.get("counters", {})), float(raw.get("seconds", 0.0)))


def judge(test: GuestTest, outcome: Outcome | None,
          host_counters: dict[str, int] | None = None) -> Check:
    """Decide a guest test's verdict from what the guest runner wrote, or from its absence.
    host_counters are added to the test's own record (the host-side image comparison)."""
    if outcome is None:
        return Check(test.name, Verdict.ERROR, "no result: the guest never ran this test")
    seconds = outcome.seconds
    if outcome.timed_out:
        return Check(test.name, Verdict.TIMEOUT,
                     f"killed after {test.timeout:.0f}s; {_stderr(outcome)}", seconds=seconds)
    records = [r for r in outcome.records if r.get("check") == test.name]
    if outcome.exit_code != 0 or len(records) != 1:
        return Check(test.name, Verdict.ERROR,
                     f"exit code {outcome.exit_code}, {len(records)} result records; "
                     f"{_stderr(outcome)}", seconds=seconds)
    counters = {k: int(v) for k, v in records[0].items() if k != "check"}
    counters.update(host_counters or {})
    return judge_counters(test, counters, seconds)


def judge_counters(test: GuestTest, counters: dict[str, int], seconds: float = 0.0) -> Check:
    """FAIL on any non-zero fail_if counter, else INCONCLUSIVE on any zero require counter."""
    missing = [k for k in (*test.require, *test.fail_if) if k not in counters]
    if missing:
        return Check(test.name, Verdict.ERROR, f"counters missing: {', '.join(missing)}",
                     counters, seconds)
    bad = [f"{k}={counters[k]}" for k in test.fail_if if counters[k]]
    if bad:
        return Check(test.name, Verdict.FAIL, ", ".join(bad), counters, seconds)
    unreached = [f"{k}=0" for k in test.require if not counters[k]]
    if unreached:
        return Check(test.name, Verdict.INCONCLUSIVE, "never reached: " + ", ".join(unreached),
                     counters, seconds)
    return Check(test.name, Verdict.PASS, "", counters, seconds)


def _stderr(outcome: Outcome) -> str:
    text = outcome.stderr.strip()
    return f"stderr: {text[-300:]}" if text else "no stderr"
