# SPDX-License-Identifier: GPL-2.0
"""Load the TOML data files (settings, expectations, guest tests) into frozen dataclasses."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.paths import shipped_dir

DATA = shipped_dir("data")
EXPECTATIONS = DATA / "expectations"
KERNEL_CONFIG = shipped_dir("kernel-config")
GUEST_TESTS = shipped_dir("guest-tests")
PATCHES = shipped_dir("patches")


@dataclass(frozen=True)
class DebianRelease:
    name: str
    package: str
    mirror: str
    suite: str


@dataclass(frozen=True)
class DebianSuite:
    """An apt suite linux-source packages are looked up in ([debian.suites])."""

    name: str
    mirror: str


@dataclass(frozen=True)
class Timeouts:
    """Seconds for each step, from [timeouts] in settings.toml; every key is required."""

    run: float
    apt: float
    apt_query: float
    unpack: float
    tree_copy: float
    patch: float
    patch_fetch: float
    config_tool: float
    config: float
    build: float
    guest_compile: float
    kvm_probe: float
    boot: float
    target_wait: float
    target_connect: float
    target_command: float
    target_sftp: float
    target_margin: float

    @classmethod
    def from_toml(cls, raw: dict[str, Any], origin: Path) -> Timeouts:
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in raw]
        unknown = sorted(set(raw) - set(names))
        if missing or unknown:
            raise UserError(f"{origin} [timeouts]: missing {missing or 'none'}, "
                            f"unknown {unknown or 'none'}")
        return cls(**{n: float(raw[n]) for n in names})


@dataclass(frozen=True)
class Suite:
    """One boot's worth of guest tests: its vCPUs and extra QEMU options under TCG."""

    name: str
    cpus: int
    tcg_qemu_opts: tuple[str, ...]
    # Runs only when asked for with --stress.
    with_stress: bool
    # Seconds for the boot to start the guest runner; None: timeouts.boot.
    boot_timeout: float | None = None


@dataclass(frozen=True)
class Settings:
    debian_default: str
    keyring: Path
    # The pins: --debian <release>.
    releases: dict[str, DebianRelease]
    # Where --debian <version> is looked up, in order.
    debian_suites: dict[str, DebianSuite]
    # The packages a version may belong to: their names start with this.
    package_prefix: str
    arch: str
    defconfig: str
    config_variant: str
    targets: tuple[str, ...]
    bzimage: str
    timeouts: Timeouts
    memory: str
    guest_python: str
    # In the order they boot; "default" first.
    suites: dict[str, Suite]
    # Appended to the guest kernel's command line ([boot] kernel_args).
    kernel_args: tuple[str, ...] = ()

    def suites_for(self, stress: bool) -> tuple[Suite, ...]:
        """The suites a run boots: the default ones, and with --stress the stress ones."""
        return tuple(s for s in self.suites.values() if stress or not s.with_stress)

    def suite(self, name: str) -> Suite:
        """The suite called name; an unknown name lists the valid ones."""
        if name not in self.suites:
            raise UserError(f"unknown suite '{name}'; choose one of: {', '.join(self.suites)}")
        return self.suites[name]

    def release(self, name: str) -> DebianRelease:
        """The Debian release called name; an unknown name lists the valid ones."""
        if name not in self.releases:
            raise UserError(
                f"unknown Debian kernel '{name}'; choose one of: {', '.join(sorted(self.releases))}"
            )
        return self.releases[name]


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    labels: str
    pop_width: int
    requires: str | None
    # What guest tests call this entry (list64, list32), whatever a revision names it.
    role: str


@dataclass(frozen=True)
class AbsentSpec:
    """An export the image must not carry; guest tests of its role are N/A, for this reason."""

    name: str
    role: str
    why: str


@dataclass(frozen=True)
class ImageSpec:
    name: str
    # Each path is a list of candidates relative to the build dir, newest layout first:
    # kernels before 7.x kept the images directly in arch/x86/entry/vdso/.
    dbg: tuple[str, ...]
    stripped: tuple[str, ...]
    generated: tuple[str, ...]
    elf_class: int
    requires: str | None
    functions: tuple[FunctionSpec, ...]
    absent: tuple[AbsentSpec, ...] = ()

    def path(self, build_dir: Path, candidates: tuple[str, ...]) -> Path:
        """The first candidate that exists in build_dir, else the first (for the message)."""
        found = (build_dir / c for c in candidates if (build_dir / c).exists())
        return next(found, build_dir / candidates[0])


@dataclass(frozen=True)
class DisasmRegisters:
    """The registers the try_unlock asm pins, for one word size (elf_class)."""

    lock: str
    pop: str
    # Every name of the pop register (rdx, edx, ...): a write through any is a write to pop.
    pop_family: tuple[str, ...]


@dataclass(frozen=True)
class DisasmSpec:
    """What the disassembly check expects between the labels; mnemonics as capstone prints."""

    lock_mnemonic: str
    lock_width: int
    fail_jump_mnemonic: str
    store_mnemonic: str
    # Mnemonics whose memory operand capstone marks read-only although they write it.
    hidden_writes: tuple[str, ...]
    registers: dict[int, DisasmRegisters]


@dataclass(frozen=True)
class Expectations:
    name: str
    description: str
    version: str
    images: tuple[ImageSpec, ...]
    # None when the file has no [disasm] table: the disassembly check is skipped.
    disasm: DisasmSpec | None = None
    # Kconfig options the series adds: a tree without them does not carry the series.
    kconfig: tuple[str, ...] = ()
    # Numbers the guest tests take as {op_<key>}: the series' futex ops, which maintainers
    # renamed and renumbered during review.
    ops: dict[str, int] = field(default_factory=dict)


GUEST_KINDS = ("c", "python", "ktap")


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
    # The test dumps its mapped vDSO; the host compares it with this built image.
    compare: bool = False
    # "default", or "stress": those run only on request, in their own boot.
    suite: str = "default"
    # c: built on the host from sources with cflags; python: script run by the harness's
    # interpreter; ktap: the tree's own kselftests, one check per subtest.
    kind: str = "c"
    # kind python: the script, relative to guest-tests/.
    script: str | None = None
    # A kernel option the test needs beyond its image's (CONFIG_IA32_EMULATION for a 32-bit
    # launcher of a 64-bit test): N/A without it.
    requires: str | None = None


@dataclass(frozen=True)
class ReportSpec:
    """Which counters the report shows: in the table, and first in a comparison cell."""

    table: tuple[str, ...]
    cell: tuple[str, ...]


@dataclass(frozen=True)
class GuestSuite:
    tests: tuple[GuestTest, ...]
    report: ReportSpec


def _paths(value: str | list[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def read_toml(path: Path) -> dict[str, Any]:
    """Parse one TOML file; a syntax error names the file."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: {exc}") from exc


def load_settings(path: Path = DATA / "settings.toml") -> Settings:
    raw = read_toml(path)
    deb, kernel, boot = raw["debian"], raw["kernel"], raw["boot"]
    suites = {name: DebianSuite(name, mirror) for name, mirror in deb["suites"].items()}
    return Settings(
        debian_default=deb["default"], keyring=Path(deb["keyring"]),
        releases=_releases(deb["releases"], suites, path), debian_suites=suites,
        package_prefix=deb["package_prefix"],
        arch=kernel["arch"], defconfig=kernel["defconfig"],
        config_variant=kernel["config_variant"], targets=tuple(kernel["targets"]),
        bzimage=kernel["bzimage"], timeouts=Timeouts.from_toml(raw["timeouts"], path),
        memory=boot["memory"], guest_python=boot["python"],
        suites={name: Suite(name, int(s["cpus"]), tuple(s["tcg_qemu_opts"]),
                            bool(s.get("with_stress", False)),
                            float(s["boot_timeout"]) if "boot_timeout" in s else None)
                for name, s in raw["suites"].items()},
        kernel_args=tuple(boot.get("kernel_args", [])),
    )


def _releases(raw: dict[str, Any], suites: dict[str, DebianSuite],
              path: Path) -> dict[str, DebianRelease]:
    """The pinned releases; each takes its mirror from the suite it names."""
    releases = {}
    for name, r in raw.items():
        if r["suite"] not in suites:
            raise UserError(f"{path}: release {name} names suite {r['suite']!r}, which is not "
                            f"in [debian.suites] ({', '.join(suites)})")
        releases[name] = DebianRelease(name, r["package"], suites[r["suite"]].mirror, r["suite"])
    return releases


def expectation_names(directory: Path = EXPECTATIONS) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.toml"))


def load_expectations(name: str, directory: Path = EXPECTATIONS) -> Expectations:
    """The expectations file for one series revision; an unknown name lists the valid ones."""
    path = directory / f"{name}.toml"
    if not path.is_file():
        raise UserError(
            f"no expectations called '{name}' in {directory}; "
            f"choose one of: {', '.join(expectation_names(directory)) or '(none)'}"
        )
    raw = read_toml(path)
    images = tuple(
        ImageSpec(
            name=i["name"], dbg=_paths(i["dbg"]), stripped=_paths(i["stripped"]),
            generated=_paths(i["generated"]),
            elf_class=int(i["elf_class"]), requires=i.get("requires"),
            functions=tuple(
                FunctionSpec(f["name"], f["labels"], int(f["pop_width"]), f.get("requires"),
                             f.get("role", f["name"]))
                for f in i.get("functions", [])
            ),
            absent=tuple(AbsentSpec(a["name"], a["role"], a["why"]) for a in i.get("absent", [])),
        )
        for i in raw.get("images", [])
    )
    return Expectations(name, raw.get("description", ""), raw["version"], images,
                        disasm=_disasm_spec(raw["disasm"]) if "disasm" in raw else None,
                        kconfig=tuple(raw.get("kconfig", [])),
                        ops={k: int(v) for k, v in raw.get("ops", {}).items()})


def _disasm_spec(raw: dict[str, Any]) -> DisasmSpec:
    registers = {
        int(r["elf_class"]): DisasmRegisters(r["lock_register"], r["pop_register"],
                                             tuple(r["pop_family"]))
        for r in raw.get("registers", [])
    }
    return DisasmSpec(raw["lock_mnemonic"], int(raw["lock_width"]), raw["fail_jump_mnemonic"],
                      raw["store_mnemonic"], tuple(raw.get("hidden_writes", [])), registers)


GUEST_TESTS_FILE = DATA / "guest-tests.toml"


def load_guest_suite(path: Path = GUEST_TESTS_FILE) -> GuestSuite:
    raw = read_toml(path)
    templates = raw.get("templates", {})
    tests = tuple(_guest_test(_with_template(t, templates, path), path) for t in raw["tests"])
    report = raw.get("report", {})
    return GuestSuite(tests, ReportSpec(tuple(report.get("table", ())),
                                        tuple(report.get("cell", ()))))


def load_guest_tests(path: Path = GUEST_TESTS_FILE) -> tuple[GuestTest, ...]:
    return load_guest_suite(path).tests


def _with_template(test: dict[str, Any], templates: dict[str, Any], path: Path) -> dict[str, Any]:
    """The test's keys over its template's; extra_args appended to the args."""
    name = test.get("template")
    if name is None:
        merged = dict(test)
    elif name not in templates:
        raise UserError(f"{path}: test {test.get('name')} names template {name!r}; "
                        f"choose one of: {', '.join(sorted(templates)) or '(none)'}")
    else:
        merged = {**templates[name], **test}
    merged["args"] = [*merged.get("args", []), *merged.pop("extra_args", [])]
    return merged


def _guest_test(t: dict[str, Any], path: Path) -> GuestTest:
    kind = t.get("kind", "c")
    if kind not in GUEST_KINDS:
        raise UserError(f"{path}: test {t['name']} has kind {kind!r}; "
                        f"choose one of: {', '.join(GUEST_KINDS)}")
    return GuestTest(
        name=t["name"], kind=kind, sources=tuple(t.get("sources", [])),
        cflags=tuple(t.get("cflags", [])), image=t.get("image"), entry=t.get("entry"),
        args=tuple(t["args"]), timeout=float(t["timeout"]),
        require=tuple(t.get("require", [])), fail_if=tuple(t.get("fail_if", [])),
        compare=bool(t.get("compare", False)), suite=t.get("suite", "default"),
        script=t.get("script"), requires=t.get("requires"),
    )


@dataclass(frozen=True)
class EmailSpec:
    """What the mailing-list reply says about a failing check (data/email.toml)."""

    width: int
    # counter -> what it means that this fail_if counter is not zero; {n} is its value.
    failed: dict[str, str]
    # counter -> what it means that this require counter stayed zero.
    unreached: dict[str, str]
    # verdict word (fail, inconclusive, error, timeout), counter, unreached, stage -> line.
    fallback: dict[str, str]


EMAIL_FALLBACKS = ("counter", "unreached", "fail", "inconclusive", "error", "timeout", "stage")


def load_email_spec(path: Path = DATA / "email.toml") -> EmailSpec:
    """The reply's explanations; every fallback line must be there."""
    raw = read_toml(path)
    fallback = dict(raw.get("fallback", {}))
    missing = [k for k in EMAIL_FALLBACKS if k not in fallback]
    if missing:
        raise UserError(f"{path} [fallback]: missing {', '.join(missing)}")
    return EmailSpec(int(raw["width"]), dict(raw.get("failed", {})),
                     dict(raw.get("unreached", {})), fallback)


def load_apt_packages(path: Path = DATA / "apt-packages.txt") -> tuple[str, ...]:
    """The Debian packages the harness needs on the host (scripts/install-deps installs them)."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from exc
    return tuple(word for line in lines for word in line.split("#", 1)[0].split())
