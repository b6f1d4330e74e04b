"""Daily epidemic reports (传染病零报告, 篇8): townships and health units report zero cases or
cases per watched notifiable disease; missed reports are flagged after the cut-off."""
