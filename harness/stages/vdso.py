# SPDX-License-Identifier: GPL-2.0
"""Stage 5, vDSO: check the built images' exports and critical-section labels with pyelftools."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerDefSection, GNUVerSymSection
from elftools.elf.sections import SymbolTableSection

from harness.data.expectations import Expectations, FunctionSpec, ImageSpec
from harness.stages.kconfig import is_set
from harness.stages.kconfig_drift import Config
from harness.verdicts.checks import Check, Verdict, elf_check, entry_key

LABELS = ("start", "success", "end")


@dataclass(frozen=True)
class Symbol:
    value: int
    size: int
    bind: str
    type: str
    version: str | None = None


@dataclass(frozen=True)
class Facts:
    """Where one try_unlock entry and its labels sit, as offsets from the vDSO base."""

    image: str
    function: str
    offset: int
    size: int
    start: int
    success: int
    end: int
    pop_width: int


@dataclass(frozen=True)
class VdsoRequest:
    build_dir: Path
    expectations: Expectations
    config: Config
    # Why the tree does not carry the series at all, when the config stage found that.
    series_absent: str | None = None


@dataclass(frozen=True)
class VdsoResult:
    checks: tuple[Check, ...]
    facts: dict[str, Facts]
    # image:role -> symbol name, from the expectations.
    roles: dict[str, str] = field(default_factory=dict)
    # image:role -> why this build has no such entry to test (its option is not set, or the
    # expectations say the image must not carry it): the guest tests on it are N/A.
    not_applicable: dict[str, str] = field(default_factory=dict)

    def find(self, image: str, function: str) -> Facts | None:
        return self.facts.get(entry_key(image, function))

    def entry(self, image: str, role: str) -> Facts | None:
        """The checked facts of the entry playing role in image, if there are any."""
        return self.find(image, self.roles.get(entry_key(image, role), role))


def read_symbols(path: Path) -> tuple[dict[str, Symbol], dict[str, Symbol]]:
    """(.dynsym with symbol versions, .symtab) of an ELF file, by name."""
    with path.open("rb") as f:
        elf = ELFFile(f)
        versions = _version_names(elf)
        versym = elf.get_section_by_name(".gnu.version")
        dynsym = _table(elf, ".dynsym", versym if isinstance(versym, GNUVerSymSection) else None,
                        versions)
        symtab = _table(elf, ".symtab", None, versions)
    return dynsym, symtab


def read_elf_class(path: Path) -> int:
    """The ELF class of a file: 32 or 64."""
    with path.open("rb") as f:
        return int(ELFFile(f).elfclass)


def _version_names(elf: ELFFile) -> dict[int, str]:
    sec = elf.get_section_by_name(".gnu.version_d")
    if not isinstance(sec, GNUVerDefSection):
        return {}
    return {verdef["vd_ndx"]: next(aux).name for verdef, aux in sec.iter_versions()}


def _table(elf: ELFFile, name: str, versym: GNUVerSymSection | None,
           versions: dict[int, str]) -> dict[str, Symbol]:
    sec = elf.get_section_by_name(name)
    if not isinstance(sec, SymbolTableSection):
        return {}
    out: dict[str, Symbol] = {}
    for i, sym in enumerate(sec.iter_symbols()):
        version = None
        if versym is not None:
            ndx = versym.get_symbol(i)["ndx"]
            version = versions.get(ndx & 0x7FFF) if isinstance(ndx, int) else None
        out.setdefault(sym.name, Symbol(sym["st_value"], sym["st_size"],
                                        sym["st_info"]["bind"], sym["st_info"]["type"], version))
    return out


def generated_offsets(path: Path) -> dict[str, int]:
    """The '.sym_NAME = VALUE,' lines vdso2c writes into vdsoNN-image.c."""
    text = path.read_text(errors="replace")
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"\.sym_(\w+)\s*=\s*(-?\d+),", text)}


def check_vdso(req: VdsoRequest) -> VdsoResult:
    """Run the export, label and vdso2c checks on every image the expectations name."""
    checks: list[Check] = []
    facts: dict[str, Facts] = {}
    missing: dict[str, str] = {}
    for image in req.expectations.images:
        start = time.monotonic()
        if image.requires and not is_set(req.config, image.requires):
            checks.append(Check(elf_check(image.name), Verdict.NOT_APPLICABLE,
                                f"{image.requires} is not set"))
            continue
        found, problems, skipped = _check_image(req, image)
        if req.series_absent and problems:
            problems.insert(0, f"series absent ({req.series_absent})")
        facts.update({entry_key(image.name, f.function): f for f in found})
        missing.update(skipped)
        verdict = Verdict.FAIL if problems else Verdict.PASS
        counters = {"functions": len(found), "problems": len(problems)}
        detail = problems
        if image.absent:
            counters["absent"] = len(image.absent)
            detail = problems or [f"absent as required: {', '.join(a.name for a in image.absent)}"]
        checks.append(Check(elf_check(image.name), verdict, "; ".join(detail), counters,
                            time.monotonic() - start))
    roles = {entry_key(i.name, f.role): f.name
             for i in req.expectations.images for f in i.functions}
    return VdsoResult(tuple(checks), facts, roles, missing)


def _check_image(req: VdsoRequest, image: ImageSpec,
                 ) -> tuple[list[Facts], list[str], dict[str, str]]:
    """(facts of the checked entries, problems, image:role -> why an entry is not there)."""
    skipped = {entry_key(image.name, a.role): f"{image.name} must not export {a.name}: {a.why}"
               for a in image.absent}
    skipped.update({entry_key(image.name, f.role): f"{image.name}: {f.name} needs "
                    f"{f.requires}, which is not set"
                    for f in image.functions if not _wanted(req.config, f)})
    dbg = image.path(req.build_dir, image.dbg)
    try:
        dynsym, symtab = read_symbols(dbg)
        elf_class = read_elf_class(dbg)
    except (OSError, ELFError) as exc:
        return [], [f"{image.name}: cannot read {dbg}: {exc}"], skipped
    gen_path = image.path(req.build_dir, image.generated)
    generated = generated_offsets(gen_path) if gen_path.is_file() else None
    found, problems = [], []
    # The processes that map this image parse it in their own class: an x32 libc's ElfW
    # is Elf32, so its vDSO must be ELF32 although its code is x86-64.
    if elf_class != image.elf_class:
        problems.append(f"{image.name}: {dbg.name} is ELF{elf_class}, expected "
                        f"ELF{image.elf_class}")
    if generated is None:
        problems.append(f"{image.name}: vdso2c output {image.generated[0]} is missing")
    # Proving an absence: an export the kernel has no critical range for would unlock with
    # no fixup behind it.
    problems += [f"{image.name}: {a.name} is exported, but must be absent: {a.why}"
                 for a in image.absent if a.name in dynsym]
    for func in image.functions:
        if not _wanted(req.config, func):
            continue
        fact, errs = _check_function(image.name, func, req.expectations.version,
                                     dynsym, symtab, generated or {})
        problems += errs
        if fact and not errs:
            found.append(fact)
    return found, problems, skipped


def _wanted(config: Config, func: FunctionSpec) -> bool:
    """Whether this build must carry the entry: its Kconfig option, if any, is set."""
    return not func.requires or is_set(config, func.requires)


def _check_function(image: str, func: FunctionSpec, version: str, dynsym: dict[str, Symbol],
                    symtab: dict[str, Symbol], generated: dict[str, int],
                    ) -> tuple[Facts | None, list[str]]:
    sym = dynsym.get(func.name)
    if sym is None:
        return None, [f"{image}: export {func.name} missing from .dynsym"]
    errs = [f"{image}: {func.name} is {what}, expected {want}"
            for what, want in ((sym.bind, "GLOBAL"), (sym.type, "FUNC"))
            if not what.endswith(want)]
    if sym.version != version:
        errs.append(f"{image}: {func.name} has version {sym.version}, expected {version}")
    labels = {}
    for which in LABELS:
        name = func.labels + which
        label = symtab.get(name)
        if label is None:
            errs.append(f"{image}: label {name} missing from .symtab")
            continue
        labels[which] = label.value
        if not label.bind.endswith("LOCAL"):
            errs.append(f"{image}: label {name} is {label.bind}, expected LOCAL: the range "
                        "labels are the kernel's to know, not an export")
        if not sym.value <= label.value < sym.value + sym.size:
            errs.append(f"{image}: label {name} at {label.value:#x} is outside {func.name} "
                        f"[{sym.value:#x}, {sym.value + sym.size:#x})")
        if which != "success" and generated.get(name) not in (None, label.value):
            errs.append(f"{image}: vdso2c has {name} at {generated[name]:#x}, "
                        f".symtab has {label.value:#x}")
        if which != "success" and generated and name not in generated:
            errs.append(f"{image}: vdso2c output lacks {name}, so the kernel cannot know it")
    if len(labels) == 3 and not labels["start"] < labels["success"] < labels["end"]:
        errs.append(f"{image}: labels of {func.name} out of order: start {labels['start']:#x}, "
                    f"success {labels['success']:#x}, end {labels['end']:#x}; "
                    "expected start < success < end")
    if len(labels) < 3:
        return None, errs
    return Facts(image, func.name, sym.value, sym.size, labels["start"], labels["success"],
                 labels["end"], func.pop_width), errs


