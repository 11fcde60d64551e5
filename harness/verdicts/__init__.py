# SPDX-License-Identifier: GPL-2.0
"""Every rule that turns an outcome into a verdict, and nowhere else."""
