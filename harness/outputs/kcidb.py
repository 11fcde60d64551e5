# SPDX-License-Identifier: GPL-2.0
"""KCIDB output (kcidb.json, schema v5.3) from the run record alone: a checkout per kernel and
series, a build per revision (kernel x variant x series), a test per check.

Names, statuses and the schema version come from data/kcidb.toml. Ids are
"<origin>:<run>/<what>", where <run> is the request hash and the start time, so one run
always gives the same ids, and two runs never share one. kcidb-io, which validates the
output, is a test dependency only; nothing here talks to a KCIDB service."""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.data import DATA, read_toml
from harness.data.settings import load_settings
from harness.errors import UserError
from harness.files import write_atomic
from harness.outputs.record import Revision, Run, Stage
from harness.stages import build
from harness.verdicts.checks import Check, Verdict, stage_check

KCIDB_TOML = DATA / "kcidb.toml"
KCIDB_JSON = "kcidb.json"
ORIGIN_ENV = "FUTEX_HARNESS_KCIDB_ORIGIN"
# What a path segment may hold (the schema's path pattern allows '-' too; the issue's
# paths use '_' throughout, so hyphens go as well).
_NOT_SEGMENT = re.compile(r"[^A-Za-z0-9_]")
# The schema caps every log_excerpt at this many characters.
_EXCERPT = 16384


@dataclass(frozen=True)
class BuildStatus:
    """The build's status for each way its stages can end."""

    ok: str
    failed: str
    error: str
    never_ran: str


@dataclass(frozen=True)
class KcidbSpec:
    major: int
    minor: int
    origin: str
    origin_pattern: str
    prefix: str
    # Check-name prefix -> its replacement, tried in order, before '/' becomes '.'.
    rename: dict[str, str]
    status: dict[Verdict, str]
    checkout_stages: tuple[str, ...]
    checkout_log: str
    build_stages: tuple[str, ...]
    build_timed: str
    build_log: str
    build_config: str
    build_status: BuildStatus
    stage_error: str
    # The status of a guest test that run --changed-only left out.
    changed_only_status: str = "SKIP"


def load_spec(path: Path = KCIDB_TOML) -> KcidbSpec:
    """data/kcidb.toml; a verdict without a status or a status KCIDB lacks is named."""
    raw = read_toml(path)
    allowed = set(raw["schema"]["statuses"])
    status = _verdict_statuses(raw["status"], path)
    build_raw = raw["build"]
    build_status = BuildStatus(**build_raw["status"])
    changed_only = raw.get("changed_only", {}).get("status", "SKIP")
    used = [*status.values(), *vars(build_status).values(), raw["stage"]["error"],
            changed_only]
    unknown = sorted({s for s in used if s not in allowed})
    if unknown:
        raise UserError(f"{path}: statuses {', '.join(unknown)} are not KCIDB's; "
                        f"choose from: {', '.join(sorted(allowed))}")
    prefix = raw["path"]["prefix"]
    if not prefix or _NOT_SEGMENT.search(prefix):
        raise UserError(f"{path}: path prefix {prefix!r} must be letters, digits and '_'")
    return KcidbSpec(
        major=int(raw["schema"]["major"]), minor=int(raw["schema"]["minor"]),
        origin=raw["origin"]["default"], origin_pattern=raw["origin"]["pattern"],
        prefix=prefix, rename=dict(raw["path"].get("rename", {})), status=status,
        checkout_stages=tuple(raw["checkout"]["stages"]), checkout_log=raw["checkout"]["log"],
        build_stages=tuple(build_raw["stages"]), build_timed=build_raw["timed"],
        build_log=build_raw["log"], build_config=build_raw["config"],
        build_status=build_status, stage_error=raw["stage"]["error"],
        changed_only_status=changed_only)


def _verdict_statuses(raw: dict[str, str], path: Path) -> dict[Verdict, str]:
    """Every verdict's status; a missing or unknown verdict names the file."""
    names = [v.value for v in Verdict]
    missing = [n for n in names if n not in raw]
    unknown = sorted(set(raw) - set(names))
    if missing or unknown:
        raise UserError(f"{path} [status]: missing verdicts {missing or 'none'}, "
                        f"unknown {unknown or 'none'}")
    return {Verdict(n): raw[n] for n in names}


@functools.cache
def spec() -> KcidbSpec:
    """The spec from data/kcidb.toml, read once."""
    return load_spec()


@functools.cache
def _architecture() -> str:
    return load_settings().arch


def default_origin() -> str:
    """$FUTEX_HARNESS_KCIDB_ORIGIN, else the default in data/kcidb.toml."""
    return os.environ.get(ORIGIN_ENV) or spec().origin


def check_origin(origin: str) -> str:
    """The origin, if the schema's rule allows it; otherwise a UserError naming the rule."""
    pattern = spec().origin_pattern
    if not re.fullmatch(pattern, origin):
        raise UserError(f"KCIDB origin {origin!r} breaks the schema's rule {pattern} "
                        "(lowercase letters, digits and '_' only); set it with "
                        f"--kcidb-origin or {ORIGIN_ENV}")
    return origin


def check_path(check: str) -> str:
    """A check's dotted KCIDB test path: kselftest-futex/robust_list/a.b ->
    futex_harness.kselftest.futex.robust_list.a.b, cs-fixup-64 -> futex_harness.cs_fixup_64."""
    s = spec()
    for old, new in s.rename.items():
        if check.startswith(old):
            check = new + check.removeprefix(old)
            break
    segments = (_NOT_SEGMENT.sub("_", part) for part in check.replace("/", ".").split("."))
    return ".".join([s.prefix, *(part for part in segments if part)])


def run_key(run: Run) -> str:
    """What sets this run's ids apart: the request's hash and the start time."""
    return "@".join(x for x in (run.request[:16], run.started) if x) or "run"


def to_kcidb(run: Run, origin: str, run_dir: Path | None = None) -> dict[str, Any]:
    """The KCIDB document of a run. With run_dir (absolute), logs that exist there are
    linked as file:// URLs; their paths relative to the run dir are in each object's misc."""
    s = spec()
    prefix = f"{check_origin(origin)}:{run_key(run)}"
    taken: set[str] = set()
    groups: dict[tuple[str, str | None], list[Revision]] = {}
    for rev in run.revisions:
        groups.setdefault((_kernel(rev), rev.series), []).append(rev)
    checkout_ids = {key: _unique(f"{prefix}/{key[0]}/{key[1] or 'base'}", taken)
                    for key in groups}
    checkouts = [_checkout(checkout_ids[key], origin, run, revs, s, run_dir)
                 for key, revs in groups.items()]
    builds, tests = [], []
    for rev in run.revisions:
        build_id = _unique(f"{prefix}/{rev.job or rev.label}", taken)
        checkout_id = checkout_ids[(_kernel(rev), rev.series)]
        builds.append(_build(build_id, checkout_id, origin, rev, s, run_dir))
        # Every test names a build of this document, also when that build failed or never
        # ran (its status says so); a failed build has no checks in practice.
        tests += _tests(build_id, origin, rev, s, taken)
    return {"version": {"major": s.major, "minor": s.minor},
            "checkouts": checkouts, "builds": builds, "tests": tests}


def write_kcidb(run_dir: Path, run: Run, origin: str) -> Path:
    """kcidb.json in the run dir, replaced whole; returns its path."""
    path = run_dir / KCIDB_JSON
    doc = to_kcidb(run, origin, run_dir.absolute())
    write_atomic(path, (json.dumps(doc, indent=1) + "\n").encode())
    return path


def _unique(wanted: str, taken: set[str]) -> str:
    """wanted, or wanted#N when an earlier object took it (a series given twice)."""
    found, n = wanted, 2
    while found in taken:
        found, n = f"{wanted}#{n}", n + 1
    taken.add(found)
    return found


def _kernel(rev: Revision) -> str:
    # Records written before the kernel field existed name the tree only in origin.
    return rev.kernel or rev.origin or rev.label


def _text(text: str) -> str:
    """KCIDB strings may not hold NUL; a guest's stderr can."""
    return text.replace("\0", "\\x00")


def _stage(rev: Revision, name: str) -> Stage | None:
    return next((st for st in rev.stages if st.name == name), None)


def _log(run_dir: Path | None, rev: Revision, name: str) -> tuple[str, str] | None:
    """(relative path, file:// URL) of a log of the revision, when the file exists; a
    relative path is no URL, and a merged run's logs stay in its shards' run dirs."""
    if run_dir is None or not rev.label:
        return None
    relative = Path(rev.label) / "logs" / name
    path = run_dir / relative
    return (str(relative), path.as_uri()) if path.is_file() else None


def _start_time(started: str) -> str | None:
    """RFC 3339, as the schema's date-time wants; the record's %z offset lacks the colon."""
    try:
        when = datetime.fromisoformat(started)
    except ValueError:
        return None
    return when.isoformat() if when.tzinfo else None


def _checkout_state(rev: Revision, s: KcidbSpec) -> bool | None:
    """False if a checkout stage failed, True once all of them passed, else None."""
    stages = [_stage(rev, name) for name in s.checkout_stages]
    if any(st is not None and st.failed for st in stages):
        return False
    return True if all(st is not None and st.status == "ok" for st in stages) else None


def _checkout(checkout_id: str, origin: str, run: Run, revs: list[Revision], s: KcidbSpec,
              run_dir: Path | None) -> dict[str, Any]:
    """One source tree plus one series (or none), shared by its variants' builds."""
    first = revs[0]
    states = [_checkout_state(r, s) for r in revs]
    valid = True if True in states else (False if False in states else None)
    out: dict[str, Any] = {"id": checkout_id, "origin": origin,
                           "comment": _text(_checkout_comment(first))}
    hashes = [r.patchset_hash for r in revs if r.patchset_hash]
    if hashes:
        out["patchset_hash"] = hashes[0]
    elif valid:
        # The schema's value for "no patches applied": the base, or an empty series.
        out["patchset_hash"] = ""
    if valid is not None:
        out["valid"] = valid
    started = _start_time(run.started)
    if started:
        out["start_time"] = started
    misc: dict[str, Any] = {"kernel": _kernel(first), "series": first.series or "",
                            "patches": list(first.applied)}
    log = _log(run_dir, first, s.checkout_log)
    if log:
        misc["log_path"], out["log_url"] = log
    failed = next((r.failed_stage for r in revs if r.failed_stage
                   and r.failed_stage.name in s.checkout_stages), None)
    if failed and valid is False:
        out["log_excerpt"] = _text(failed.detail)[:_EXCERPT]
    out["misc"] = misc
    return out


def _checkout_comment(rev: Revision) -> str:
    source = rev.origin or _kernel(rev)
    return f"{source} + series {rev.series}" if rev.series else source


def _build_status(rev: Revision, s: KcidbSpec) -> str | None:
    """PASS once built; FAIL on a compile error; ERROR on another build-stage error; MISS
    when a checkout stage failed first; None while the build has not finished."""
    failed, codes = rev.failed_stage, s.build_status
    if failed is not None and failed.name in s.checkout_stages:
        return codes.never_ran
    if failed is not None and failed.name in s.build_stages:
        return codes.failed if failed.detail.startswith(build.FAILED) else codes.error
    done = [_stage(rev, name) for name in s.build_stages]
    return codes.ok if all(st is not None and st.status == "ok" for st in done) else None


def _build(build_id: str, checkout_id: str, origin: str, rev: Revision, s: KcidbSpec,
           run_dir: Path | None) -> dict[str, Any]:
    """One revision's kernel build: its config variant, duration, status and logs."""
    out: dict[str, Any] = {"id": build_id, "origin": origin, "checkout_id": checkout_id,
                           "architecture": _architecture(),
                           "comment": _text(f"{rev.label}: {rev.variant} config"
                                            if rev.variant else rev.label)}
    if rev.variant:
        out["config_name"] = rev.variant
    status = _build_status(rev, s)
    if status:
        out["status"] = status
    timed = _stage(rev, s.build_timed)
    misc: dict[str, Any] = {"label": rev.label, "job": rev.job}
    if rev.changed_only:
        # Its tests are a choice from the changed files: no series verdict.
        misc["changed_only"] = rev.changed_only.to_json()
    if timed is not None and timed.status != "running":
        out["duration"] = timed.seconds
        misc["detail"] = _text(timed.detail)
    failed = rev.failed_stage
    if failed is not None and failed.name in (*s.checkout_stages, *s.build_stages):
        out["log_excerpt"] = _text(f"stage {failed.name}: {failed.detail}")[:_EXCERPT]
    log, config = _log(run_dir, rev, s.build_log), _log(run_dir, rev, s.build_config)
    if log:
        misc["log_path"], out["log_url"] = log
    if config:
        misc["config_path"], out["config_url"] = config
    out["misc"] = misc
    return out


def _tests(build_id: str, origin: str, rev: Revision, s: KcidbSpec,
           taken: set[str]) -> list[dict[str, Any]]:
    """A test per check, and one for a stage after the build that stopped with an error."""
    out = [_test(_unique(f"{build_id}/{c.name}", taken), build_id, origin, c, s.status[c.verdict])
           for c in rev.checks]
    # Left out by --changed-only: SKIP (not executed, the code's status unknown), so no
    # dashboard reads the build as all passed.
    narrowed = rev.changed_only
    for n in narrowed.not_run if narrowed else ():
        assert narrowed is not None
        check = Check(n.test, Verdict.NOT_APPLICABLE,
                      f"not run: --changed-only, not a series verdict; no file of the "
                      f"patches ({', '.join(narrowed.files)}) selects "
                      f"{', '.join(n.groups)} (data/changed-only.toml)")
        out.append(_test(_unique(f"{build_id}/{n.test}", taken), build_id, origin, check,
                         s.changed_only_status))
    failed = rev.failed_stage
    if failed is not None and failed.name not in (*s.checkout_stages, *s.build_stages):
        name = stage_check(failed.name)
        check = Check(name, Verdict.ERROR, failed.detail, seconds=failed.seconds)
        out.append(_test(_unique(f"{build_id}/{name}", taken), build_id, origin, check,
                         s.stage_error))
    return out


def _test(test_id: str, build_id: str, origin: str, check: Check,
          status: str) -> dict[str, Any]:
    out: dict[str, Any] = {"id": test_id, "origin": origin, "build_id": build_id,
                           "path": check_path(check.name), "status": status,
                           "duration": round(check.seconds, 2)}
    if check.detail:
        out["comment"] = _text(check.detail)
        if status != "PASS":
            out["log_excerpt"] = _text(check.detail)[:_EXCERPT]
    # The check's own name: the path cannot always be turned back into it.
    out["misc"] = {"check": check.name, "verdict": check.verdict.value,
                   "counters": dict(check.counters)}
    return out
