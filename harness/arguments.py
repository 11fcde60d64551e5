# SPDX-License-Identifier: GPL-2.0
"""The command line's options: one parser, a subcommand per stage. cli.py runs them."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
from pathlib import Path

from harness import data
from harness.ci import generate as cigen
from harness.data.settings import load_settings
from harness.outputs import kcidb

DESCRIPTION = ("Command line: a subcommand per stage; messages and exit codes (0 pass, 1 fail, "
               "2 error).")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="futex-harness", description=DESCRIPTION)
    p.add_argument("--verbose", action="store_true", help="debug output on the console")
    p.add_argument("--version", action="version",
                   version=f"%(prog)s {importlib.metadata.version('futex-harness')}")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="build, check, boot and test one kernel")
    run_args(run)
    _kcidb_args(run)
    pln = sub.add_parser("plan", help="print the jobs a run would do, and their shards")
    run_args(pln)
    pln.add_argument("--shards", type=int, default=1, metavar="N",
                     help="show the split into N shards (as run --shard I/N does it)")
    pln.add_argument("--format", choices=("table", "json"), default="table")
    build = sub.add_parser("build", help="source, patches, config, build and the vDSO "
                                         "checks of every revision; no boot")
    run_args(build)
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
    run_args(ci)
    ci_args(ci)
    sub.add_parser("deps", help="print the Debian packages the harness needs, one a line")
    return p


# ci's own options: never passed through, even should run grow one of the same name.
CI_OPTIONS = ("kind", "shards", "out", "harness_spec", "kernel_src")


def ci_args(ci: argparse.ArgumentParser) -> None:
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


def run_args(run: argparse.ArgumentParser) -> None:
    """The options of run and build."""
    run.add_argument("--kernel-src", type=Path, help="your kernel tree (never written to)")
    run.add_argument("--debian", action="append", default=[], metavar="RELEASE",
                     help=f"Debian linux-source release pinned in settings.toml (default: "
                          f"{load_settings().debian_default}), or any version of "
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
                     help=f"{load_settings().config_variant} (the default), vng "
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
    run.add_argument("--lanes", type=_lanes, metavar="N",
                     help="boot at most N VMs side by side, each running a share of the "
                          "suite (default: lanes of the suite in settings.toml, at most the "
                          "host's cores; 1 runs the whole suite in one VM)")
    run.add_argument("--changed-only", action="store_true",
                     help="run only the guest tests that the files each revision's patches "
                          "touch can affect (data/changed-only.toml; a file outside it runs "
                          "everything); for re-testing while editing: never a series verdict")


def _lanes(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of VMs, 1 or more")
    return value


def _kcidb_args(p: argparse.ArgumentParser) -> None:
    """The option of the commands that write kcidb.json."""
    p.add_argument("--kcidb-origin", default=kcidb.default_origin(), metavar="NAME",
                   help="the CI system named in kcidb.json (default: "
                        f"${kcidb.ORIGIN_ENV}, else {kcidb.spec().origin})")


def _source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kernel-src", type=Path, help="your kernel tree (never written to)")
    settings = load_settings()
    p.add_argument("--debian", default=None,
                   help=f"Debian linux-source release (default: {settings.debian_default}), "
                        "or a version of linux-source that apt offers, such as 7.3~rc7-1~exp1")
