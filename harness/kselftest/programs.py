# SPDX-License-Identifier: GPL-2.0
"""The kernel's own futex selftests: build them on the host against the built tree's uapi
headers, plan one guest run per program (plus reruns of timing-sensitive subtests), and
judge their KTAP output, one check per subtest (data/kselftest.toml says which subtests the
series brings and which depend on timing)."""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from harness.commands import Completed, run
from harness.data import DATA, GUEST_TESTS, read_toml
from harness.errors import CommandError, InfraError, UserError
from harness.guest.cache import BinaryCache
from harness.stages.kconfig import is_set

log = logging.getLogger("harness")

HEADERS_DIR = "kselftest-headers"
# kselftest's own fallback when runner.sh names none (it is 45 s in 7.3).
KSELFTEST_TIMEOUT = 45.0
# kselftest_harness exits 4 (KSFT_SKIP) when every test skipped.
KSFT_SKIP = 4
TAIL_CHARS = 300


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
        return tuple(p for p in self.series.get(program, ()) if not any(c in p for c in "*?["))

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


@dataclass(frozen=True)
class KselftestBuildRequest:
    tree: Path
    build_dir: Path
    out: Path
    logs: Path
    timeout: float
    # None: data/kselftest.toml.
    spec: KselftestSpec | None = None
    # Reuse of binaries built before from the same sources, headers and flags.
    binaries: BinaryCache | None = None


@dataclass(frozen=True)
class KselftestBinary:
    name: str
    path: Path
    # The tree's own per-program timeout (a settings file, else runner.sh's default).
    timeout: float
    # The library preloaded into its runs, built next to it; None: none.
    preload: Path | None = None


@dataclass(frozen=True)
class KselftestRun:
    """One guest run: [<bin dir>/<binary>, *argv] with a timeout; name is a file name."""

    name: str
    binary: str
    argv: tuple[str, ...]
    timeout: float
    # The one subtest a rerun selects (kselftest_harness -r); "" for the whole program.
    subtest: str = ""
    # The file name of the library to LD_PRELOAD, next to the binary; "" for none.
    preload: str = ""


class RunOutcomeLike(Protocol):
    """What judge reads of a run; protocol.Outcome has these too."""

    @property
    def stdout(self) -> str: ...
    @property
    def stderr(self) -> str: ...
    @property
    def exit_code(self) -> int | None: ...
    @property
    def timed_out(self) -> bool: ...
    @property
    def seconds(self) -> float: ...


@dataclass(frozen=True)
class RunOutcome:
    stdout: str
    exit_code: int | None
    timed_out: bool
    seconds: float
    # Empty when the run merged stderr into stdout (best: the diagnostics stay in order).
    stderr: str = ""


# --- the data file ---------------------------------------------------------------------

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
        programs={k: _program_spec(v) for k, v in raw.get("programs", {}).items()},
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


def _program_spec(raw: dict[str, Any]) -> ProgramSpec:
    output = raw.get("output", "tap")
    if output not in ("tap", "exit-status"):
        raise UserError(f"kselftest program output '{output}': choose tap or exit-status")
    timeout = raw.get("timeout")
    preload = raw.get("preload")
    if preload is not None and not (GUEST_TESTS / preload).is_file():
        raise UserError(f"kselftest program preload '{preload}': no such file in {GUEST_TESTS}")
    return ProgramSpec(float(timeout) if timeout is not None else None,
                       tuple(raw.get("args", ())), output, preload)


# --- build on the host -------------------------------------------------------------------

def build(req: KselftestBuildRequest) -> tuple[KselftestBinary, ...]:
    """Install the built tree's uapi headers and compile each selftest program into req.out."""
    spec = req.spec or load_spec()
    src = req.tree / spec.directory
    if not (src / "Makefile").is_file():
        raise UserError(f"{src}: no selftests Makefile in this tree")
    names = _programs(src, spec.binaries)
    headers = _install_headers(req)
    numa = _numa(spec.build, req)
    timeout = tree_timeout(req.tree, src)
    req.out.mkdir(parents=True, exist_ok=True)
    return tuple(KselftestBinary(n, _compile(req, spec.build, src, headers, n, numa), timeout,
                                 _preload(req, spec.program(n), headers))
                 for n in names)


def makefile_programs(makefile: Path) -> tuple[str, ...]:
    """The names in a selftests Makefile's TEST_GEN_PROGS (every assignment, in order)."""
    text = makefile.read_text(errors="replace").replace("\\\n", " ")
    names: list[str] = []
    for match in re.finditer(r"^TEST_GEN_PROGS\s*[:+]?=(.*)$", text, re.MULTILINE):
        names += [w for w in match.group(1).split() if "$" not in w and w not in names]
    return tuple(names)


def _programs(src: Path, wanted: tuple[str, ...] | None) -> tuple[str, ...]:
    known = makefile_programs(src / "Makefile")
    unknown = [n for n in wanted or () if n not in known]
    if unknown:
        raise UserError(f"no selftest program {', '.join(unknown)} in {src}; "
                        f"choose from: {', '.join(known)}")
    return wanted or known


def tree_timeout(tree: Path, src: Path) -> float:
    """The per-program timeout run_kselftest.sh would use: a settings file's timeout=,
    else runner.sh's kselftest_default_timeout."""
    for settings in (src / "settings", src.parent / "settings"):
        found = _number(settings, r"^timeout=(\d+)\s*$")
        if found is not None:
            return found
    runner = tree / "tools/testing/selftests/kselftest/runner.sh"
    found = _number(runner, r"kselftest_default_timeout=(\d+)")
    return found if found is not None else KSELFTEST_TIMEOUT


def _number(path: Path, pattern: str) -> float | None:
    if not path.is_file():
        return None
    match = re.search(pattern, path.read_text(errors="replace"), re.MULTILINE)
    return float(match.group(1)) if match else None


def _install_headers(req: KselftestBuildRequest) -> Path:
    """make headers_install from the built tree (seconds): the host's uapi lacks the new ops."""
    headers = req.build_dir / HEADERS_DIR
    _run(["make", "-C", req.tree, f"O={req.build_dir}", "headers_install",
          f"INSTALL_HDR_PATH={headers}"], req, "cannot install the tree's uapi headers")
    return headers


def _numa(flags: BuildFlags, req: KselftestBuildRequest) -> str:
    """SUFFICIENT when pkg-config finds a new enough libnuma (link it), else NO."""
    try:
        done = _host_run(["pkg-config", flags.numa_package, "--atleast-version",
                          flags.numa_min_version], req, check=False)
    except CommandError:
        done = None
    if done is None or done.returncode != 0:
        log.info("kselftest: no lib%s >= %s (libnuma-dev); futex_numa_mpol skips its MPOL part",
                 flags.numa_package, flags.numa_min_version)
        return "NO"
    return "SUFFICIENT"


def _compile(req: KselftestBuildRequest, flags: BuildFlags, src: Path, headers: Path,
             name: str, numa: str) -> Path:
    binary = req.out / name
    ldlibs = (*flags.ldlibs, *(flags.numa_ldlibs if numa == "SUFFICIENT" else ()))
    # Dynamic: robust_list dlopen()s linux-vdso.so.1. Run in src so that __FILE__ is short.
    argv = ["gcc", f"-I{headers}/include", *(f"-I{i}" for i in flags.includes), *flags.cflags,
            f"-DLIBNUMA_VER_{numa}=1", f"{name}.c", *ldlibs]
    try:
        (req.binaries or BinaryCache(None)).compile(
            argv, binary, log_file=req.logs / "kselftest-build.log", timeout=req.timeout,
            cwd=src)
    except CommandError as exc:
        raise InfraError(_failed(f"cannot build selftest {name}", exc)) from exc
    return binary


def _preload(req: KselftestBuildRequest, program: ProgramSpec, headers: Path) -> Path | None:
    """Build the program's preload library against the same uapi headers; None: none."""
    if program.preload is None:
        return None
    source = GUEST_TESTS / program.preload
    library = req.out / f"{source.stem}.so"
    argv: list[str | Path] = ["gcc", "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror",
                              f"-I{headers}/include", source]
    try:
        (req.binaries or BinaryCache(None)).compile(
            argv, library, log_file=req.logs / "kselftest-build.log", timeout=req.timeout)
    except CommandError as exc:
        raise InfraError(_failed(f"cannot build preload library {source.name}", exc)) from exc
    return library


def _host_run(argv: Sequence[str | Path], req: KselftestBuildRequest, check: bool = True,
              cwd: Path | None = None) -> Completed:
    return run(argv, log_file=req.logs / "kselftest-build.log", timeout=req.timeout,
               check=check, cwd=cwd)


def _run(argv: Sequence[str | Path], req: KselftestBuildRequest, what: str,
         cwd: Path | None = None) -> None:
    try:
        _host_run(argv, req, cwd=cwd)
    except CommandError as exc:
        raise InfraError(_failed(what, exc)) from exc


def _failed(what: str, exc: CommandError) -> str:
    """What failed, with the last lines the command printed."""
    last = " / ".join([ln for ln in exc.tail.splitlines() if ln.strip()][-3:]) or "no output"
    return f"{what}: {last}\n{exc}"


# --- the guest plan ----------------------------------------------------------------------

def plan_runs(binaries: Sequence[KselftestBinary], spec: KselftestSpec
              ) -> tuple[KselftestRun, ...]:
    """One run per program, then `reruns` runs of each timing-sensitive subtest alone."""
    runs: list[KselftestRun] = []
    for binary in binaries:
        program = spec.program(binary.name)
        timeout = program.timeout or spec.default_timeout or binary.timeout
        base = f"{spec.suite}.{binary.name}"
        preload = binary.preload.name if binary.preload else ""
        runs.append(KselftestRun(base, binary.name, program.args, timeout, "", preload))
        runs += [KselftestRun(f"{base}.{t.subtest}.rerun{i}", binary.name,
                              (*program.args, "-r", t.subtest), timeout, t.subtest, preload)
                 for t in spec.timing(binary.name) for i in range(1, t.reruns + 1)]
    return tuple(runs)
