# SPDX-License-Identifier: GPL-2.0
"""data/email.toml: the mailing-list reply's width and fallbacks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.data import DATA, read_toml
from harness.errors import UserError


@dataclass(frozen=True)
class EmailSpec:
    """What the mailing-list reply says about a failing check (data/email.toml)."""

    width: int
    # counter -> what it means that this fail_if counter is not zero; {n} is its value.
    failed: dict[str, str]
    # counter -> what it means that this require counter stayed zero.
    unreached: dict[str, str]
    # verdict word (fail, inconclusive, error, timeout), counter, unreached, stage -> line.
    fallback: dict[str, str]


EMAIL_FALLBACKS = ("counter", "unreached", "fail", "inconclusive", "error", "timeout", "stage")


def load_email_spec(path: Path = DATA / "email.toml") -> EmailSpec:
    """The reply's explanations; every fallback line must be there."""
    raw = read_toml(path)
    fallback = dict(raw.get("fallback", {}))
    missing = [k for k in EMAIL_FALLBACKS if k not in fallback]
    if missing:
        raise UserError(f"{path} [fallback]: missing {', '.join(missing)}")
    return EmailSpec(int(raw["width"]), dict(raw.get("failed", {})),
                     dict(raw.get("unreached", {})), fallback)
