# SPDX-License-Identifier: GPL-2.0
"""Every rule that turns an outcome into a verdict: guest counters, kselftest attempts and
SKIPs, the console, the vDSO image."""
