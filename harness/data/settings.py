# SPDX-License-Identifier: GPL-2.0
"""data/settings.toml and data/apt-packages.txt: the Debian releases, the build, the timeouts,
the boot suites."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from harness.data import DATA, read_toml
from harness.errors import UserError


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
    # At most this many VMs booted side by side, each running a share of the suite
    # (guest/lanes.py); never more than the host has cores.
    lanes: int = 1


@dataclass(frozen=True)
class GuestRoot:
    """A root filesystem of Debian packages for guests of another architecture than the
    host's ([roots.<arch>]): the host's own root cannot run their programs."""

    arch: str
    suite: str
    mirror: str
    packages: tuple[str, ...]

    @property
    def name(self) -> str:
        """Its directory under the cache's roots/: the arch, suite and package list."""
        return f"{self.arch}-{self.suite}-{'+'.join(self.packages)}"


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
    # Programs virtme-ng's init runs that the guest finds as no-ops ([boot] init_skips).
    init_skips: tuple[str, ...] = ()
    # By Kbuild ARCH (i386): the root its guests boot on, in place of the host's.
    roots: dict[str, GuestRoot] = field(default_factory=dict)

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
                            float(s["boot_timeout"]) if "boot_timeout" in s else None,
                            int(s.get("lanes", 1)))
                for name, s in raw["suites"].items()},
        kernel_args=tuple(boot.get("kernel_args", [])),
        init_skips=tuple(boot.get("init_skips", [])),
        roots={arch: GuestRoot(arch, r["suite"], r["mirror"], tuple(r["packages"]))
               for arch, r in raw.get("roots", {}).items()},
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


def load_apt_packages(path: Path = DATA / "apt-packages.txt") -> tuple[str, ...]:
    """The Debian packages the harness needs on the host (scripts/install-deps installs them)."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from exc
    return tuple(word for line in lines for word in line.split("#", 1)[0].split())
