# SPDX-License-Identifier: GPL-2.0
"""A series named by its message-id (msgid:<id>) or lore URL, fetched with b4 am.

b4 finds the thread, picks a revision (-v N, else the newest) and orders its patches; with
a local mbox (b4 am -m) it does all of that offline. The mbox b4 writes is kept in the
revision's directory of the run."""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from harness.commands import run
from harness.errors import CommandError, UserError
from harness.paths import venv_tool

PREFIX = "msgid:"
# https://lore.kernel.org/<list>/<msgid>/ with anything after it (T/, raw, t.mbox.gz),
# and the short form https://lore.kernel.org/r/<msgid>.
_LORE = re.compile(r"^https?://lore\.kernel\.org/[^/]+/([^/]+@[^/]+)(?:/.*)?$")
# The name b4 gives the mbox of the picked revision, in the revision's directory.
MBOX_NAME = "series"


@dataclass(frozen=True)
class FetchRequest:
    msgid: str
    # Where b4 writes the series' mbox (and its cover letter, if any); kept.
    out: Path
    # The revision to pick; None for the newest in the thread.
    version: int | None = None
    # A local mbox holding the thread: b4 reads it instead of lore, offline.
    mbox: Path | None = None


def message_id(series: str) -> str | None:
    """The message-id a series names (msgid:<id>, <id> in angle brackets or not, or a lore
    URL), or None for any other kind of series."""
    if series.startswith(PREFIX):
        found = series[len(PREFIX):].strip().strip("<>")
        if not found:
            raise UserError(f"'{series}' names no message-id; write msgid:<id>")
        return found
    m = _LORE.match(series)
    return urllib.parse.unquote(m.group(1)).strip("<>") if m else None


def label(msgid: str) -> str:
    """A short directory-safe name for a series fetched by message-id."""
    local = msgid.split("@", 1)[0]
    return re.sub(r"[^\w.-]+", "-", local).strip("-.")[:40] or "msgid"


def fetch(req: FetchRequest, log_file: Path, timeout: float) -> Path:
    """Run b4 am for the message-id; returns the mbox of the picked revision's patches."""
    if req.mbox is not None and not req.mbox.is_file():
        raise UserError(f"--mbox {req.mbox} does not exist")
    req.out.mkdir(parents=True, exist_ok=True)
    mbox = req.out / f"{MBOX_NAME}.mbx"
    mbox.unlink(missing_ok=True)  # left by an earlier run into the same directory
    argv = [venv_tool("b4")]
    # Offline mode keeps b4 off the network (attestation lookups too) when it has the mbox.
    argv += ["--offline-mode", "am", "-C", "-m", str(req.mbox)] if req.mbox else ["am"]
    argv += ["-o", str(req.out), "-n", MBOX_NAME]
    argv += ["-v", str(req.version)] if req.version is not None else []
    try:
        done = run([*argv, req.msgid], log_file=log_file, timeout=timeout)
    except CommandError as exc:
        raise UserError(f"b4 cannot resolve message-id <{req.msgid}>"
                        f"{_where(req)}: {_said(exc.tail)}") from exc
    if not mbox.is_file():
        which = f"v{req.version} of " if req.version is not None else ""
        raise UserError(f"b4 found no {which}series in the thread of <{req.msgid}>"
                        f"{_where(req)}: {_said(done.tail)}")
    return mbox


def _where(req: FetchRequest) -> str:
    return f" in {req.mbox}" if req.mbox else ""


def _said(tail: str) -> str:
    """b4's own message: its last line that says something."""
    lines = [ln.strip() for ln in tail.splitlines() if ln.strip()]
    quiet = [ln for ln in lines if not ln.startswith(("Running in OFFLINE", "Analyzing"))]
    return (quiet or lines or ["no output"])[-1]
