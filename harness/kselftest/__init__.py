# SPDX-License-Identifier: GPL-2.0
"""The kernel's own futex selftests: their spec, built from the tree under test, KTAP."""
