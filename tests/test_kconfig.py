# SPDX-License-Identifier: GPL-2.0
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path

import pytest
from conftest import sh
from fake_tree import fake_tree, fragment

from harness.data import KERNEL_CONFIG
from harness.data.settings import load_settings
from harness.errors import UserError
from harness.stages.kconfig import (
    KEY_FILE,
    ConfigRequest,
    configure,
    kconfig_index,
    merge_fragments,
    parse_config,
)
from harness.stages.kconfig_variants import variant_base, variant_fragments

SERIES = "CONFIG_FUTEX=y\nCONFIG_RSEQ=y\nCONFIG_FUTEX_ROBUST_UNLOCK=y\n"


def request(tmp_path: Path, tree: Path, *frags: Path, base: str | None = None) -> ConfigRequest:
    return ConfigRequest(tree, tmp_path / "build", frags, base or "x86_64_defconfig", "x86_64",
                         tmp_path / "logs", 60, 60, virtme_items=base is None)


def test_parse_config() -> None:
    text = "# comment\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"str\"\n\n"
    assert parse_config(text, "x") == {"A": "y", "B": "n", "C": '"str"'}


def test_parse_config_names_bad_line() -> None:
    with pytest.raises(UserError, match=r"frag.config:2: not a config line: 'FOO=y'"):
        parse_config("CONFIG_A=y\nFOO=y\n", "frag.config")


def test_conflicting_fragments_name_both_files(tmp_path: Path) -> None:
    a = fragment(tmp_path, "a.config", "CONFIG_RSEQ=y\n")
    b = fragment(tmp_path, "b.config", "# CONFIG_RSEQ is not set\n")
    with pytest.raises(UserError) as err:
        merge_fragments((a, b))
    assert "conflict on CONFIG_RSEQ" in str(err.value)
    assert str(a) in str(err.value) and str(b) in str(err.value)


def test_index_reads_dependencies(tmp_path: Path) -> None:
    index = kconfig_index(fake_tree(tmp_path))
    assert index["FUTEX_ROBUST_UNLOCK"] == [
        "FUTEX && GENERIC_IRQ_ENTRY && RSEQ && HAVE_FUTEX_ROBUST_UNLOCK"]
    assert index["IA32_EMULATION"] == ["X86"]


def test_configure_checks_and_installs_once(tmp_path: Path) -> None:
    tree = fake_tree(tmp_path)
    req = request(tmp_path, tree, fragment(tmp_path, "s.config", SERIES))
    first = configure(req)
    assert first.changed and first.requested["FUTEX_ROBUST_UNLOCK"] == "y"
    assert "CONFIG_FUTEX_ROBUST_UNLOCK=y" in first.config.read_text()
    assert (tmp_path / "logs" / "virtme.config").read_text().count("CONFIG_") > 10
    assert not configure(req).changed


def test_unmet_dependency_is_named(tmp_path: Path) -> None:
    tree = fake_tree(tmp_path)
    frag = fragment(tmp_path, "s.config",
                    "CONFIG_FUTEX_ROBUST_UNLOCK=y\n# CONFIG_RSEQ is not set\n")
    with pytest.raises(UserError) as err:
        configure(request(tmp_path, tree, frag))
    text = str(err.value)
    assert "CONFIG_FUTEX_ROBUST_UNLOCK=y requested, got n" in text
    assert "probably an unmet dependency" in text and "not set: RSEQ" in text


def test_unknown_option_is_named(tmp_path: Path) -> None:
    tree = fake_tree(tmp_path)
    frag = fragment(tmp_path, "s.config", "CONFIG_NO_SUCH_THING=y\n")
    with pytest.raises(UserError, match="options this tree does not have: CONFIG_NO_SUCH_THING"):
        configure(request(tmp_path, tree, frag))


@pytest.mark.parametrize("frag", sorted(KERNEL_CONFIG.rglob("*.config")),
                         ids=lambda p: str(p.relative_to(KERNEL_CONFIG)))
def test_shipped_fragments_parse(frag: Path) -> None:
    assert parse_config(frag.read_text(), str(frag))


@pytest.mark.parametrize("variant", [load_settings().config_variant, "lean", "debug",
                                     "debug-kfence"])
def test_variant_keeps_what_the_checks_need(variant: str) -> None:
    """The default, lean and debug fragments merge with the shared ones and never turn off what a
    check uses: the series, 32-bit processes, kprobe events, 9p and ACPI's power-off."""
    merged = merge_fragments(variant_fragments(KERNEL_CONFIG, variant))
    for name in ("FUTEX_ROBUST_UNLOCK", "IA32_EMULATION", "KPROBES", "KPROBE_EVENTS",
                 "TRACING"):
        assert merged[name] == "y", name
    for name in ("NET_9P", "9P_FS", "ACPI"):
        assert merged.get(name, "y") != "n", name


def test_lean_keeps_the_network_of_the_ssh_test() -> None:
    """The SSH end-to-end test boots lean with sshd: minimal has no IPv4 to reach it."""
    merged = merge_fragments(variant_fragments(KERNEL_CONFIG, "lean"))
    for name in ("NET", "INET", "VIRTIO_NET", "KALLSYMS"):
        assert merged.get(name, "y") != "n", name
    assert merged["DEBUG_INFO_NONE"] == "y"


def test_variant_includes_another_and_drops_a_shared_fragment(tmp_path: Path) -> None:
    root = tmp_path / "kc"
    shared = [fragment(root, n, "CONFIG_A=y\n") for n in ("a.config", "b.config")]
    base = fragment(root, "base/base.config", "CONFIG_B=y\n")
    own = fragment(root, "small/small.config", "# CONFIG_A is not set\n")
    (root / "frags" / "small" / "variant.toml").write_text(
        'include = ["base"]\ndrop = ["a.config"]\n')
    found = variant_fragments(root / "frags", "small")
    assert found == (shared[1], base, own)


def test_variant_drops_an_included_variants_fragment(tmp_path: Path) -> None:
    """debug-kfence is debug without debug/kasan.config: <variant>/<name> drops one
    fragment of an included variant, and only that one."""
    root = tmp_path / "kc"
    shared = fragment(root, "a.config", "CONFIG_A=y\n")
    detectors = fragment(root, "big/detectors.config", "CONFIG_B=y\n")
    fragment(root, "big/heavy.config", "CONFIG_C=y\n")
    light = fragment(root, "light/light.config", "# CONFIG_C is not set\n")
    (root / "frags" / "light" / "variant.toml").write_text(
        'include = ["big"]\ndrop = ["big/heavy.config"]\n')
    assert variant_fragments(root / "frags", "light") == (shared, detectors, light)
    (root / "frags" / "light" / "variant.toml").write_text(
        'include = ["big"]\ndrop = ["big/nope.config"]\n')
    with pytest.raises(UserError, match=r"drops big/nope\.config"):
        variant_fragments(root / "frags", "light")


def test_variant_drop_of_unknown_fragment_and_include_cycle(tmp_path: Path) -> None:
    fragment(tmp_path, "a.config", "CONFIG_A=y\n")
    fragment(tmp_path, "x/x.config", "CONFIG_B=y\n")
    fragment(tmp_path, "y/y.config", "CONFIG_B=y\n")
    frags = tmp_path / "frags"
    (frags / "x" / "variant.toml").write_text('drop = ["nope.config"]\n')
    with pytest.raises(UserError, match=r"drops nope\.config"):
        variant_fragments(frags, "x")
    (frags / "x" / "variant.toml").write_text('include = ["y"]\n')
    (frags / "y" / "variant.toml").write_text('include = ["x"]\n')
    with pytest.raises(UserError, match="include each other: x -> y -> x"):
        variant_fragments(frags, "x")


def test_nocompat_variant_is_lean_without_compat() -> None:
    lean = merge_fragments(variant_fragments(KERNEL_CONFIG, "lean"))
    merged = merge_fragments(variant_fragments(KERNEL_CONFIG, "nocompat"))
    for name in ("IA32_EMULATION", "X86_X32_ABI", "COMPAT"):
        assert merged[name] == "n", name
    # compat.config, which nocompat drops, also turns x32 on (and its boot-time switch off).
    compat = ("IA32_EMULATION", "X86_X32_ABI", "X86_X32_DISABLED", "COMPAT")
    assert {k: v for k, v in merged.items() if k not in compat} == \
        {k: v for k, v in lean.items() if k not in compat}


# What both debug variants turn on for the console check to catch (kernel-config/debug/).
DETECTORS = ("UBSAN", "PROVE_LOCKING", "PROVE_RCU", "DEBUG_ATOMIC_SLEEP", "DEBUG_LIST",
             "SOFTLOCKUP_DETECTOR", "DETECT_HUNG_TASK")


def test_debug_variants_differ_only_in_their_memory_detector() -> None:
    """debug is minimal plus the detectors and KASAN; debug-kfence the same with KFENCE
    (sampling every millisecond) in KASAN's place, and nothing else changed."""
    minimal = merge_fragments(variant_fragments(KERNEL_CONFIG, "minimal"))
    kasan = merge_fragments(variant_fragments(KERNEL_CONFIG, "debug"))
    kfence = merge_fragments(variant_fragments(KERNEL_CONFIG, "debug-kfence"))
    for merged in (kasan, kfence):
        assert all(merged[name] == "y" for name in DETECTORS)
        assert merged["SLUB_TINY"] == "n"
        assert {k: v for k, v in merged.items() if k in minimal} == minimal
    assert (kasan["KASAN"], kasan["KASAN_INLINE"], kasan.get("KFENCE")) == ("y", "y", None)
    assert (kfence["KASAN"], kfence["KFENCE"], kfence["KFENCE_SAMPLE_INTERVAL"]) == \
        ("n", "y", "1")
    memory = {"KASAN", "KASAN_GENERIC", "KASAN_INLINE", "KASAN_VMALLOC", "KFENCE",
              "KFENCE_SAMPLE_INTERVAL"}
    assert {k: v for k, v in kasan.items() if k not in memory} == \
        {k: v for k, v in kfence.items() if k not in memory}
    assert variant_base(KERNEL_CONFIG, "debug-kfence") == "tinyconfig"


def olddefconfig_runs(tmp_path: Path) -> int:
    return (tmp_path / "logs" / "config.log").read_text().count(" olddefconfig")


def test_unchanged_inputs_skip_the_config(tmp_path: Path) -> None:
    tree = fake_tree(tmp_path)
    req = request(tmp_path, tree, fragment(tmp_path, "s.config", SERIES))
    first = configure(req)
    assert not first.skipped and olddefconfig_runs(tmp_path) == 1
    again = configure(req)
    assert again.skipped and not again.changed and olddefconfig_runs(tmp_path) == 1
    assert again.final == first.final and again.requested == first.requested
    assert (tmp_path / "logs" / "kernel.config").read_text() == first.config.read_text()


@pytest.mark.parametrize("change", ["kconfig", "fragment", "config", "defconfig", "variant"])
def test_a_changed_input_runs_the_config_again(tmp_path: Path, change: str) -> None:
    tree = fake_tree(tmp_path)
    frag = fragment(tmp_path, "s.config", SERIES)
    req = request(tmp_path, tree, frag)
    configure(req)
    if change == "kconfig":
        with (tree / "arch/x86/Kconfig").open("a") as f:
            f.write("\nconfig NEW_OPTION\n\tbool\n")
    elif change == "fragment":
        frag.write_text(SERIES + "CONFIG_GENERIC_IRQ_ENTRY=y\n")
    elif change == "config":
        with (tmp_path / "build" / ".config").open("a") as f:
            f.write("# edited by hand\n")
    elif change == "defconfig":
        (tree / "arch/x86/configs").mkdir(parents=True)
        (tree / "arch/x86/configs/x86_64_defconfig").write_text("CONFIG_FUTEX=y\n")
    else:
        req = dataclasses.replace(req, variant="other")
    assert not configure(req).skipped and olddefconfig_runs(tmp_path) == 2
    assert configure(req).skipped


def test_git_index_keys_the_kconfig_files(tmp_path: Path) -> None:
    """An owned tree: the Kconfig inputs come from its git index, which a patch updates."""
    tree = fake_tree(tmp_path)
    sh(["git", "init", "-q"], cwd=tree)
    sh(["git", "add", "-A"], cwd=tree)
    req = dataclasses.replace(request(tmp_path, tree, fragment(tmp_path, "s.config", SERIES)),
                              indexed=True)
    configure(req)
    assert configure(req).skipped
    listing = (tmp_path / "logs" / "config-inputs.txt").read_text()
    assert "\tKconfig\n" in listing and "\tarch/x86/Kconfig\n" in listing
    assert "init/main.c" not in listing
    (tree / "init" / "main.c").write_text("int x;\n")
    sh(["git", "add", "-A"], cwd=tree)
    assert configure(req).skipped
    (tree / "Kconfig").write_text((tree / "Kconfig").read_text() + "\n# touched\n")
    sh(["git", "add", "-A"], cwd=tree)
    assert not configure(req).skipped


def test_skipped_config_still_checks_the_requested_options(tmp_path: Path) -> None:
    tree = fake_tree(tmp_path)
    req = request(tmp_path, tree, fragment(tmp_path, "s.config", SERIES))
    configure(req)
    # A .config the key vouches for that lacks an option: the check must still see it.
    config = tmp_path / "build" / ".config"
    config.write_text(config.read_text().replace("CONFIG_RSEQ=y", "# CONFIG_RSEQ is not set"))
    key = json.loads((tmp_path / "build" / KEY_FILE).read_text())
    key["config"] = hashlib.sha256(config.read_bytes()).hexdigest()
    (tmp_path / "build" / KEY_FILE).write_text(json.dumps(key))
    with pytest.raises(UserError, match="CONFIG_RSEQ=y requested, got n"):
        configure(req)
    assert olddefconfig_runs(tmp_path) == 1


def test_variant_base_is_its_own_or_an_included_ones(tmp_path: Path) -> None:
    fragment(tmp_path, "a.config", "CONFIG_A=y\n")
    fragment(tmp_path, "tiny/tiny.config", "CONFIG_B=y\n")
    fragment(tmp_path, "tinier/tinier.config", "CONFIG_C=y\n")
    fragment(tmp_path, "plain/plain.config", "CONFIG_D=y\n")
    frags = tmp_path / "frags"
    (frags / "tiny" / "variant.toml").write_text('base = "tinyconfig"\n')
    (frags / "tinier" / "variant.toml").write_text('include = ["plain", "tiny"]\n')
    assert variant_base(frags, "tiny") == "tinyconfig"
    assert variant_base(frags, "tinier") == "tinyconfig"
    assert variant_base(frags, "plain") is None
    assert variant_base(frags, "vng") is None
    (frags / "plain" / "variant.toml").write_text('include = ["tinier"]\n')
    assert variant_base(frags, "plain") == "tinyconfig"  # through a cycle, without looping


def test_tinyconfig_base_without_virtme_items(tmp_path: Path) -> None:
    """A variant with its own base starts from that target alone: tinyconfig has no futexes,
    so the series sticks only when the variant's fragment turns FUTEX back on."""
    tree = fake_tree(tmp_path)
    rseq = fragment(tmp_path, "s.config", "CONFIG_RSEQ=y\nCONFIG_FUTEX_ROBUST_UNLOCK=y\n")
    assert configure(request(tmp_path, tree, rseq)).final["FUTEX"] == "y"
    with pytest.raises(UserError) as err:
        configure(request(tmp_path, tree, rseq, base="tinyconfig"))
    assert "CONFIG_FUTEX_ROBUST_UNLOCK=y requested, got n" in str(err.value)
    assert "not set: FUTEX" in str(err.value)
    (tmp_path / "logs" / "virtme.config").unlink()
    futex = fragment(tmp_path, "f.config", "CONFIG_FUTEX=y\n")
    done = configure(request(tmp_path, tree, rseq, futex, base="tinyconfig"))
    assert done.final["FUTEX_ROBUST_UNLOCK"] == "y"
    assert not (tmp_path / "logs" / "virtme.config").exists()


def test_minimal_variant_keeps_what_the_checks_and_virtme_need() -> None:
    """tinyconfig plus the shared fragments and minimal/: the series, 64-bit with IA32
    emulation, kprobe events; and for virtme-ng 9p over virtio-pci, the serial console, its
    virtio-serial ports, proc, sysfs, devtmpfs, tmpfs, overlayfs and ACPI power-off."""
    assert variant_base(KERNEL_CONFIG, "minimal") == "tinyconfig"
    merged = merge_fragments(variant_fragments(KERNEL_CONFIG, "minimal"))
    for name in ("64BIT", "FUTEX_ROBUST_UNLOCK", "FUTEX_PI", "IA32_EMULATION", "COMPAT",
                 "KPROBES", "KPROBE_EVENTS", "TRACING", "PRINTK", "BUG", "BINFMT_ELF",
                 "NET_9P_VIRTIO", "9P_FS", "VIRTIO_PCI", "VIRTIO_CONSOLE",
                 "SERIAL_8250_CONSOLE", "PROC_FS", "SYSFS", "DEVTMPFS", "TMPFS", "OVERLAY_FS",
                 "ACPI"):
        assert merged[name] == "y", name


def fragment_lines_without_reason(text: str) -> list[str]:
    """Config lines with no comment right above them or above the block they belong to."""
    missing, reason = [], False
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            reason = False
        elif re.match(r"^(CONFIG_\w+=|# CONFIG_\w+ is not set$)", line):
            if not reason:
                missing.append(line)
        else:
            reason = True
    return missing


def test_reason_check_finds_a_bare_line() -> None:
    assert fragment_lines_without_reason(
        "# why\nCONFIG_A=y\n# CONFIG_B is not set\n\nCONFIG_C=y\n") == ["CONFIG_C=y"]
    assert fragment_lines_without_reason("# CONFIG_A is not set\n") == ["# CONFIG_A is not set"]


@pytest.mark.parametrize("frag", sorted(KERNEL_CONFIG.rglob("*.config")),
                         ids=lambda p: str(p.relative_to(KERNEL_CONFIG)))
def test_every_fragment_line_says_why(frag: Path) -> None:
    """Each option sits under a comment that gives its reason (a blank line ends one)."""
    assert fragment_lines_without_reason(frag.read_text()) == []
