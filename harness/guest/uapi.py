# SPDX-License-Identifier: GPL-2.0
"""The futex op numbers guest tests take as {op_<key>}: read from the built tree's installed
uapi linux/futex.h (the header the tests and the kernel's selftests compile against) and
cross-checked with the expectations file's [ops]. Key k is the macro FUTEX_<K>
(unlock_wake_list64 is FUTEX_UNLOCK_WAKE_LIST64); a test gets a number only when both agree."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.data.expectations import Expectations
from harness.data.guest_tests import GuestTest
from harness.errors import CommandError
from harness.kselftest import programs

HEADER = Path("include/linux/futex.h")
_DEFINE = re.compile(r"^[ \t]*#[ \t]*define[ \t]+(\w+)[ \t]+(.+)$", re.MULTILINE)
_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.DOTALL)
# C integer suffixes (0x80000000U, 1UL) that Python does not read.
_SUFFIX = re.compile(r"\b(0[xX][0-9a-fA-F]+|\d+)[uUlL]+\b")
_BINARY: dict[type[ast.operator], Callable[[int, int], int]] = {
    ast.BitOr: lambda a, b: a | b, ast.BitAnd: lambda a, b: a & b,
           ast.BitXor: lambda a, b: a ^ b, ast.LShift: lambda a, b: a << b,
           ast.RShift: lambda a, b: a >> b, ast.Add: lambda a, b: a + b,
           ast.Sub: lambda a, b: a - b}
_UNARY: dict[type[ast.unaryop], Callable[[int], int]] = {
    ast.Invert: lambda a: ~a, ast.USub: lambda a: -a, ast.UAdd: lambda a: a}


@dataclass(frozen=True)
class OpNumbers:
    """What the tests may take as {op_<key>}, and why any other key they ask for is missing."""

    # The expectations file, as the messages name it.
    source: str = "the expectations file"
    values: dict[str, int] = field(default_factory=dict)
    # key -> why the tests cannot have it: the built tree's header disagrees or lacks it.
    problems: dict[str, str] = field(default_factory=dict)
    # False when the expectations file has no [ops] table at all.
    table: bool = True

    def problem(self, keys: tuple[str, ...]) -> str | None:
        """Why a test taking these keys cannot run, or None when every number is known."""
        if keys and not self.table:
            return f"{self.source} has no [ops] table, which gives the op numbers"
        found = [self.problems.get(k) or f"{self.source} gives no {k} in [ops]"
                 for k in keys if k not in self.values]
        return "; ".join(found) or None


def op_keys(test: GuestTest) -> tuple[str, ...]:
    """The [ops] keys a test takes ({op_<key>} in its arguments)."""
    return tuple(sorted(p[3:] for p in test.placeholders if p.startswith("op_")))


def macro(key: str) -> str:
    """The uapi macro of an [ops] key."""
    return f"FUTEX_{key.upper()}"


def defines(text: str) -> dict[str, str]:
    """Object-like #defines of a C header, name -> replacement text, comments removed."""
    flat = _COMMENT.sub(" ", text).replace("\\\n", " ")
    return {m.group(1): m.group(2).strip() for m in _DEFINE.finditer(flat)}


def evaluate(name: str, table: dict[str, str], seen: frozenset[str] = frozenset()) -> int:
    """The integer value of a macro built from numbers, other macros and C's integer
    operators. KeyError when a macro is not defined, ValueError when it is no such sum."""
    if name in seen:
        raise ValueError(f"{name} refers to itself")
    try:
        tree = ast.parse(_SUFFIX.sub(r"\1", table[name]), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"{name} is {table[name]!r}") from exc
    return _value(tree.body, table, seen | {name})


def _value(node: ast.expr, table: dict[str, str], seen: frozenset[str]) -> int:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.Name):
        return evaluate(node.id, table, seen)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_value(node.operand, table, seen))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _BINARY[type(node.op)](_value(node.left, table, seen),
                                      _value(node.right, table, seen))
    raise ValueError(f"cannot evaluate {ast.unparse(node)}")


def cross_check(expectations: Expectations, header: Path) -> OpNumbers:
    """Each [ops] key's number from header, when the expectations file says the same."""
    source = str(expectations.path or f"expectations {expectations.name}")
    if expectations.ops is None:
        return OpNumbers(source, table=False)
    try:
        table = defines(header.read_text(errors="replace"))
    except OSError as exc:
        why = f"cannot read the built tree's {header}: {exc.strerror}"
        return OpNumbers(source, problems=dict.fromkeys(expectations.ops, why))
    values, problems = {}, {}
    for key, expected in expectations.ops.items():
        name = macro(key)
        try:
            found = evaluate(name, table)
        except KeyError:
            problems[key] = f"op {key}: the built tree's {header} has no {name} " \
                            f"({source} says {expected})"
            continue
        except ValueError as exc:
            problems[key] = f"op {key}: the built tree's {header}: {exc}"
            continue
        if found != expected:
            problems[key] = f"op {key}: {source} says {expected}, the built tree's " \
                            f"{header} has {name} = {found}"
        else:
            values[key] = found
    return OpNumbers(source, values, problems)


def install_headers(tree: Path, build_dir: Path, logs: Path, timeout: float) -> Path:
    """The built tree's installed uapi futex header (programs.install_headers)."""
    return programs.install_headers(tree, build_dir, logs / "uapi-headers.log",
                                    timeout) / HEADER


def op_numbers(expectations: Expectations, tree: Path, build_dir: Path, logs: Path,
               timeout: float) -> OpNumbers:
    """The numbers both the expectations file and the built tree's uapi header give; a
    header that cannot be installed leaves every key with that reason."""
    if expectations.ops is None:
        return cross_check(expectations, Path())
    try:
        header = install_headers(tree, build_dir, logs, timeout)
    except CommandError as exc:
        last = [ln for ln in exc.tail.splitlines() if ln.strip()][-1:] or ["no output"]
        why = f"cannot install the built tree's uapi headers: {last[0]}"
        return OpNumbers(str(expectations.path or expectations.name),
                         problems=dict.fromkeys(expectations.ops, why))
    return cross_check(expectations, header)
