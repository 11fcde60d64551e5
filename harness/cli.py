# SPDX-License-Identifier: GPL-2.0
"""Command line: a subcommand per stage; messages and exit codes (0 pass, 1 fail, 2 error)."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import shlex
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from harness import arguments
from harness.backends import BackendConfig
from harness.backends.ssh_connect import parse_target
from harness.ci import generate as cigen
from harness.data.expectations import load_expectations
from harness.data.settings import load_apt_packages, load_settings
from harness.errors import HarnessError, RunTimeout, UserError
from harness.orchestration import jobs, merge, pipeline
from harness.outputs import email as email_report
from harness.outputs import kcidb, report
from harness.outputs.record import Run
from harness.paths import cache_root
from harness.stages import gittree, kconfig, kconfig_variants, lore, source, vdso

log = logging.getLogger("harness")


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


def _plan(args: argparse.Namespace) -> jobs.JobList:
    """The jobs the run and plan options ask for."""
    settings = load_settings()
    if args.kernel_src and args.debian:
        raise UserError("--kernel-src and --debian choose the tree two ways; give one")
    kernels = ((jobs.Kernel(settings.debian_default, args.kernel_src),) if args.kernel_src
               else tuple(jobs.Kernel(d) for d in _unique(args.debian
                                                          or [settings.debian_default])))
    variants = tuple(_unique(args.config_variant or [settings.config_variant]))
    for variant in variants:  # an unknown variant is the user's error before anything runs
        kconfig_variants.variant_fragments(args.config_dir, variant)
    options = (("expect", args.expect), ("suites", ",".join(args.suite)),
               ("only", ",".join(args.only)), ("changed_only", str(args.changed_only)),
               ("stress", str(args.stress)), ("config_dir", str(args.config_dir)))
    return jobs.list_jobs(jobs.JobRequest(
        kernels, variants, jobs.revisions(args.series, args.rev_version, not args.no_base),
        options))


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def cmd_plan(args: argparse.Namespace) -> int:
    planned = _plan(args)
    total = jobs.parse_shard(f"1/{args.shards}")[1]
    if args.shard:
        index, total = jobs.parse_shard(args.shard)
        chosen = planned.shard(index, total)
        if args.format == "json":
            print(json.dumps([j.to_json() for j in chosen], indent=1))
        else:
            print("\n".join(j.id for j in chosen))
        return 0
    if args.format == "json":
        print(json.dumps(planned.to_json(total), indent=1))
    else:
        sys.stdout.write(jobs.render_table(planned, total))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    settings = load_settings()
    run_dir = (args.run_dir or Path("runs") / time.strftime("%Y%m%d-%H%M%S")).resolve()
    origin = kcidb.check_origin(args.kcidb_origin)
    planned = _plan(args)
    index, total = jobs.parse_shard(args.shard) if args.shard else (1, 1)
    chosen = planned.shard(index, total)
    command = shlex.join(["futex-harness", *sys.argv[1:]])
    _setup_logging(args.verbose, run_dir / "harness.log")
    log.info("reproduce: %s", command)
    log.info("run directory: %s", run_dir)
    rec = pipeline.Recorder(run_dir, Run(
        command, time.strftime("%FT%T%z"), request=planned.request,
        shard=args.shard and f"{index}/{total}", jobs=[j.id for j in chosen],
        plan=[j.id for j in planned.jobs]), origin)
    if args.target:
        parse_target(args.target)  # a bad URL is the user's error before anything else
    if args.shard:
        log.info("shard %d/%d: %s", index, total, ", ".join(j.id for j in chosen) or "no jobs")
    if args.mbox and not any(lore.message_id(s) for s in args.series):
        raise UserError("--mbox FILE is where b4 finds a msgid: series; no --series names one")
    req = pipeline.RunRequest(
        settings=settings, run_dir=run_dir, cache=cache_root(), jobs=chosen, expect=args.expect,
        fragments={v: kconfig_variants.variant_fragments(args.config_dir, v)
                   for v in {j.variant for j in chosen}},
        backend=BackendConfig(settings, cache_root(), args.accel, args.target, args.ssh_key,
                              args.known_hosts, args.host_key),
        make_jobs=args.jobs, stress=args.stress, boot=args.command == "run", bisect=args.bisect,
        suites=tuple(settings.suite(n).name for n in args.suite),
        mbox=args.mbox.resolve() if args.mbox else None,
        bases={v: kconfig_variants.variant_base(args.config_dir, v)
               for v in {j.variant for j in chosen}},
        arches={v: kconfig_variants.variant_arch(args.config_dir, v)
                for v in {j.variant for j in chosen}},
        only=tuple(args.only), changed_only=args.changed_only, lanes=args.lanes)
    limit = args.timeout or settings.timeouts.run
    try:
        with run_limit(limit):
            pipeline.test_all(req, rec)
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
    settings = load_settings()
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
        args.build_dir, load_expectations(args.expect),
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
    arguments.run_args(run)
    argv: list[str] = []
    for action in run._actions:
        value = getattr(args, action.dest)
        if action.dest in arguments.CI_OPTIONS or value == action.default:
            continue
        option = max(action.option_strings, key=len)
        if action.nargs == 0:
            argv.append(option)
        else:
            values = value if isinstance(value, list) else [value]
            argv += [a for v in values for a in (option, str(v))]
    return argv


def cmd_deps(args: argparse.Namespace) -> int:
    print("\n".join(load_apt_packages()))
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
    args = arguments.parser().parse_args(argv)
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
