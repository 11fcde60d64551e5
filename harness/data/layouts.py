# SPDX-License-Identifier: GPL-2.0
"""data/layouts.toml: which C structs the harness reads from the tree's headers, and the
sizes of the types their fields may have."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.data import DATA, read_toml
from harness.errors import UserError


@dataclass(frozen=True)
class StructSpec:
    """A struct in a header of the tree under test, and the fields read from it by role."""

    header: str
    struct: str
    # role (offset, length) -> field name in the struct.
    fields: dict[str, str]


@dataclass(frozen=True)
class LayoutSpec:
    structs: dict[str, StructSpec]
    # C type, its words joined by one space ("unsigned int") -> size in bytes.
    type_sizes: dict[str, int]

    def struct(self, name: str) -> StructSpec:
        """The struct the file calls `name`; an unknown one lists those there are."""
        if name not in self.structs:
            raise UserError(f"data/layouts.toml has no [structs.{name}]; it has: "
                            f"{', '.join(self.structs) or 'none'}")
        return self.structs[name]


def load_layouts(path: Path = DATA / "layouts.toml") -> LayoutSpec:
    """The structs and type sizes; a struct needs a header and a tag."""
    raw = read_toml(path)
    structs = {}
    for name, table in raw.get("structs", {}).items():
        fields = {k: str(v) for k, v in table.items() if k not in ("header", "struct")}
        if not table.get("header") or not table.get("struct"):
            raise UserError(f"{path} [structs.{name}]: give its header and struct")
        structs[name] = StructSpec(str(table["header"]), str(table["struct"]), fields)
    return LayoutSpec(structs, {str(k): int(v) for k, v in raw.get("type_sizes", {}).items()})
