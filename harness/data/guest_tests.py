# SPDX-License-Identifier: GPL-2.0
"""data/guest-tests.toml: the guest tests, their templates and their verdict rules."""

from __future__ import annotations

import fnmatch
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.data import DATA, read_toml
from harness.errors import UserError
from harness.guest import protocol

GUEST_KINDS = ("c", "python", "ktap")


@dataclass(frozen=True)
class ProgramChoice:
    """The programs of a ktap test that a --changed-only run keeps (shell patterns of their
    names). A program is left out only when it matches a left-out pattern and no kept one:
    one that no group names, such as a program a newer tree adds, still runs."""

    kept: tuple[str, ...] = ()
    left_out: tuple[str, ...] = ()

    def runs(self, program: str) -> bool:
        return (not any(fnmatch.fnmatchcase(program, p) for p in self.left_out)
                or any(fnmatch.fnmatchcase(program, p) for p in self.kept))


@dataclass(frozen=True)
class GuestTest:
    name: str
    sources: tuple[str, ...]
    cflags: tuple[str, ...]
    # The vDSO image the test runs against, whose ELF check must have passed; None for
    # tests that do not use the series' vDSO code at all.
    image: str | None
    # The role (list64, list32) of the try_unlock entry whose offsets fill in the
    # arguments, as the expectations file names it; None for tests that need none.
    entry: str | None
    args: tuple[str, ...]
    timeout: float
    require: tuple[str, ...]
    fail_if: tuple[str, ...]
    # counter -> the least it must reach (else INCONCLUSIVE): the stops a full run makes.
    minimum: tuple[tuple[str, int], ...] = ()
    # The test dumps its mapped vDSO; the host compares it with this built image.
    compare: bool = False
    # "default", or "stress": those run only on request, in their own boot.
    suite: str = "default"
    # c: built on the host from sources with cflags; python: script run by the harness's
    # interpreter; ktap: the tree's own kselftests, one check per subtest.
    kind: str = "c"
    # kind python: the script, relative to guest-tests/.
    script: str | None = None
    # Kernel options the test needs beyond its image's, any one of them (a 32-bit program
    # runs under CONFIG_IA32_EMULATION or on a native CONFIG_X86_32 kernel): N/A without.
    # Empty: none. In the file, one name or a list of alternatives.
    requires: tuple[str, ...] = ()
    # A positive control: it shows the bug on purpose (the old unlock), so it may have no
    # fail_if counter; every other test must be able to FAIL.
    control: bool = False
    # Data files (relative to data/) the program reads, copied next to the binaries: an
    # argument names one as {bin}/<its file name>.
    files: tuple[str, ...] = ()
    # Put before the failing counters in a FAIL's detail: what the failure means when the
    # counters alone would undersell it ("SECURITY: ..." for a security check).
    fail_message: str = ""
    # The defaults of the test's own {placeholders} (a fuzzer's seed), as (name, value);
    # the environment's FUTEX_HARNESS_<NAME> overrides one for a run (param_values).
    params: tuple[tuple[str, str], ...] = ()
    # How it may share the guest's CPU (protocol.CLASSES): exclusive, waits or shared. A
    # ktap test has none of its own: each program's comes from data/kselftest.toml.
    run_class: str = protocol.SHARED
    # kind ktap: the programs a --changed-only run keeps; by default every one.
    programs: ProgramChoice = ProgramChoice()

    @property
    def placeholders(self) -> frozenset[str]:
        """The {name} fields its arguments take."""
        return frozenset(f for a in self.args for _, f, _, _ in string.Formatter().parse(a) if f)


@dataclass(frozen=True)
class ReportSpec:
    """Which counters the report shows: in the table, and first in a comparison cell."""

    table: tuple[str, ...]
    cell: tuple[str, ...]


@dataclass(frozen=True)
class GuestSuite:
    tests: tuple[GuestTest, ...]
    report: ReportSpec


GUEST_TESTS_FILE = DATA / "guest-tests.toml"
# FUTEX_HARNESS_SEED=7 sets the param seed of every test that has one.
PARAM_ENV_PREFIX = "FUTEX_HARNESS_"


def param_values(test: GuestTest, environ: Mapping[str, str]) -> dict[str, str]:
    """The test's params: the data's defaults, each replaced by FUTEX_HARNESS_<NAME> (the
    name in upper case) where environ sets it."""
    return {k: environ.get(PARAM_ENV_PREFIX + k.upper(), v) for k, v in test.params}


def load_guest_suite(path: Path = GUEST_TESTS_FILE) -> GuestSuite:
    raw = read_toml(path)
    templates = raw.get("templates", {})
    tests = tuple(_guest_test(_with_template(t, templates, path), path) for t in raw["tests"])
    report = raw.get("report", {})
    return GuestSuite(tests, ReportSpec(tuple(report.get("table", ())),
                                        tuple(report.get("cell", ()))))


def load_guest_tests(path: Path = GUEST_TESTS_FILE) -> tuple[GuestTest, ...]:
    return load_guest_suite(path).tests


def _with_template(test: dict[str, Any], templates: dict[str, Any], path: Path,
                   chain: tuple[str, ...] = ()) -> dict[str, Any]:
    """The test's keys over its template's; extra_args appended to the args. A template may
    name a template of its own, resolved the same way."""
    name = test.get("template")
    if name is None:
        merged = dict(test)
    elif name not in templates:
        raise UserError(f"{path}: test {test.get('name')} names template {name!r}; "
                        f"choose one of: {', '.join(sorted(templates)) or '(none)'}")
    elif name in chain:
        raise UserError(f"{path}: template {name!r} leads back to itself "
                        f"({' -> '.join((*chain, name))})")
    else:
        parent = _with_template(templates[name], templates, path, (*chain, name))
        merged = {**parent, **test}
    merged.pop("template", None)
    merged["args"] = [*merged.get("args", []), *merged.pop("extra_args", [])]
    return merged


def _guest_test(t: dict[str, Any], path: Path) -> GuestTest:
    kind = t.get("kind", "c")
    if kind not in GUEST_KINDS:
        raise UserError(f"{path}: test {t['name']} has kind {kind!r}; "
                        f"choose one of: {', '.join(GUEST_KINDS)}")
    if kind != "ktap" and not t.get("fail_if") and not t.get("control"):
        raise UserError(f"{path}: test {t['name']} has no fail_if counter, so it can never "
                        "FAIL; only a positive control (control = true) may")
    return GuestTest(
        name=t["name"], kind=kind, run_class=_run_class(t, kind, path),
        sources=tuple(t.get("sources", [])),
        cflags=tuple(t.get("cflags", [])), image=t.get("image"), entry=t.get("entry"),
        args=tuple(t["args"]), timeout=float(t["timeout"]),
        require=tuple(t.get("require", [])), fail_if=tuple(t.get("fail_if", [])),
        minimum=tuple((k, int(v)) for k, v in t.get("minimum", {}).items()),
        compare=bool(t.get("compare", False)), suite=t.get("suite", "default"),
        script=t.get("script"), requires=_alternatives(t.get("requires")),
        control=bool(t.get("control")),
        files=tuple(t.get("files", [])),
        fail_message=t.get("fail_message", ""),
        params=tuple((k, str(v)) for k, v in t.get("params", {}).items()),
    )


def _run_class(t: dict[str, Any], kind: str, path: Path) -> str:
    """The test's class, which every test but a ktap one must name."""
    if kind == "ktap":
        if "class" in t:
            raise UserError(f"{path}: test {t['name']} is a ktap test: its programs' classes "
                            "are in data/kselftest.toml, not here")
        return protocol.SHARED
    return check_class(t.get("class"), f"{path}: test {t['name']}")


def check_class(value: object, where: str) -> str:
    """A class from the data: one of protocol.CLASSES, else a UserError naming them."""
    if value is None:
        raise UserError(f"{where} has no class; give one of: {', '.join(protocol.CLASSES)}")
    if value not in protocol.CLASSES:
        raise UserError(f"{where} has class {value!r}; choose one of: "
                        f"{', '.join(protocol.CLASSES)}")
    return str(value)


def _alternatives(raw: str | list[str] | None) -> tuple[str, ...]:
    """`requires`: one option name, or a list of which any one will do."""
    if raw is None:
        return ()
    return (raw,) if isinstance(raw, str) else tuple(raw)
