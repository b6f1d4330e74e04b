"""What the duty office asks of the rest of reporting: the open work a handover lists. One
adapter (``open_work.py``) answers it from reporting's state; the duty office imports nothing
else of reporting's storage."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Protocol


class OpenWork(Protocol):
    """Reporting's open work at a moment: real (non-drill) items only, each a plain dict (a
    drill handover may ask for drill approvals too)."""

    def open_incidents(self) -> list[dict[str, Any]]:
        """Open incidents: ``incident_id``, ``title``, ``township_code``, ``grade``."""

    def overdue_deadlines(self) -> list[dict[str, Any]]:
        """Overdue reports: ``incident_id``, ``kind``, ``township_code``, ``due_at``."""

    def deadlines_due_before(self, moment: datetime) -> list[dict[str, Any]]:
        """Pending reports due by ``moment``, same fields as the overdue ones."""

    def pending_approvals(self, since: datetime, with_drill: bool = False) -> list[dict[str, Any]]:
        """Things waiting for a leader's decision: warning versions awaiting approval, then
        warning suggestions since ``since``; each has ``kind``, ``kind_label`` and a Chinese
        ``label``. Drill items (``exercise``, marked 演练) only ``with_drill``."""

    def unacknowledged_warnings(self, since: datetime) -> list[dict[str, Any]]:
        """Townships that did not acknowledge a warning since ``since`` and have not since."""

    def active_plans(self) -> list[dict[str, Any]]:
        """Plans in force: ``plan_id``, ``level``, ``incident_id``, ``township_codes``."""

    def active_dispatches(self) -> list[dict[str, Any]]:
        """Dispatches not completed: ``dispatch_id``, ``incident_id``, ``status``."""

    def zero_report_status(self, day: date) -> dict[str, Any]:
        """Today's zero reports: ``filed`` and ``missing`` township codes, ``past_cutoff``."""
