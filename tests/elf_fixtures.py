# SPDX-License-Identifier: GPL-2.0
"""Tiny vDSO look-alikes, assembled and linked by gcc inside the test, laid out like a build dir."""

from __future__ import annotations

from pathlib import Path

from conftest import sh

from harness.guest.altinstr import AltLayout, alt_layout

ALT_HEADERS = Path(__file__).resolve().parent / "data" / "alt_instr"


def header_layout(name: str = "alternative-7.3.h") -> AltLayout:
    """struct alt_instr as a header fixture in tests/data/alt_instr/ lays it out."""
    return alt_layout((ALT_HEADERS / name).read_text(), name)


# 7.3's layout, as the pipeline reads it from the tree.
ALT_7_3 = header_layout()

# Each label goes into one of four slots around the cmpxchg and the store (LABEL_SLOTS);
# {before} and {after} are extra lines before the cmpxchg and after the end slot. Every slot
# is empty or whole lines, so the default text is what the labels' tests expect.
TRY_UNLOCK = """
    .text
    .globl {func}
    .type {func}, @function
{func}:
    mov %esi, %eax
    xor %ecx, %ecx
{before}{before_cmpxchg}    lock cmpxchgl %ecx, (%{di})
{after_cmpxchg}    jnz {end}
{before_store}    {store}
{after_store}{after}    ret
    .size {func}, . - {func}
"""

LABEL_SLOTS = ("before_cmpxchg", "after_cmpxchg", "before_store", "after_store")
# Where the series puts each label.
UPSTREAM_SLOTS = {"start": "after_cmpxchg", "success": "before_store", "end": "after_store"}

OUTSIDE = """
    .globl {name}
    .type {name}, @function
{name}:
    ret
    .size {name}, . - {name}
"""


def function_asm(func: str, labels: str, bits: int, order: tuple[str, str, str] | None = None,
                 *, store: str | None = None, before: str = "", after: str = "",
                 slots: dict[str, str] | None = None, global_labels: bool = False) -> str:
    """One try_unlock look-alike. order renames the labels in their upstream slots; slots
    moves labels (start/success/end) to other LABEL_SLOTS; store replaces the clearing store;
    global_labels declares the labels .globl (export them with build_image's exports)."""
    names = dict(zip(("start", "success", "end"),
                     (labels + w for w in (order or ("start", "success", "end"))), strict=True))
    where = {**UPSTREAM_SLOTS, **(slots or {})}
    placed = {slot: "".join(f"{names[w]}:\n" for w in names if where[w] == slot)
              for slot in LABEL_SLOTS}
    di, dx = ("rdi", "rdx") if bits == 64 else ("edi", "edx")
    # As in vfutex.c: list64 clears a 64-bit pop, list32 a 32-bit one, in either image.
    default = f"movl %ecx, (%{dx})" if "list32" in func or bits == 32 else "movq %rcx, (%rdx)"
    text = TRY_UNLOCK.format(func=func, end=names["end"], di=di, store=store or default,
                             before=_lines(before), after=_lines(after), **placed)
    return "".join(f"    .globl {n}\n" for n in names.values()) + text if global_labels \
        else text


def _lines(text: str) -> str:
    return "".join(f"    {line.strip()}\n" for line in text.splitlines() if line.strip())


def build_image(build_dir: Path, image: str, bits: int, functions: dict[str, str],
                version: str | None = "LINUX_2.6", extra: dict[str, str] | None = None,
                generated: dict[str, int] | None = None, exports: tuple[str, ...] = (),
                directory: str | None = None, x32: bool = False) -> Path:
    """Write build_dir/arch/x86/entry/vdso/<directory>/<image>.so.dbg and its vdso2c file.

    functions maps an exported name to its label prefix; extra maps more exports to their
    own assembly; exports names more global symbols for the version script.
    generated overrides the offsets written into <image>-image.c. directory defaults to
    the image's name. x32 links bits-64 code as an ELF32 file (gcc -mx32), as the x32 vDSO is.
    """
    out = build_dir / "arch/x86/entry/vdso" / (directory or image)
    out.mkdir(parents=True, exist_ok=True)
    extra = extra or {}
    asm = "".join(function_asm(f, labels, bits) for f, labels in functions.items())
    # Named after the image: the x32 image shares vdso64's directory.
    (out / f"{image}.S").write_text(asm + "".join(extra.values()))
    mode = "-mx32" if x32 else "-m64" if bits == 64 else "-m32"
    flags = [mode, "-shared", "-nostdlib", "-Wl,--hash-style=both"]
    if version:
        names = "; ".join([*functions, *extra, *exports])
        (out / f"{image}.lds").write_text(f"{version} {{ global: {names}; local: *; }};\n")
        flags.append(f"-Wl,--version-script={out / f'{image}.lds'}")
    dbg = out / f"{image}.so.dbg"
    sh(["gcc", *flags, "-o", dbg, out / f"{image}.S"])
    write_generated(out / f"{image}-image.c", dbg, generated)
    return dbg


def write_generated(path: Path, dbg: Path, override: dict[str, int] | None) -> None:
    """What vdso2c writes: the start and end labels' offsets as .sym_ fields."""
    from harness.stages.vdso import read_symbols

    _, symtab = read_symbols(dbg)
    values = {n: s.value for n, s in symtab.items() if n.endswith(("_cs_start", "_cs_end"))}
    values.update(override or {})
    body = "".join(f"\t.sym_{n} = {v},\n" for n, v in sorted(values.items()))
    path.write_text(f"const struct vdso_image vdso_image = {{\n\t.size = 8192,\n{body}}};\n")
