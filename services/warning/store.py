"""The warning service's collections, their indexes, and every query the service makes."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from libs.common.idempotency import merge_once
from libs.common.store import ensure_indexes

WARNINGS = "warnings"
DELIVERIES = "deliveries"
ACKS = "acks"
SUGGESTIONS = "suggestions"
INCIDENTS = "incidents"
OUTBOX_COLLECTIONS = (WARNINGS, DELIVERIES, ACKS, SUGGESTIONS)

INDEXES: dict[str, list[dict[str, Any]]] = {
    WARNINGS: [
        {"keys": [("created_at", -1), ("_id", -1)]},
        {"keys": [("status", 1), ("exercise", 1)]},
        {"keys": [("areas", 1)]},
        # Timers query only what is due: these fields exist only while something is due.
        {"keys": [("expiry_due", 1)]},
        {"keys": [("fanout_due", 1)]},
    ],
    DELIVERIES: [
        {"keys": [("next_attempt_at", 1)]},
        {"keys": [("warning_id", 1), ("version", 1)]},
        {"keys": [("state", 1)]},
    ],
    ACKS: [
        {"keys": [("ack_due_at", 1)]},
        {"keys": [("warning_id", 1), ("township_code", 1)]},
    ],
    SUGGESTIONS: [
        {"keys": [("created_at", -1), ("_id", -1)]},
        {"keys": [("status", 1)]},
        {"keys": [("incident_id", 1)]},
    ],
}


def create_indexes(db: Any) -> None:
    """Create the service's indexes (idempotent)."""
    for name, indexes in INDEXES.items():
        ensure_indexes(db[name], indexes)


class WarningStore:
    """Typed access to the service's collections."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.warnings = db[WARNINGS]
        self.deliveries = db[DELIVERIES]
        self.acks = db[ACKS]
        self.suggestions = db[SUGGESTIONS]
        self.incidents = db[INCIDENTS]

    def warning(self, warning_id: str) -> dict[str, Any] | None:
        """One warning document."""
        doc = self.warnings.find_one({"_id": warning_id})
        return dict(doc) if doc else None

    def incident(self, incident_id: str) -> dict[str, Any] | None:
        """What the incident's events have said so far."""
        doc = self.incidents.find_one({"_id": incident_id})
        return dict(doc) if doc else None

    def merge_incident_event(
        self,
        incident_id: str,
        event_id: str,
        merge: Callable[[Mapping[str, Any] | None], Mapping[str, Any]],
    ) -> bool:
        """Fold one incident event into the view (created if absent), once per event id."""
        return merge_once(self.incidents, incident_id, event_id, merge)

    def incident_view(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The service's own rows for ``ids`` and for the primaries they were merged into."""
        found: dict[str, dict[str, Any]] = {}
        wanted = list(dict.fromkeys(ids))
        for _ in range(5):
            if not wanted:
                break
            rows = self.incidents.find({"_id": {"$in": wanted}})
            wanted = []
            for row in rows:
                found[row["_id"]] = dict(row)
                primary = row.get("primary_id")
                if primary and primary not in found:
                    wanted.append(primary)
        return found

    def due_expiries(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        """Warnings whose expiry time has come."""
        return list(
            self.warnings.find({"expiry_due": {"$lte": now}}, sort=[("expiry_due", 1)], limit=limit)
        )

    def fanout_pending(self, limit: int) -> list[dict[str, Any]]:
        """Warnings with issued versions whose deliveries are not planned yet."""
        return list(self.warnings.find({"fanout_due": True}, limit=limit))

    def due_deliveries(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        """Pending deliveries whose next attempt is due."""
        return list(
            self.deliveries.find(
                {"next_attempt_at": {"$lte": now}}, sort=[("next_attempt_at", 1)], limit=limit
            )
        )

    def due_acks(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        """Receipts still awaited past their deadline."""
        return list(
            self.acks.find({"ack_due_at": {"$lte": now}}, sort=[("ack_due_at", 1)], limit=limit)
        )

    def active_counts(self) -> dict[int, int]:
        """Active non-exercise warnings by level."""
        counts = {1: 0, 2: 0, 3: 0, 4: 0}
        rows = self.warnings.find({"status": "active", "exercise": False}, projection={"level": 1})
        for row in rows:
            counts[int(row["level"])] = counts.get(int(row["level"]), 0) + 1
        return counts
