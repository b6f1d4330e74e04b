"""Information work on MongoDB (pymongo): events ride inside the documents, so an item, a
feedback or a missed flag and its events are one single-document insert."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pymongo.errors import DuplicateKeyError

from libs.common.events import EventEnvelope
from libs.common.outbox import OUTBOX_INDEXES, new_document, strip_internal
from libs.common.repository_tails import MongoRepositoryWithState
from services.reporting.information.repository import Counts, Period

ITEMS = "information_items"
FEEDBACK = "information_feedback"
MISSED = "information_missed"
STATE = "information_state"
ITEM_INDEXES: list[dict[str, Any]] = [
    {"keys": [("exercise", 1), ("month", 1), ("unit_kind", 1), ("unit_code", 1)]},
    {"keys": [("exercise", 1), ("week", 1), ("unit_kind", 1), ("unit_code", 1)]},
    *OUTBOX_INDEXES,
]
FEEDBACK_INDEXES: list[dict[str, Any]] = [
    {"keys": [("target_kind", 1), ("target_id", 1), ("recorded_at", 1)]},
    {"keys": [("exercise", 1), ("month", 1), ("date", 1)]},
    *OUTBOX_INDEXES,
]
MISSED_INDEXES: list[dict[str, Any]] = [{"keys": [("period", 1)]}, *OUTBOX_INDEXES]


class MongoInformationRepository(MongoRepositoryWithState):
    """InformationRepository on a MongoDB database (or mongomock's, in tests)."""

    INDEXES = {ITEMS: ITEM_INDEXES, FEEDBACK: FEEDBACK_INDEXES, MISSED: MISSED_INDEXES}
    EVENT_COLLECTIONS = (ITEMS, FEEDBACK, MISSED)
    STATE = STATE

    def __init__(self, db: Any) -> None:
        super().__init__(db)
        self.items = db[ITEMS]
        self.feedback = db[FEEDBACK]
        self.missed = db[MISSED]

    def item(self, item_id: str) -> dict[str, Any] | None:
        """One item by ``_id``, without outbox fields."""
        return strip_internal(self.items.find_one({"_id": item_id}))

    def _insert_once(
        self, collection: Any, doc: Mapping[str, Any], events: Sequence[EventEnvelope]
    ) -> bool:
        """One insert carrying its events; False when the id is taken."""
        try:
            collection.insert_one(new_document(doc, events))
        except DuplicateKeyError:
            return False
        return True

    def record_item(
        self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]
    ) -> tuple[dict[str, Any], bool]:
        """Insert once; an existing id returns the stored item."""
        if self._insert_once(self.items, doc, events):
            return dict(doc), True
        existing = self.item(doc["_id"])
        if existing is None:
            raise DuplicateKeyError(f"information item {doc['_id']} vanished")
        return existing, False

    def items_of_month(
        self, month: str, exercise: bool, unit_kind: str | None = None, unit_code: str | None = None
    ) -> list[dict[str, Any]]:
        """Equality on the month index, newest first."""
        selector: dict[str, Any] = {"exercise": exercise, "month": month}
        if unit_kind is not None:
            selector["unit_kind"] = unit_kind
        if unit_code is not None:
            selector["unit_code"] = unit_code
        rows = self.items.find(selector, sort=[("submitted_at", -1), ("_id", 1)])
        return [strip_internal(row) or {} for row in rows]

    def item_counts(self, period: Period, value: str) -> Counts:
        """$group by unit and kind over the week or month index (real items only)."""
        field = {"week": "week", "month": "month"}[period]
        rows = self.items.aggregate(
            [
                {"$match": {"exercise": False, field: value}},
                {
                    "$group": {
                        "_id": {"k": "$unit_kind", "c": "$unit_code", "t": "$kind"},
                        "n": {"$sum": 1},
                    }
                },
            ]
        )
        return {(r["_id"]["k"], r["_id"]["c"], r["_id"]["t"]): int(r["n"]) for r in rows}

    def record_feedback(
        self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]
    ) -> tuple[dict[str, Any], bool]:
        """Insert once; an existing id returns the stored feedback."""
        if self._insert_once(self.feedback, doc, events):
            return dict(doc), True
        existing = strip_internal(self.feedback.find_one({"_id": doc["_id"]}))
        if existing is None:
            raise DuplicateKeyError(f"feedback {doc['_id']} vanished")
        return existing, False

    def feedback_of_target(self, target_kind: str, target_id: str) -> list[dict[str, Any]]:
        """The target index, oldest first."""
        rows = self.feedback.find(
            {"target_kind": target_kind, "target_id": target_id},
            sort=[("recorded_at", 1), ("_id", 1)],
        )
        return [strip_internal(row) or {} for row in rows]

    def feedback_of_month(self, month: str, exercise: bool) -> list[dict[str, Any]]:
        """The month index, by date then id."""
        rows = self.feedback.find(
            {"exercise": exercise, "month": month}, sort=[("date", 1), ("_id", 1)]
        )
        return [strip_internal(row) or {} for row in rows]

    def record_missed(self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]) -> bool:
        """Insert once; a duplicate id means it was raised before."""
        return self._insert_once(self.missed, doc, events)

    def missed_of_period(self, period: str) -> list[dict[str, Any]]:
        """The period's flags, by id."""
        rows = self.missed.find({"period": period}, sort=[("_id", 1)])
        return [strip_internal(row) or {} for row in rows]
