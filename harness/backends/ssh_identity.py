# SPDX-License-Identifier: GPL-2.0
"""SSH targets, their identity: before anything is copied there, the target must prove that
it runs the build under test, by its kernel release and by the vDSO it maps."""

from __future__ import annotations

from pathlib import Path

import paramiko

from harness.backends.ssh_connect import Journal, SshOptions, execute, guard
from harness.errors import UserError
from harness.guest import protocol
from harness.guest.altinstr import AltLayout
from harness.verdicts.image import compare_image

RELEASE_FILE = Path("include/config/kernel.release")
# The image the target must map: the expectations file names it, the suite request places it.
IMAGE = "vdso64"


def built_release(build_dir: Path) -> str:
    """The kernel release of the build, from its include/config/kernel.release."""
    path = build_dir / RELEASE_FILE
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise UserError(f"cannot read the build's kernel release {path}: "
                        f"{exc.strerror or exc}; is {build_dir} a built kernel?") from None


def built_vdso(images: dict[str, Path], build_dir: Path) -> Path:
    """The build's stripped 64-bit vDSO image, which the target must have mapped."""
    image = images.get(IMAGE)
    if image is None or not image.is_file():
        raise UserError(f"the build has no {IMAGE} image ({image}) in {build_dir}; "
                        "is it a built kernel?")
    return image


def check_release(client: paramiko.SSHClient, opts: SshOptions, journal: Journal,
                  build_dir: Path) -> str:
    """The target's uname -r, which must equal the build's kernel release."""
    want = built_release(build_dir)
    with guard(opts.target, "running uname -r"):
        reply = execute(client, ["uname", "-r"], journal, opts.command_timeout)
    got = reply.out.decode(errors="replace").strip()
    if reply.code != 0 or got != want:
        raise UserError(f"{opts.target} runs kernel {got or '?'}, but the build in "
                        f"{build_dir} is {want}: boot the target into the build first")
    return got


def check_vdso(client: paramiko.SSHClient, opts: SshOptions, journal: Journal, image: Path,
               logs: Path, layout: AltLayout | None) -> dict[str, int]:
    """Dump the target's mapped vDSO and compare it with the built image."""
    with guard(opts.target, "dumping the vDSO"):
        reply = execute(client, [opts.python, "-c", protocol.DUMP_VDSO], journal,
                        opts.command_timeout)
    if reply.code == 3:
        raise UserError(f"{opts.target}: no [vdso] mapping in a process on the target")
    if reply.code != 0 or not reply.out:
        raise UserError(f"{opts.target}: cannot dump the vDSO with {opts.python} "
                        f"(exit {reply.code}): {reply.err.strip()[-300:]}")
    (logs / "remote-vdso64.bin").write_bytes(reply.out)
    if layout is None:
        raise UserError("no struct alt_instr layout was read from the tree, so the target's "
                        "vDSO cannot be compared with the build")
    counters = compare_image(reply.out, image, layout)
    journal.note(f"vDSO comparison with {image}: {counters}")
    if counters["image_mismatch"]:
        raise UserError(f"{opts.target}: the mapped vDSO differs from {image} in "
                        f"{counters['image_mismatch']} bytes outside boot-time alternatives "
                        "(image_mismatch): the target does not run this build")
    return counters
