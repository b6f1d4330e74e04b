"""The warning service on MongoDB (pymongo): events ride inside the document they concern, so a
change and its events are one single-document write, atomic on every deployment."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from libs.common.events import EventEnvelope
from libs.common.idempotency import IDEMPOTENCY, IDEMPOTENCY_INDEXES, insert_once, merge_once
from libs.common.outbox import (
    OUTBOX,
    OUTBOX_INDEXES,
    new_document,
    with_events,
)
from libs.common.pagination import page
from libs.common.repository_tails import MongoRepository
from libs.common.store import ensure_indexes
from services.warning.domain import target_of
from services.warning.lastmile.domain import ReachMarks
from services.warning.repository import (
    DELIVERIES,
    ENTERPRISES,
    INCIDENTS,
    LIST_OMITS,
    MARKS,
    RECEIPTS,
    SUGGESTIONS,
    TOKENS,
    WARNINGS,
    DeliveryOutcome,
    WarningExistsError,
    WarningFilter,
)

OUTBOX_COLLECTIONS = (WARNINGS, DELIVERIES, RECEIPTS, SUGGESTIONS)
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
    RECEIPTS: [
        {"keys": [("ack_due_at", 1)]},
        {"keys": [("warning_id", 1), ("township_code", 1)]},
    ],
    ENTERPRISES: [{"keys": [("township_code", 1)]}],
    SUGGESTIONS: [
        {"keys": [("created_at", -1), ("_id", -1)]},
        {"keys": [("status", 1)]},
        {"keys": [("incident_id", 1)]},
    ],
}


class MongoWarningRepository(MongoRepository):
    """WarningRepository on a MongoDB database (or mongomock's, in tests)."""

    INDEXES = INDEXES
    EVENT_COLLECTIONS = OUTBOX_COLLECTIONS
    JOURNAL = True

    def __init__(self, db: Any) -> None:
        super().__init__(db)
        self.warnings = db[WARNINGS]
        self.deliveries = db[DELIVERIES]
        self.receipts = db[RECEIPTS]
        self.suggestions = db[SUGGESTIONS]
        self.incidents = db[INCIDENTS]
        self.marks = db[MARKS]
        self.tokens = db[TOKENS]
        self.enterprises = db[ENTERPRISES]

    def ensure_schema(self) -> None:
        """The indexes of every collection, and the outbox's and idempotency's on each collection
        that carries events."""
        super().ensure_schema()
        for name in OUTBOX_COLLECTIONS:
            ensure_indexes(self.db[name], [*OUTBOX_INDEXES, *IDEMPOTENCY_INDEXES])

    # Warnings ------------------------------------------------------------------------------

    def warning_by_id(self, warning_id: str) -> dict[str, Any] | None:
        """One warning by ``_id``."""
        doc = self.warnings.find_one({"_id": warning_id})
        return dict(doc) if doc else None

    def warning_by_idempotency_key(self, scope: str) -> dict[str, Any] | None:
        """The warning stamped with this key (unique sparse index)."""
        doc = self.warnings.find_one({f"{IDEMPOTENCY}.key": scope})
        return dict(doc) if doc else None

    def record_warning(
        self, doc: Mapping[str, Any], scope: str, digest: str, events: Sequence[EventEnvelope]
    ) -> tuple[dict[str, Any], bool]:
        """One insert carrying its events; a key race returns the winner."""
        stamped = {**doc, IDEMPOTENCY: {"key": scope, "hash": digest}}
        try:
            self.warnings.insert_one(new_document(stamped, events))
        except DuplicateKeyError:
            winner = self.warning_by_idempotency_key(scope)
            if winner is None:
                raise WarningExistsError(str(doc["_id"])) from None
            return winner, False
        return stamped, True

    def change_warning(
        self,
        warning_id: str,
        rev: int,
        changes: Mapping[str, Any],
        unset: Sequence[str],
        events: Sequence[EventEnvelope],
    ) -> dict[str, Any] | None:
        """Guard: ``rev`` unchanged."""
        update: dict[str, Any] = {"$set": {**changes, "rev": rev + 1}}
        if unset:
            update["$unset"] = dict.fromkeys(unset, "")
        result = self.warnings.update_one(
            {"_id": warning_id, "rev": rev}, with_events(update, events)
        )
        return self.warning_by_id(warning_id) if result.matched_count else None

    def versions_of(self, warning_id: str) -> list[dict[str, Any]]:
        """The versions array alone."""
        doc = self.warnings.find_one({"_id": warning_id}, projection={"versions": 1})
        return list((doc or {}).get("versions") or [])

    def warnings_page(
        self, filters: WarningFilter, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Sorted by (created_at, _id) descending, from the cursor."""
        selector: dict[str, Any] = {}
        if filters.statuses is not None:
            selector["status"] = {"$in": list(filters.statuses)}
        if filters.area is not None:
            selector["areas"] = filters.area
        for name in ("level", "hazard", "exercise"):
            if (value := getattr(filters, name)) is not None:
                selector[name] = value
        return page(
            self.warnings,
            selector,
            sort_field="created_at",
            limit=limit,
            cursor=cursor,
            projection={**dict.fromkeys(LIST_OMITS, 0), OUTBOX: 0},
        )

    def public_warnings(self, limit: int) -> list[dict[str, Any]]:
        """On the (status, exercise) index, newest issue first."""
        return list(
            self.warnings.find(
                {"status": "active", "exercise": False},
                sort=[("issued_at", -1), ("_id", -1)],
                limit=limit,
            )
        )

    def count_active_by_level(self) -> dict[int, int]:
        """One count per level."""
        return {
            level: self.warnings.count_documents(
                {"status": "active", "exercise": False, "level": level}
            )
            for level in (1, 2, 3, 4)
        }

    def warnings_due_to_expire(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        """``expiry_due`` exists only while an expiry is pending."""
        return list(
            self.warnings.find({"expiry_due": {"$lte": now}}, sort=[("expiry_due", 1)], limit=limit)
        )

    def forget_expiry(self, warning_id: str) -> None:
        """Unset ``expiry_due``."""
        self.warnings.update_one({"_id": warning_id}, {"$unset": {"expiry_due": ""}})

    def warnings_awaiting_fanout(self, limit: int) -> list[str]:
        """``fanout_due`` is true while versions wait."""
        rows = self.warnings.find({"fanout_due": True}, projection={"_id": 1}, limit=limit)
        return [str(row["_id"]) for row in rows]

    def finish_fanout(self, warning_id: str, numbers: Sequence[int]) -> None:
        """Pull the numbers; clear the flag when the list is empty."""
        self.warnings.update_one({"_id": warning_id}, {"$pull": {"fanout": {"$in": list(numbers)}}})
        self.warnings.update_one(
            {"_id": warning_id, "fanout": {"$size": 0}}, {"$set": {"fanout_due": False}}
        )

    # Deliveries ----------------------------------------------------------------------------

    def plan_delivery(self, delivery: Mapping[str, Any]) -> bool:
        """Insert once by ``_id``."""
        return insert_once(self.deliveries, delivery)

    def delivery_by_id(self, delivery_id: str) -> dict[str, Any] | None:
        """One delivery by ``_id``."""
        doc = self.deliveries.find_one({"_id": delivery_id})
        return dict(doc) if doc else None

    def supersede_older(self, warning_id: str, version: int) -> None:
        """Two multi-document updates (each document's change is atomic on its own)."""
        older = {"warning_id": warning_id, "version": {"$lt": version}, "state": "pending"}
        self.deliveries.update_many(
            older, {"$set": {"state": "superseded"}, "$unset": {"next_attempt_at": ""}}
        )
        self.receipts.update_many(
            older, {"$set": {"state": "superseded"}, "$unset": {"ack_due_at": ""}}
        )

    def pending_deliveries(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        """``next_attempt_at`` exists only while a delivery is pending."""
        return list(
            self.deliveries.find(
                {"next_attempt_at": {"$lte": now}}, sort=[("next_attempt_at", 1)], limit=limit
            )
        )

    def claim_delivery(
        self, delivery_id: str, attempts: int, now: datetime, until: datetime
    ) -> dict[str, Any] | None:
        """find_one_and_update guarded by state, attempts and the due time."""
        claimed = self.deliveries.find_one_and_update(
            {
                "_id": delivery_id,
                "state": "pending",
                "attempts": attempts,
                "next_attempt_at": {"$lte": now},
            },
            {"$set": {"next_attempt_at": until}},
        )
        return dict(claimed) if claimed else None

    def supersede_delivery(self, delivery_id: str) -> None:
        """Guard: still pending."""
        self.deliveries.update_one(
            {"_id": delivery_id, "state": "pending"},
            {"$set": {"state": "superseded"}, "$unset": {"next_attempt_at": ""}},
        )

    def record_delivery_attempt(
        self, delivery_id: str, outcome: DeliveryOutcome, events: Sequence[EventEnvelope]
    ) -> None:
        """One update: state, tries, error; the next try's time set or removed."""
        fields: dict[str, Any] = {
            "state": outcome.state,
            "attempts": outcome.attempts,
            "last_error": outcome.error,
        }
        if outcome.state == "delivered":
            fields["delivered_at"] = outcome.at
        if outcome.state == "failed":
            fields["failed_at"] = outcome.at
        if outcome.exercise_ack_url:
            fields["exercise_ack_url"] = outcome.exercise_ack_url
        update: dict[str, Any] = {"$set": fields}
        if outcome.next_attempt_at is None:
            update["$unset"] = {"next_attempt_at": ""}
        else:
            fields["next_attempt_at"] = outcome.next_attempt_at
        self.deliveries.update_one({"_id": delivery_id}, with_events(update, events))

    def deliveries_for(self, warning_id: str, townships: Sequence[str]) -> list[dict[str, Any]]:
        """On the (warning_id, version) index."""
        return list(
            self.deliveries.find(
                {"warning_id": warning_id, "township_code": {"$in": list(townships)}},
                projection={"message": 0, OUTBOX: 0},
                sort=[("version", 1), ("channel", 1)],
            )
        )

    def count_pending_deliveries(self) -> int:
        """On the state index."""
        return int(self.deliveries.count_documents({"state": "pending"}))

    def first_delivery(self, mark_id: str, at: datetime, channel: str) -> bool:
        """Insert the mark once."""
        return insert_once(self.marks, {"_id": mark_id, "at": at, "channel": channel})

    # Receipts ------------------------------------------------------------------------------

    def ensure_receipt(self, receipt: Mapping[str, Any]) -> None:
        """Upsert with ``$setOnInsert``: an existing receipt is left as it is."""
        fields = {k: v for k, v in receipt.items() if k != "_id"}
        self.receipts.update_one({"_id": receipt["_id"]}, {"$setOnInsert": fields}, upsert=True)

    def receipt_by_id(self, receipt_id: str) -> dict[str, Any] | None:
        """One receipt by ``_id``."""
        doc = self.receipts.find_one({"_id": receipt_id})
        return dict(doc) if doc else None

    def acknowledge(self, receipt_id: str, fields: Mapping[str, Any], event: EventEnvelope) -> bool:
        """Guard: ``acked_at`` null or missing."""
        update = {"$set": {**fields, "state": "acked"}, "$unset": {"ack_due_at": ""}}
        result = self.receipts.update_one(
            {"_id": receipt_id, "acked_at": None}, with_events(update, [event])
        )
        return bool(result.matched_count)

    def reach_marks(self, versions: Mapping[str, int]) -> dict[str, ReachMarks]:
        """On the (warning_id, version) and (warning_id, township_code) indexes; only the fields
        a mark needs."""
        if not versions:
            return {}  # MongoDB refuses an empty $or
        query = {
            "$or": [{"warning_id": wid, "version": v} for wid, v in versions.items()],
            "escalation_of": None,
        }
        fields = {"_id": 0, "warning_id": 1, "target": 1, "township_code": 1}
        found = {wid: ReachMarks() for wid in versions}
        for d in self.deliveries.find(query, projection={**fields, "state": 1}):
            found[d["warning_id"]].note_delivery(*_target(d), d["state"])
        for r in self.receipts.find(query, projection={**fields, "acked_at": 1, "overdue_at": 1}):
            acknowledged, escalated = r.get("acked_at") is not None, r.get("overdue_at") is not None
            found[r["warning_id"]].note_receipt(*_target(r), acknowledged, escalated)
        return found

    def receipts_for(self, warning_id: str, townships: Sequence[str]) -> list[dict[str, Any]]:
        """On the (warning_id, township_code) index."""
        return list(
            self.receipts.find(
                {"warning_id": warning_id, "township_code": {"$in": list(townships)}},
                projection={OUTBOX: 0},
                sort=[("version", 1)],
            )
        )

    def receipts_overdue(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        """``ack_due_at`` exists only while a receipt is owed."""
        return list(
            self.receipts.find({"ack_due_at": {"$lte": now}}, sort=[("ack_due_at", 1)], limit=limit)
        )

    def mark_receipt_overdue(self, receipt_id: str, now: datetime, event: EventEnvelope) -> bool:
        """Guard: pending and not acknowledged."""
        update = {"$set": {"state": "overdue", "overdue_at": now}, "$unset": {"ack_due_at": ""}}
        result = self.receipts.update_one(
            {"_id": receipt_id, "state": "pending", "acked_at": None},
            with_events(update, [event]),
        )
        return bool(result.matched_count)

    def close_receipt(self, receipt_id: str) -> None:
        """Guard: pending."""
        self.receipts.update_one(
            {"_id": receipt_id, "state": "pending"},
            {"$set": {"state": "closed"}, "$unset": {"ack_due_at": ""}},
        )

    def close_receipts_due_after(self, warning_id: str, expires: datetime) -> None:
        """Pending receipts of the warning due at or after ``expires``."""
        self.receipts.update_many(
            {"warning_id": warning_id, "state": "pending", "due_at": {"$gte": expires}},
            {"$set": {"state": "closed"}, "$unset": {"ack_due_at": ""}},
        )

    # Link tokens ---------------------------------------------------------------------------

    def record_ack_token(self, token: Mapping[str, Any]) -> bool:
        """Insert once by ``_id`` (the token's SHA-256)."""
        return insert_once(self.tokens, token)

    def ack_token(self, token_hash: str) -> dict[str, Any] | None:
        """One token by ``_id``."""
        doc = self.tokens.find_one({"_id": token_hash})
        return dict(doc) if doc else None

    # Enterprises ---------------------------------------------------------------------------

    def fold_enterprise(self, snapshot: Mapping[str, Any]) -> bool:
        """Insert, or replace a kept snapshot of a lower revision (one guarded write)."""
        if insert_once(self.enterprises, snapshot):
            return True
        fields = {k: v for k, v in snapshot.items() if k != "_id"}
        result = self.enterprises.update_one(
            {"_id": snapshot["_id"], "revision": {"$lt": int(snapshot["revision"])}},
            {"$set": fields},
        )
        return bool(result.modified_count)

    def enterprises_in(self, townships: Sequence[str]) -> list[dict[str, Any]]:
        """On the township index."""
        return list(
            self.enterprises.find({"township_code": {"$in": list(townships)}}, sort=[("_id", 1)])
        )

    # Suggestions ---------------------------------------------------------------------------

    def suggestion_by_id(self, suggestion_id: str) -> dict[str, Any] | None:
        """One suggestion by ``_id``."""
        doc = self.suggestions.find_one({"_id": suggestion_id})
        return dict(doc) if doc else None

    def record_suggestion(self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]) -> bool:
        """Insert once, carrying its event."""
        return insert_once(self.suggestions, new_document(doc, events))

    def pending_suggestions(self, incident_id: str) -> list[dict[str, Any]]:
        """On the incident_id index."""
        return list(self.suggestions.find({"incident_id": incident_id, "status": "pending"}))

    def supersede_suggestions(self, incident_id: str, keep_id: str) -> None:
        """Every other pending one of the incident."""
        self.suggestions.update_many(
            {"incident_id": incident_id, "status": "pending", "_id": {"$ne": keep_id}},
            {"$set": {"status": "superseded", "superseded_by": keep_id}},
        )

    def close_suggestion(self, suggestion_id: str, fields: Mapping[str, Any]) -> bool:
        """Guard: pending."""
        result = self.suggestions.update_one(
            {"_id": suggestion_id, "status": "pending"}, {"$set": dict(fields)}
        )
        return bool(result.matched_count)

    def suggestions_page(
        self, status: str | None, incident_id: str | None, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Sorted by (created_at, _id) descending."""
        selector: dict[str, Any] = {}
        if status:
            selector["status"] = status
        if incident_id:
            selector["incident_id"] = incident_id
        return page(
            self.suggestions,
            selector,
            sort_field="created_at",
            limit=limit,
            cursor=cursor,
            projection={OUTBOX: 0},
        )

    # Incident view -------------------------------------------------------------------------

    def incident(self, incident_id: str) -> dict[str, Any] | None:
        """The view of one incident."""
        doc = self.incidents.find_one({"_id": incident_id})
        return dict(doc) if doc else None

    def incidents_with_primaries(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Follows ``primary_id`` a few steps (merges chain rarely, and never in a loop)."""
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

    def merge_incident_event(
        self,
        incident_id: str,
        event_id: str,
        merge: Callable[[Mapping[str, Any] | None], Mapping[str, Any]],
    ) -> bool:
        """Revision-guarded merge recording the event id in the same write."""
        return merge_once(self.incidents, incident_id, event_id, merge)

    # Plumbing ------------------------------------------------------------------------------


def _target(record: Mapping[str, Any]) -> tuple[str, str]:
    """The kind and code of the target a delivery or receipt names."""
    target = target_of(record)
    return target.kind, target.code
