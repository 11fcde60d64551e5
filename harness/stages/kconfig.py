# SPDX-License-Identifier: GPL-2.0
"""Stage 3, config: a base config (virtme-ng's, or a variant's own such as tinyconfig) plus
kernel-config/ fragments, checked to have stuck."""

from __future__ import annotations

import filecmp
import fnmatch
import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness.commands import run
from harness.data import DATA, read_toml
from harness.errors import UserError
from harness.paths import venv_tool
from harness.stages import gittree
from harness.stages.kconfig_drift import (
    RENAMES_FILE,
    Config,
    Resolution,
    load_renames,
    resolve,
)

log = logging.getLogger("harness")


_SET = re.compile(r"^CONFIG_(\w+)=(.*)$")
_UNSET = re.compile(r"^# CONFIG_(\w+) is not set$")
_KCONFIG_SYMBOL = re.compile(r"^\s*(?:menu)?config\s+(\w+)\s*$")
_DEPENDS = re.compile(r"^\s*(?:depends on|def_bool|def_tristate)\s+(.+)$")
# Next to .config in the build dir: the key of everything that made it (see config_key).
KEY_FILE = ".harness-config-key"
# Bump when configure() changes what it does with the same inputs.
KEY_FORMAT = "2"
INPUTS_FILE = DATA / "config-inputs.toml"


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
    variant: str = ""
    # The tree's git index is current (the harness's own trees, just patched): the config
    # inputs are hashed from its object ids instead of read.
    indexed: bool = False
    # False when the variant has a base of its own (tinyconfig): its fragments then say
    # what the boot needs, and virtme-ng's config items are not merged.
    virtme_items: bool = True
    # Options known under other names in other kernel releases.
    renames: Path = RENAMES_FILE
    # Kbuild's ARCH for a build of another architecture than the host's (i386, from the
    # variant.toml); None: make's own default, the host's.
    kbuild_arch: str | None = None


@dataclass(frozen=True)
class ConfigResult:
    config: Path
    requested: Config
    changed: bool
    # Optional options this tree does not have.
    absent: tuple[str, ...] = ()
    # The whole final configuration, as installed.
    final: Config = field(default_factory=dict)
    # Nothing that makes the config changed since the last one: merge and olddefconfig
    # were not run, only the requested-options check.
    skipped: bool = False
    # Options asked off that this tree does not have: off already, so not checked.
    gone: tuple[str, ...] = ()
    # (name in the fragments, this tree's name for it).
    renamed: tuple[tuple[str, str], ...] = ()


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


def is_set(config: Mapping[str, str], name: str) -> bool:
    """Whether an option is on (y, m or a value). The one way to ask: name it with or
    without CONFIG_, as the data files do."""
    return config.get(name.removeprefix("CONFIG_"), "n") not in ("n", "")


def kbuild_arch(build_dir: Path) -> str | None:
    """i386 for a build dir configured for native i386 (CONFIG_X86_32), else None (the
    host's). Every make on such a dir needs ARCH=i386: without it Kbuild takes the host's
    x86_64, and its olddefconfig silently turns the .config into a 64-bit one."""
    config = build_dir / ".config"
    if not config.is_file():
        return None
    return "i386" if is_set(parse_config(config.read_text(), str(config)), "X86_32") else None


def arch_args(build_dir: Path) -> list[str]:
    """The make arguments kbuild_arch asks for: ARCH=i386, or none."""
    arch = kbuild_arch(build_dir)
    return [f"ARCH={arch}"] if arch else []


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
    """Write build_dir/.config; it is only replaced when its content changes. Skipped when
    config_key equals the last config's and that .config is still there, unchanged."""
    wanted = merge_fragments(req.fragments)
    log_file = req.logs / "config.log"
    base = (virtme_fragment(req.logs / "virtme.config", req.arch, log_file, req.tool_timeout)
            if req.virtme_items else None)
    key = config_key(req, base, log_file)
    kept = _unchanged(req.build_dir, key)
    if kept is not None:
        log.info("config: nothing that makes the config changed; kept %s",
                 req.build_dir / ".config")
        return _check_kept(req, wanted, kept)
    (req.build_dir / KEY_FILE).unlink(missing_ok=True)
    result = _configure(req, wanted, base, log_file)
    _save_key(req.build_dir, key, Resolution(result.absent, result.gone, result.renamed))
    return result


def _configure(req: ConfigRequest, wanted: Config, base: Path | None,
               log_file: Path) -> ConfigResult:
    """defconfig, virtme-ng's items and the fragments merged, olddefconfig, then checked."""
    resolution = _resolve(req, wanted, set(kconfig_index(req.tree)))
    wanted = resolution.apply(wanted)
    scratch = req.build_dir.with_name(req.build_dir.name + ".kconfig")
    scratch.mkdir(parents=True, exist_ok=True)
    arch = [f"ARCH={req.kbuild_arch}"] if req.kbuild_arch else []
    make = ["make", "-s", "-C", str(req.tree), f"O={scratch}", *arch]
    run([*make, req.defconfig], log_file=log_file, timeout=req.timeout)
    virtme = (base,) if base else ()
    # A name the tree lacks is ignored by Kconfig; the tree's names come last, and win.
    tree_names = _renamed_fragment(req.logs / "renamed.config", wanted, resolution)
    run(["sh", req.tree / "scripts/kconfig/merge_config.sh", "-m", "-O", scratch,
         scratch / ".config", *virtme, *req.fragments, *tree_names],
        log_file=log_file, timeout=req.timeout)
    run([*make, "olddefconfig"], log_file=log_file, timeout=req.timeout)
    final = parse_config((scratch / ".config").read_text(), str(scratch / ".config"))
    _check_stuck(wanted, final, req.tree)
    changed = _install(scratch / ".config", req)
    return ConfigResult(req.build_dir / ".config", wanted, changed, resolution.absent, final,
                        gone=resolution.gone, renamed=resolution.renamed)


def _resolve(req: ConfigRequest, wanted: Config, symbols: set[str]) -> Resolution:
    """The request fitted to the tree; an option asked on that the tree lacks is fatal."""
    renames = load_renames(req.renames)
    resolution, missing = resolve(wanted, symbols, req.optional, renames)
    if missing:
        asked = ", ".join(f"CONFIG_{n}={wanted[n]} ({_fragment_of(req.fragments, n)})"
                          for n in missing)
        raise UserError(f"config fragments ask for options this tree does not have: {asked}; "
                        "one that may be missing must be listed as optional (the expectations' "
                        f"kconfig), one known by another name in {req.renames}")
    if resolution.gone:
        log.info("config: this tree has no %s; asked off, so off already",
                 ", ".join(f"CONFIG_{n}" for n in resolution.gone))
    for old, new in resolution.renamed:
        log.info("config: CONFIG_%s is CONFIG_%s in this tree", old, new)
    return resolution


def _fragment_of(fragments: tuple[Path, ...], name: str) -> str:
    """The fragment that asks for an option, for the message."""
    found = (f for f in fragments if name in parse_config(f.read_text(), str(f)))
    return str(next(found, "?"))


def _renamed_fragment(path: Path, wanted: Config, resolution: Resolution) -> tuple[Path, ...]:
    """A fragment with the renamed options under the tree's names; none without renames."""
    if not resolution.renamed:
        return ()
    lines = [f"CONFIG_{new}={wanted[new]}" if wanted[new] != "n"
             else f"# CONFIG_{new} is not set" for _, new in resolution.renamed]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return (path,)


def _check_stuck(wanted: Config, final: Config, tree: Path) -> None:
    """Every requested option has its value; the Kconfig index, to explain, only if not."""
    if all(final.get(k, "n") == v for k, v in wanted.items()):
        return
    problems = unmet(wanted, final, kconfig_index(tree))
    raise UserError("requested config options did not stick:\n  " + "\n  ".join(problems))


def _check_kept(req: ConfigRequest, wanted: Config, kept: Resolution) -> ConfigResult:
    """The requested-options check against the .config the last config left."""
    config = req.build_dir / ".config"
    final = parse_config(config.read_text(), str(config))
    wanted = kept.apply(wanted)
    _check_stuck(wanted, final, req.tree)
    shutil.copy2(config, req.logs / "kernel.config")
    return ConfigResult(config, wanted, False, kept.absent, final, skipped=True,
                        gone=kept.gone, renamed=kept.renamed)


def load_inputs(path: Path = INPUTS_FILE) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(tree pathspecs, host tools) that feed the config, from data/config-inputs.toml."""
    raw = read_toml(path)
    return tuple(raw["paths"]), tuple(raw["tools"])


def config_key(req: ConfigRequest, base: Path | None, log_file: Path,
               inputs: Path = INPUTS_FILE) -> str:
    """sha256 of everything that can change the config: the fragments, the variant, the
    defconfig and arch, virtme-ng's items, the renames, the tree's Kconfig inputs and the
    host tools."""
    paths, tools = load_inputs(inputs)
    digest = hashlib.sha256()
    for part in (KEY_FORMAT, req.variant, req.defconfig, req.arch, " ".join(req.optional),
                 req.kbuild_arch or ""):
        digest.update(part.encode() + b"\0")
    for frag in (*([base] if base else []), *req.fragments, req.renames):
        digest.update(frag.read_bytes() + b"\0")
    for tool in tools:
        digest.update(_tool_id(tool).encode() + b"\0")
    listing = req.logs / "config-inputs.txt"
    # Nothing may have written to the logs yet: a variant with a base of its own (no
    # virtme-ng dry run) on a tree that is not the harness's (no git listing).
    listing.parent.mkdir(parents=True, exist_ok=True)
    if req.indexed:
        run([*gittree.GIT, "-C", str(req.tree), "ls-files", "-s", "--", *paths],
            log_file=log_file, timeout=req.timeout, stdout_file=listing)
    else:
        listing.write_text(_walk_inputs(req.tree, paths))
    digest.update(listing.read_bytes())
    return digest.hexdigest()


def _tool_id(name: str) -> str:
    """A host tool's identity without running it: its real path, size and mtime."""
    found = shutil.which(name)
    if found is None:
        return f"{name} missing"
    real = Path(found).resolve()
    st = real.stat()
    return f"{name} {real} {st.st_size} {st.st_mtime_ns}"


def _walk_inputs(tree: Path, patterns: tuple[str, ...]) -> str:
    """'<sha256> <path>' per matching file of a tree without a current git index; the
    patterns mean what they mean to git (a wildcard matches '/', a directory its files)."""
    lines = []
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = str(path.relative_to(tree))
            if any(fnmatch.fnmatchcase(rel, p) or rel.startswith(p.rstrip("/") + "/")
                   for p in patterns):
                lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()} {rel}\n")
    return "".join(lines)


def _unchanged(build_dir: Path, key: str) -> Resolution | None:
    """How the request fitted the tree, as recorded with key when the last config had this
    key and its .config is still as it left it; None when the config must run."""
    try:
        saved = json.loads((build_dir / KEY_FILE).read_text())
        config = (build_dir / ".config").read_bytes()
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("key") != key or \
            saved.get("config") != hashlib.sha256(config).hexdigest():
        return None
    return Resolution(tuple(saved.get("absent", ())), tuple(saved.get("gone", ())),
                      tuple((old, new) for old, new in saved.get("renamed", ())))


def _save_key(build_dir: Path, key: str, resolution: Resolution) -> None:
    config = (build_dir / ".config").read_bytes()
    record = {"key": key, "config": hashlib.sha256(config).hexdigest(),
              "absent": list(resolution.absent), "gone": list(resolution.gone),
              "renamed": [list(pair) for pair in resolution.renamed]}
    (build_dir / KEY_FILE).write_text(json.dumps(record, indent=1) + "\n")


def _install(new: Path, req: ConfigRequest) -> bool:
    """Copy the config into the build dir only if it changed, so a rebuild stays a no-op."""
    req.build_dir.mkdir(parents=True, exist_ok=True)
    dest = req.build_dir / ".config"
    shutil.copy2(new, req.logs / "kernel.config")
    if dest.exists() and filecmp.cmp(new, dest, shallow=False):
        return False
    shutil.copyfile(new, dest)
    return True
