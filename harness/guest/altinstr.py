# SPDX-License-Identifier: GPL-2.0
"""The layout of a .altinstructions entry (struct alt_instr), read from the tree under test's
header as data/layouts.toml names it, so that the runtime-image comparison does not assume
7.3's numbers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.data.layouts import LayoutSpec, load_layouts
from harness.errors import UserError
from harness.guest.cstruct import Field, struct_layout

STRUCT = "alt_instr"


@dataclass(frozen=True)
class AltLayout:
    """Where an entry keeps what the comparison reads, and how long an entry is."""

    size: int
    # The original instruction's address, relative to the entry (signed).
    offset: Field
    # The original instruction's length in bytes.
    length: Field
    # The header it was read from, as messages name it.
    header: str


def alt_layout(text: str, header: str, spec: LayoutSpec | None = None) -> AltLayout:
    """The entry layout from the header's text; ValueError says what could not be read."""
    spec = spec or load_layouts()
    wanted = spec.struct(STRUCT)
    layout = struct_layout(text, wanted.struct, spec.type_sizes)
    roles = {}
    for role in ("offset", "length"):
        name = wanted.fields.get(role)
        if name is None:
            raise ValueError(f"data/layouts.toml [structs.{STRUCT}] names no {role} field")
        if name not in layout.fields:
            raise ValueError(f"struct {wanted.struct} has no field {name}; it has: "
                             f"{', '.join(layout.fields)}")
        roles[role] = layout.fields[name]
    return AltLayout(layout.size, roles["offset"], roles["length"], header)


def read_alt_layout(tree: Path, spec: LayoutSpec | None = None) -> AltLayout:
    """The layout as the tree's header defines it; a UserError (exit 2) naming the header
    and the cause when it cannot be read."""
    spec = spec or load_layouts()
    header = tree / spec.struct(STRUCT).header
    try:
        return alt_layout(header.read_text(errors="replace"), str(header), spec)
    except OSError as exc:
        raise UserError(f"cannot read struct {STRUCT} from {header}: "
                        f"{exc.strerror or exc}") from None
    except ValueError as exc:
        raise UserError(f"cannot read struct {STRUCT} from {header}: {exc}; the runtime-image "
                        "comparison needs its layout") from None
