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

from harness import cigen, data, kconfig, pipeline, report, source, vdso
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

    # resolve: should run's options grow a --shards, ci's own one wins.
    ci = sub.add_parser("ci", conflict_handler="resolve",
                        help="write a CI pipeline that runs the harness on a kernel tree; "
                             "run's options go into every shard's command line")
    _run_args(ci)
    _ci_args(ci)
    sub.add_parser("deps", help="print the Debian packages the harness needs, one a line")
    return p


# ci's own options: never passed through, even should run grow one of the same name.
CI_OPTIONS = ("kind", "shards", "out", "harness_spec", "kernel_src")


def _ci_args(ci: argparse.ArgumentParser) -> None:
    """ci's own options; the rest are run's, passed through."""
    settings = cigen.load_ci()
    ci.add_argument("kind", choices=sorted(settings.kinds))
    ci.add_argument("--shards", type=int, default=settings.shards,
                    help=f"jobs that split the boots (default: {settings.shards})")
    ci.add_argument("--out", type=Path, help="write the pipeline here (default: stdout)")
    ci.add_argument("--harness-spec", default=settings.harness_spec, metavar="PIP_SPEC",
                    help="what the pipeline installs with pipx: a PyPI requirement or a VCS "
                         f"URL (default: {settings.harness_spec})")
    ci.add_argument("--kernel-src", default=".",
                    help="the kernel tree, relative to the pipeline's checkout (default: .)")


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
        backend=BackendConfig(settings, cache_root(), args.accel, args.target, args.ssh_key,
                              args.known_hosts, args.host_key),
        jobs=args.jobs, stress=args.stress, boot=args.command == "run",
        suites=tuple(settings.suite(n).name for n in args.suite))
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


def cmd_ci(args: argparse.Namespace) -> int:
    options = cigen.CiOptions(args.shards, args.harness_spec, args.kernel_src,
                              tuple(_passthrough(args)))
    text = cigen.render(args.kind, options)
    if args.out:
        cigen.write_pipeline(text, args.out)
    else:
        sys.stdout.write(text)
    return 0


def _passthrough(args: argparse.Namespace) -> list[str]:
    """The run options given to ci, as a run command line: those that differ from run's
    defaults, so that defaults taken from this machine stay out of the pipeline."""
    run = argparse.ArgumentParser(add_help=False)
    _run_args(run)
    argv: list[str] = []
    for action in run._actions:
        value = getattr(args, action.dest)
        if action.dest in CI_OPTIONS or value == action.default:
            continue
        option = max(action.option_strings, key=len)
        if action.nargs == 0:
            argv.append(option)
        else:
            values = value if isinstance(value, list) else [value]
            argv += [a for v in values for a in (option, str(v))]
    return argv


def cmd_deps(args: argparse.Namespace) -> int:
    print("\n".join(data.load_apt_packages()))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    record = report.load_record(args.run_dir)
    sys.stdout.write(report.render_table(record))
    return report.exit_code(record)


COMMANDS = {"run": cmd_run, "build": cmd_run, "source": cmd_source, "check-vdso": cmd_check_vdso,
            "report": cmd_report, "ci": cmd_ci, "deps": cmd_deps}


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
