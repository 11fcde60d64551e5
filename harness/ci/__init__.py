# SPDX-License-Identifier: GPL-2.0
"""CI pipelines for a kernel tree, generated from data/ci/."""
