# SPDX-License-Identifier: GPL-2.0
"""Stage 5b, disassembly: check with capstone that each try_unlock entry's labels cover the
real unlock window, from right after the cmpxchg to right after the store that clears pop."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import capstone
from capstone import x86
from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from harness.data.expectations import DisasmRegisters, DisasmSpec, Expectations, ImageSpec
from harness.stages.vdso import Facts, VdsoResult
from harness.verdicts.checks import Check, Verdict, disasm_check, elf_check, entry_key

log = logging.getLogger("harness")


@dataclass(frozen=True)
class MemRef:
    """One memory operand; register names are '' when absent."""

    base: str
    index: str
    segment: str
    disp: int
    width: int
    writes: bool

    def uses(self, regs: tuple[str, ...]) -> bool:
        """True when the address is computed from one of regs."""
        return self.base in regs or self.index in regs

    def plain(self, reg: str) -> bool:
        """True for exactly [reg]: the address the kernel's fixup clears is DX itself."""
        return self.base == reg and not self.index and not self.segment and self.disp == 0


@dataclass(frozen=True)
class Insn:
    """One decoded instruction, with what the checks need and no capstone object."""

    address: int
    size: int
    mnemonic: str
    text: str
    mems: tuple[MemRef, ...]
    jump: bool
    target: int | None

    @property
    def end(self) -> int:
        """The address right after the instruction."""
        return self.address + self.size


@dataclass(frozen=True)
class Window:
    """The unlock window the code really has: after the cmpxchg, the clearing store, after it."""

    start: int
    success: int
    end: int


def read_code(path: Path, address: int, size: int) -> bytes:
    """The size bytes at a virtual address of an ELF file (the vDSO is linked at 0)."""
    with path.open("rb") as f:
        for sec in ELFFile(f).iter_sections():
            base, end = sec["sh_addr"], sec["sh_addr"] + sec["sh_size"]
            if sec["sh_type"] == "SHT_PROGBITS" and base <= address < address + size <= end:
                data: bytes = sec.data()
                return data[address - base:address - base + size]
    raise ELFError(f"no section of {path} holds [{address:#x}, {address + size:#x})")


def decode(code: bytes, address: int, code_bits: int, hidden_writes: tuple[str, ...],
           ) -> tuple[Insn, ...]:
    """Disassemble code placed at address, in 64- or 32-bit mode, up to the first bad byte."""
    mode = capstone.CS_MODE_64 if code_bits == 64 else capstone.CS_MODE_32
    md = capstone.Cs(capstone.CS_ARCH_X86, mode)
    md.detail = True
    return tuple(_insn(raw, hidden_writes) for raw in md.disasm(code, address))


def _insn(raw: Any, hidden_writes: tuple[str, ...]) -> Insn:
    hidden = raw.mnemonic.split()[-1] in hidden_writes
    mems = tuple(_mem(raw, op, hidden) for op in raw.operands if op.type == x86.X86_OP_MEM)
    jump = bool(raw.group(capstone.CS_GRP_JUMP))
    imms = [int(op.imm) for op in raw.operands if op.type == x86.X86_OP_IMM]
    return Insn(int(raw.address), int(raw.size), str(raw.mnemonic),
                f"{raw.mnemonic} {raw.op_str}".strip(), mems, jump,
                imms[0] if jump and imms else None)


def _mem(raw: Any, op: Any, hidden: bool) -> MemRef:
    def name(reg: int) -> str:
        return str(raw.reg_name(reg)) if reg else ""

    writes = hidden or bool(op.access & capstone.CS_AC_WRITE)
    return MemRef(name(op.mem.base), name(op.mem.index), name(op.mem.segment),
                  int(op.mem.disp), int(op.size), writes)


def check_function(build_dir: Path, image: ImageSpec, facts: Facts, spec: DisasmSpec,
                   ) -> tuple[Window | None, list[str]]:
    """The window the disassembly shows for one entry (None if it has none), and the problems."""
    where = f"{image.name}:{facts.function}"
    # By the code's instruction set, not the file's class: x32's ELF32 file holds x86-64 code.
    regs = spec.registers.get(image.code_bits)
    if regs is None:
        return None, [f"{where}: no [[disasm.registers]] for code_bits {image.code_bits}"]
    try:
        code = read_code(image.path(build_dir, image.dbg), facts.offset, facts.size)
    except (OSError, ELFError) as exc:
        return None, [f"{where}: cannot read the code at {facts.offset:#x}: {exc}"]
    insns = decode(code, facts.offset, image.code_bits, spec.hidden_writes)
    decoded = insns[-1].end if insns else facts.offset
    if decoded != facts.offset + facts.size:
        return None, [f"{where} {decoded:#x}: capstone cannot decode "
                      f"{code[decoded - facts.offset:][:8].hex()}; expected x86 code"]
    return analyse(where, insns, facts, regs, spec)


def analyse(where: str, insns: tuple[Insn, ...], facts: Facts, regs: DisasmRegisters,
            spec: DisasmSpec) -> tuple[Window | None, list[str]]:
    """Find the cmpxchg and the clearing store in insns, and judge the labels against them."""
    unlock, problems = _find_unlock(where, insns, facts, regs, spec)
    if unlock is None:
        return None, problems
    store = _find_store(insns, unlock, regs, spec)
    if store is None:
        return None, [*problems, _no_store(where, insns, facts, unlock, regs, spec)]
    problems += _store_shape(where, store, facts, regs)
    problems += _fail_branch(where, insns, unlock, store, spec)
    problems += _other_writes(where, insns, store, regs)
    window = Window(unlock.end, store.address, store.end)
    problems += _labels(where, insns, facts, window, unlock, store)
    return window, problems


def _at(where: str, insn: Insn, problem: str, expected: str) -> str:
    return f"{where} {insn.address:#x} `{insn.text}`: {problem}; expected {expected}"


def _find_unlock(where: str, insns: tuple[Insn, ...], facts: Facts, regs: DisasmRegisters,
                 spec: DisasmSpec) -> tuple[Insn | None, list[str]]:
    want = f"exactly one `{spec.lock_mnemonic}` of {spec.lock_width} bytes at [{regs.lock}]"
    locks = [i for i in insns if i.mnemonic == spec.lock_mnemonic]
    if not locks:
        return None, [f"{where} {facts.offset:#x}: no `{spec.lock_mnemonic}` in the "
                      f"{facts.size} bytes of the function; expected {want}"]
    on_lock = [i for i in locks if any(m.base == regs.lock for m in i.mems)]
    unlock = (on_lock or locks)[0]
    problems = [_at(where, i, f"another `{spec.lock_mnemonic}` besides the one at "
                    f"{unlock.address:#x}", want) for i in locks if i is not unlock]
    if not on_lock:
        problems.append(_at(where, unlock, f"not a compare-exchange at [{regs.lock}]", want))
    widths = {m.width for m in unlock.mems}
    if widths != {spec.lock_width}:
        problems.append(_at(where, unlock, f"compare-exchange of {sorted(widths)} bytes", want))
    return unlock, problems


def _pop_stores(insns: tuple[Insn, ...], regs: DisasmRegisters) -> list[Insn]:
    return [i for i in insns if any(m.writes and m.uses(regs.pop_family) for m in i.mems)]


def _find_store(insns: tuple[Insn, ...], unlock: Insn, regs: DisasmRegisters,
                spec: DisasmSpec) -> Insn | None:
    return next((i for i in _pop_stores(insns, regs)
                 if i.address >= unlock.end and i.mnemonic == spec.store_mnemonic
                 and any(m.writes and m.base == regs.pop for m in i.mems)), None)


def _no_store(where: str, insns: tuple[Insn, ...], facts: Facts, unlock: Insn,
              regs: DisasmRegisters, spec: DisasmSpec) -> str:
    want = (f"a `{spec.store_mnemonic}` of {facts.pop_width} bytes to [{regs.pop}] after "
            f"the cmpxchg at {unlock.address:#x}")
    at_success = next((i for i in insns if i.address == facts.success), None)
    if at_success is None:
        return (f"{where} {facts.success:#x}: cs_success on no instruction, and no store "
                f"clears pop; expected {want}")
    return _at(where, at_success, "at cs_success, and no store clears pop", want)


def _store_shape(where: str, store: Insn, facts: Facts, regs: DisasmRegisters) -> list[str]:
    dest = next(m for m in store.mems if m.writes and m.base == regs.pop)
    problems = []
    if dest.width != facts.pop_width:
        problems.append(_at(where, store, f"the store that clears pop writes {dest.width} bytes",
                            f"{facts.pop_width} (pop_width)"))
    if not dest.plain(regs.pop):
        problems.append(_at(where, store, f"the store that clears pop is not to [{regs.pop}]",
                            f"[{regs.pop}], the address the kernel's fixup clears"))
    return problems


def _fail_branch(where: str, insns: tuple[Insn, ...], unlock: Insn, store: Insn,
                 spec: DisasmSpec) -> list[str]:
    want = f"`{spec.fail_jump_mnemonic}` to cs_end, at or after {store.end:#x}"
    jumps = [i for i in insns if unlock.end <= i.address < store.address and i.jump]
    if not jumps:
        return [_at(where, store, "no branch after the cmpxchg skips this store", want)]
    jump = jumps[0]
    problems = []
    if jump.mnemonic != spec.fail_jump_mnemonic:
        problems.append(_at(where, jump, "not the failure branch", want))
    if jump.target is None or jump.target < store.end:
        target = "an unknown address" if jump.target is None else f"{jump.target:#x}"
        problems.append(_at(where, jump, f"a failed cmpxchg goes to {target} and can run the "
                            f"store at {store.address:#x}", want))
    return problems


def _other_writes(where: str, insns: tuple[Insn, ...], store: Insn,
                  regs: DisasmRegisters) -> list[str]:
    return [_at(where, i, "writes through the pop register",
                f"only the store at {store.address:#x} to write through {regs.pop}")
            for i in _pop_stores(insns, regs) if i is not store]


def _labels(where: str, insns: tuple[Insn, ...], facts: Facts, window: Window, unlock: Insn,
            store: Insn) -> list[str]:
    at = {i.address: i for i in insns}
    rules = (("cs_start", facts.start, window.start, f"right after `{unlock.text}`"),
             ("cs_success", facts.success, window.success, f"on `{store.text}`"),
             ("cs_end", facts.end, window.end, f"right after `{store.text}`"))
    return [f"{where} {have:#x} {_describe(at, have, facts)}: the {label} label; "
            f"expected {want:#x}, {why}" for label, have, want, why in rules if have != want]


def _describe(at: dict[int, Insn], address: int, facts: Facts) -> str:
    if address in at:
        return f"`{at[address].text}`"
    if address == facts.offset + facts.size:
        return "(end of function)"
    return "(inside an instruction)"


def check_disasm(build_dir: Path, expectations: Expectations, vdso_result: VdsoResult,
                 ) -> tuple[tuple[Check, ...], dict[str, Window]]:
    """One disasm-<image> check per image, and the window of each entry, keyed image:function.
    Without a [disasm] table nothing says what the code must be: each check is ERROR."""
    spec = expectations.disasm
    checks, windows = [], {}
    for image in expectations.images:
        if spec is None:
            checks.append(_no_spec(image, expectations, vdso_result))
            continue
        check, found = _check_image(build_dir, image, spec, vdso_result)
        checks.append(check)
        windows.update(found)
    return tuple(checks), windows


def no_table(expectations: Expectations) -> str:
    """Why nothing was disassembled: the expectations file has no [disasm] table."""
    return (f"{expectations.path or f'expectations {expectations.name}'} has no [disasm] "
            "table, so no unlock window was checked")


def _no_spec(image: ImageSpec, expectations: Expectations, vdso_result: VdsoResult) -> Check:
    elf = next((c for c in vdso_result.checks if c.name == elf_check(image.name)), None)
    if elf is not None and elf.verdict == Verdict.NOT_APPLICABLE:
        return Check(disasm_check(image.name), Verdict.NOT_APPLICABLE, elf.detail)
    return Check(disasm_check(image.name), Verdict.ERROR, no_table(expectations))


def _unchecked(image: ImageSpec, vdso_result: VdsoResult, elf: Check) -> list[str]:
    # An entry whose labels the ELF check refused has no facts; say so rather than pass it.
    # (A passing ELF check leaves out only entries whose Kconfig option is unset.)
    missing = [fn.name for fn in image.functions if not vdso_result.find(image.name, fn.name)]
    return [f"not checked, no facts from {elf.name}: {', '.join(missing)}"] if missing else []


def _check_image(build_dir: Path, image: ImageSpec, spec: DisasmSpec, vdso_result: VdsoResult,
                 ) -> tuple[Check, dict[str, Window]]:
    start, name = time.monotonic(), disasm_check(image.name)
    elf = next((c for c in vdso_result.checks if c.name == elf_check(image.name)), None)
    if elf is not None and elf.verdict == Verdict.NOT_APPLICABLE:
        return Check(name, Verdict.NOT_APPLICABLE, elf.detail), {}
    found = [f for f in (vdso_result.find(image.name, fn.name) for fn in image.functions) if f]
    problems = [] if found else [f"{image.name}: elf-{image.name} found no try_unlock entry "
                                 "to disassemble"]
    windows: dict[str, Window] = {}
    if found and elf is not None and elf.verdict != Verdict.PASS:
        problems += _unchecked(image, vdso_result, elf)
    for facts in found:
        window, errs = check_function(build_dir, image, facts, spec)
        problems += errs
        if window is not None:
            windows[entry_key(image.name, facts.function)] = window
            log.debug("%s:%s window %#x..%#x, store at %#x", image.name, facts.function,
                      window.start, window.end, window.success)
    verdict = Verdict.FAIL if problems else Verdict.PASS
    log.info("%s: %s, %d functions, %d problems", name, verdict.value, len(found), len(problems))
    return Check(name, verdict, "; ".join(problems),
                 {"functions": len(found), "windows": len(windows), "problems": len(problems)},
                 time.monotonic() - start), windows
