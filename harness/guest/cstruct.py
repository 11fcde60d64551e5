# SPDX-License-Identifier: GPL-2.0
"""A C struct's layout from a header's text: each field's offset and size, computed from
the fields and their types as GCC places them on x86 (bitfields, anonymous unions and
structs, __packed). Only what kernel headers put in small fixed structs is understood;
anything else is a ValueError naming it, never a guess."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.DOTALL)
_TOKEN = re.compile(r"\w+|\S")
_PACKED = (("__packed",), ("__attribute__", "(", "(", "packed", ")", ")"),
           ("__attribute__", "(", "(", "__packed__", ")", ")"))
# Qualifiers that change nothing in the layout.
_QUALIFIERS = frozenset({"const", "volatile", "signed"})


@dataclass(frozen=True)
class Field:
    offset: int
    size: int


@dataclass(frozen=True)
class StructLayout:
    size: int
    # Field name -> where it is; members of an anonymous union or struct by their own name,
    # of a named one as <member>.<name>.
    fields: dict[str, Field]


@dataclass(frozen=True)
class _Scalar:
    name: str
    type: str
    bits: int | None
    count: int


@dataclass(frozen=True)
class _Aggregate:
    name: str
    union: bool
    members: tuple[_Scalar | _Aggregate, ...]
    packed: bool


def struct_layout(text: str, tag: str, sizes: Mapping[str, int]) -> StructLayout:
    """The layout of `struct <tag> { ... }` in a header's text; ValueError says why not."""
    tokens = _TOKEN.findall(_body(_COMMENT.sub(" ", text), tag))
    members, end = _members(tokens, 0)
    top = _Aggregate("", False, members, _packed(tokens[end + 1:-1], tag))
    size, _, fields = _place(top, sizes)
    return StructLayout(size, fields)


def _body(code: str, tag: str) -> str:
    """`{ ... } attributes ;` of the struct's definition, braces included."""
    start = re.search(rf"\bstruct\s+{re.escape(tag)}\s*\{{", code)
    if start is None:
        raise ValueError(f"no definition of struct {tag}")
    depth = i = 0
    for i in range(start.end() - 1, len(code)):
        depth += {"{": 1, "}": -1}.get(code[i], 0)
        if depth == 0:
            break
    semicolon = code.find(";", i)
    if depth or semicolon < 0:
        raise ValueError(f"struct {tag} does not end")
    body = code[start.end() - 1:semicolon + 1]
    if re.search(r"^[ \t]*#", body, re.MULTILINE):
        raise ValueError(f"struct {tag} has a preprocessor line inside: its layout depends "
                         "on the configuration")
    return body


def _packed(attributes: list[str], tag: str) -> bool:
    if not attributes:
        return False
    if tuple(attributes) in _PACKED:
        return True
    raise ValueError(f"struct {tag} has attributes this reader does not know: "
                     f"{' '.join(attributes)}")


def _members(tokens: list[str], i: int) -> tuple[tuple[_Scalar | _Aggregate, ...], int]:
    """The members from tokens[i] == '{' to its '}'; returns them and the '}' index."""
    members: list[_Scalar | _Aggregate] = []
    i += 1
    while i < len(tokens) and tokens[i] != "}":
        if tokens[i] in ("struct", "union") and tokens[i + 1:i + 2] == ["{"]:
            aggregate, end = _aggregate(tokens, i)
            members.append(aggregate)
        else:
            end = tokens.index(";", i)
            members.append(_scalar(tokens[i:end]))
        i = end + 1
    return tuple(members), i


def _aggregate(tokens: list[str], i: int) -> tuple[_Aggregate, int]:
    """A union or struct member from tokens[i] (its keyword) to its ';', and that index."""
    inner, close = _members(tokens, i + 1)
    end = tokens.index(";", close)
    rest = tokens[close + 1:end]
    named = bool(rest) and rest[0] not in ("__packed", "__attribute__")
    packed = _packed(rest[1:] if named else rest, f"{tokens[i]} member")
    return _Aggregate(rest[0] if named else "", tokens[i] == "union", inner, packed), end


def _scalar(decl: list[str]) -> _Scalar:
    """`type words name`, `... name : bits` or `... name [ count ]`."""
    words = [w for w in decl if w not in _QUALIFIERS]
    bits = count = None
    if len(words) >= 3 and words[-2] == ":" and words[-1].isdigit():
        bits, words = int(words[-1]), words[:-2]
    elif len(words) >= 4 and words[-3] == "[" and words[-2].isdigit() and words[-1] == "]":
        count, words = int(words[-2]), words[:-3]
    if len(words) < 2 or not all(re.fullmatch(r"\w+", w) for w in words):
        raise ValueError(f"cannot read the member {' '.join(decl)!r}")
    return _Scalar(words[-1], " ".join(words[:-1]), bits, count or 1)


def _place(agg: _Aggregate, sizes: Mapping[str, int]) -> tuple[int, int, dict[str, Field]]:
    """The aggregate's size, alignment and fields, its members placed from byte 0. Positions
    are counted in bits, for bitfields."""
    bit = end = align = 0
    fields: dict[str, Field] = {}
    for m in agg.members:
        if isinstance(m, _Aggregate):
            size, inner_align, inner = _place(m, sizes)
            # A packed struct packs its members, not what is inside them.
            m_align = 1 if agg.packed else inner_align
            at = 0 if agg.union else _up(_up(bit, 8) // 8, m_align)
            prefix = f"{m.name}." if m.name else ""
            fields.update({prefix + k: Field(at + f.offset, f.size) for k, f in inner.items()})
            bit, m_bits = at * 8, size * 8
        else:
            size = _size(m.type, sizes)
            m_align = 1 if agg.packed else size
            bit = 0 if agg.union else _scalar_bit(bit, size, m.bits, agg.packed)
            m_bits = m.bits if m.bits is not None else size * 8 * m.count
            if m.bits is None:
                fields[m.name] = Field(bit // 8, size * m.count)
        align = max(align, m_align)
        bit += m_bits
        end = max(end, bit)
    return _up(_up(end, 8) // 8, align or 1), align or 1, fields


def _scalar_bit(bit: int, size: int, width: int | None, packed: bool) -> int:
    """Where a field starts, in bits: a whole field at its alignment, a bitfield right
    after the last one unless (not packed) it would cross its own type's unit."""
    if width is None:
        return _up(_up(bit, 8), 8 if packed else size * 8)
    unit = size * 8
    if not packed and bit // unit != (bit + width - 1) // unit:
        return _up(bit, unit)
    return bit


def _size(ctype: str, sizes: Mapping[str, int]) -> int:
    if ctype not in sizes:
        raise ValueError(f"a field has type {ctype!r}, whose size data/layouts.toml does not "
                         "give")
    return sizes[ctype]


def _up(value: int, step: int) -> int:
    return -(-value // step) * step
