# SPDX-License-Identifier: GPL-2.0
"""Command line: a subcommand per stage; messages and exit codes (0 pass, 1 fail, 2 error)."""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import logging
import os
import shlex
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from harness import data, kconfig, pipeline, report, source, vdso
from harness.backends import BackendConfig
from harness.backends.ssh_connect import parse_target
from harness.errors import HarnessError, RunTimeout, UserError
from harness.paths import cache_root
from harness.record import Run

log = logging.getLogger("harness")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="futex-harness", description=__doc__)
    p.add_argument("--verbose", action="store_true", help="debug output on the console")
    p.add_argument("--version", action="version",
                   version=f"%(prog)s {importlib.metadata.version('futex-harness')}")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="build, check, boot and test one kernel")
    _run_args(run)
    build = sub.add_parser("build", help="source, patches, config, build and the vDSO "
                                         "checks of every revision; no boot")
    _run_args(build)

    src = sub.add_parser("source", help="fetch or check the kernel tree and print its path")
    _source_args(src)

    chk = sub.add_parser("check-vdso", help="run the vDSO ELF checks on a build directory")
    chk.add_argument("build_dir", type=Path)
    chk.add_argument("--expect", default="upstream")

    rep = sub.add_parser("report", help="print the report of a finished run from its files")
    rep.add_argument("run_dir", type=Path)
    return p


def _run_args(run: argparse.ArgumentParser) -> None:
    """The options of run and build."""
    _source_args(run)
    run.add_argument("--series", action="append", default=[], metavar="SERIES",
                     help="a patch, mbox, thread mbox, quilt directory or git range A..B; "
                          "repeat to compare revisions (the base is always tested too)")
    run.add_argument("--no-base", action="store_true",
                     help="skip the unpatched base column (for repeated runs of one series)")
    run.add_argument("-v", "--revision", dest="rev_version", type=int, metavar="N",
                     help="the revision to pick from a thread mbox (as b4 am -v N)")
    run.add_argument("--expect", default="upstream",
                     help="expectations file in data/expectations/ (default: upstream)")
    run.add_argument("--config-dir", type=Path, default=data.KERNEL_CONFIG,
                     help="directory of *.config fragments (default: kernel-config/)")
    run.add_argument("--config-variant", default=data.load_settings().config_variant,
                     help="lean (the default: kernel-config/lean/ trims virtme-ng's base), "
                          "vng (virtme-ng's full base config), or any subdirectory of the "
                          "fragment directory whose fragments are added")
    run.add_argument("--accel", choices=("auto", "kvm", "tcg"),
                     default=os.environ.get("FUTEX_HARNESS_ACCEL", "auto"))
    run.add_argument("--run-dir", type=Path, help="where logs and results go (default: runs/TIME)")
    run.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1)
    run.add_argument("--target", metavar="ssh://USER@HOST[:PORT]",
                     help="run the guest suite on a machine already booted into the build")
    run.add_argument("--ssh-key", type=Path, help="private key file (default: the SSH agent)")
    run.add_argument("--known-hosts", type=Path,
                     help="known_hosts file for the target (default: ~/.ssh/known_hosts)")
    run.add_argument("--host-key", metavar="SHA256:...",
                     help="pin the target's host key fingerprint instead of known_hosts")
    run.add_argument("--timeout", type=float, metavar="SECONDS",
                     help="limit for the whole run (default: timeouts.run in settings.toml)")
    run.add_argument("--stress", action="store_true",
                     help="also run the stress suites, each in a boot of its own")
    run.add_argument("--suite", action="append", default=[], metavar="NAME",
                     help="boot only this suite of settings.toml [suites] (repeatable), "
                          "for example --suite stress")
    run.add_argument("--only", action="append", default=[], metavar="PATTERN",
                     help="run only the guest tests whose name matches this shell pattern "
                          "(repeatable), for example --only 'remap-exit-*'")


def _source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kernel-src", type=Path, help="your kernel tree (never written to)")
    settings = data.load_settings()
    p.add_argument("--debian", default=None,
                   help=f"Debian linux-source release (default: {settings.debian_default})")


def _setup_logging(verbose: bool, log_file: Path | None) -> None:
    root = logging.getLogger("harness")
    root.setLevel(logging.DEBUG)
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.DEBUG if verbose else logging.INFO)
    console.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    root.addHandler(console)
    if log_file:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        root.addHandler(handler)


@contextlib.contextmanager
def run_limit(seconds: float) -> Iterator[None]:
    """Raise RunTimeout in the main thread once the whole run has taken too long."""

    def expire(signum: int, frame: object) -> None:
        raise RunTimeout(f"the run went past its limit of {seconds:.0f}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def revisions(series: list[str], version: int | None,
              base: bool = True) -> tuple[pipeline.Revision, ...]:
    """The base, then one revision per series, each with a unique label."""
    out = [pipeline.Revision("base")]
    for raw in series:
        name = Path(raw.rstrip("/")).name
        stem = name.removesuffix(".patch").removesuffix(".mbx").removesuffix(".mbox") or raw
        label = stem + (f"-v{version}" if version else "")
        taken = {r.label for r in out}
        n = 2
        while label in taken:
            label, n = f"{stem}-{n}", n + 1
        out.append(pipeline.Revision(label, raw, version))
    return tuple(out if base or not series else out[1:])


def cmd_run(args: argparse.Namespace) -> int:
    settings = data.load_settings()
    run_dir = (args.run_dir or Path("runs") / time.strftime("%Y%m%d-%H%M%S")).resolve()
    if args.kernel_src and args.debian:
        raise UserError("--kernel-src and --debian choose the tree two ways; give one")
    command = shlex.join(["futex-harness", *sys.argv[1:]])
    _setup_logging(args.verbose, run_dir / "harness.log")
    log.info("reproduce: %s", command)
    log.info("run directory: %s", run_dir)
    rec = pipeline.Recorder(run_dir, Run(command, time.strftime("%FT%T%z")))
    if args.target:
        parse_target(args.target)  # a bad URL is the user's error before anything else
    req = pipeline.RunRequest(
        settings=settings, run_dir=run_dir, cache=cache_root(), kernel_src=args.kernel_src,
        debian=args.debian or settings.debian_default,
        revisions=revisions(args.series, args.rev_version, not args.no_base),
        expect=args.expect,
        fragments=kconfig.variant_fragments(args.config_dir, args.config_variant),
        variant=args.config_variant,
        base=kconfig.variant_base(args.config_dir, args.config_variant),
        backend=BackendConfig(settings, cache_root(), args.accel, args.target, args.ssh_key,
                              args.known_hosts, args.host_key),
        jobs=args.jobs, stress=args.stress, boot=args.command == "run",
        suites=tuple(settings.suite(n).name for n in args.suite), only=tuple(args.only))
    limit = args.timeout or settings.timeouts.run
    try:
        with run_limit(limit):
            pipeline.run_all(req, rec)
    finally:
        rec.flush()
        sys.stdout.write(report.render_table(rec.record))
        if len(rec.record.revisions) > 1:
            sys.stdout.write(report.render_comparison(rec.record))
        log.info("results: %s", run_dir / "results.json")
    return report.exit_code(rec.record)


def cmd_source(args: argparse.Namespace) -> int:
    settings = data.load_settings()
    _setup_logging(args.verbose, None)
    logs = cache_root() / "logs"
    src = source.prepare_source(source.SourceRequest(
        args.kernel_src, args.debian or settings.debian_default, cache_root(), logs), settings)
    print(src.tree)
    return 0


def cmd_check_vdso(args: argparse.Namespace) -> int:
    _setup_logging(args.verbose, None)
    config_file = args.build_dir / ".config"
    if not config_file.is_file():
        raise UserError(f"{args.build_dir} has no .config; is it a kernel build directory?")
    result = vdso.check_vdso(vdso.VdsoRequest(
        args.build_dir, data.load_expectations(args.expect),
        kconfig.parse_config(config_file.read_text(), str(config_file))))
    for c in result.checks:
        print(f"{c.name:<16} {c.verdict.value:<6} {c.detail}")
    for f in result.facts.values():
        print(f"{f.image}:{f.function} at {f.offset:#x}+{f.size}: start {f.start:#x} "
              f"success {f.success:#x} end {f.end:#x}")
    return report.EXIT_PASS if all(c.verdict.ok for c in result.checks) else report.EXIT_FAIL


def cmd_report(args: argparse.Namespace) -> int:
    record = report.load_record(args.run_dir)
    sys.stdout.write(report.render_table(record))
    return report.exit_code(record)


COMMANDS = {"run": cmd_run, "build": cmd_run, "source": cmd_source, "check-vdso": cmd_check_vdso,
            "report": cmd_report}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except HarnessError as exc:
        kind = "error" if isinstance(exc, UserError) else "infrastructure error"
        print(f"futex-harness: {kind}: {exc}", file=sys.stderr)
        return report.EXIT_ERROR
    except KeyboardInterrupt:
        print("futex-harness: interrupted; partial results were kept", file=sys.stderr)
        return report.EXIT_ERROR
    except Exception as exc:  # a bug of ours: still no bare traceback as the verdict
        log.exception("internal error")
        print(f"futex-harness: internal error: {exc!r} (traceback in the log); "
              "partial results were kept", file=sys.stderr)
        return report.EXIT_ERROR
