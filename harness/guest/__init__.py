# SPDX-License-Identifier: GPL-2.0
"""Guest programs: built and cached on the host, the plan the runner follows, its protocol."""
