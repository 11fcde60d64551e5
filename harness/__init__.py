# SPDX-License-Identifier: GPL-2.0
"""futex-harness: build, check, boot and test the x86 vDSO robust-futex unlock series."""

__version__ = "0.1.0"
