# SPDX-License-Identifier: GPL-2.0
"""The wheel works without the checkout: build it offline, install it into a fresh venv,
and run the harness from a directory outside the checkout.

The fresh venv gets its dependencies (pyelftools, capstone, ...) from this venv's
site-packages through a .pth line, so nothing is downloaded. A .pth line only adds a path:
the .pth files in that directory, among them this checkout's editable install, are not
run, so `harness` can only come from the wheel (which the test checks)."""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import ROOT
from elf_fixtures import build_image
from test_cli import L32, L64, P32, P64

from harness.paths import SHIPPED, SHIPPED_DIRS

SOURCES = ("pyproject.toml", "README.md", "harness", *SHIPPED_DIRS)


def run(argv: list[str | Path], cwd: Path, env: dict[str, str] | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def build_wheel(tmp: Path) -> Path:
    """Build the wheel from a copy of the checkout, so the build leaves nothing in it."""
    src = tmp / "src"
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy(path, src / name)
    # What running the Python guest tests in a checkout leaves behind must stay out.
    stale = src / "guest-tests" / "python" / "__pycache__" / "vdso_helpers.cpython-311.pyc"
    stale.parent.mkdir()
    stale.write_bytes(b"stale")
    done = run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir",
                tmp / "dist", src], cwd=tmp, timeout=180)
    assert done.returncode == 0, (
        "building the wheel failed (the venv needs build and wheel: make deps)\n"
        + done.stdout[-3000:] + done.stderr[-3000:])
    (wheel,) = (tmp / "dist").glob("futex_harness-*.whl")
    with zipfile.ZipFile(wheel) as z:
        assert not [n for n in z.namelist() if "__pycache__" in n or n.endswith(".pyc")]
    return wheel


def fresh_venv(tmp: Path, wheel: Path) -> tuple[Path, Path]:
    """A venv outside the checkout with the wheel installed; its bin and purelib."""
    venv = tmp / "venv"
    done = run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp)
    assert done.returncode == 0, done.stderr
    python = venv / "bin" / "python"
    purelib = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()"
                        "['purelib'])"], cwd=tmp).stdout.strip())
    (purelib / "zz_deps_from_the_test_venv.pth").write_text(
        "\n".join(site.getsitepackages()) + "\n")
    done = run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps",
                "--no-index", "--no-cache-dir", "--quiet", wheel], cwd=tmp)
    assert done.returncode == 0, done.stdout + done.stderr
    return venv / "bin", purelib


def clean_env(bin_dir: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    if bin_dir:
        env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    return env


def vdso_build_dir(tmp: Path) -> Path:
    build = tmp / "build"
    build_image(build, "vdso64", 64, {L64: P64, L32: P32})
    build_image(build, "vdso32", 32, {L32: P32})
    (build / ".config").write_text("CONFIG_COMPAT=y\nCONFIG_IA32_EMULATION=y\n")
    return build


def test_installed_wheel_runs_outside_the_checkout(tmp_path: Path) -> None:
    bin_dir, purelib = fresh_venv(tmp_path, build_wheel(tmp_path))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = clean_env(bin_dir)

    def harness(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return run([bin_dir / "futex-harness", *args], cwd=elsewhere, env=env)

    def checkout(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return run([sys.executable, "-m", "harness", *args], cwd=ROOT, env=clean_env())

    version = harness("--version")
    assert version.stdout.startswith("futex-harness "), version.stderr

    # Every module, and the four directories, come from the installed package.
    where = run([bin_dir / "python", "-c", "import harness.data as d, harness.paths as p; "
                 "print(d.__file__); print(*(p.shipped_dir(n) for n in p.SHIPPED_DIRS))"],
                cwd=elsewhere, env=env).stdout.split()
    shipped = purelib / "harness" / SHIPPED
    assert where == [str(purelib / "harness" / "data" / "__init__.py"),
                     *(str(shipped / n) for n in SHIPPED_DIRS)]
    modules = {p.relative_to(ROOT) for p in (ROOT / "harness").rglob("*.py")}
    assert {p.relative_to(purelib) for p in (purelib / "harness").rglob("*.py")
            if SHIPPED not in p.parts} == modules
    assert (shipped / "data" / "settings.toml").is_file()
    assert list((shipped / "kernel-config" / "lean").glob("*.config"))
    assert (shipped / "guest-tests" / "runner.py").is_file()
    mutants = sorted(p.name for p in (ROOT / "patches" / "mutants").glob("*.patch"))
    assert mutants and sorted(p.name for p in (shipped / "patches/mutants").glob("*")) == mutants

    # The same answers as from the checkout.
    build = vdso_build_dir(tmp_path)
    for args in (("check-vdso", build), ("deps",), ("ci", "github"), ("ci", "gitlab")):
        installed, local = harness(*args), checkout(*args)
        assert (installed.returncode, installed.stdout) == (local.returncode, local.stdout), args
    assert "elf-vdso64       PASS" in harness("check-vdso", build).stdout

    plan = harness("plan", "--debian", "7.3", "--format", "json")
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["jobs"]
