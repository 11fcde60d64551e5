# SPDX-License-Identifier: GPL-2.0
"""What a run leaves behind: the typed record, the text report and JUnit, the email
reply, KCIDB."""
