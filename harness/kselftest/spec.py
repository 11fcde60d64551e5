# SPDX-License-Identifier: GPL-2.0
"""data/kselftest.toml: which selftests run and how, the series' subtests, the accepted SKIPs
and expected failures, and the timing-sensitive subtests with their measured rates."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.data import DATA, GUEST_TESTS, read_toml
from harness.data.guest_tests import check_class
from harness.errors import UserError
from harness.guest import protocol
from harness.stages.kconfig import is_set


@dataclass(frozen=True)
class TimingSensitive:
    """A subtest with a known race: rerun, and its failed attempts forgiven only when they
    carry the race's signature and are no more than the measured rate explains."""

    program: str
    subtest: str
    reason: str
    reruns: int
    # The measured rate: failed attempts of so many, on a pristine kernel.
    measured_failures: int = 0
    measured_attempts: int = 1
    # The race's signature: every assertion line of a failed attempt matches one of
    # `assertions` in full, and each of `shows` matches some line of it.
    assertions: tuple[re.Pattern[str], ...] = ()
    shows: tuple[re.Pattern[str], ...] = ()

    @property
    def attempts(self) -> int:
        return 1 + self.reruns

    @property
    def rate(self) -> float:
        return self.measured_failures / self.measured_attempts


@dataclass(frozen=True)
class AcceptedResult:
    """A SKIP or XFAIL that data/kselftest.toml accepts: the subtest ("" for a whole
    program's `1..0 # SKIP`), the reason it must give (a regex matched in full) and why
    that reason says nothing about the kernel under test."""

    program: str
    subtest: str
    reason: re.Pattern[str]
    why: str

    def matches(self, program: str, subtest: str, reason: str) -> bool:
        return (program == self.program and fnmatch.fnmatchcase(subtest, self.subtest)
                and self.reason.fullmatch(reason.strip()) is not None)


@dataclass(frozen=True)
class ProgramSpec:
    timeout: float | None = None
    args: tuple[str, ...] = ()
    # "tap", or "exit-status" for a program that prints no TAP.
    output: str = "tap"
    # A C source under guest-tests/, built as a shared library and LD_PRELOADed into every
    # run of the program.
    preload: str | None = None
    # How its runs may share the guest's CPU (protocol.CLASSES). A program the data does not
    # list (one a newer tree adds) runs exclusive: alone, as every test did before classes.
    run_class: str = protocol.EXCLUSIVE


@dataclass(frozen=True)
class BuildFlags:
    cflags: tuple[str, ...]
    includes: tuple[str, ...]
    ldlibs: tuple[str, ...]
    numa_package: str
    numa_min_version: str
    numa_ldlibs: tuple[str, ...]


@dataclass(frozen=True)
class KselftestSpec:
    suite: str
    directory: str
    # None: every program of the directory Makefile's TEST_GEN_PROGS.
    binaries: tuple[str, ...] | None
    # None: the tree's own default, as run_kselftest.sh takes it.
    default_timeout: float | None
    build: BuildFlags
    programs: dict[str, ProgramSpec] = field(default_factory=dict)
    # Per program, the subtests the series brings: exact names or fnmatch patterns.
    series: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Per program, series subtest patterns -> the kernel option (no CONFIG_) they need.
    series_requires: dict[str, dict[str, str]] = field(default_factory=dict)
    timing_sensitive: tuple[TimingSensitive, ...] = ()
    # The odds below which a number of failed attempts is no longer the race's doing.
    false_failure_odds: float = 0.001
    accepted_skips: tuple[AcceptedResult, ...] = ()
    expected_failures: tuple[AcceptedResult, ...] = ()

    def program(self, name: str) -> ProgramSpec:
        return self.programs.get(name, ProgramSpec())

    def check_name(self, program: str, subtest: str = "") -> str:
        return f"{self.suite}/{program}/{subtest}" if subtest else f"{self.suite}/{program}"

    def is_series(self, program: str, subtest: str) -> bool:
        return any(fnmatch.fnmatchcase(subtest, p) for p in self.series.get(program, ()))

    def missing_option(self, program: str, subtest: str, kconfig: Mapping[str, str] | None
                       ) -> str | None:
        """The kernel option a series subtest needs and kconfig lacks; None when unknown."""
        if kconfig is None:
            return None
        for pattern, option in self.series_requires.get(program, {}).items():
            if fnmatch.fnmatchcase(subtest, pattern) and not is_set(kconfig, option):
                return option
        return None

    def series_names(self, program: str) -> tuple[str, ...]:
        """The exact (non-pattern) series subtests of a program: these must be reported."""
        return tuple(p for p in self.series.get(program, ()) if not is_pattern(p))

    def timing(self, program: str) -> tuple[TimingSensitive, ...]:
        return tuple(t for t in self.timing_sensitive if t.program == program)

    def accepted_skip(self, program: str, subtest: str, reason: str) -> AcceptedResult | None:
        """The listed SKIP this one is, or None: an unlisted SKIP is a FAIL."""
        return next((a for a in self.accepted_skips if a.matches(program, subtest, reason)),
                    None)

    def expected_failure(self, program: str, subtest: str, reason: str
                         ) -> AcceptedResult | None:
        """The listed XFAIL this one is, or None: an unlisted XFAIL is a FAIL."""
        return next((a for a in self.expected_failures
                     if a.matches(program, subtest, reason)), None)


def load_spec(path: Path = DATA / "kselftest.toml") -> KselftestSpec:
    """data/kselftest.toml as a KselftestSpec."""
    raw = read_toml(path)
    binaries = raw.get("binaries", "all")
    default = raw.get("default_timeout", "tree")
    return KselftestSpec(
        suite=raw["suite"], directory=raw["directory"],
        binaries=None if binaries == "all" else tuple(binaries),
        default_timeout=None if default == "tree" else float(default),
        build=_build_flags(raw["build"]),
        programs={k: _program_spec(k, v) for k, v in raw.get("programs", {}).items()},
        series={k: tuple(v) for k, v in raw.get("series", {}).items()},
        series_requires={k: dict(v) for k, v in raw.get("series_requires", {}).items()},
        timing_sensitive=tuple(_timing(t) for t in raw.get("timing_sensitive", [])),
        false_failure_odds=float(raw.get("false_failure_odds", 0.001)),
        accepted_skips=tuple(_accepted(a, "accepted_skips")
                             for a in raw.get("accepted_skips", [])),
        expected_failures=tuple(_accepted(a, "expected_failures")
                                for a in raw.get("expected_failures", [])),
    )


def _timing(raw: dict[str, Any]) -> TimingSensitive:
    where = f"timing_sensitive {raw.get('program')}/{raw.get('subtest')}"
    failures, attempts = int(raw["measured_failures"]), int(raw["measured_attempts"])
    if not 0 <= failures <= attempts or attempts < 1:
        raise UserError(f"kselftest {where}: measured_failures {failures} of "
                        f"measured_attempts {attempts} is not a rate")
    if not raw.get("assertions"):
        raise UserError(f"kselftest {where}: no assertions: a race without a signature "
                        "would forgive any failure")
    return TimingSensitive(
        raw["program"], raw["subtest"], raw["reason"], int(raw["reruns"]), failures, attempts,
        tuple(_regex(r, where) for r in raw["assertions"]),
        tuple(_regex(r, where) for r in raw.get("shows", [])))


def _accepted(raw: dict[str, Any], table: str) -> AcceptedResult:
    where = f"{table} {raw.get('program')}/{raw.get('subtest', '')}"
    if not raw.get("why"):
        raise UserError(f"kselftest {where}: say why this reason is not the kernel's fault")
    return AcceptedResult(raw["program"], raw.get("subtest", ""),
                          _regex(raw["reason"], where), raw["why"])


def _regex(text: str, where: str) -> re.Pattern[str]:
    try:
        return re.compile(text)
    except re.error as exc:
        raise UserError(f"kselftest {where}: bad regex {text!r}: {exc}") from exc


def _build_flags(raw: dict[str, Any]) -> BuildFlags:
    return BuildFlags(tuple(raw["cflags"]), tuple(raw["includes"]), tuple(raw["ldlibs"]),
                      raw["numa_package"], raw["numa_min_version"], tuple(raw["numa_ldlibs"]))


def _program_spec(name: str, raw: dict[str, Any]) -> ProgramSpec:
    output = raw.get("output", "tap")
    if output not in ("tap", "exit-status"):
        raise UserError(f"kselftest program output '{output}': choose tap or exit-status")
    timeout = raw.get("timeout")
    preload = raw.get("preload")
    if preload is not None and not (GUEST_TESTS / preload).is_file():
        raise UserError(f"kselftest program preload '{preload}': no such file in {GUEST_TESTS}")
    return ProgramSpec(float(timeout) if timeout is not None else None,
                       tuple(raw.get("args", ())), output, preload,
                       check_class(raw.get("class"), f"kselftest program {name}"))


def is_pattern(name: str) -> bool:
    """Whether a subtest name in the data is an fnmatch pattern rather than an exact name."""
    return any(c in name for c in "*?[")
