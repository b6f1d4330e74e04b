"""The reporting service's collections, their indexes, and the queries on them.

Hot sets stay small and indexed: a deadline scan asks ``{armed: true, next_check_at <= now}``
and only deadlines that still need a check carry ``armed`` (met, cancelled and fully escalated
ones drop it), so a scan costs what is due, not all history.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from libs.common.clock import as_utc
from libs.common.events import EventEnvelope
from libs.common.idempotency import insert_once, merge_once
from libs.common.service import ServiceContext
from libs.common.store import ensure_indexes

INCIDENTS = "incidents"
REPORTS = "reports"
DEADLINES = "deadlines"
ZERO_REPORTS = "zero_reports"
# Drill (演练) zero reports live apart: nothing that counts a township's filings reads them.
EXERCISE_ZERO_REPORTS = "exercise_zero_reports"
ZERO_MISSED = "zero_missed"
ZERO_CONFLICTS = "zero_conflicts"
STATE = "state"
TIMELINE = "timeline"
WARNINGS = "warnings"
DISPATCHES = "dispatches"
STOCK_ALERTS = "stock_alerts"
PLANS = "plans"
SUMMARIES = "summaries"
# Incident events that arrived before the incident's initial report, kept until it does.
PARKED = "parked_events"

OUTBOX_COLLECTIONS = (
    REPORTS,
    DEADLINES,
    ZERO_REPORTS,
    EXERCISE_ZERO_REPORTS,
    ZERO_MISSED,
    ZERO_CONFLICTS,
    SUMMARIES,
)

INDEXES: dict[str, list[dict[str, Any]]] = {
    INCIDENTS: [
        {"keys": [("township_code", 1), ("reported_at", 1)]},
        {"keys": [("status", 1)]},
        {"keys": [("occurred_at", 1)]},
        {"keys": [("reported_at", 1)]},
    ],
    REPORTS: [
        {"keys": [("chain_key", 1)], "unique": True, "name": "chain_key"},
        {"keys": [("incident_id", 1), ("seq", 1)], "unique": True, "name": "chain_seq"},
        {"keys": [("incident_id", 1), ("filed_at", 1)]},
        {"keys": [("township_code", 1), ("filed_at", 1)]},
        {"keys": [("filed_at", 1)]},
    ],
    DEADLINES: [
        {"keys": [("armed", 1), ("next_check_at", 1)], "name": "scan"},
        {"keys": [("incident_id", 1), ("status", 1)]},
        {"keys": [("status", 1), ("due_at", 1)]},
        {"keys": [("township_code", 1), ("due_at", 1)]},
        {"keys": [("due_at", 1)]},
    ],
    ZERO_REPORTS: [
        {"keys": [("date", 1), ("township_code", 1)]},
    ],
    EXERCISE_ZERO_REPORTS: [
        {"keys": [("date", 1), ("township_code", 1)]},
    ],
    ZERO_MISSED: [{"keys": [("date", 1)]}],
    ZERO_CONFLICTS: [{"keys": [("date", 1), ("attempted_at", 1)]}],
    TIMELINE: [
        {"keys": [("incident_ids", 1), ("order_key", 1)]},
        {"keys": [("correlation_id", 1)]},
        {"keys": [("order_key", 1)]},
        {"keys": [("occurred_at", 1)]},
        {"keys": [("event_type", 1), ("occurred_at", 1)]},
        {"keys": [("source", 1), ("occurred_at", 1)]},
    ],
    WARNINGS: [{"keys": [("status", 1)]}, {"keys": [("issued_at", 1)]}],
    DISPATCHES: [{"keys": [("ordered_at", 1)]}, {"keys": [("incident_id", 1)]}],
    STOCK_ALERTS: [{"keys": [("at", 1)]}],
    PLANS: [{"keys": [("status", 1)]}],
    PARKED: [{"keys": [("incident_id", 1), ("occurred_at", 1)]}],
    SUMMARIES: [{"keys": [("kind", 1), ("published_at", 1)]}],
}


def setup_indexes(ctx: ServiceContext) -> None:
    """Create every index the service's queries rely on."""
    for name, specs in INDEXES.items():
        ensure_indexes(ctx.db[name], specs)


class Store:
    """Typed access to the service's collections."""

    def __init__(self, ctx: ServiceContext) -> None:
        db = ctx.db
        self.incidents = db[INCIDENTS]
        self.reports = db[REPORTS]
        self.deadlines = db[DEADLINES]
        self.zero_reports = db[ZERO_REPORTS]
        self.exercise_zero_reports = db[EXERCISE_ZERO_REPORTS]
        self.zero_missed = db[ZERO_MISSED]
        self.zero_conflicts = db[ZERO_CONFLICTS]
        self.state = db[STATE]
        self.timeline = db[TIMELINE]
        self.warnings = db[WARNINGS]
        self.dispatches = db[DISPATCHES]
        self.stock_alerts = db[STOCK_ALERTS]
        self.plans = db[PLANS]
        self.summaries = db[SUMMARIES]
        self.parked = db[PARKED]

    # ------------------------------------------------------------ incidents and reports

    def incident(self, incident_id: str) -> dict[str, Any] | None:
        """One incident as reporting knows it."""
        found = self.incidents.find_one({"_id": incident_id})
        return dict(found) if found else None

    def chain(self, incident_id: str) -> list[dict[str, Any]]:
        """Follow-up and final reports of an incident in filing order."""
        rows = self.reports.find(
            {"incident_id": incident_id}, sort=[("seq", 1)], projection={"_outbox": 0}
        )
        return [dict(r) for r in rows]

    def last_report(self, incident_id: str) -> dict[str, Any] | None:
        """The latest report of the chain, if any."""
        rows = self.reports.find({"incident_id": incident_id}, sort=[("seq", -1)], limit=1)
        return dict(rows[0]) if rows else None

    # ------------------------------------------------------------ events that came early

    def park_early_event(self, incident_id: str, envelope: EventEnvelope) -> bool:
        """Keep an incident event that came before the incident; once per event id."""
        return insert_once(
            self.parked,
            {
                "_id": envelope.event_id,
                "incident_id": incident_id,
                "event_type": envelope.event_type,
                "occurred_at": as_utc(envelope.occurred_at),
                "envelope": envelope.to_wire(),
            },
        )

    def parked_events(self, incident_id: str) -> list[dict[str, Any]]:
        """The events waiting for ``incident_id``."""
        return [dict(r) for r in self.parked.find({"incident_id": incident_id})]

    def unpark(self, event_id: str) -> None:
        """Forget a parked event once it has been applied."""
        self.parked.delete_one({"_id": event_id})

    def merge_plan_event(
        self,
        plan_id: str,
        event_id: str,
        merge: Callable[[Mapping[str, Any] | None], Mapping[str, Any]],
    ) -> bool:
        """Fold one plan event into the plan view (created if absent), once per event id."""
        return merge_once(self.plans, plan_id, event_id, merge)

    # ------------------------------------------------------------ deadlines

    def open_deadlines(self, incident_id: str) -> list[dict[str, Any]]:
        """Pending and overdue deadlines of one incident."""
        rows = self.deadlines.find(
            {"incident_id": incident_id, "status": {"$in": ["pending", "overdue"]}},
            sort=[("due_at", 1)],
        )
        return [dict(r) for r in rows]

    def due_for_check(self, now: datetime, limit: int = 200) -> list[dict[str, Any]]:
        """Deadlines whose next check (due, or long overdue) has come: the scan's hot set."""
        rows = self.deadlines.find(
            {"armed": True, "next_check_at": {"$lte": now}},
            sort=[("next_check_at", 1), ("_id", 1)],
            limit=limit,
        )
        return [dict(r) for r in rows]

    def overdue_by_township(self) -> dict[str, int]:
        """How many real deadlines are overdue now, per township."""
        counts: dict[str, int] = {}
        # Drills (演练) never make a real township overdue.
        overdue = {"status": "overdue", "exercise": {"$ne": True}}
        for row in self.deadlines.find(overdue, projection={"township_code": 1}):
            counts[row["township_code"]] = counts.get(row["township_code"], 0) + 1
        return counts

    # ------------------------------------------------------------ state

    def get_state(self, key: str) -> dict[str, Any] | None:
        """A bookkeeping document (scan cursors)."""
        found = self.state.find_one({"_id": key})
        return dict(found) if found else None

    def between(
        self,
        collection: Any,
        field: str,
        start: datetime,
        end: datetime,
        extra: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Documents whose ``field`` lies in [start, end)."""
        query = {field: {"$gte": start, "$lt": end}, **(extra or {})}
        return [dict(r) for r in collection.find(query, sort=[(field, 1)])]
