# SPDX-License-Identifier: GPL-2.0
"""Checks and verdicts: the names of checks, the verdicts, and the Check a rule gives."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


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


