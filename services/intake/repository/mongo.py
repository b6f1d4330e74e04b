"""Intake's incidents on MongoDB (pymongo): events ride inside the document, so a change and its
events are one single-document write, atomic on every deployment."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from libs.common.events import EventEnvelope
from libs.common.idempotency import APPLIED, APPLIED_KEEP, IDEMPOTENCY, IDEMPOTENCY_INDEXES
from libs.common.outbox import (
    OUTBOX_INDEXES,
    new_document,
    with_events,
)
from libs.common.pagination import page
from libs.common.repository_tails import MongoRepository
from services.intake.domain import DuplicateProbe, Neighbourhood
from services.intake.repository import DUPLICATE_SCAN_LIMIT, IncidentFilter

INCIDENTS = "incidents"
# What a duplicate lookup reads of each candidate: the facts of ``DuplicateProbe``.
PROBE_FIELDS = (
    "category",
    "township_code",
    "occurred_at",
    "exercise",
    "location.lat",
    "location.lon",
)
INCIDENT_INDEXES: list[dict[str, Any]] = [
    # Lists sort newest first by report time, filtered by township, status or grade.
    {"keys": [("reported_at", -1), ("_id", -1)]},
    {"keys": [("township_code", 1), ("reported_at", -1)]},
    {"keys": [("status", 1), ("grade", 1)]},
    # Duplicate detection looks up open incidents of a category around an occurrence time.
    {"keys": [("category", 1), ("status", 1), ("exercise", 1), ("occurred_at", 1)]},
    {
        "keys": [
            ("category", 1),
            ("status", 1),
            ("exercise", 1),
            ("township_code", 1),
            ("occurred_at", 1),
        ]
    },
    *OUTBOX_INDEXES,
    *IDEMPOTENCY_INDEXES,
]


class MongoIntakeRepository(MongoRepository):
    """IncidentRepository on a MongoDB database (or mongomock's, in tests)."""

    INDEXES = {INCIDENTS: INCIDENT_INDEXES}
    EVENT_COLLECTIONS = (INCIDENTS,)
    JOURNAL = True

    def __init__(self, db: Any) -> None:
        super().__init__(db)
        self.incidents = db[INCIDENTS]

    def incident_by_id(self, incident_id: str) -> dict[str, Any] | None:
        """One incident by ``_id``."""
        return self.incidents.find_one({"_id": incident_id})

    def incidents_by_ids(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """Incidents by ``_id``."""
        if not ids:
            return []
        return list(self.incidents.find({"_id": {"$in": list(ids)}}))

    def incident_by_idempotency_key(self, scope: str) -> dict[str, Any] | None:
        """The incident stamped with this key (unique sparse index)."""
        return self.incidents.find_one({f"{IDEMPOTENCY}.key": scope})

    def record_incident_with_event(
        self, doc: Mapping[str, Any], scope: str, digest: str, events: Sequence[EventEnvelope]
    ) -> tuple[dict[str, Any], bool]:
        """One insert carrying its events; a key race returns the winner."""
        stamped = {**doc, IDEMPOTENCY: {"key": scope, "hash": digest}}
        try:
            self.incidents.insert_one(new_document(stamped, events))
        except DuplicateKeyError:
            winner = self.incident_by_idempotency_key(scope)
            if winner is None:
                raise
            return winner, False
        return stamped, True

    def duplicate_candidates(
        self,
        category: str,
        earliest: datetime,
        latest: datetime,
        exercise: bool,
        near: Neighbourhood,
    ) -> list[DuplicateProbe]:
        """Ranges on the duplicate indexes: the township's, or the window filtered by the box."""
        places: list[dict[str, Any]] = [{"township_code": near.township_code}]
        if near.box is not None:
            lat_min, lat_max, lon_min, lon_max = near.box
            places.append(
                {
                    "location.lat": {"$gte": lat_min, "$lte": lat_max},
                    "location.lon": {"$gte": lon_min, "$lte": lon_max},
                }
            )
        found = self.incidents.find(
            {
                "category": category,
                "status": "open",
                "exercise": exercise,
                "occurred_at": {"$gte": earliest, "$lte": latest},
                "$or": places,
            },
            sort=[("occurred_at", 1), ("_id", 1)],
            limit=DUPLICATE_SCAN_LIMIT,
            projection=dict.fromkeys(PROBE_FIELDS, 1),
        )
        return [DuplicateProbe.of(doc) for doc in found]

    def incidents_page(
        self, filters: IncidentFilter, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Sorted by (reported_at, _id) descending, from the cursor."""
        selector: dict[str, Any] = filters.equalities()
        window: dict[str, Any] = {}
        if filters.reported_after is not None:
            window["$gte"] = filters.reported_after
        if filters.reported_before is not None:
            window["$lt"] = filters.reported_before
        if window:
            selector["reported_at"] = window
        return page(
            self.incidents,
            selector,
            sort_field="reported_at",
            descending=True,
            limit=limit,
            cursor=cursor,
        )

    def count_open_by_grade(self) -> dict[int, int]:
        """One count per grade on the (status, grade) index."""
        return {
            grade: self.incidents.count_documents(
                {"status": "open", "grade": grade, "exercise": False}
            )
            for grade in (1, 2, 3, 4)
        }

    def count_incidents(self) -> int:
        """Documents in the collection."""
        return int(self.incidents.count_documents({}))

    def close_incident(
        self,
        incident_id: str,
        version: int,
        fields: Mapping[str, Any],
        entry: Mapping[str, Any],
        event: EventEnvelope,
    ) -> bool:
        """Guard: still open, still at ``version``."""
        update = {"$set": dict(fields), "$push": {"history": dict(entry)}, "$inc": {"version": 1}}
        result = self.incidents.update_one(
            {"_id": incident_id, "version": version, "status": "open"},
            with_events(update, [event]),
        )
        return bool(result.matched_count)

    def claim_for_merge(
        self, primary_id: str, duplicate_id: str, entry: Mapping[str, Any], now: datetime
    ) -> bool:
        """Guard: the primary is open and its merged_ids lacks the duplicate (no event)."""
        result = self.incidents.update_one(
            {"_id": primary_id, "status": "open", "merged_ids": {"$ne": duplicate_id}},
            {
                "$addToSet": {"merged_ids": duplicate_id},
                "$push": {"history": dict(entry)},
                "$set": {"updated_at": now},
                "$inc": {"version": 1},
            },
        )
        return bool(result.matched_count)

    def release_merge_claim(self, primary_id: str, duplicate_id: str) -> None:
        """Pull the duplicate and its merge entry."""
        self.incidents.update_one(
            {"_id": primary_id},
            {
                "$pull": {
                    "merged_ids": duplicate_id,
                    "history": {"kind": "merged", "duplicate_id": duplicate_id},
                },
                "$inc": {"version": 1},
            },
        )

    def mark_merged(
        self,
        duplicate_id: str,
        version: int,
        fields: Mapping[str, Any],
        entry: Mapping[str, Any],
        event: EventEnvelope,
    ) -> bool:
        """Guard: open, at ``version``, and it absorbed no other incident."""
        update = {"$set": dict(fields), "$push": {"history": dict(entry)}, "$inc": {"version": 1}}
        result = self.incidents.update_one(
            {"_id": duplicate_id, "version": version, "status": "open", "merged_ids": {"$size": 0}},
            with_events(update, [event]),
        )
        return bool(result.matched_count)

    def apply_report(
        self,
        incident_id: str,
        version: int,
        fields: Mapping[str, Any],
        entries: Sequence[Mapping[str, Any]],
        events: Sequence[EventEnvelope],
        event_id: str,
    ) -> bool:
        """Guard: at ``version`` and ``event_id`` not applied; the id is recorded in the write."""
        update = {
            "$set": dict(fields),
            "$push": {
                "history": {"$each": [dict(e) for e in entries]},
                APPLIED: {"$each": [event_id], "$slice": -APPLIED_KEEP},
            },
            "$inc": {"version": 1},
        }
        result = self.incidents.update_one(
            {"_id": incident_id, "version": version, APPLIED: {"$ne": event_id}},
            with_events(update, events),
        )
        return bool(result.matched_count)
