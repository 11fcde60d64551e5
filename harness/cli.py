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

from harness import data, email_report, gittree, kconfig, lore, pipeline, report, source, vdso
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
    rep.add_argument("--format", choices=("table", "email"), default="table",
                     help="table (default), or email: a plain-text reply for the mailing list")
    return p


def _run_args(run: argparse.ArgumentParser) -> None:
    """The options of run and build."""
    _source_args(run)
    run.add_argument("--series", action="append", default=[], metavar="SERIES",
                     help="a patch, mbox, thread mbox, quilt directory, git range A..B, "
                          "msgid:<message-id> or lore URL (fetched with b4 am); repeat to "
                          "compare revisions (the base is always tested too)")
    run.add_argument("--mbox", type=Path, metavar="FILE",
                     help="a local mbox holding the thread of a msgid: series; b4 reads it "
                          "(b4 am -m) instead of lore, offline")
    run.add_argument("--no-base", action="store_true",
                     help="skip the unpatched base column (for repeated runs of one series)")
    run.add_argument("-v", "--revision", dest="rev_version", type=int, metavar="N",
                     action="append", default=[],
                     help="the revision to pick from a thread mbox or message-id (as b4 am "
                          "-v N); repeat to test several revisions of each, side by side")
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


def revisions(series: list[str], versions: int | list[int] | None,
              base: bool = True) -> tuple[pipeline.Revision, ...]:
    """The base, then one revision per series and picked version, each with a unique label."""
    picks: list[int | None] = ([versions] if isinstance(versions, int)
                               else list(versions or []) or [None])
    out = [pipeline.Revision("base")]
    for raw in series:
        for version in picks:
            label = first = _label(raw, version)
            taken = {r.label for r in out}
            n = 2
            while label in taken:
                label, n = f"{first}-{n}", n + 1
            out.append(pipeline.Revision(label, raw, version))
    return tuple(out if base or not series else out[1:])


def _label(series: str, version: int | None) -> str:
    """A series' column: its file or directory name (plus -vN), or for a message-id
    series vN (what the thread calls it), else the message-id's own name."""
    msgid = lore.message_id(series)
    if msgid:
        return f"v{version}" if version else lore.label(msgid)
    name = Path(series.rstrip("/")).name
    stem = name.removesuffix(".patch").removesuffix(".mbx").removesuffix(".mbox") or series
    return stem + (f"-v{version}" if version else "")


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
    if args.mbox and not any(lore.message_id(s) for s in args.series):
        raise UserError("--mbox FILE is where b4 finds a msgid: series; no --series names one")
    req = pipeline.RunRequest(
        settings=settings, run_dir=run_dir, cache=cache_root(), kernel_src=args.kernel_src,
        debian=args.debian or settings.debian_default,
        revisions=revisions(args.series, args.rev_version, not args.no_base),
        expect=args.expect,
        fragments=kconfig.variant_fragments(args.config_dir, args.config_variant),
        variant=args.config_variant,
        backend=BackendConfig(settings, cache_root(), args.accel, args.target, args.ssh_key,
                              args.known_hosts, args.host_key),
        jobs=args.jobs, stress=args.stress, boot=args.command == "run",
        suites=tuple(settings.suite(n).name for n in args.suite),
        mbox=args.mbox.resolve() if args.mbox else None)
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
    if args.format == "email":
        tester = None
        if report.exit_code(record) == report.EXIT_PASS:
            tester = gittree.user_identity(cache_root() / "logs" / "report.log")
        sys.stdout.write(email_report.render_email(record, tester))
        return report.exit_code(record)
    sys.stdout.write(report.render_table(record))
    if len(record.revisions) > 1:
        sys.stdout.write(report.render_comparison(record))
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
