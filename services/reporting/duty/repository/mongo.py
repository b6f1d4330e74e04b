"""The duty office on MongoDB (pymongo): one collection per kind, events inside the document they
belong to, so each change and its events are one single-document write. A decision that adds
pushes writes the pushes first (idempotent by id) and the incident with its events last: a crash
between the two is repaired by the redelivery of the event that decided it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from libs.common.events import EventEnvelope
from libs.common.outbox import (
    OUTBOX_INDEXES,
    new_document,
    strip_internal,
    with_events,
)
from libs.common.repository_tails import MongoRepository
from services.reporting.duty.repository import PUSH_HELD, PUSH_PENDING

PREFIX = "duty_"
KIND_INDEXES: dict[str, list[dict[str, Any]]] = {
    "shifts": [{"keys": [("exercise", 1), ("starts_at", 1)]}, *OUTBOX_INDEXES],
    "handovers": [
        {"keys": [("shift_id", 1)], "unique": True, "name": "one_per_shift"},
        {"keys": [("exercise", 1), ("opened_at", -1)]},
        *OUTBOX_INDEXES,
    ],
    "spot_checks": [{"keys": [("exercise", 1), ("called_at", 1)]}],
    "tracked_incidents": [*OUTBOX_INDEXES],
    "pushes": [
        {"keys": [("status", 1), ("next_attempt_at", 1)]},
        {"keys": [("incident_id", 1), ("status", 1), ("created_at", 1)]},
        {"keys": [("created_at", -1)]},
        *OUTBOX_INDEXES,
    ],
    "upstream_requests": [
        {"keys": [("incident_id", 1), ("received_at", 1)]},
        {"keys": [("exercise", 1), ("due_at", 1)]},
        *OUTBOX_INDEXES,
    ],
}
OPEN_REQUEST_LOOKBACK = timedelta(days=2)
# The collections whose documents carry events (the relay's sources).
EVENT_KINDS = ("shifts", "handovers", "tracked_incidents", "pushes", "upstream_requests")


def _clean(doc: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return strip_internal(doc)


def _all(rows: Any) -> list[dict[str, Any]]:
    return [d for d in (_clean(r) for r in rows) if d is not None]


class MongoDutyRepository(MongoRepository):
    """DutyRepository on the reporting service's MongoDB database (collections ``duty_*``)."""

    INDEXES = {PREFIX + name: specs for name, specs in KIND_INDEXES.items()}
    EVENT_COLLECTIONS = tuple(PREFIX + name for name in EVENT_KINDS)
    JOURNAL = True

    def __init__(self, db: Any) -> None:
        super().__init__(db)
        self.shifts = db[PREFIX + "shifts"]
        self.handovers = db[PREFIX + "handovers"]
        self.spot_checks = db[PREFIX + "spot_checks"]
        self.incidents = db[PREFIX + "tracked_incidents"]
        self.pushes = db[PREFIX + "pushes"]
        self.requests = db[PREFIX + "upstream_requests"]

    # ------------------------------------------------------------ roster

    def save_shifts(self, shifts: Sequence[Mapping[str, Any]]) -> None:
        """Replace each entry by ``_id`` (upsert)."""
        for shift in shifts:
            self.shifts.replace_one({"_id": shift["_id"]}, dict(shift), upsert=True)

    def shifts_between(
        self, start: datetime, end: datetime, exercise: bool
    ) -> list[dict[str, Any]]:
        """Entries starting in [start, end)."""
        rows = self.shifts.find(
            {"exercise": exercise, "starts_at": {"$gte": start, "$lt": end}},
            sort=[("starts_at", 1)],
        )
        return _all(rows)

    def shift_by_id(self, shift_id: str) -> dict[str, Any] | None:
        """One entry by ``_id``."""
        return _clean(self.shifts.find_one({"_id": shift_id}))

    def flag_shift(
        self, placeholder: Mapping[str, Any], flag: str, events: Sequence[EventEnvelope]
    ) -> bool:
        """Upsert guarded on the flag: the update that sets it carries the events."""
        rest = {k: v for k, v in placeholder.items() if k != "_id" and k != flag}
        try:
            result = self.shifts.update_one(
                {"_id": placeholder["_id"], flag: {"$ne": True}},
                with_events({"$set": {flag: True}, "$setOnInsert": rest}, events),
                upsert=True,
            )
        except DuplicateKeyError:
            return False  # the shift exists with the flag set: the upsert hit its _id
        return bool(result.modified_count or result.upserted_id is not None)

    # ------------------------------------------------------------ handovers

    def open_handover(self, doc: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """Insert; the unique shift index keeps one handover per shift."""
        try:
            self.handovers.insert_one(dict(doc))
        except DuplicateKeyError:
            existing = self.handover_of_shift(doc["shift_id"])
            if existing is None:
                raise
            return existing, False
        return dict(doc), True

    def change_open_handover(
        self, handover_id: str, fields: Mapping[str, Any], events: Sequence[EventEnvelope]
    ) -> dict[str, Any] | None:
        """Guarded on ``confirmed_at`` being unset."""
        found = self.handovers.find_one_and_update(
            {"_id": handover_id, "confirmed_at": None},
            with_events({"$set": dict(fields)}, events),
            return_document=ReturnDocument.AFTER,
        )
        return _clean(found)

    def handover_by_id(self, handover_id: str) -> dict[str, Any] | None:
        """One record by ``_id``."""
        return _clean(self.handovers.find_one({"_id": handover_id}))

    def handover_of_shift(self, shift_id: str) -> dict[str, Any] | None:
        """By the unique shift index."""
        return _clean(self.handovers.find_one({"shift_id": shift_id}))

    def recent_handovers(self, limit: int, exercise: bool) -> list[dict[str, Any]]:
        """Newest first by opening time."""
        rows = self.handovers.find(
            {"exercise": exercise}, sort=[("opened_at", -1), ("_id", 1)], limit=limit
        )
        return _all(rows)

    # ------------------------------------------------------------ spot checks

    def record_spot_check(self, doc: Mapping[str, Any]) -> None:
        """Insert one check."""
        self.spot_checks.insert_one(dict(doc))

    def spot_checks_between(
        self, start: datetime, end: datetime, exercise: bool
    ) -> list[dict[str, Any]]:
        """Checks called in [start, end), oldest first."""
        rows = self.spot_checks.find(
            {"exercise": exercise, "called_at": {"$gte": start, "$lt": end}},
            sort=[("called_at", 1), ("_id", 1)],
        )
        return _all(rows)

    # ------------------------------------------------------------ upward reporting

    def tracked_incident(self, incident_id: str) -> dict[str, Any] | None:
        """One incident the duty office follows."""
        return _clean(self.incidents.find_one({"_id": incident_id}))

    def record_decision(
        self,
        incident: Mapping[str, Any] | None,
        pushes: Sequence[Mapping[str, Any]],
        events: Sequence[EventEnvelope],
    ) -> int:
        """Pushes first (known ids kept), then the incident carrying the events."""
        created = 0
        carried = list(events) if incident is None else []
        for push in pushes:
            try:
                self.pushes.insert_one(new_document(push, carried))
                created += 1
                carried = []
            except DuplicateKeyError:
                continue
        if incident is not None:
            fields = {k: v for k, v in incident.items() if k != "_id"}
            self.incidents.update_one(
                {"_id": incident["_id"]}, with_events({"$set": fields}, events), upsert=True
            )
        return created

    def release_held(self, incident_id: str, now: datetime) -> int:
        """Held pushes of the incident become pending, due now."""
        result = self.pushes.update_many(
            {"incident_id": incident_id, "status": PUSH_HELD},
            {"$set": {"status": PUSH_PENDING, "next_attempt_at": now}},
        )
        return int(result.modified_count)

    def claim_due_pushes(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[dict[str, Any]]:
        """Lease due pushes one by one (each claim a guarded single-document update)."""
        due = {
            "status": PUSH_PENDING,
            "next_attempt_at": {"$lte": now},
            "$or": [{"lease_until": None}, {"lease_until": {"$lte": now}}],
        }
        claimed = []
        for row in self.pushes.find(due, sort=[("next_attempt_at", 1), ("_id", 1)], limit=limit):
            found = self.pushes.find_one_and_update(
                {"_id": row["_id"], **due},
                {"$set": {"lease_until": lease_until}},
                return_document=ReturnDocument.AFTER,
            )
            if found is not None:
                claimed.append(_clean(found) or {})
        return claimed

    def settle_push(
        self,
        push_id: str,
        fields: Mapping[str, Any],
        appends: Mapping[str, Sequence[Any]],
        events: Sequence[EventEnvelope],
    ) -> bool:
        """Guarded on the push still pending; the lease is released with the outcome."""
        update: dict[str, Any] = {"$set": {**fields, "lease_until": None}}
        if appends:
            update["$push"] = {name: {"$each": list(values)} for name, values in appends.items()}
        result = self.pushes.update_one(
            {"_id": push_id, "status": PUSH_PENDING}, with_events(update, events)
        )
        return bool(result.modified_count)

    def push_by_id(self, push_id: str) -> dict[str, Any] | None:
        """One push by ``_id``."""
        return _clean(self.pushes.find_one({"_id": push_id}))

    def pushes_page(
        self, incident_id: str | None, status: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """Newest first, narrowed by incident and status when given."""
        selector: dict[str, Any] = {}
        if incident_id is not None:
            selector["incident_id"] = incident_id
        if status is not None:
            selector["status"] = status
        rows = self.pushes.find(selector, sort=[("created_at", -1), ("_id", 1)], limit=limit)
        return _all(rows)

    def pushes_between(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Pushes created in [start, end)."""
        rows = self.pushes.find(
            {"created_at": {"$gte": start, "$lt": end}}, sort=[("created_at", 1)]
        )
        return _all(rows)

    def count_pushes(self) -> dict[str, int]:
        """Real pushes per status."""
        counts: dict[str, int] = {}
        for row in self.pushes.find({"exercise": {"$ne": True}}, projection={"status": 1}):
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        return counts

    def record_request(
        self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]
    ) -> tuple[dict[str, Any], bool]:
        """Insert once per id, carrying its events."""
        try:
            self.requests.insert_one(new_document(doc, events))
        except DuplicateKeyError:
            return _clean(self.requests.find_one({"_id": doc["_id"]})) or dict(doc), False
        return dict(doc), True

    def requests_of_incident(self, incident_id: str) -> list[dict[str, Any]]:
        """By the (incident, received) index."""
        rows = self.requests.find(
            {"incident_id": incident_id}, sort=[("received_at", 1), ("_id", 1)]
        )
        return _all(rows)

    def open_requests(self, now: datetime) -> list[dict[str, Any]]:
        """Real requests due from two days ago on, by due time."""
        rows = self.requests.find(
            {"exercise": False, "due_at": {"$gte": now - OPEN_REQUEST_LOOKBACK}},
            sort=[("due_at", 1), ("_id", 1)],
        )
        return _all(rows)
