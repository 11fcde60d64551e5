# SPDX-License-Identifier: GPL-2.0
"""Merge the run dirs of a request's shards into one run dir, as if one run had done it all.

A shard that is missing, or that came from another request, is the user's error. A base that
two shards tested with different verdicts is a flaky base: its differing checks fail."""

from __future__ import annotations

import dataclasses
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UserError
from harness.orchestration.jobs import parse_shard
from harness.outputs import report
from harness.outputs.record import Revision, Run, Stage
from harness.paths import revision_dir
from harness.verdicts.checks import Check, Verdict

log = logging.getLogger("harness")


@dataclass(frozen=True)
class Shard:
    run_dir: Path
    record: Run
    index: int
    total: int

    @property
    def name(self) -> str:
        return f"{self.index}/{self.total}"


def load_shards(dirs: list[Path]) -> list[Shard]:
    """Each dir's record, checked to be one shard each of the same request, all present."""
    shards = []
    for d in dirs:
        record = report.load_record(d)
        if not record.request:
            raise UserError(f"{d} has no request id: it was written by an older harness")
        index, total = parse_shard(record.shard or "1/1")
        shards.append(Shard(d, record, index, total))
    requests = {s.record.request for s in shards}
    if len(requests) > 1:
        raise UserError("these run dirs come from different requests: " + "; ".join(
            f"{s.run_dir} ({s.record.request})" for s in shards))
    totals = {s.total for s in shards}
    if len(totals) > 1:
        raise UserError("these run dirs split the request differently: "
                        + ", ".join(f"{s.run_dir} is {s.name}" for s in shards))
    total = totals.pop()
    seen = [s.index for s in shards]
    twice = sorted({i for i in seen if seen.count(i) > 1})
    if twice:
        raise UserError(f"shard {twice[0]}/{total} is given twice")
    missing = [f"{i}/{total}" for i in range(1, total + 1) if i not in seen]
    if missing:
        raise UserError(f"shard {', '.join(missing)} is missing; given: "
                        + ", ".join(sorted(s.name for s in shards)))
    return sorted(shards, key=lambda s: s.index)


def merge(shards: list[Shard], command: str) -> Run:
    """One record with every job of the plan, in plan order."""
    first = shards[0].record
    merged = Run(command, min(s.record.started for s in shards), request=first.request,
                 jobs=list(first.plan), plan=list(first.plan))
    for job in first.plan:
        found = [(s, r) for s in shards for r in s.record.revisions if r.job == job]
        merged.revisions.append(_one_job(job, found, shards))
    return merged


def _one_job(job: str, found: list[tuple[Shard, Revision]], shards: list[Shard]) -> Revision:
    if not found:
        owner = next((s.name for s in shards if job in s.record.jobs), "no shard")
        rev = Revision(job.rsplit(":", 1)[-1], job=job)
        rev.stages.append(Stage("merge", "error", 0.0,
                                f"shard {owner} has no result for job {job}: it died first"))
        return rev
    rev = found[0][1]
    if len(found) > 1:
        rev = _flag_disagreement(rev, found)
    return rev


def _flag_disagreement(rev: Revision, found: list[tuple[Shard, Revision]]) -> Revision:
    """A base tested by several shards: every check they disagree on fails as flaky."""
    checks = []
    for check in rev.checks:
        seen = {s.name: (other.check(check.name) or _missing(check.name)).verdict
                for s, other in found}
        if len(set(seen.values())) == 1:
            checks.append(check)
            continue
        where = "; ".join(f"{v.value} in shard {name}" for name, v in seen.items())
        log.warning("%s: %s differs between shards: %s", rev.label, check.name, where)
        checks.append(dataclasses.replace(check, verdict=Verdict.FAIL,
                                          detail=f"flaky base: {where}"))
    stages = {s.name: (other.failed_stage.name if other.failed_stage else "none")
              for s, other in found}
    if len(set(stages.values())) > 1:
        checks.append(Check("shard-agreement", Verdict.FAIL, "flaky base: stage errors differ: "
                            + "; ".join(f"{v} in shard {n}" for n, v in stages.items())))
    return dataclasses.replace(rev, checks=checks)


def _missing(name: str) -> Check:
    return Check(name, Verdict.ERROR, "no result")


def copy_logs(shards: list[Shard], merged: Run, out: Path) -> None:
    """Each job's files (logs, console, guest results) from the first shard that ran it."""
    for rev in merged.revisions:
        for s in shards:
            source = revision_dir(s.run_dir, rev.label)
            if any(r.job == rev.job for r in s.record.revisions) and source.is_dir():
                shutil.copytree(source, revision_dir(out, rev.label), dirs_exist_ok=True)
                break


def merge_dirs(dirs: list[Path], out: Path, command: str,
               kcidb_origin: str | None = None) -> Run:
    """Merge shard run dirs into out: results.json, junit.xml, report.txt, kcidb.json and
    the logs. kcidb_origin None: the environment's or data/kcidb.toml's."""
    shards = load_shards(dirs)
    if out.resolve() in {s.run_dir.resolve() for s in shards}:
        raise UserError(f"{out} is one of the shard dirs; merge into a new dir")
    merged = merge(shards, command)
    copy_logs(shards, merged, out)
    report.write_reports(out, merged, kcidb_origin)
    return merged
