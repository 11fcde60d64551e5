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

from harness import ktap
from harness.data import DATA, read_toml
from harness.errors import CommandError, InfraError, UserError
from harness.results import Check, Verdict
from harness.run import Completed, run

log = logging.getLogger("harness")

HEADERS_DIR = "kselftest-headers"
# kselftest's own fallback when runner.sh names none (it is 45 s in 7.3).
KSELFTEST_TIMEOUT = 45.0
# kselftest_harness exits 4 (KSFT_SKIP) when every test skipped.
KSFT_SKIP = 4
TAIL_CHARS = 300


@dataclass(frozen=True)
class TimingSensitive:
    program: str
    subtest: str
    reason: str
    reruns: int


@dataclass(frozen=True)
class ProgramSpec:
    timeout: float | None = None
    args: tuple[str, ...] = ()
    # "tap", or "exit-status" for a program that prints no TAP.
    output: str = "tap"


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
            if fnmatch.fnmatchcase(subtest, pattern) and kconfig.get(option) not in ("y", "m"):
                return option
        return None

    def series_names(self, program: str) -> tuple[str, ...]:
        """The exact (non-pattern) series subtests of a program: these must be reported."""
        return tuple(p for p in self.series.get(program, ()) if not any(c in p for c in "*?["))

    def timing(self, program: str) -> tuple[TimingSensitive, ...]:
        return tuple(t for t in self.timing_sensitive if t.program == program)


@dataclass(frozen=True)
class KselftestBuildRequest:
    tree: Path
    build_dir: Path
    out: Path
    logs: Path
    timeout: float
    # None: data/kselftest.toml.
    spec: KselftestSpec | None = None


@dataclass(frozen=True)
class KselftestBinary:
    name: str
    path: Path
    # The tree's own per-program timeout (a settings file, else runner.sh's default).
    timeout: float


@dataclass(frozen=True)
class KselftestRun:
    """One guest run: [<bin dir>/<binary>, *argv] with a timeout; name is a file name."""

    name: str
    binary: str
    argv: tuple[str, ...]
    timeout: float
    # The one subtest a rerun selects (kselftest_harness -r); "" for the whole program.
    subtest: str = ""


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
        timing_sensitive=tuple(
            TimingSensitive(t["program"], t["subtest"], t["reason"], int(t["reruns"]))
            for t in raw.get("timing_sensitive", [])),
    )


def _build_flags(raw: dict[str, Any]) -> BuildFlags:
    return BuildFlags(tuple(raw["cflags"]), tuple(raw["includes"]), tuple(raw["ldlibs"]),
                      raw["numa_package"], raw["numa_min_version"], tuple(raw["numa_ldlibs"]))


def _program_spec(raw: dict[str, Any]) -> ProgramSpec:
    output = raw.get("output", "tap")
    if output not in ("tap", "exit-status"):
        raise UserError(f"kselftest program output '{output}': choose tap or exit-status")
    timeout = raw.get("timeout")
    return ProgramSpec(float(timeout) if timeout is not None else None,
                       tuple(raw.get("args", ())), output)


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
    return tuple(KselftestBinary(n, _compile(req, spec.build, src, headers, n, numa), timeout)
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
    _run(["gcc", f"-I{headers}/include", *(f"-I{i}" for i in flags.includes), *flags.cflags,
          f"-DLIBNUMA_VER_{numa}=1", f"{name}.c", "-o", binary, *ldlibs],
         req, f"cannot build selftest {name}", cwd=src)
    return binary


def _host_run(argv: Sequence[str | Path], req: KselftestBuildRequest, check: bool = True,
              cwd: Path | None = None) -> Completed:
    return run(argv, log_file=req.logs / "kselftest-build.log", timeout=req.timeout,
               check=check, cwd=cwd)


def _run(argv: Sequence[str | Path], req: KselftestBuildRequest, what: str,
         cwd: Path | None = None) -> None:
    try:
        _host_run(argv, req, cwd=cwd)
    except CommandError as exc:
        last = " / ".join([ln for ln in exc.tail.splitlines() if ln.strip()][-3:]) or "no output"
        raise InfraError(f"{what}: {last}\n{exc}") from exc


# --- the guest plan ----------------------------------------------------------------------

def plan_runs(binaries: Sequence[KselftestBinary], spec: KselftestSpec
              ) -> tuple[KselftestRun, ...]:
    """One run per program, then `reruns` runs of each timing-sensitive subtest alone."""
    runs: list[KselftestRun] = []
    for binary in binaries:
        program = spec.program(binary.name)
        timeout = program.timeout or spec.default_timeout or binary.timeout
        base = f"{spec.suite}.{binary.name}"
        runs.append(KselftestRun(base, binary.name, program.args, timeout))
        runs += [KselftestRun(f"{base}.{t.subtest}.rerun{i}", binary.name,
                              (*program.args, "-r", t.subtest), timeout, t.subtest)
                 for t in spec.timing(binary.name) for i in range(1, t.reruns + 1)]
    return tuple(runs)


# --- verdicts ----------------------------------------------------------------------------

@dataclass(frozen=True)
class _Ctx:
    spec: KselftestSpec
    program: str
    series_present: bool
    kconfig: Mapping[str, str] | None = None

    def name(self, subtest: str = "") -> str:
        return self.spec.check_name(self.program, subtest)


def judge(spec: KselftestSpec, runs: Sequence[KselftestRun | KselftestBinary],
          outcomes: Mapping[str, RunOutcomeLike], series_present: bool,
          kconfig: Mapping[str, str] | None = None) -> list[Check]:
    """One check per subtest of every program run (binaries are planned first), with the
    reruns of timing-sensitive subtests folded into their check. kconfig (the built
    .config, option to value) makes series subtests whose option is off N/A."""
    planned = [r for r in runs if isinstance(r, KselftestRun)]
    planned += plan_runs([b for b in runs if isinstance(b, KselftestBinary)], spec)
    checks: list[Check] = []
    for main in planned:
        if not main.subtest:
            reruns = [r for r in planned if r.binary == main.binary and r.subtest]
            ctx = _Ctx(spec, main.binary, series_present, kconfig)
            checks += _judge_program(ctx, outcomes.get(main.name), reruns, outcomes)
    return checks


def _judge_program(ctx: _Ctx, outcome: RunOutcomeLike | None, reruns: list[KselftestRun],
                   outcomes: Mapping[str, RunOutcomeLike]) -> list[Check]:
    if ctx.spec.program(ctx.program).output == "exit-status":
        return [_exit_status_check(ctx, outcome)]
    if outcome is None:
        never = Check(ctx.name(), Verdict.ERROR, "no result: the guest never ran it")
        return [never, *_missing_series(ctx, {}, never)]
    doc = ktap.parse_document(outcome.stdout)
    found = _subtest_checks(ctx, doc.results, outcome)
    for timing in ctx.spec.timing(ctx.program):
        _fold_reruns(ctx, timing, found, [r for r in reruns if r.subtest == timing.subtest],
                     outcomes)
    problem = _program_check(ctx, doc, outcome)
    broken = problem if outcome.timed_out or _crashed(outcome.exit_code) else None
    return [*([problem] if problem else []), *found.values(), *_missing_series(ctx, found,
                                                                                broken)]


def _subtest_checks(ctx: _Ctx, results: Sequence[ktap.KtapResult],
                    outcome: RunOutcomeLike) -> dict[str, Check]:
    """The checks of the reported subtests by name; a name reported twice keeps the worse."""
    found: dict[str, Check] = {}
    for result in results:
        check = _subtest_verdict(ctx, result, outcome)
        old = found.get(check.name)
        found[check.name] = check if old is None or _rank(check) > _rank(old) else old
    return found


_SEVERITY = {Verdict.PASS: 0, Verdict.NOT_APPLICABLE: 1, Verdict.INCONCLUSIVE: 2,
             Verdict.FAIL: 3, Verdict.TIMEOUT: 4, Verdict.ERROR: 4}


def _rank(check: Check) -> int:
    return _SEVERITY[check.verdict]


def _subtest_verdict(ctx: _Ctx, result: ktap.KtapResult, outcome: RunOutcomeLike) -> Check:
    """One reported subtest's check, from its (folded) KTAP result."""
    name = ctx.name(result.name or f"#{result.number}")
    series = ctx.spec.is_series(ctx.program, result.name)
    if not result.complete:
        return Check(name, Verdict.TIMEOUT if outcome.timed_out else Verdict.ERROR,
                     f"{result.reason}; {_ending(outcome)}")
    unmet = _not_applicable(ctx, result.name) if series else None
    if unmet:
        return Check(name, Verdict.NOT_APPLICABLE, f"{unmet} (it reported {_said(result)})")
    return _directive_verdict(name, result, series, outcome)


def _not_applicable(ctx: _Ctx, subtest: str) -> str | None:
    """Why a series subtest cannot apply to this kernel, or None."""
    if not ctx.series_present:
        return "series absent"
    option = ctx.spec.missing_option(ctx.program, subtest, ctx.kconfig)
    return f"needs CONFIG_{option}, which this kernel's config lacks" if option else None


def _directive_verdict(name: str, result: ktap.KtapResult, series: bool,
                       outcome: RunOutcomeLike) -> Check:
    directive, reason = result.directive, result.reason
    if directive == ktap.Directive.SKIP and series:
        return Check(name, Verdict.FAIL, f"skipped, but the series provides it: {reason}")
    if directive == ktap.Directive.SKIP:
        return Check(name, Verdict.NOT_APPLICABLE, reason or "skipped, no reason given")
    if directive == ktap.Directive.TODO:
        return Check(name, Verdict.NOT_APPLICABLE, f"TODO: {reason}")
    if directive == ktap.Directive.ERROR:
        return Check(name, Verdict.ERROR, reason or "the test reported an error")
    if directive == ktap.Directive.XFAIL:
        return Check(name, Verdict.PASS, f"expected failure: {reason}")
    if result.ok:
        return Check(name, Verdict.PASS, "passed unexpectedly (XPASS)"
                     if directive == ktap.Directive.XPASS else "")
    return Check(name, Verdict.FAIL, _failure_detail(result, outcome.stderr))


def _said(result: ktap.KtapResult) -> str:
    status = "ok" if result.ok else "not ok"
    return f"{status} # {result.directive}" if result.directive else status


# The directory of a source file named in an assertion message: its base name is enough.
_SOURCE_DIR = re.compile(r"(?:/[^\s/:]+)+/([^\s/:]+\.[ch]:)")


def _failure_detail(result: ktap.KtapResult, stderr: str) -> str:
    """What the test said about its failure: its diagnostics, or the stderr lines that
    name its function when the run kept stderr apart."""
    function = result.name.rsplit(".", 1)[-1]
    lines = [ln for ln in result.diagnostics if "Test terminated" not in ln]
    lines += [ln.lstrip("# ").strip() for ln in stderr.splitlines() if f":{function}:" in ln]
    said = " / ".join(_SOURCE_DIR.sub(r"\1", ln) for ln in lines[-3:])
    return "; ".join(x for x in (result.reason, said) if x) or "not ok"


def _ending(outcome: RunOutcomeLike) -> str:
    if outcome.timed_out:
        return f"killed at its timeout after {outcome.seconds:.0f}s"
    return f"exit code {outcome.exit_code}"


# --- timing-sensitive subtests -----------------------------------------------------------

def _fold_reruns(ctx: _Ctx, timing: TimingSensitive, found: dict[str, Check],
                 reruns: list[KselftestRun], outcomes: Mapping[str, RunOutcomeLike]) -> None:
    """The main run's check of a timing-sensitive subtest, with its reruns counted in."""
    name = ctx.name(timing.subtest)
    main = found.get(name)
    if main is not None and main.verdict == Verdict.NOT_APPLICABLE:
        return
    tries = [_rerun_check(ctx, timing.subtest, outcomes.get(r.name)) for r in reruns]
    attempts = [c for c in (main, *tries) if c is not None]
    found[name] = _attempts_check(name, timing, attempts, sum(t is None for t in tries))


def _rerun_check(ctx: _Ctx, subtest: str, outcome: RunOutcomeLike | None) -> Check | None:
    if outcome is None:
        return None
    for result in ktap.parse(outcome.stdout):
        if result.name == subtest:
            return _subtest_verdict(ctx, result, outcome)
    verdict = Verdict.TIMEOUT if outcome.timed_out else Verdict.ERROR
    return Check(ctx.name(subtest), verdict, f"not reported by its rerun; {_ending(outcome)}")


def _attempts_check(name: str, timing: TimingSensitive, attempts: list[Check],
                    missing: int) -> Check:
    passed = sum(c.verdict == Verdict.PASS for c in attempts)
    counters = {"attempts": len(attempts), "failures": len(attempts) - passed}
    notes = [f"passed {passed} of {len(attempts)} attempts",
             f"timing-sensitive, {timing.reruns} reruns"]
    if missing:
        notes.append(f"{missing} rerun(s) left no result")
    failures = [c for c in attempts if c.verdict != Verdict.PASS]
    if failures:
        notes.append(f"first failure: {failures[0].verdict}: {failures[0].detail}")
    if passed:
        return Check(name, Verdict.PASS, "; ".join(notes), counters)
    if not attempts:
        return Check(name, Verdict.ERROR, "not reported by any attempt; " + "; ".join(notes),
                     counters)
    fail = any(c.verdict == Verdict.FAIL for c in attempts)
    return Check(name, Verdict.FAIL if fail else attempts[0].verdict, "; ".join(notes), counters)


# --- the program as a whole --------------------------------------------------------------

def _program_check(ctx: _Ctx, doc: ktap.KtapDocument, outcome: RunOutcomeLike) -> Check | None:
    """One check for the program when something beyond its subtests went wrong: no results,
    a crash, a timeout, unreported planned subtests, a bail-out, an unexplained exit code."""
    reported = sum(r.complete for r in doc.results)
    planned = doc.plan.count if doc.plan else reported
    if not doc.results and doc.plan and doc.plan.skip_reason is not None:
        return Check(ctx.name(), Verdict.NOT_APPLICABLE, doc.plan.skip_reason or "skipped",
                     seconds=outcome.seconds)
    problems = _problems(doc, outcome, reported, planned)
    if not problems:
        return None
    tail = outcome.stdout.strip()[-TAIL_CHARS:] or outcome.stderr.strip()[-TAIL_CHARS:]
    return Check(ctx.name(), Verdict.TIMEOUT if outcome.timed_out else Verdict.ERROR,
                 "; ".join(problems) + (f"; output ends: {tail}" if tail else ""),
                 {"planned": planned, "reported": reported}, outcome.seconds)


def _problems(doc: ktap.KtapDocument, outcome: RunOutcomeLike, reported: int,
              planned: int) -> list[str]:
    problems = []
    if not doc.results:
        problems.append("no results in its output")
    elif reported < planned:
        problems.append(f"{planned - reported} of {planned} planned subtests not reported")
    if doc.bail_out is not None:
        problems.append(f"bailed out: {doc.bail_out}")
    if outcome.timed_out or _crashed(outcome.exit_code):
        problems.append(_ending(outcome))
    elif outcome.exit_code not in (0, KSFT_SKIP) and not _any_failed(doc):
        problems.append(f"exit code {outcome.exit_code} although no subtest failed")
    return problems


def _crashed(code: int | None) -> bool:
    return code is None or code < 0 or code >= 128


def _any_failed(doc: ktap.KtapDocument) -> bool:
    return any(not r.ok and r.directive not in (ktap.Directive.SKIP, ktap.Directive.TODO)
               for r in doc.results)


def _missing_series(ctx: _Ctx, found: Mapping[str, Check], broken: Check | None
                    ) -> list[Check]:
    """The series subtests the output never named: FAIL with the series, N/A without; the
    program's ERROR or TIMEOUT when it crashed, timed out or never ran."""
    checks = []
    for subtest in ctx.spec.series_names(ctx.program):
        name = ctx.name(subtest)
        unmet = _not_applicable(ctx, subtest)
        if name in found:
            continue
        if unmet:
            checks.append(Check(name, Verdict.NOT_APPLICABLE, f"{unmet} (not reported)"))
        elif broken is not None:
            checks.append(Check(name, broken.verdict, f"not reported: {broken.detail}"))
        else:
            checks.append(Check(name, Verdict.FAIL, "not reported, but the series provides it"))
    return checks


def _exit_status_check(ctx: _Ctx, outcome: RunOutcomeLike | None) -> Check:
    """A program without TAP output, judged by how it ended."""
    if outcome is None:
        return Check(ctx.name(), Verdict.ERROR, "no result: the guest never ran it")
    tail = (outcome.stderr.strip() or outcome.stdout.strip())[-TAIL_CHARS:]
    if outcome.timed_out:
        return Check(ctx.name(), Verdict.TIMEOUT, _ending(outcome), seconds=outcome.seconds)
    if outcome.exit_code is None:
        return Check(ctx.name(), Verdict.ERROR, f"did not run: {tail}", seconds=outcome.seconds)
    if outcome.exit_code != 0:
        return Check(ctx.name(), Verdict.FAIL, f"{_ending(outcome)}; output ends: {tail}",
                     seconds=outcome.seconds)
    return Check(ctx.name(), Verdict.PASS, f"exit 0; output ends: {tail}",
                 seconds=outcome.seconds)
