# SPDX-License-Identifier: GPL-2.0
"""The Python guest tests' pure parts, run on the host: the vDSO lookup on the host's own
vDSO, the unlock-semantics cases against fake entries, and the legacy stress (which
corrupts on any kernel). None of it needs the series."""

from __future__ import annotations

import ctypes
import io
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import ROOT
from elf_fixtures import build_image
from elftools.elf.elffile import ELFFile

from harness.guest.plan import ENV

PYDIR = ROOT / "guest-tests" / "python"
sys.path.insert(0, str(PYDIR))

import stress_remap_exit  # noqa: E402
import unlock_semantics  # noqa: E402
import vdso_helpers  # noqa: E402

MAPS = """\
7ffd1c5e0000-7ffd1c601000 rw-p 00000000 00:00 0                          [stack]
7ffd1c7f6000-7ffd1c7fa000 r--p 00000000 00:00 0                          [vvar]
7ffd1c7fa000-7ffd1c7fc000 r-xp 00000000 00:00 0                          [vdso]
"""


def run_script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """As the guest runs it (harness.guest.plan: -S, the standard library alone)."""
    return subprocess.run([ENV, sys.executable, "-S", str(PYDIR / name), *args],
                          capture_output=True, text=True, timeout=60)


def test_vdso_mapping_is_read_from_the_maps_line() -> None:
    assert vdso_helpers.vdso_mapping(MAPS) == (0x7FFD1C7FA000, 0x7FFD1C7FC000)
    with pytest.raises(LookupError):
        vdso_helpers.vdso_mapping(MAPS.replace("[vdso]", "[vsyscall]"))


def test_the_hosts_own_vdso_is_found_and_callable() -> None:
    base, image = vdso_helpers.read_vdso()
    assert image[:4] == b"\x7fELF" and base == vdso_helpers.vdso_base()
    table = vdso_helpers.exports(image)
    gettime = table["__vdso_clock_gettime"]
    assert 0 < gettime.offset < len(image) and gettime.size > 0
    # base + offset really is the function: __vdso_time(NULL) agrees with the clock.
    vtime = ctypes.CFUNCTYPE(ctypes.c_long, ctypes.c_void_p)(base + table["__vdso_time"].offset)
    assert abs(vtime(None) - time.time()) < 5


def pyelftools_exports(image: bytes) -> dict[str, vdso_helpers.Export]:
    """What the guest's own .dynsym reader must agree with."""
    elf = ELFFile(io.BytesIO(image))
    load = min(s["p_vaddr"] for s in elf.iter_segments() if s["p_type"] == "PT_LOAD")
    return {s.name: vdso_helpers.Export(s.name, s["st_value"] - load, s["st_size"])
            for s in elf.get_section_by_name(".dynsym").iter_symbols()
            if s["st_info"]["type"] == "STT_FUNC" and s["st_shndx"] != "SHN_UNDEF"}


@pytest.mark.parametrize(("bits", "x32"), [(64, False), (32, False), (64, True)])
def test_the_dynsym_reader_agrees_with_pyelftools(tmp_path: Path, bits: int, x32: bool) -> None:
    """On a vDSO look-alike of each ELF class gcc links (x32: 64-bit code in ELF32), and on
    the host's own vDSO."""
    dbg = build_image(tmp_path, "vdso", bits, {"__vdso_futex_robust_list64_try_unlock":
                                               "__futex_list64_try_unlock_cs_",
                                               "__vdso_futex_robust_list32_try_unlock":
                                               "__futex_list32_try_unlock_cs_"}, x32=x32)
    image = dbg.read_bytes()
    found = vdso_helpers.exports(image)
    assert found == pyelftools_exports(image)
    assert {"__vdso_futex_robust_list64_try_unlock",
            "__vdso_futex_robust_list32_try_unlock"} <= set(found)
    _, host = vdso_helpers.read_vdso()
    assert vdso_helpers.exports(host) == pyelftools_exports(host)


def test_an_image_that_is_not_elf_or_has_no_dynsym_is_a_lookup_error() -> None:
    with pytest.raises(LookupError, match="not a little-endian ELF"):
        vdso_helpers.exports(b"MZ" + bytes(100))
    _, host = vdso_helpers.read_vdso()
    no_sections = bytearray(host)
    no_sections[0x3C:0x3E] = (0).to_bytes(2, "little")  # e_shnum
    with pytest.raises(LookupError, match=r"no \.dynsym"):
        vdso_helpers.exports(bytes(no_sections))


FakeEntry = Callable[[int, int, int], int]


def fake_entry(clear_bytes: int, clear_on_fail: bool = False) -> FakeEntry:
    """A try_unlock in Python: cmpxchg(lock, TID, 0), then clear clear_bytes of pop."""
    def entry(lock_addr: int, tid: int, pop: int) -> int:
        lock = ctypes.c_uint32.from_address(lock_addr)
        old = lock.value
        if old == tid:
            lock.value = 0
        if old == tid or clear_on_fail:
            ctypes.memset(pop, 0, clear_bytes)
        return old
    return entry


@pytest.fixture
def counters() -> Iterator[dict[str, int]]:
    yield {"semantics_bad": 0, "canary_bad": 0, "first_bad_case": 0}


@pytest.mark.parametrize("width", [8, 4])
def test_a_correct_entry_passes_every_case(width: int, counters: dict[str, int]) -> None:
    assert unlock_semantics.run_entry(fake_entry(width), width, 3, counters) == 12
    assert counters == {"semantics_bad": 0, "canary_bad": 0, "first_bad_case": 0}


def test_a_list32_entry_clearing_8_bytes_wipes_the_canary(counters: dict[str, int]) -> None:
    unlock_semantics.run_entry(fake_entry(8), 4, 2, counters)
    assert counters["canary_bad"] == 2 and counters["semantics_bad"] == 0


def test_clearing_pop_after_a_failed_cmpxchg_is_bad_semantics(counters: dict[str, int]) -> None:
    unlock_semantics.run_entry(fake_entry(8, clear_on_fail=True), 8, 1, counters)
    # contended, someone else's and free: three bad cases, the first being contended (2)
    assert counters["semantics_bad"] == 3 and counters["first_bad_case"] == 2


def test_the_real_ctypes_call_path_reaches_a_callback(counters: dict[str, int]) -> None:
    entry = vdso_helpers.TRY_UNLOCK(fake_entry(4))
    assert unlock_semantics.run_entry(entry, 4, 1, counters) == 4
    assert counters["semantics_bad"] == counters["canary_bad"] == 0


def test_a_missing_export_is_counted_not_fatal() -> None:
    proc = run_script("unlock_semantics.py", "--check", "py-unlock-semantics",
                      "--func64", "__vdso_no_such_entry")
    assert proc.returncode == 0, proc.stderr
    (record,) = [json.loads(line) for line in proc.stdout.splitlines()]
    assert record["check"] == "py-unlock-semantics"
    assert record["missing_exports"] == 1 and record["cases"] == 0


def test_stopped_ip_reads_the_pc_of_a_task_outside_a_syscall(tmp_path, monkeypatch) -> None:
    (tmp_path / "proc" / "7").mkdir(parents=True)
    monkeypatch.setattr(stress_remap_exit, "Path", lambda p: tmp_path / p.lstrip("/"))
    (tmp_path / "proc" / "7" / "syscall").write_text("-1 0x7ffd1c600f00 0x7ffd1c7fa458\n")
    assert stress_remap_exit.stopped_ip(7) == 0x7FFD1C7FA458
    (tmp_path / "proc" / "7" / "syscall").write_text("230 0x1 0x2 0x3 0x4 0x5 0x6 0x7 0x8\n")
    assert stress_remap_exit.stopped_ip(7) == 0
    assert stress_remap_exit.stopped_ip(8) == 0


def test_the_legacy_stress_corrupts_on_any_kernel() -> None:
    proc = run_script("stress_remap_exit.py", "--check", "py-stress-remap-exit-legacy",
                      "--mode", "legacy", "--seconds", "1", "--no-probe")
    assert proc.returncode == 0, proc.stderr
    (record,) = [json.loads(line) for line in proc.stdout.splitlines()]
    assert record["kills"] > 0 and record["window_hits"] > 0
    assert record["corruptions"] > 0 and record["fixup_probe"] == 0


def test_vdso_stress_mode_needs_the_range() -> None:
    proc = run_script("stress_remap_exit.py", "--check", "x", "--mode", "vdso", "--seconds", "1")
    assert proc.returncode == 2 and "--cs-start" in proc.stderr


def test_the_stress_goes_on_past_its_seconds_until_it_has_its_hits() -> None:
    """A run that saw too few window hits in --seconds goes on, up to --max-seconds: a CI
    run ended INCONCLUSIVE with 0 hits in a fixed 60 s."""
    args = stress_remap_exit.argparse.Namespace(seconds=60, min_hits=3, max_seconds=180)
    k = stress_remap_exit.Counters()
    assert stress_remap_exit.going_on(args, k, 59.9)
    assert stress_remap_exit.going_on(args, k, 61)
    assert not stress_remap_exit.going_on(args, k, 180)
    k.window_hits = 3
    assert not stress_remap_exit.going_on(args, k, 61)
    assert stress_remap_exit.going_on(args, k, 1)
