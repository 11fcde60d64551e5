# SPDX-License-Identifier: GPL-2.0
"""The stages before the boot: source, patches, config, build, the vDSO's ELF and disasm."""
