"""The incidents collection: its indexes and every query intake makes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from libs.common.clock import as_utc
from libs.common.events import EventEnvelope
from libs.common.idempotency import find_replay, insert_idempotent
from libs.common.outbox import with_events
from libs.common.pagination import page
from libs.common.store import ensure_indexes

INCIDENTS = "incidents"
# The hour an incident occurred in. Duplicate lookups ask for the hours of the window by
# equality, so on the embedded engine (whose indexes answer equality, not ranges) a lookup
# reads the incidents of the window, not every open incident of the category ever reported.
DUP_SLOT = "_dup_slot"
SLOT_SECONDS = 3600

INDEXES: list[dict[str, Any]] = [
    # Lists sort newest first by report time, filtered by township, status or grade.
    {"keys": [("reported_at", -1), ("_id", -1)]},
    {"keys": [("township_code", 1), ("reported_at", -1)]},
    {"keys": [("status", 1), ("grade", 1)]},
    # Duplicate detection looks up open incidents of a category around an occurrence time.
    {"keys": [("category", 1), ("status", 1), ("occurred_at", 1)]},
    {"keys": [(DUP_SLOT, 1)]},
]


def occurrence_slot(moment: datetime) -> int:
    """The hour slot an occurrence time falls in."""
    return int(as_utc(moment).timestamp() // SLOT_SECONDS)


class IncidentStore:
    """Reads and writes of intake's incidents; a write and its events go in one update."""

    def __init__(self, db: Any) -> None:
        self.collection = db[INCIDENTS]

    def ensure_indexes(self) -> None:
        """Create the indexes the queries below rely on."""
        ensure_indexes(self.collection, INDEXES)
        # Incidents stored before the slot existed get it once (a no-op afterwards).
        for doc in self.collection.find({DUP_SLOT: None}, projection={"occurred_at": 1}):
            self.collection.update_one(
                {"_id": doc["_id"]}, {"$set": {DUP_SLOT: occurrence_slot(doc["occurred_at"])}}
            )

    def get(self, incident_id: str) -> dict[str, Any] | None:
        """One incident document, internals included."""
        return self.collection.find_one({"_id": incident_id})

    def replay(self, scope: str, digest: str) -> dict[str, Any] | None:
        """The incident an earlier request with this Idempotency-Key created (409 on mismatch)."""
        return find_replay(self.collection, scope, digest)

    def create(self, document: Mapping[str, Any], scope: str, digest: str) -> tuple[Any, bool]:
        """Insert a new incident with its events; on a key race, the winner and False."""
        slotted = {**document, DUP_SLOT: occurrence_slot(document["occurred_at"])}
        return insert_idempotent(self.collection, slotted, scope, digest)

    def update(
        self,
        incident_id: str,
        version: int,
        update: Mapping[str, Any],
        events: Sequence[EventEnvelope] = (),
        guard: Mapping[str, Any] | None = None,
    ) -> bool:
        """Apply ``update`` if the incident is still at ``version``; True when it was."""
        selector = {"_id": incident_id, "version": version, **(guard or {})}
        change = with_events(_bump(update), events)
        return bool(self.collection.update_one(selector, change).matched_count)

    def raw_update(self, selector: Mapping[str, Any], update: Mapping[str, Any]) -> bool:
        """A guarded update without events (merge bookkeeping); True when it matched."""
        return bool(self.collection.update_one(dict(selector), _bump(update)).matched_count)

    def duplicate_candidates(
        self, category: str, occurred_at: datetime, window: timedelta, exercise: bool
    ) -> list[dict[str, Any]]:
        """Open incidents of ``category`` that occurred within ``window`` of ``occurred_at``."""
        return list(
            self.collection.find(
                {
                    "category": category,
                    "status": "open",
                    "exercise": exercise,
                    "occurred_at": {"$gte": occurred_at - window, "$lte": occurred_at + window},
                    DUP_SLOT: {
                        "$in": list(
                            range(
                                occurrence_slot(occurred_at - window),
                                occurrence_slot(occurred_at + window) + 1,
                            )
                        )
                    },
                },
                sort=[("occurred_at", 1)],
                limit=500,
                projection={
                    "_id": 1,
                    "category": 1,
                    "township_code": 1,
                    "occurred_at": 1,
                    "exercise": 1,
                    "location": 1,
                },
            )
        )

    def find_many(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """The incidents with the given ids."""
        if not ids:
            return []
        return list(self.collection.find({"_id": {"$in": list(ids)}}))

    def page(
        self, selector: dict[str, Any], limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of incidents, newest report first."""
        return page(
            self.collection,
            selector,
            sort_field="reported_at",
            descending=True,
            limit=limit,
            cursor=cursor,
        )

    def count_open_by_grade(self) -> dict[int, int]:
        """Open real (non-drill) incidents per grade."""
        return {
            grade: self.collection.count_documents(
                {"status": "open", "grade": grade, "exercise": False}
            )
            for grade in (1, 2, 3, 4)
        }


def _bump(update: Mapping[str, Any]) -> dict[str, Any]:
    """Every change moves the version on, so concurrent writers notice each other."""
    bumped = {op: dict(fields) for op, fields in update.items()}
    bumped.setdefault("$inc", {})["version"] = 1
    return bumped
