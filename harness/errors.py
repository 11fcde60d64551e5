# SPDX-License-Identifier: GPL-2.0
"""The two error families. Only cli.py turns them into messages and exit codes."""


class HarnessError(Exception):
    """Base class: anything that stops the pipeline before a verdict."""


class UserError(HarnessError):
    """The user's input is wrong: a missing tree, a bad patch, a bad config fragment."""


class InfraError(HarnessError):
    """The machine let us down: a download, a tool, a VM, a timeout."""


class CommandError(InfraError):
    """An external command failed or timed out; carries the tail of its output."""

    def __init__(self, message: str, tail: str = "") -> None:
        super().__init__(message + (f"\n--- last output ---\n{tail}" if tail else ""))
        self.tail = tail


class RunTimeout(InfraError):
    """The whole run went past its time limit; nothing after it runs."""


class CommandTimeout(CommandError):
    """An external command ran past its deadline and its process group was killed."""
