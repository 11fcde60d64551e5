# SPDX-License-Identifier: GPL-2.0
"""Command line: a subcommand per stage; messages and exit codes (0 pass, 1 fail, 2 error)."""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import logging
import os
import shlex
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from harness import (
    cigen,
    data,
    email_report,
    gittree,
    kcidb,
    kconfig,
    lore,
    merge,
    pipeline,
    plan,
    report,
    source,
    vdso,
)
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
    _kcidb_args(run)
    pln = sub.add_parser("plan", help="print the jobs a run would do, and their shards")
    _run_args(pln)
    pln.add_argument("--shards", type=int, default=1, metavar="N",
                     help="show the split into N shards (as run --shard I/N does it)")
    pln.add_argument("--format", choices=("table", "json"), default="table")
    build = sub.add_parser("build", help="source, patches, config, build and the vDSO "
                                         "checks of every revision; no boot")
    _run_args(build)
    _kcidb_args(build)

    src = sub.add_parser("source", help="fetch or check the kernel tree and print its path")
    _source_args(src)

    chk = sub.add_parser("check-vdso", help="run the vDSO ELF checks on a build directory")
    chk.add_argument("build_dir", type=Path)
    chk.add_argument("--expect", default="upstream")

    mrg = sub.add_parser("merge", help="merge the run dirs of a request's shards into one")
    mrg.add_argument("dirs", type=Path, nargs="+", metavar="DIR")
    mrg.add_argument("--run-dir", type=Path, required=True, help="where the merged run goes")
    _kcidb_args(mrg)

    rep = sub.add_parser("report", help="print the report of a finished run from its files")
    rep.add_argument("run_dir", type=Path)
    rep.add_argument("--format", choices=("table", "email"), default="table",
                     help="table (default), or email: a plain-text reply for the mailing list")

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
    run.add_argument("--kernel-src", type=Path, help="your kernel tree (never written to)")
    run.add_argument("--debian", action="append", default=[], metavar="RELEASE",
                     help=f"Debian linux-source release pinned in settings.toml (default: "
                          f"{data.load_settings().debian_default}), or any version of "
                          "linux-source that apt offers in its suites, such as 7.3~rc7-1~exp1 "
                          "(experimental); repeat to test each")
    run.add_argument("--shard", metavar="I/N",
                     help="only the I-th of N shares of the jobs (see the plan command)")
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
    run.add_argument("--config-variant", action="append", default=[], metavar="VARIANT",
                     help=f"{data.load_settings().config_variant} (the default), vng "
                          "(virtme-ng's full base config), or any subdirectory of the "
                          "fragment directory whose fragments are added; repeat to test "
                          "each variant")
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
    run.add_argument("--bisect", action="store_true",
                     help="for a series that breaks what passes on the base, find the first "
                          "bad patch (an incremental rebuild and the broken checks per step)")
    run.add_argument("--suite", action="append", default=[], metavar="NAME",
                     help="boot only this suite of settings.toml [suites] (repeatable), "
                          "for example --suite stress")
    run.add_argument("--only", action="append", default=[], metavar="PATTERN",
                     help="run only the guest tests whose name matches this shell pattern "
                          "(repeatable), for example --only 'remap-exit-*'")


def _kcidb_args(p: argparse.ArgumentParser) -> None:
    """The option of the commands that write kcidb.json."""
    p.add_argument("--kcidb-origin", default=kcidb.default_origin(), metavar="NAME",
                   help="the CI system named in kcidb.json (default: "
                        f"${kcidb.ORIGIN_ENV}, else {kcidb.spec().origin})")


def _source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kernel-src", type=Path, help="your kernel tree (never written to)")
    settings = data.load_settings()
    p.add_argument("--debian", default=None,
                   help=f"Debian linux-source release (default: {settings.debian_default}), "
                        "or a version of linux-source that apt offers, such as 7.3~rc7-1~exp1")


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


def _plan(args: argparse.Namespace) -> plan.Plan:
    """The jobs the run and plan options ask for."""
    settings = data.load_settings()
    if args.kernel_src and args.debian:
        raise UserError("--kernel-src and --debian choose the tree two ways; give one")
    kernels = ((plan.Kernel(settings.debian_default, args.kernel_src),) if args.kernel_src
               else tuple(plan.Kernel(d) for d in _unique(args.debian
                                                          or [settings.debian_default])))
    variants = tuple(_unique(args.config_variant or [settings.config_variant]))
    for variant in variants:  # an unknown variant is the user's error before anything runs
        kconfig.variant_fragments(args.config_dir, variant)
    options = (("expect", args.expect), ("suites", ",".join(args.suite)),
               ("only", ",".join(args.only)),
               ("stress", str(args.stress)), ("config_dir", str(args.config_dir)))
    return plan.make_plan(plan.PlanRequest(
        kernels, variants, plan.revisions(args.series, args.rev_version, not args.no_base),
        options))


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def cmd_plan(args: argparse.Namespace) -> int:
    planned = _plan(args)
    total = plan.parse_shard(f"1/{args.shards}")[1]
    if args.shard:
        index, total = plan.parse_shard(args.shard)
        jobs = planned.shard(index, total)
        if args.format == "json":
            print(json.dumps([j.to_json() for j in jobs], indent=1))
        else:
            print("\n".join(j.id for j in jobs))
        return 0
    if args.format == "json":
        print(json.dumps(planned.to_json(total), indent=1))
    else:
        sys.stdout.write(plan.render_table(planned, total))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    settings = data.load_settings()
    run_dir = (args.run_dir or Path("runs") / time.strftime("%Y%m%d-%H%M%S")).resolve()
    origin = kcidb.check_origin(args.kcidb_origin)
    planned = _plan(args)
    index, total = plan.parse_shard(args.shard) if args.shard else (1, 1)
    jobs = planned.shard(index, total)
    command = shlex.join(["futex-harness", *sys.argv[1:]])
    _setup_logging(args.verbose, run_dir / "harness.log")
    log.info("reproduce: %s", command)
    log.info("run directory: %s", run_dir)
    rec = pipeline.Recorder(run_dir, Run(
        command, time.strftime("%FT%T%z"), request=planned.request,
        shard=args.shard and f"{index}/{total}", jobs=[j.id for j in jobs],
        plan=[j.id for j in planned.jobs]), origin)
    if args.target:
        parse_target(args.target)  # a bad URL is the user's error before anything else
    if args.shard:
        log.info("shard %d/%d: %s", index, total, ", ".join(j.id for j in jobs) or "no jobs")
    if args.mbox and not any(lore.message_id(s) for s in args.series):
        raise UserError("--mbox FILE is where b4 finds a msgid: series; no --series names one")
    req = pipeline.RunRequest(
        settings=settings, run_dir=run_dir, cache=cache_root(), jobs=jobs, expect=args.expect,
        fragments={v: kconfig.variant_fragments(args.config_dir, v)
                   for v in {j.variant for j in jobs}},
        backend=BackendConfig(settings, cache_root(), args.accel, args.target, args.ssh_key,
                              args.known_hosts, args.host_key),
        make_jobs=args.jobs, stress=args.stress, boot=args.command == "run", bisect=args.bisect,
        suites=tuple(settings.suite(n).name for n in args.suite),
        mbox=args.mbox.resolve() if args.mbox else None,
        bases={v: kconfig.variant_base(args.config_dir, v) for v in {j.variant for j in jobs}},
        only=tuple(args.only))
    limit = args.timeout or settings.timeouts.run
    try:
        with run_limit(limit):
            pipeline.run_all(req, rec)
    finally:
        rec.flush()
        sys.stdout.write(report.render_text(rec.record))
        log.info("results: %s", run_dir / "results.json")
    return report.exit_code(rec.record)


def cmd_merge(args: argparse.Namespace) -> int:
    origin = kcidb.check_origin(args.kcidb_origin)
    _setup_logging(args.verbose, args.run_dir / "harness.log")
    command = shlex.join(["futex-harness", *sys.argv[1:]])
    log.info("reproduce: %s", command)
    merged = merge.merge_dirs(args.dirs, args.run_dir, command, origin)
    sys.stdout.write(report.render_text(merged))
    log.info("results: %s", args.run_dir / "results.json")
    return report.exit_code(merged)


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
    if args.format == "email":
        tester = None
        if report.exit_code(record) == report.EXIT_PASS:
            tester = gittree.user_identity(cache_root() / "logs" / "report.log")
        sys.stdout.write(email_report.render_email(record, tester))
        return report.exit_code(record)
    sys.stdout.write(report.render_text(record))
    return report.exit_code(record)


COMMANDS = {"run": cmd_run, "build": cmd_run, "plan": cmd_plan, "merge": cmd_merge,
            "source": cmd_source, "check-vdso": cmd_check_vdso, "report": cmd_report,
            "ci": cmd_ci, "deps": cmd_deps}


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
