# SPDX-License-Identifier: GPL-2.0
"""The stages before the boot: source, patches, config, build, and the vDSO's ELF and
disassembly checks."""
