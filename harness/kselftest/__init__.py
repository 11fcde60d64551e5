# SPDX-License-Identifier: GPL-2.0
"""The kernel's own futex selftests: built from the tree under test, and their KTAP
output read."""
