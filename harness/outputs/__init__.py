# SPDX-License-Identifier: GPL-2.0
"""What a run leaves: the typed record, the table and JUnit, the email reply, KCIDB."""
