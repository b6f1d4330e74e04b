"""The one adapter from the duty office to reporting's state (today: ``store.Store``); the lead
re-points it when reporting moves to its repository. Thin on purpose: queries, no rules."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from libs.common.service import ServiceContext
from services.reporting import zero
from services.reporting.store import Store

ACTIVE_DISPATCH = ["ordered", "en_route", "on_scene"]
REAL = {"exercise": {"$ne": True}}


class ReportingOpenWork:
    """OpenWork over reporting's collections."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.store = Store(ctx)

    def open_incidents(self) -> list[dict[str, Any]]:
        """Open real incidents, most severe first."""
        rows = self.store.incidents.find({"status": "open", **REAL}, sort=[("grade", 1)])
        return [
            {k: r.get(k) for k in ("title", "township_code", "grade", "reported_at")}
            | {"incident_id": r["_id"]}
            for r in rows
        ]

    def _deadlines(self, selector: dict[str, Any]) -> list[dict[str, Any]]:
        rows = self.store.deadlines.find({**selector, **REAL}, sort=[("due_at", 1)])
        return [
            {k: r.get(k) for k in ("incident_id", "kind", "township_code", "due_at")} for r in rows
        ]

    def overdue_deadlines(self) -> list[dict[str, Any]]:
        """Real deadlines past due and not met."""
        return self._deadlines({"status": "overdue"})

    def deadlines_due_before(self, moment: datetime) -> list[dict[str, Any]]:
        """Real pending deadlines due by ``moment``."""
        return self._deadlines({"status": "pending", "due_at": {"$lte": moment}})

    def _timeline(self, event_type: str, since: datetime) -> list[dict[str, Any]]:
        rows = self.store.timeline.find(
            {"event_type": event_type, "occurred_at": {"$gte": since}}, sort=[("occurred_at", 1)]
        )
        return [dict(r) for r in rows if not (r.get("payload") or {}).get("exercise")]

    def pending_approvals(self, since: datetime) -> list[dict[str, Any]]:
        """Warning suggestions (建议发布预警) since ``since``: a leader decides on them."""
        return [
            {k: r["payload"].get(k) for k in ("suggestion_id", "incident_id", "hazard", "level")}
            for r in self._timeline("warning_suggested", since)
        ]

    def unacknowledged_warnings(self, since: datetime) -> list[dict[str, Any]]:
        """Missed acknowledgements since ``since`` without a later acknowledgement."""
        acked = {
            (r["payload"].get("warning_id"), r["payload"].get("township_code"))
            for r in self._timeline("warning_acknowledged", since)
        }
        return [
            {k: r["payload"].get(k) for k in ("warning_id", "township_code", "level")}
            for r in self._timeline("warning_unacknowledged", since)
            if (r["payload"].get("warning_id"), r["payload"].get("township_code")) not in acked
        ]

    def active_plans(self) -> list[dict[str, Any]]:
        """Plans whose view says active."""
        rows = self.store.plans.find({"status": "active", **REAL})
        return [
            {k: r.get(k) for k in ("level", "incident_id", "township_codes")}
            | {"plan_id": r["_id"]}
            for r in rows
        ]

    def active_dispatches(self) -> list[dict[str, Any]]:
        """Dispatches ordered, en route or on scene."""
        rows = self.store.dispatches.find({"status": {"$in": ACTIVE_DISPATCH}, **REAL})
        return [
            {k: r.get(k) for k in ("incident_id", "status", "township_code")}
            | {"dispatch_id": r["_id"]}
            for r in rows
        ]

    def zero_report_status(self, day: date) -> dict[str, Any]:
        """Filed and missing townships of ``day`` (reporting's own view of it)."""
        status = zero.status(self.ctx, self.store, day)
        return {
            "date": day.isoformat(),
            "past_cutoff": status["past_cutoff"],
            "filed": [row["township_code"] for row in status["filed"]],
            "missing": [row["township_code"] for row in status["missing"]],
        }
