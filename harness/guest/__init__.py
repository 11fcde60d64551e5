# SPDX-License-Identifier: GPL-2.0
"""Guest programs: built on the host and cached, the plan the guest runner follows, and
the protocol it speaks."""
