# SPDX-License-Identifier: GPL-2.0
"""The one helper that runs external commands: argv lists, timeouts, logs, typed errors."""

from __future__ import annotations

import contextlib
import logging
import os
import select
import shlex
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar

import tenacity

from harness.errors import CommandError, CommandTimeout

log = logging.getLogger("harness")
T = TypeVar("T")

TAIL_LINES = 40
# After the main process exits, how long its output pipe may stay open in leftovers.
DRAIN_SECONDS = 5.0


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    tail: str
    seconds: float


def _kill_group(pid: int) -> None:
    """Kill the whole process group: QEMU and virtiofsd are children of vng."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _copy_output(
    stream: IO[bytes], out: IO[str], tail: deque[str], on_line: Callable[[str], None] | None
) -> None:
    writable = True
    for raw in stream:
        line = raw.decode("utf-8", errors="backslashreplace")
        if writable:
            try:
                out.write(line)
            except OSError:
                # A full disk must not stop the draining, or the command blocks on its pipe.
                writable = False
        tail.append(line)
        if on_line:
            on_line(line)


def _wait(proc: subprocess.Popen[bytes], start: float, timeout: float,
          watchdog: Callable[[float], str | None] | None) -> None:
    """Wait for proc; raise CommandTimeout past the deadline or when the watchdog says so."""
    with _exit_fd(proc) as exited:
        while True:
            elapsed = time.monotonic() - start
            if elapsed >= timeout:
                raise CommandTimeout(f"timed out after {timeout:.0f}s")
            if _exits_within(proc, exited, min(1.0, timeout - elapsed)):
                return
            reason = watchdog(time.monotonic() - start) if watchdog else None
            if reason:
                raise CommandTimeout(reason)


@contextlib.contextmanager
def _exit_fd(proc: subprocess.Popen[bytes]) -> Iterator[int | None]:
    """A pidfd of proc, readable once it exits; None where the kernel has none."""
    try:
        fd: int | None = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        fd = None
    try:
        yield fd
    finally:
        if fd is not None:
            os.close(fd)


def _exits_within(proc: subprocess.Popen[bytes], exited: int | None, seconds: float) -> bool:
    """Whether proc exits within seconds. With a pidfd the wait ends the moment it does;
    Popen.wait(timeout) polls in sleeps of up to 50 ms, about 25 ms late a command, which
    a run of a dozen git, make and gcc calls paid in full."""
    if exited is None:
        try:
            proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return False
        return True
    select.select([exited], [], [], seconds)
    return proc.poll() is not None


def retrying(what: str, attempts: int = 3) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Retry a flaky infrastructure step (a download, a VM start) on CommandError, with
    backoff and a log line per retry. Never use it on a check: a failed check is a verdict."""
    return tenacity.retry(
        retry=tenacity.retry_if_exception_type(CommandError),
        stop=tenacity.stop_after_attempt(attempts),
        wait=tenacity.wait_exponential(multiplier=2, max=30),
        before_sleep=lambda state: log.warning(
            "%s failed (attempt %d of %d), retrying: %s", what, state.attempt_number, attempts,
            str(state.outcome.exception() if state.outcome else "").splitlines()[0]),
        reraise=True,
    )


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    log_file: Path,
    timeout: float,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    on_line: Callable[[str], None] | None = None,
    stdout_file: Path | None = None,
    watchdog: Callable[[float], str | None] | None = None,
) -> Completed:
    """Run argv in its own process group, tee its output to log_file, kill the group on timeout.

    With stdout_file, standard output goes there untouched and only stderr to the log.
    watchdog is called about once a second with the elapsed time; a message back kills it.
    Raises CommandTimeout on timeout and CommandError on a non-zero exit when check is set.
    """
    args = tuple(str(a) for a in argv)
    where = f"cd {shlex.quote(str(cwd))} && " if cwd else ""
    log.debug("run: %s%s", where, shlex.join(args))
    log_file.parent.mkdir(parents=True, exist_ok=True)
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    start = time.monotonic()
    with log_file.open("a", encoding="utf-8") as out, \
            contextlib.ExitStack() as stack:
        out.write(f"$ {where}{shlex.join(args)}\n")
        out.flush()
        raw_out = stack.enter_context(stdout_file.open("wb")) if stdout_file else None
        try:
            proc = subprocess.Popen(
                args, cwd=cwd, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
                stdout=raw_out or subprocess.PIPE,
                stderr=subprocess.PIPE if raw_out else subprocess.STDOUT,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise CommandError(f"{args[0]}: command not found; is it installed?") from exc
        stream = proc.stderr if raw_out else proc.stdout
        assert stream is not None
        reader = threading.Thread(
            target=_copy_output, args=(stream, out, tail, on_line), daemon=True
        )
        reader.start()
        try:
            _wait(proc, start, timeout, watchdog)
        except CommandTimeout as exc:
            out.write(f"# {exc}, killing the process group\n")
            raise CommandTimeout(f"{shlex.join(args)}: {exc} (log: {log_file})",
                                 "".join(tail)) from None
        finally:
            # Also reaps leftovers of a command that exited normally.
            _kill_group(proc.pid)
            proc.wait()
            reader.join(DRAIN_SECONDS)
            out.flush()
    result = Completed(args, proc.returncode, "".join(tail), time.monotonic() - start)
    if check and proc.returncode != 0:
        raise CommandError(
            f"{shlex.join(args)} exited with {proc.returncode} (log: {log_file})", result.tail
        )
    return result
