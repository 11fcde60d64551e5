# SPDX-License-Identifier: GPL-2.0
"""Config variants: kernel-config/<variant>/ with its fragments and variant.toml (base,
include, drop), resolved into the fragments and base config a variant builds from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.data import read_toml
from harness.errors import UserError


def variant_names(directory: Path) -> list[str]:
    """Every config variant: vng (virtme-ng's base config alone) and each subdirectory."""
    return ["vng", *sorted(d.name for d in directory.iterdir() if d.is_dir())]


def variant_fragments(directory: Path, variant: str) -> tuple[Path, ...]:
    """The directory's fragments, plus those of the variant's subdirectory; "vng" adds none
    (virtme-ng's base config alone). A variant.toml there may include other variants'
    fragments (first) and drop fragments it replaces: shared ones by name, an included
    variant's as <variant>/<name>."""
    shared = sorted(directory.glob("*.config"))
    if not shared:
        raise UserError(f"no *.config fragments in {directory}")
    if variant == "vng":
        return tuple(shared)
    own, dropped = _variant(directory, variant, ())
    # A shared fragment is dropped by its name, an included variant's as <variant>/<name>.
    names = {p.name for p in shared} | {_included_name(p) for p in own}
    unknown = sorted(dropped - names)
    if unknown:
        raise UserError(f"config variant '{variant}' drops {', '.join(unknown)}, which "
                        f"{directory} does not have")
    return (tuple(p for p in shared if p.name not in dropped)
            + tuple(p for p in own if _included_name(p) not in dropped))


def _included_name(fragment: Path) -> str:
    """How a variant.toml's drop names a variant's own fragment: <variant>/<name>."""
    return f"{fragment.parent.name}/{fragment.name}"


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


def variant_arch(directory: Path, variant: str, seen: tuple[str, ...] = ()) -> str | None:
    """The Kbuild ARCH a variant builds for (variant.toml `arch`, its own or that of the
    first included variant with one); None: the host's."""
    if variant == "vng" or variant in seen:
        return None
    raw = _variant_spec(directory, variant)
    if "arch" in raw:
        return str(raw["arch"])
    for other in raw.get("include", []):
        if found := variant_arch(directory, other, (*seen, variant)):
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
        raise UserError(f"no config variant '{variant}' in {directory}; "
                        f"choose one of: {', '.join(variant_names(directory))}")
    raw = _variant_spec(directory, variant)
    found: tuple[Path, ...] = ()
    dropped = set(raw.get("drop", []))
    for other in raw.get("include", []):
        frags, drops = _variant(directory, other, (*seen, variant))
        found, dropped = found + frags, dropped | drops
    return found + own, dropped
