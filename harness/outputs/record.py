# SPDX-License-Identifier: GPL-2.0
"""The run record: what results.json holds, as dataclasses. This module is its one owner.

results.json (schema 1):
    schema       int, this format's version; a reader refuses a newer one
    command      str, the command line that reproduces the run
    started      str, ISO 8601 local time
    exit_code    int, 0 all passed, 1 a check failed, 2 an error (written, never read)
    revisions    list, one per column of the report, in order:
        label          str, "base" or the series' name (plus "@KERNEL-VARIANT" when the
                       request spans more than one kernel or config variant)
        job            str, the job id: "KERNEL/VARIANT/REVISION" (see orchestration/jobs.py)
        kernel         str, the kernel source: a Debian release ("7.3") or the --kernel-src path
        variant        str, the config variant ("lean", "nocompat", ...)
        origin         str, where the source tree came from
        patchset_hash  str | null, sha256 over the series' patch files (KCIDB's patchset hash)
        series         str | null, the series as given
        applied        list[str], the subjects of the patches applied
        series_absent  str | null, why the tree predates the series (its checks are N/A)
        accel          str | null, "kvm", "tcg" or "remote"
        accel_reason   str, why that accelerator
        target         str | null, the SSH target that ran the suite
        boots          list of {suite, accel, qemu_opts, tests}; tests: {guest test or
                       kernel selftest program (reruns apart): its seconds in the guest}
        stages         list of {name, status ("running", "ok", "error"), seconds, detail}
        checks         list of {name, verdict, detail, counters, seconds}
        bisect         null, or {checks, first_bad, detail, steps: list of
                       {patch, index, status ("good", "bad", "skip"), detail, seconds, checks}}
        changes        null (no series, or no earlier revision of this kernel and variant
                       with one), or what git range-diff says changed in the series since
                       that revision: {against (its label), error ("" when compared, else
                       why it could not be), patches: list of {kind, old, new}}; kind is
                       "=" unchanged, "!" changed, "<" dropped, ">" added; old and new are
                       "N/M subject" (the patch's place in its series), null on the side
                       that has no such patch
        changed_only   null (the whole suite was asked for), or, with run --changed-only,
                       which guest tests the files of the revision's patches selected
                       (data/changed-only.toml): {files: list[str] the patches touch,
                       everything: str (why every test ran; "" when the map narrowed them),
                       entries: list of {match, selects, why, files: the files it matched},
                       not_run: list of {test, groups: the test's groups, none selected}}.
                       A revision with it gives no series verdict, whatever ran
    request      str, a hash of what was asked (kernels, variants, series, expectations),
                 the same in every shard of one request; merge refuses to mix requests
    shard        str | null, "I/N" when this run is one shard of a request
    jobs         list[str], the job ids this run was given, in order
    plan         list[str], every job id of the request, in order (a shard runs a share)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.errors import UserError
from harness.verdicts.checks import Check

SCHEMA = 1


@dataclass
class Stage:
    name: str
    status: str = "running"
    seconds: float = 0.0
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "error"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "seconds": self.seconds,
                "detail": self.detail}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Stage:
        return cls(raw["name"], raw["status"], float(raw.get("seconds", 0.0)),
                   raw.get("detail", ""))


@dataclass(frozen=True)
class Boot:
    """One boot of a revision: which suite ran, on what, with which extra QEMU options."""

    suite: str
    accel: str
    qemu_opts: tuple[str, ...] = ()
    # Seconds each guest program took in the guest: a kernel selftest program's subtests
    # have no times of their own, so this is where its time is reported.
    tests: dict[str, float] = field(default_factory=dict)

    @property
    def seconds_in_tests(self) -> float:
        return sum(self.tests.values())

    def slowest(self, count: int) -> list[tuple[str, float]]:
        """The `count` slowest programs, the slowest first."""
        return sorted(self.tests.items(), key=lambda kv: -kv[1])[:count]

    def to_json(self) -> dict[str, Any]:
        return {"suite": self.suite, "accel": self.accel, "qemu_opts": list(self.qemu_opts),
                "tests": dict(self.tests)}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Boot:
        return cls(raw["suite"], raw["accel"], tuple(raw.get("qemu_opts", ())),
                   {k: float(v) for k, v in raw.get("tests", {}).items()})


@dataclass
class BisectStep:
    """One step of a bisection: the series applied up to patch `index` (1-based)."""

    patch: str
    index: int
    # "good", "bad", or "skip" (the step did not apply or did not build).
    status: str
    detail: str = ""
    seconds: float = 0.0
    checks: list[Check] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"patch": self.patch, "index": self.index, "status": self.status,
                "detail": self.detail, "seconds": self.seconds,
                "checks": [c.to_json() for c in self.checks]}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> BisectStep:
        return cls(raw["patch"], int(raw["index"]), raw["status"], raw.get("detail", ""),
                   float(raw.get("seconds", 0.0)),
                   [Check.from_json(c) for c in raw.get("checks", [])])


@dataclass
class Bisect:
    """Which patch of a series first broke the checks that pass on the base."""

    checks: list[str] = field(default_factory=list)
    # "NN/MM subject" of the first bad patch, or None when not found.
    first_bad: str | None = None
    detail: str = ""
    steps: list[BisectStep] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"checks": list(self.checks), "first_bad": self.first_bad, "detail": self.detail,
                "steps": [s.to_json() for s in self.steps]}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Bisect:
        return cls(list(raw.get("checks", [])), raw.get("first_bad"), raw.get("detail", ""),
                   [BisectStep.from_json(s) for s in raw.get("steps", [])])


@dataclass(frozen=True)
class PatchChange:
    """One line of git range-diff: a patch unchanged ("="), changed ("!"), dropped ("<")
    or added (">") between two revisions of a series."""

    kind: str
    old: str | None
    new: str | None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "old": self.old, "new": self.new}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> PatchChange:
        return cls(raw["kind"], raw.get("old"), raw.get("new"))


@dataclass(frozen=True)
class Changes:
    """What changed in a revision's series since an earlier revision (`against`)."""

    against: str
    patches: tuple[PatchChange, ...] = ()
    # Why the two could not be compared; empty when they were.
    error: str = ""

    def count(self, kind: str) -> int:
        return sum(1 for p in self.patches if p.kind == kind)

    def to_json(self) -> dict[str, Any]:
        return {"against": self.against, "error": self.error,
                "patches": [p.to_json() for p in self.patches]}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Changes:
        return cls(raw["against"], tuple(PatchChange.from_json(p)
                                         for p in raw.get("patches", [])),
                   raw.get("error", ""))


@dataclass(frozen=True)
class MapEntry:
    """An entry of data/changed-only.toml and the revision's files it matched."""

    match: str
    selects: tuple[str, ...]
    why: str
    files: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"match": self.match, "selects": list(self.selects), "why": self.why,
                "files": list(self.files)}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> MapEntry:
        return cls(raw["match"], tuple(raw.get("selects", ())), raw.get("why", ""),
                   tuple(raw.get("files", ())))


@dataclass(frozen=True)
class NotRun:
    """A guest test that --changed-only left out, and its groups (none of them selected)."""

    test: str
    groups: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"test": self.test, "groups": list(self.groups)}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> NotRun:
        return cls(raw["test"], tuple(raw.get("groups", ())))


@dataclass(frozen=True)
class ChangedOnly:
    """What run --changed-only chose for a revision from the files its patches touch."""

    files: tuple[str, ...]
    # Why every guest test ran (a file outside the map, the base); "" when narrowed.
    everything: str = ""
    entries: tuple[MapEntry, ...] = ()
    not_run: tuple[NotRun, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"files": list(self.files), "everything": self.everything,
                "entries": [e.to_json() for e in self.entries],
                "not_run": [n.to_json() for n in self.not_run]}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ChangedOnly:
        return cls(tuple(raw.get("files", ())), raw.get("everything", ""),
                   tuple(MapEntry.from_json(e) for e in raw.get("entries", [])),
                   tuple(NotRun.from_json(n) for n in raw.get("not_run", [])))


@dataclass
class Revision:
    label: str
    origin: str = ""
    job: str = ""
    kernel: str = ""
    variant: str = ""
    patchset_hash: str | None = None
    series: str | None = None
    applied: list[str] = field(default_factory=list)
    series_absent: str | None = None
    accel: str | None = None
    accel_reason: str = ""
    target: str | None = None
    boots: list[Boot] = field(default_factory=list)
    stages: list[Stage] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    bisect: Bisect | None = None
    changes: Changes | None = None
    changed_only: ChangedOnly | None = None

    @property
    def failed_stage(self) -> Stage | None:
        return next((s for s in self.stages if s.failed), None)

    def check(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "job": self.job, "kernel": self.kernel,
                "variant": self.variant, "origin": self.origin,
                "patchset_hash": self.patchset_hash, "series": self.series,
                "applied": list(self.applied), "series_absent": self.series_absent,
                "accel": self.accel, "accel_reason": self.accel_reason, "target": self.target,
                "boots": [b.to_json() for b in self.boots],
                "stages": [s.to_json() for s in self.stages],
                "checks": [c.to_json() for c in self.checks],
                "bisect": self.bisect.to_json() if self.bisect else None,
                "changes": self.changes.to_json() if self.changes else None,
                "changed_only": self.changed_only.to_json() if self.changed_only else None}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Revision:
        bisect, changes, narrowed = raw.get("bisect"), raw.get("changes"), raw.get("changed_only")
        return cls(raw["label"], raw.get("origin", ""), raw.get("job", ""),
                   raw.get("kernel", ""), raw.get("variant", ""), raw.get("patchset_hash"),
                   raw.get("series"),
                   list(raw.get("applied", [])), raw.get("series_absent"), raw.get("accel"),
                   raw.get("accel_reason", ""), raw.get("target"),
                   [Boot.from_json(b) for b in raw.get("boots", [])],
                   [Stage.from_json(s) for s in raw.get("stages", [])],
                   [Check.from_json(c) for c in raw.get("checks", [])],
                   Bisect.from_json(bisect) if bisect else None,
                   Changes.from_json(changes) if changes else None,
                   ChangedOnly.from_json(narrowed) if narrowed else None)


@dataclass
class Run:
    command: str = ""
    started: str = ""
    revisions: list[Revision] = field(default_factory=list)
    request: str = ""
    shard: str | None = None
    jobs: list[str] = field(default_factory=list)
    plan: list[str] = field(default_factory=list)

    @property
    def changed_only(self) -> bool:
        """A run --changed-only: its verdict is never a series verdict."""
        return any(r.changed_only is not None for r in self.revisions)

    def to_json(self, exit_code: int) -> dict[str, Any]:
        return {"schema": SCHEMA, "command": self.command, "started": self.started,
                "exit_code": exit_code, "request": self.request, "shard": self.shard,
                "jobs": list(self.jobs), "plan": list(self.plan),
                "revisions": [r.to_json() for r in self.revisions]}

    @classmethod
    def from_json(cls, raw: dict[str, Any], origin: str = "results.json") -> Run:
        schema = int(raw.get("schema", SCHEMA))
        if schema > SCHEMA:
            raise UserError(f"{origin} has results schema {schema}; this harness reads up to "
                            f"{SCHEMA}: update the harness")
        return cls(raw.get("command", ""), raw.get("started", ""),
                   [Revision.from_json(r) for r in raw.get("revisions", [])],
                   raw.get("request", ""), raw.get("shard"), list(raw.get("jobs", [])),
                   list(raw.get("plan", [])))
