# SPDX-License-Identifier: GPL-2.0
"""The guest protocol, owned here alone: the plan the runner follows, one result file per
test, the done file, the progress markers, and when a result file is complete.

Standard library only and no harness imports: this file is copied next to the guest runner
and imported there, so the host and the guest read one definition.

The shared directory (rwdir) holds:
    plan.json            what to run: name, argv, timeout and class of every test, and the
                         plan's id
    bin/                 the runner, this module and the test binaries
    results/<name>.json  one outcome per test, written atomically as soon as it ends, carrying
                         the id of the plan it ran under
    results/<name>.bin   a test's extra output (a vDSO dump), complete once its .json exists
    results/done.json    written last: the runner went through the whole plan
    results/done-lane<N>.json  the same for lane N of a plan split across VMs (Entry.lane)
Beside it, <rwdir>-bin/ is a copy of bin/ (hard links) that a guest runs the tests from
when it can see it (bin_copy_dir).
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from pathlib import Path

# The guest runner imports this module at every boot, before the first test, and under TCG
# each module the interpreter reads costs 10 to 30 ms the first time: dataclasses (with
# inspect, ast and dis), pathlib (with urllib and ipaddress) and shutil (with bz2 and lzma)
# took 0.47 s of the runner's start (bench/results/boot-time.md). So the records are
# NamedTuples, what the guest calls uses os and plain strings, and what only the host calls
# imports pathlib or shutil where it needs them.

PLAN = "plan.json"
BIN = "bin"
RESULTS = "results"
DONE = "done.json"
RUNNER = "runner.py"
# In the copy of bin/: the id of the plan it was made for.
BIN_COPY_ID = ".plan-id"
# Every progress line the runner writes starts with this, in the kernel log or on stderr.
MARK = "futex-harness: "
STARTED = MARK + "runner started"
FINISHED = MARK + "runner finished"
# Where the runner writes its progress lines; an SSH target sends them to stderr instead.
PROGRESS_ENV = "FUTEX_HARNESS_KMSG"
PROGRESS_DEFAULT = "/dev/kmsg"

# How the host starts the runner in a guest: python3 -S -c RUN_RUNNER <bin dir> <rwdir>
# [<lane>]. With a lane, the runner runs that lane's tests alone (Entry.lane).
# Imported, not run as a script, so that the interpreter takes the bytecode the host
# compiled next to it: a script is compiled again at every start (0.15 s under TCG).
RUN_RUNNER = ("import sys; sys.path.insert(0, sys.argv.pop(1)); import runner; "
              "sys.exit(runner.main())")

# Runs on a target before anything is uploaded: writes this process's mapped vDSO to
# stdout, exit 3 without one.
DUMP_VDSO = """import sys
for line in open('/proc/self/maps'):
    if line.rstrip().endswith('[vdso]'):
        lo, hi = (int(x, 16) for x in line.split()[0].split('-'))
        with open('/proc/self/mem', 'rb', 0) as mem:
            mem.seek(lo)
            sys.stdout.buffer.write(mem.read(hi - lo))
        sys.exit(0)
sys.exit(3)
"""


# How a test may share the guest's CPU with others (data/guest-tests.toml says which, and
# why): an exclusive test never overlaps another; the runner starts the waits tests in the
# background and runs the shared ones one by one beside them.
EXCLUSIVE = "exclusive"
WAITS = "waits"
SHARED = "shared"
CLASSES = (EXCLUSIVE, WAITS, SHARED)


class Entry(NamedTuple):
    """One test of the plan: the runner runs argv with a timeout and records the outcome."""

    name: str
    argv: tuple[str, ...]
    timeout: float
    run_class: str = SHARED
    # Which of the VMs booted side by side runs it (harness/guest/lanes.py splits a plan);
    # a runner started without a lane runs every lane's tests.
    lane: int = 0


def new_plan_id() -> str:
    import secrets  # the host's alone: the guest runner never makes a plan
    return secrets.token_hex(8)


class _PlanFields(NamedTuple):
    entries: tuple[Entry, ...]
    # Every outcome the runner writes carries it: a result file with another id was left by
    # an earlier plan (a reused run directory), not written by this boot.
    id: str
    # A copy of bin/ outside the shared directory, "" for none (bin_copy_dir).
    bin_copy: str


class Plan(_PlanFields):
    """What the runner follows; a new plan gets a fresh id unless it is given one."""

    def __new__(cls, entries: tuple[Entry, ...], id: str | None = None,
                bin_copy: str = "") -> Plan:
        return super().__new__(cls, entries, new_plan_id() if id is None else id, bin_copy)

    def to_json(self) -> str:
        tests = [{"name": e.name, "argv": list(e.argv), "timeout": e.timeout,
                  "class": e.run_class, "lane": e.lane} for e in self.entries]
        return json.dumps({"id": self.id, "bin_copy": self.bin_copy, "tests": tests},
                          indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Plan:
        raw = json.loads(text)
        return cls(tuple(Entry(t["name"], tuple(t["argv"]), float(t["timeout"]),
                               str(t.get("class", SHARED)), int(t.get("lane", 0)))
                         for t in raw["tests"]), str(raw.get("id", "")),
                   str(raw.get("bin_copy", "")))

    @property
    def lanes(self) -> tuple[int, ...]:
        """The lanes that have a test, in order: one VM each."""
        return tuple(sorted({e.lane for e in self.entries}))

    def in_lane(self, lane: int | None) -> Plan:
        """The plan of one lane's VM; None: the whole plan, in one."""
        if lane is None:
            return self
        return self._replace(entries=tuple(e for e in self.entries if e.lane == lane))

    def timeout(self, lane: int | None = None) -> float:
        """How long the tests of a lane (or all) may take if each runs to its timeout."""
        return sum(e.timeout for e in self.in_lane(lane).entries)

    def moved(self, old: Path | str, new: str) -> Plan:
        """The same plan with every argument under the directory old moved to new (an SSH
        target runs it from a directory of its own), and no copy of bin/ named."""
        prefix = str(old)

        def move(arg: str) -> str:
            if arg == prefix or arg.startswith(prefix + "/"):
                return new + arg[len(prefix):]
            return arg

        return Plan(tuple(e._replace(argv=tuple(move(a) for a in e.argv))
                          for e in self.entries), self.id)

    def from_bin_copy(self, rwdir: Path | str) -> Plan:
        """The plan run from its copy of bin/ when this guest sees that copy as made for
        this plan; else the plan as it is (the copy is not on this guest's root)."""
        if not self.bin_copy:
            return self
        try:
            with open(os.path.join(self.bin_copy, BIN_COPY_ID)) as marker:  # noqa: PTH118,PTH123
                made_for = marker.read()
        except OSError:
            return self
        bin_dir = os.path.join(rwdir, BIN)  # noqa: PTH118
        return self.moved(bin_dir, self.bin_copy) if made_for == self.id else self


class Outcome(NamedTuple):
    """What the runner saw of one test. records are the JSON lines the test printed."""

    name: str
    argv: tuple[str, ...] = ()
    exit_code: int | None = None
    timed_out: bool = False
    stdout: str = ""
    stderr: str = ""
    records: tuple[dict[str, Any], ...] = ()
    seconds: float = 0.0
    # The id of the plan the runner followed (Plan.id).
    plan: str = ""

    def to_json(self) -> str:
        raw = self._asdict()
        raw.update(argv=list(self.argv), records=list(self.records))
        return json.dumps(raw, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Outcome:
        raw = json.loads(text)
        return cls(str(raw["name"]), tuple(raw.get("argv", ())), raw.get("exit_code"),
                   bool(raw.get("timed_out", False)), str(raw.get("stdout", "")),
                   str(raw.get("stderr", "")), tuple(raw.get("records", ())),
                   float(raw.get("seconds", 0.0)), str(raw.get("plan", "")))


def file_stem(name: str) -> str:
    """A test name as a file name: check names may contain '/'."""
    return name.replace("/", "__")


def plan_path(rwdir: Path) -> Path:
    return rwdir / PLAN


def results_dir(rwdir: Path) -> Path:
    return rwdir / RESULTS


def outcome_file(name: str) -> str:
    """The name of a test's result file in the results dir."""
    return f"{file_stem(name)}.json"


def outcome_path(rwdir: Path, name: str) -> Path:
    return results_dir(rwdir) / outcome_file(name)


def extra_path(rwdir: Path, name: str) -> Path:
    """A test's extra output file, such as a vDSO dump."""
    return results_dir(rwdir) / f"{file_stem(name)}.bin"


def done_file(lane: int | None = None) -> str:
    """The name of the file a runner writes last: one per lane when the plan is split."""
    return DONE if lane is None else f"done-lane{lane}.json"


def is_done_file(filename: str) -> bool:
    return filename == DONE or (filename.startswith("done-lane") and filename.endswith(".json"))


def done_path(rwdir: Path, lane: int | None = None) -> Path:
    return results_dir(rwdir) / done_file(lane)


def bin_copy_dir(rwdir: Path) -> Path:
    """Where the copy of bin/ goes: next to the shared directory, not in it. virtme-ng
    mounts the shared directory uncached, and under TCG an exec from it took 0.06 to 0.08 s
    longer than from the guest's root, which is the host's, read through its cache (cached
    from the second exec on: bench/results/boot-time.md). The copy is at the same path
    there; a guest on another root, or an SSH target, does not see it and runs bin/."""
    return rwdir.with_name(rwdir.name + "-bin")


def make_bin_copy(rwdir: Path, plan_id: str) -> Path:
    """Hard links of bin/ (no bytes copied), made fresh for the plan with this id."""
    import shutil  # the host's alone, like every shutil call here (the imports above)

    copy = bin_copy_dir(rwdir)
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(rwdir / BIN, copy, symlinks=True, copy_function=_link_or_copy)
    (copy / BIN_COPY_ID).write_text(plan_id)
    return copy


def _link_or_copy(source: str, dest: str) -> None:
    import shutil

    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)


def write_plan(rwdir: Path, plan: Plan) -> None:
    """Write the plan over an empty results dir: whatever an earlier plan left there (a
    reused run directory) is removed, so that no old outcome stands in for a new one."""
    import shutil

    results = results_dir(rwdir)
    results.mkdir(parents=True, exist_ok=True)
    for old in results.iterdir():
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old)
        else:
            old.unlink()
    plan_path(rwdir).write_text(plan.to_json())


# What the guest runner calls, on a path or a string, with os alone (the imports above).

def read_plan(rwdir: Path | str) -> Plan:
    with open(os.path.join(rwdir, PLAN)) as plan:  # noqa: PTH118,PTH123
        return Plan.from_json(plan.read())


def make_results_dir(rwdir: Path | str) -> None:
    os.makedirs(os.path.join(rwdir, RESULTS), exist_ok=True)  # noqa: PTH103,PTH118


def write_atomic(path: Path | str, data: str | bytes) -> None:
    """Readers see the old file or the whole new one, never half of it. The one copy: this
    module also runs in the guest, alone, so it cannot use the host's harness.files."""
    head, tail = os.path.split(path)
    tmp = os.path.join(head, f".{tail}.tmp")  # noqa: PTH118
    try:
        with open(tmp, "w" if isinstance(data, str) else "wb") as out:  # noqa: PTH123
            out.write(data)
        os.replace(tmp, path)  # noqa: PTH105
    except OSError:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)  # noqa: PTH108
        raise


def write_outcome(rwdir: Path | str, outcome: Outcome) -> None:
    write_atomic(os.path.join(rwdir, RESULTS, outcome_file(outcome.name)),  # noqa: PTH118
                 outcome.to_json())


def write_done(rwdir: Path | str, kernel: str, lane: int | None = None) -> None:
    write_atomic(os.path.join(rwdir, RESULTS, done_file(lane)),  # noqa: PTH118
                 json.dumps({"kernel": kernel}) + "\n")


def read_outcomes(rwdir: Path) -> dict[str, Outcome]:
    """Whatever outcomes the runner left behind, by test name; unreadable files are skipped."""
    out = {}
    for path in sorted(results_dir(rwdir).glob("*.json")):
        if is_done_file(path.name):
            continue
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            outcome = Outcome.from_json(path.read_text())
            out[outcome.name] = outcome
    return out


def is_complete(filename: str, present: set[str] | dict[str, Any]) -> bool:
    """Whether a result file may be copied now: a .json is written atomically; a .bin is
    complete once its test's .json exists."""
    if filename.startswith("."):
        return False
    if filename.endswith(".json"):
        return True
    return filename.endswith(".bin") and filename.removesuffix(".bin") + ".json" in present


def is_outcome_file(filename: str) -> bool:
    return (filename.endswith(".json") and not is_done_file(filename)
            and not filename.startswith("."))


def parse_records(stdout: str) -> tuple[dict[str, Any], ...]:
    """The JSON objects a test printed, one per line; other lines are ignored."""
    records = []
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                value = json.loads(line)
                if isinstance(value, dict):
                    records.append(value)
    return tuple(records)
