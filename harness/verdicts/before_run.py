# SPDX-License-Identifier: GPL-2.0
"""The verdicts given before a boot: a guest test that cannot run on this build is N/A with
the reason the build gives (an option off, the series absent, an image without IA32
emulation), or ERROR when what it needs is broken or missing (a failed ELF check, no
offsets, a number the expectations lack). Never a silent skip."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.data.guest_tests import GuestTest
from harness.guest import uapi
from harness.stages.kconfig import is_set
from harness.verdicts.checks import Check, Verdict, elf_check, entry_key

if TYPE_CHECKING:  # guest/plan.py asks this module; the request is only a type here
    from harness.guest.plan import GuestPlanRequest


def cannot_run(test: GuestTest, req: GuestPlanRequest) -> Check | None:
    """Why a test cannot run on this build, as its verdict; None when it can."""
    if test.requires and req.config is not None and \
            not any(is_set(req.config, name) for name in test.requires):
        names = " or ".join(test.requires)
        return Check(test.name, Verdict.NOT_APPLICABLE, f"{names} is not set")
    return _image_blocked(test, req) or _inputs_missing(test, req)


def _inputs_missing(test: GuestTest, req: GuestPlanRequest) -> Check | None:
    """ERROR when the expectations leave the test without a number it takes: it would
    otherwise run with a guess, or not at all and look not applicable."""
    if why := req.ops.problem(uapi.op_keys(test)):
        return Check(test.name, Verdict.ERROR, f"not run: {why}")
    if req.no_windows and {"win_start", "win_store"} & test.placeholders:
        return Check(test.name, Verdict.ERROR, f"not run: {req.no_windows}")
    return None


def _image_blocked(test: GuestTest, req: GuestPlanRequest) -> Check | None:
    """Why the test's vDSO image or entry rules it out on this build; None when it is fine."""
    vdso, absent = req.vdso, req.series_absent
    if test.image is None:
        return None
    if absent:
        return Check(test.name, Verdict.NOT_APPLICABLE, f"series absent: {absent}")
    image = next((c for c in vdso.checks if c.name == elf_check(test.image)), None)
    if image and image.verdict == Verdict.NOT_APPLICABLE:
        return Check(test.name, Verdict.NOT_APPLICABLE, f"{test.image}: {image.detail}")
    if image is None or image.verdict != Verdict.PASS:
        return Check(test.name, Verdict.ERROR, f"not run: the {test.image} ELF check did not pass")
    if test.entry and vdso.entry(test.image, test.entry) is None:
        if why := vdso.not_applicable.get(entry_key(test.image, test.entry)):
            return Check(test.name, Verdict.NOT_APPLICABLE, why)
        return Check(test.name, Verdict.ERROR,
                     f"not run: no checked offsets for the {test.entry} entry of {test.image}")
    return None
