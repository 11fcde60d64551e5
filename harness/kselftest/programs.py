# SPDX-License-Identifier: GPL-2.0
"""The kernel's own futex selftests: build them on the host against the built tree's uapi
headers, plan one guest run per program (plus reruns of timing-sensitive subtests), and
judge their KTAP output, one check per subtest (data/kselftest.toml says which subtests the
series brings and which depend on timing)."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from harness.commands import Completed, run
from harness.data import GUEST_TESTS
from harness.errors import CommandError, InfraError, UserError
from harness.guest.cache import BinaryCache
from harness.kselftest.spec import BuildFlags, KselftestSpec, ProgramSpec, load_spec
from harness.stages import build as kernel_build
from harness.stages.kconfig import arch_args

log = logging.getLogger("harness")

HEADERS_DIR = "kselftest-headers"
# kselftest's own fallback when runner.sh names none (it is 45 s in 7.3).
KSELFTEST_TIMEOUT = 45.0
# kselftest_harness exits 4 (KSFT_SKIP) when every test skipped.
KSFT_SKIP = 4
TAIL_CHARS = 300


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
    # The program's class (protocol.CLASSES): whether the run may overlap others.
    run_class: str = "exclusive"


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


def install_headers(tree: Path, build_dir: Path, log_file: Path, timeout: float) -> Path:
    """make headers_install from the built tree into the build dir: the host's uapi lacks
    the new ops. The one place it runs: the selftests and the op numbers. Skipped when the
    headers there came from the very tree and config of the last build (its stamp), as
    they do for the second caller of a run and in a re-run: make took 0.45 s to find that
    nothing had changed. A build with no stamp (the user's tree) installs every time."""
    headers = build_dir / HEADERS_DIR
    built = build_dir / kernel_build.STAMP
    stamp = headers / kernel_build.STAMP
    source = built.read_text() if built.is_file() else None
    if source is not None and stamp.is_file() and stamp.read_text() == source:
        return headers
    stamp.unlink(missing_ok=True)
    run(["make", "-C", tree, f"O={build_dir}", *arch_args(build_dir), "headers_install",
         f"INSTALL_HDR_PATH={headers}"], log_file=log_file, timeout=timeout)
    if source is not None:
        stamp.write_text(source)
    return headers


def _install_headers(req: KselftestBuildRequest) -> Path:
    try:
        return install_headers(req.tree, req.build_dir, req.logs / "kselftest-build.log",
                               req.timeout)
    except CommandError as exc:
        raise InfraError(_failed("cannot install the tree's uapi headers", exc)) from exc


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
        runs.append(KselftestRun(base, binary.name, program.args, timeout, "", preload,
                                 program.run_class))
        runs += [KselftestRun(f"{base}.{t.subtest}.rerun{i}", binary.name,
                              (*program.args, "-r", t.subtest), timeout, t.subtest, preload,
                              program.run_class)
                 for t in spec.timing(binary.name) for i in range(1, t.reruns + 1)]
    return tuple(runs)
