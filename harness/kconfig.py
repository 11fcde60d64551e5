# SPDX-License-Identifier: GPL-2.0
"""Stage 3, config: a base config (virtme-ng's, or a variant's own such as tinyconfig) plus
kernel-config/ fragments, checked to have stuck."""

from __future__ import annotations

import filecmp
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.data import read_toml
from harness.errors import UserError
from harness.paths import venv_tool
from harness.run import run

log = logging.getLogger("harness")

Config = dict[str, str]

_SET = re.compile(r"^CONFIG_(\w+)=(.*)$")
_UNSET = re.compile(r"^# CONFIG_(\w+) is not set$")
_KCONFIG_SYMBOL = re.compile(r"^\s*(?:menu)?config\s+(\w+)\s*$")
_DEPENDS = re.compile(r"^\s*(?:depends on|def_bool|def_tristate)\s+(.+)$")


@dataclass(frozen=True)
class ConfigRequest:
    tree: Path
    build_dir: Path
    fragments: tuple[Path, ...]
    defconfig: str
    arch: str
    logs: Path
    timeout: float
    # virtme-ng's config dry run.
    tool_timeout: float
    # Options that may be missing from the tree (the series' own): dropped, not fatal.
    optional: tuple[str, ...] = ()
    # False when the variant has a base of its own (tinyconfig): its fragments then say
    # what the boot needs, and virtme-ng's config items are not merged.
    virtme_items: bool = True


@dataclass(frozen=True)
class ConfigResult:
    config: Path
    requested: Config
    changed: bool
    # Optional options this tree does not have.
    absent: tuple[str, ...] = ()
    # The whole final configuration, as installed.
    final: Config = field(default_factory=dict)


def parse_config(text: str, origin: str) -> Config:
    """name -> value for a .config or fragment; '# CONFIG_X is not set' reads as 'n'."""
    out: Config = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if m := _SET.match(line):
            out[m.group(1)] = m.group(2)
        elif m := _UNSET.match(line):
            out[m.group(1)] = "n"
        elif line and not line.startswith("#"):
            raise UserError(f"{origin}:{number}: not a config line: {raw!r}")
    return out


def merge_fragments(fragments: tuple[Path, ...]) -> Config:
    """All requested options; two fragments asking different values for one option is fatal."""
    merged: Config = {}
    owner: dict[str, Path] = {}
    for frag in fragments:
        try:
            text = frag.read_text()
        except OSError as exc:
            raise UserError(f"cannot read config fragment {frag}: {exc.strerror}") from exc
        for name, value in parse_config(text, str(frag)).items():
            if name in merged and merged[name] != value:
                raise UserError(
                    f"config fragments conflict on CONFIG_{name}: {owner[name]} sets "
                    f"{merged[name]}, {frag} sets {value}"
                )
            merged[name], owner[name] = value, frag
    return merged


def variant_fragments(directory: Path, variant: str) -> tuple[Path, ...]:
    """The directory's fragments, plus those of the variant's subdirectory; "vng" adds none
    (virtme-ng's base config alone). A variant.toml there may include other variants'
    fragments (first) and drop shared fragments it replaces."""
    shared = sorted(directory.glob("*.config"))
    if not shared:
        raise UserError(f"no *.config fragments in {directory}")
    if variant == "vng":
        return tuple(shared)
    own, dropped = _variant(directory, variant, ())
    unknown = sorted(dropped - {p.name for p in shared})
    if unknown:
        raise UserError(f"config variant '{variant}' drops {', '.join(unknown)}, which "
                        f"{directory} does not have")
    return tuple(p for p in shared if p.name not in dropped) + own


def variant_base(directory: Path, variant: str, seen: tuple[str, ...] = ()) -> str | None:
    """The make target a variant's config starts from (variant.toml `base`, its own or that
    of the first included variant with one); None: the settings' defconfig and virtme-ng."""
    if variant == "vng" or variant in seen:
        return None  # variant_fragments names an include cycle
    raw = _variant_spec(directory, variant)
    if "base" in raw:
        return str(raw["base"])
    for other in raw.get("include", []):
        if found := variant_base(directory, other, (*seen, variant)):
            return found
    return None


def _variant_spec(directory: Path, variant: str) -> dict[str, Any]:
    spec = directory / variant / "variant.toml"
    return read_toml(spec) if spec.is_file() else {}


def _variant(directory: Path, variant: str, seen: tuple[str, ...],
             ) -> tuple[tuple[Path, ...], set[str]]:
    """(fragments, shared fragment names dropped) of one variant and those it includes."""
    if variant in seen:
        raise UserError(f"config variants include each other: {' -> '.join([*seen, variant])}")
    own = tuple(sorted((directory / variant).glob("*.config")))
    if not own:
        known = sorted(d.name for d in directory.iterdir() if d.is_dir())
        raise UserError(f"no config variant '{variant}' in {directory}; "
                        f"choose one of: {', '.join(['vng', *known])}")
    raw = _variant_spec(directory, variant)
    found: tuple[Path, ...] = ()
    dropped = set(raw.get("drop", []))
    for other in raw.get("include", []):
        frags, drops = _variant(directory, other, (*seen, variant))
        found, dropped = found + frags, dropped | drops
    return found + own, dropped


def kconfig_index(tree: Path) -> dict[str, list[str]]:
    """Every Kconfig symbol of the tree, with its 'depends on' and def_bool expressions."""
    index: dict[str, list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith("Kconfig"):
                _index_file(Path(dirpath) / name, index)
    return index


def _index_file(path: Path, index: dict[str, list[str]]) -> None:
    current: str | None = None
    for line in path.read_text(errors="replace").splitlines():
        if m := _KCONFIG_SYMBOL.match(line):
            current = m.group(1)
            index.setdefault(current, [])
        elif line and not line[0].isspace():
            current = None
        elif current and (m := _DEPENDS.match(line)):
            index[current].append(m.group(1).strip())


def is_set(config: Config, name: str) -> bool:
    return config.get(name, "n") not in ("n", "")


def unmet(wanted: Config, final: Config, index: dict[str, list[str]]) -> list[str]:
    """One line per requested option that did not stick, naming its unset dependencies."""
    lines = []
    for name, value in sorted(wanted.items()):
        if final.get(name, "n") == value:
            continue
        deps = index.get(name, [])
        unset = sorted({s for e in deps for s in re.findall(r"\b[A-Z][A-Z0-9_]+\b", e)
                        if s in index and not is_set(final, s)})
        why = (f"probably an unmet dependency: {' && '.join(deps)} (not set: {', '.join(unset)})"
               if unset else f"depends on: {' && '.join(deps) or 'nothing'}")
        lines.append(f"CONFIG_{name}={value} requested, got {final.get(name, 'n')}; {why}")
    return lines


def virtme_fragment(dest: Path, arch: str, log_file: Path, timeout: float) -> Path:
    """virtme-ng's own config items: what 'vng --kconfig' appends to the defconfig."""
    run([venv_tool("virtme-configkernel"), "--dry-run", "--arch", arch], log_file=log_file,
        timeout=timeout, stdout_file=dest)
    return dest


def configure(req: ConfigRequest) -> ConfigResult:
    """Write build_dir/.config; it is only replaced when its content changes."""
    wanted = merge_fragments(req.fragments)
    index = kconfig_index(req.tree)
    absent = tuple(sorted(n for n in req.optional if n not in index))
    wanted = {k: v for k, v in wanted.items() if k not in absent}
    unknown = sorted(n for n in wanted if n not in index)
    if unknown:
        names = ", ".join(f"CONFIG_{n}" for n in unknown)
        raise UserError(f"config fragments ask for options this tree does not have: {names}")
    scratch = req.build_dir.with_name(req.build_dir.name + ".kconfig")
    scratch.mkdir(parents=True, exist_ok=True)
    log_file = req.logs / "config.log"
    make = ["make", "-s", "-C", str(req.tree), f"O={scratch}"]
    run([*make, req.defconfig], log_file=log_file, timeout=req.timeout)
    virtme = ((virtme_fragment(req.logs / "virtme.config", req.arch, log_file,
                               req.tool_timeout),) if req.virtme_items else ())
    run(["sh", req.tree / "scripts/kconfig/merge_config.sh", "-m", "-O", scratch,
         scratch / ".config", *virtme, *req.fragments], log_file=log_file, timeout=req.timeout)
    run([*make, "olddefconfig"], log_file=log_file, timeout=req.timeout)
    final = parse_config((scratch / ".config").read_text(), str(scratch / ".config"))
    problems = unmet(wanted, final, index)
    if problems:
        raise UserError("requested config options did not stick:\n  " + "\n  ".join(problems))
    changed = _install(scratch / ".config", req)
    return ConfigResult(req.build_dir / ".config", wanted, changed, absent, final)


def _install(new: Path, req: ConfigRequest) -> bool:
    """Copy the config into the build dir only if it changed, so a rebuild stays a no-op."""
    req.build_dir.mkdir(parents=True, exist_ok=True)
    dest = req.build_dir / ".config"
    shutil.copy2(new, req.logs / "kernel.config")
    if dest.exists() and filecmp.cmp(new, dest, shallow=False):
        return False
    shutil.copyfile(new, dest)
    return True
