# SPDX-License-Identifier: GPL-2.0
"""The native i386 variant's rules: ARCH from the variant and from the .config, guest-test
requirements as alternatives, the vng command on a root of its own, and that root's cache.
Each rule with the case a lax one would get wrong."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from plans import script_plan as make_plan

from harness.backends import roots
from harness.backends import vng as boot
from harness.data.expectations import load_expectations
from harness.data.guest_tests import load_guest_tests
from harness.data.settings import GuestRoot, load_settings
from harness.errors import InfraError
from harness.stages.build import BuildRequest, make_argv
from harness.stages.kconfig import arch_args, kbuild_arch
from harness.stages.kconfig_variants import variant_arch, variant_fragments
from harness.verdicts.before_run import cannot_run

ROOT = Path(__file__).resolve().parent.parent


def build_dir(tmp_path: Path, config: str | None) -> Path:
    d = tmp_path / "build"
    d.mkdir(exist_ok=True)
    if config is not None:
        (d / ".config").write_text(config)
    return d


def test_arch_follows_the_config(tmp_path: Path) -> None:
    """Fooled case: a make without ARCH=i386 on an i386 build dir would let Kbuild take the
    host's x86_64 and silently reconfigure the build as 64-bit."""
    i386 = build_dir(tmp_path, "CONFIG_X86_32=y\nCONFIG_FUTEX=y\n")
    assert kbuild_arch(i386) == "i386" and arch_args(i386) == ["ARCH=i386"]
    req = BuildRequest(tmp_path, i386, ("bzImage",), None, tmp_path / "logs", tmp_path, 1, 2)
    assert "ARCH=i386" in make_argv(req)
    (i386 / ".config").write_text("# CONFIG_X86_32 is not set\nCONFIG_64BIT=y\n")
    assert kbuild_arch(i386) is None and "ARCH=i386" not in make_argv(req)


def test_no_config_means_the_hosts_arch(tmp_path: Path) -> None:
    assert arch_args(build_dir(tmp_path, None)) == []


def test_variant_arch_is_its_own_or_an_included_ones(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
        (tmp_path / name / f"{name}.config").write_text("CONFIG_X=y\n")
    (tmp_path / "a" / "variant.toml").write_text('arch = "i386"\n')
    (tmp_path / "b" / "variant.toml").write_text('include = ["a"]\n')
    assert variant_arch(tmp_path, "a") == "i386"
    assert variant_arch(tmp_path, "b") == "i386"
    assert variant_arch(tmp_path, "c") is None and variant_arch(tmp_path, "vng") is None


def test_the_shipped_i386_variant() -> None:
    """ARCH=i386, no compat.config (IA32_EMULATION and COMPAT exist only on x86_64)."""
    directory = ROOT / "kernel-config"
    assert variant_arch(directory, "i386") == "i386"
    assert "compat.config" not in {p.name for p in variant_fragments(directory, "i386")}


def test_i386_expectations_have_vdso32_only() -> None:
    exp = load_expectations("i386")
    images = {i.name: i for i in exp.images}
    assert images["vdso64"].requires == "CONFIG_X86_64"
    assert images["vdso32"].requires is None
    assert [f.role for f in images["vdso32"].functions] == ["list32"]
    assert images["vdsox32"].requires == "CONFIG_X86_X32_ABI"


def test_i386_expectations_name_every_image_a_test_uses() -> None:
    """Fooled case: an image left out (vdsox32, added with the x32 tests after this file)
    makes its tests ERROR ("the vdsox32 ELF check did not pass") on every i386 run, where
    the image is absent by design and they must be N/A with its reason."""
    used = {t.image for t in load_guest_tests() if t.image}
    assert used <= {i.name for i in load_expectations("i386").images}


class _Req:
    """The few fields cannot_run reads before it looks at images."""

    def __init__(self, config: dict[str, str]) -> None:
        self.config = config
        # robust-exit-walk-32bit has no image, and takes no op numbers or windows.
        self.vdso = None
        self.series_absent = ""
        self.no_windows = ""

        class _Ops:
            @staticmethod
            def problem(keys: object) -> str:
                return ""
        self.ops = _Ops()


@pytest.mark.parametrize(("config", "runs"), [
    ({"IA32_EMULATION": "y"}, True),
    ({"X86_32": "y"}, True),
    ({"64BIT": "y"}, False),
])
def test_requires_takes_any_of_its_alternatives(config: dict[str, str], runs: bool) -> None:
    """A 32-bit test runs under IA32 emulation or on a native i386 kernel. Fooled case: a
    kernel with neither (a 64-bit kernel without compat) is N/A naming both, not run."""
    test = next(t for t in load_guest_tests() if t.name == "robust-exit-walk-32bit")
    assert test.requires == ("CONFIG_IA32_EMULATION", "CONFIG_X86_32")
    verdict = cannot_run(test, _Req(config))  # type: ignore[arg-type]
    if runs:
        assert verdict is None
    else:
        assert verdict is not None
        assert verdict.detail == "CONFIG_IA32_EMULATION or CONFIG_X86_32 is not set"


def test_64bit_programs_without_a_64bit_image_need_64bit() -> None:
    """On i386 every -m64 program must be N/A: through its vdso64 image, or by requires."""
    for t in load_guest_tests():
        if "-m64" in t.cflags and t.image != "vdso64":
            assert t.requires == ("CONFIG_64BIT",), t.name


def test_vng_boots_another_arch_on_its_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           ) -> None:
    """Fooled case: a bare --rwdir with --root is taken relative to the root by vng ("is not
    inside the root"); the guest must see the results dir at the host's path."""
    monkeypatch.setenv("PATH", f"{ROOT / 'tests' / 'fakebin'}:/usr/bin:/bin")
    plan = make_plan(tmp_path, {"good": "true\n"})
    req = boot.BootRequest(tmp_path / "bzImage", plan, tmp_path / "logs", tmp_path, "tcg",
                           20, 2, "1G", 1, sys.executable, arch="i386", root=tmp_path / "r")
    argv = boot.vng_argv(req, False, ["true"])
    # vng has no i386 (its ARCH_MAPPING); its x86_64 init cannot run on an i386 kernel.
    assert "--arch" not in argv and "--no-virtme-ng-init" in argv
    assert argv[argv.index("--root") + 1] == str(tmp_path / "r")
    assert f"--rwdir={plan.rwdir}={plan.rwdir}" in argv and "--rwdir" not in argv
    host = boot.vng_argv(boot.BootRequest(tmp_path / "bzImage", plan, tmp_path / "logs",
                                          tmp_path, "tcg", 20, 2, "1G", 1, sys.executable),
                         False, ["true"])
    assert "--no-virtme-ng-init" not in host and host[host.index("--rwdir") + 1] == str(plan.rwdir)


def test_no_path_for_another_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fooled case: the host's no-op directory as PATH= on an i386 root. The root's
    /bin/sh, vng's first init there, then finds no mount or mkdir ("mount: not found") and
    the kernel panics; the host's own root keeps it (its init appends its directories)."""
    monkeypatch.setenv("PATH", f"{ROOT / 'tests' / 'fakebin'}:/usr/bin:/bin")
    plan = make_plan(tmp_path, {"good": "true\n"})
    skips = tmp_path / "skips"

    def argv(root: Path | None) -> list[str]:
        req = boot.BootRequest(tmp_path / "bzImage", plan, tmp_path / "logs", tmp_path, "tcg",
                               20, 2, "1G", 1, sys.executable, init_path=skips,
                               arch=None if root is None else "i386", root=root)
        return boot.vng_argv(req, False, ["true"])

    assert f"PATH={skips}" in argv(None)
    assert not any(a.startswith("PATH=") for a in argv(tmp_path / "r"))


SPEC = GuestRoot("i386", "bookworm", "http://deb.example/debian", ("python3",))


def test_a_finished_root_is_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = roots.root_dir(tmp_path, SPEC)
    root.mkdir(parents=True)
    (root / roots.DONE).write_text("x\n")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert roots.ensure_root(SPEC, tmp_path, tmp_path / "logs", 10) == root


def test_an_unfinished_root_is_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fooled case: a root whose mmdebstrap was cut off has files but no DONE mark; it is
    built again (here: mmdebstrap missing, so an infrastructure error), never booted."""
    root = roots.root_dir(tmp_path, SPEC)
    (root / "usr" / "bin").mkdir(parents=True)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(InfraError, match="mmdebstrap is not installed"):
        roots.ensure_root(SPEC, tmp_path, tmp_path / "logs", 10)


def test_a_fake_mmdebstrap_builds_then_marks_it(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "bin" / "mmdebstrap"
    fake.parent.mkdir()
    # As the real one: the target's parent must exist (a fresh cache has no roots/).
    fake.write_text('#!/bin/sh\nfor a; do last=$a; prev=$target; target=$a; done\n'
                    '[ -d "$(dirname "$prev")" ] || exit 1\n'
                    'mkdir "$prev" "$prev/usr" "$prev/usr/bin" && echo "$@" > "$prev/args"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:/usr/bin:/bin")
    root = roots.ensure_root(SPEC, tmp_path, tmp_path / "logs", 30)
    assert (root / roots.DONE).is_file() and "--architectures=i386" in (root / "args").read_text()
    roots.mount_point(root, Path("/tmp/run/guest"))
    assert (root / "tmp" / "run" / "guest").is_dir()


def test_settings_name_an_i386_root() -> None:
    spec = load_settings().roots["i386"]
    assert "python3" in spec.packages and spec.arch == "i386"


def test_the_root_cache_follows_the_package_list(tmp_path: Path) -> None:
    """Fooled case: a root cached under the arch and suite alone would be reused after a
    package is added to settings.toml, and boot without it."""
    more = GuestRoot(SPEC.arch, SPEC.suite, SPEC.mirror, (*SPEC.packages, "sysvinit-core"))
    assert roots.root_dir(tmp_path, SPEC) != roots.root_dir(tmp_path, more)
