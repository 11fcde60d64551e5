# SPDX-License-Identifier: GPL-2.0
"""data/expectations/<name>.toml: what a revision's vDSO images must export and contain."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.data import EXPECTATIONS, as_paths, read_toml
from harness.errors import UserError


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
    # The ELF file's class (32 or 64), which the ELF check verifies.
    elf_class: int
    # The instruction set of its code, which the disassembly decodes and picks registers
    # by: 64 for x86-64, 32 for i386. Usually the ELF class; the x32 image is an ELF32 file
    # of x86-64 code (its objects are built -m64, then objcopied to elf32-x86-64).
    code_bits: int
    requires: str | None
    functions: tuple[FunctionSpec, ...]
    absent: tuple[AbsentSpec, ...] = ()

    def path(self, build_dir: Path, candidates: tuple[str, ...]) -> Path:
        """The first candidate that exists in build_dir, else the first (for the message)."""
        found = (build_dir / c for c in candidates if (build_dir / c).exists())
        return next(found, build_dir / candidates[0])


@dataclass(frozen=True)
class DisasmRegisters:
    """The registers the try_unlock asm pins, for one instruction set (code_bits)."""

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
    # None when the file has no [disasm] table: the disassembly checks are ERROR.
    disasm: DisasmSpec | None = None
    # Kconfig options the series adds: a tree without them does not carry the series.
    kconfig: tuple[str, ...] = ()
    # Numbers the guest tests take as {op_<key>}: the series' futex ops, which maintainers
    # renamed and renumbered during review. Each must agree with the built tree's uapi
    # header (guest/uapi.py). None when the file has no [ops] table: those tests are ERROR.
    ops: dict[str, int] | None = None
    # The file it was read from, for messages.
    path: Path | None = None


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
    raw = _with_base(read_toml(path), path, directory, (name,))
    images = tuple(
        ImageSpec(
            name=i["name"], dbg=as_paths(i["dbg"]), stripped=as_paths(i["stripped"]),
            generated=as_paths(i["generated"]),
            elf_class=int(i["elf_class"]), code_bits=int(i.get("code_bits", i["elf_class"])),
            requires=i.get("requires"),
            functions=tuple(
                FunctionSpec(f["name"], f["labels"], int(f["pop_width"]), f.get("requires"),
                             f.get("role", f["name"]))
                for f in i.get("functions", [])
            ),
            absent=tuple(AbsentSpec(a["name"], a["role"], a["why"]) for a in i.get("absent", [])),
        )
        for i in raw.get("images", [])
    )
    ops = raw.get("ops")
    return Expectations(name, raw.get("description", ""), raw["version"], images,
                        disasm=_disasm_spec(raw["disasm"]) if "disasm" in raw else None,
                        kconfig=tuple(raw.get("kconfig", [])),
                        ops=None if ops is None else {k: int(v) for k, v in ops.items()},
                        path=path)


def _with_base(raw: dict[str, Any], path: Path, directory: Path,
               chain: tuple[str, ...]) -> dict[str, Any]:
    """A file with `base = "<name>"` takes every top-level key it does not set itself from
    that expectations file ([ops], [disasm], version...): shared tables are written once."""
    base = raw.pop("base", None)
    if base is None:
        return raw
    if base in chain:
        raise UserError(f"{path}: base {base!r} leads back to itself ({' -> '.join(chain)})")
    base_path = directory / f"{base}.toml"
    if not base_path.is_file():
        raise UserError(f"{path}: base {base!r} names no file in {directory}; choose one of: "
                        f"{', '.join(expectation_names(directory))}")
    inherited = _with_base(read_toml(base_path), base_path, directory, (*chain, base))
    return {**inherited, **raw}


def _disasm_spec(raw: dict[str, Any]) -> DisasmSpec:
    registers = {
        int(r["code_bits"]): DisasmRegisters(r["lock_register"], r["pop_register"],
                                             tuple(r["pop_family"]))
        for r in raw.get("registers", [])
    }
    return DisasmSpec(raw["lock_mnemonic"], int(raw["lock_width"]), raw["fail_jump_mnemonic"],
                      raw["store_mnemonic"], tuple(raw.get("hidden_writes", [])), registers)
