# SPDX-License-Identifier: GPL-2.0
"""The plan: which jobs a request asks for, and how they split into shards.

A job is one revision (the base, or the base plus one series) on one kernel source and one
config variant. Jobs of the same kernel and variant stay next to each other, so a shard
rebuilds incrementally; every shard also tests the base of each (kernel, variant) it touches,
so each of its columns can be compared with its base."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.stages import lore

_SHARD = re.compile(r"^(\d+)/(\d+)$")


@dataclass(frozen=True)
class Revision:
    """One column of the report: the base tree, or the base plus one series."""

    label: str
    series: str | None = None
    # The revision of a thread mbox to pick.
    version: int | None = None


@dataclass(frozen=True)
class Kernel:
    """Where a job's source tree comes from: a Debian release, or the user's tree."""

    debian: str
    tree: Path | None = None

    @property
    def name(self) -> str:
        """The kernel as the user named it: the Debian release or the tree's path."""
        return str(self.tree) if self.tree else self.debian

    @property
    def short(self) -> str:
        """A short name for column labels and directories."""
        return self.tree.resolve().name if self.tree else self.debian


@dataclass(frozen=True)
class Job:
    kernel: Kernel
    variant: str
    revision: Revision
    # The column label: the revision's, plus "@kernel-variant" when the request spans more.
    label: str

    @property
    def id(self) -> str:
        return f"{self.kernel.short}:{self.variant}:{self.revision.label}"

    @property
    def is_base(self) -> bool:
        return self.revision.series is None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "label": self.label, "kernel": self.kernel.name,
                "variant": self.variant, "revision": self.revision.label,
                "series": self.revision.series, "version": self.revision.version}


@dataclass(frozen=True)
class JobRequest:
    kernels: tuple[Kernel, ...]
    variants: tuple[str, ...]
    revisions: tuple[Revision, ...]
    # What else makes two requests differ (expectations, suites, stress, ...), as given.
    options: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class JobList:
    request: str
    jobs: tuple[Job, ...]

    def shard(self, index: int, total: int) -> tuple[Job, ...]:
        """The index-th (1-based) of total shares, in plan order, with the bases it needs."""
        tested = [j for j in self.jobs if not j.is_base] or list(self.jobs)
        # Contiguous shares, the first ones a job longer when they do not divide evenly.
        size, extra = divmod(len(tested), total)
        start = (index - 1) * size + min(index - 1, extra)
        share = tested[start:start + size + (index <= extra)]
        groups = {(j.kernel, j.variant) for j in share}
        bases = [j for j in self.jobs if j.is_base and (j.kernel, j.variant) in groups]
        chosen = {j.id for j in [*share, *bases]}
        return tuple(j for j in self.jobs if j.id in chosen)

    def shards(self, total: int) -> list[tuple[Job, ...]]:
        return [self.shard(i, total) for i in range(1, total + 1)]

    def to_json(self, total: int = 1) -> dict[str, Any]:
        return {"request": self.request, "jobs": [j.to_json() for j in self.jobs],
                "shards": [[j.id for j in s] for s in self.shards(total)]}


def revisions(series: list[str], versions: int | list[int] | None,
              base: bool = True) -> tuple[Revision, ...]:
    """The base, then one revision per series and picked version, each with a unique label."""
    picks: list[int | None] = ([versions] if isinstance(versions, int)
                               else list(versions or []) or [None])
    out = [Revision("base")]
    for raw in series:
        for version in picks:
            label = first = _label(raw, version)
            taken = {r.label for r in out}
            n = 2
            while label in taken:
                label, n = f"{first}-{n}", n + 1
            out.append(Revision(label, raw, version))
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


def list_jobs(req: JobRequest) -> JobList:
    """Every (kernel, variant) in the order given, each with every revision in order."""
    several = len(req.kernels) * len(req.variants) > 1
    jobs = tuple(
        Job(kernel, variant, rev,
            f"{rev.label}@{kernel.short}-{variant}" if several else rev.label)
        for kernel in req.kernels for variant in req.variants for rev in req.revisions)
    ids = [j.id for j in jobs]
    if len(set(ids)) != len(ids):
        raise UserError("the request names the same kernel, variant or series twice")
    return JobList(_request_hash(req), jobs)


def _request_hash(req: JobRequest) -> str:
    """The same for every shard of one request, and different for any other request."""
    raw = {"kernels": [k.name for k in req.kernels], "variants": list(req.variants),
           "revisions": [[r.label, r.series, r.version] for r in req.revisions],
           "options": [list(o) for o in req.options]}
    return hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()[:16]


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' (1-based) as (I, N)."""
    match = _SHARD.match(text)
    if not match:
        raise UserError(f"--shard {text}: give I/N, for example 2/3")
    index, total = int(match.group(1)), int(match.group(2))
    if not 1 <= index <= total:
        raise UserError(f"--shard {text}: I must be between 1 and N")
    return index, total


def render_table(plan: JobList, total: int = 1) -> str:
    """The jobs for people: one line each, with the shard that runs it."""
    out = [f"request {plan.request}: {len(plan.jobs)} jobs"
           + (f" in {total} shards" if total > 1 else "")]
    shards = plan.shards(total)
    width = max(len(j.id) for j in plan.jobs) + 2
    for job in plan.jobs:
        where = ",".join(str(i) for i, s in enumerate(shards, 1) if job in s)
        out.append(f"  {job.id:<{width}} shard {where or '-':<6} {job.revision.series or ''}"
                   .rstrip())
    return "\n".join(out) + "\n"
