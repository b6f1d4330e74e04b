"""The enterprise register on MongoDB (pymongo): events ride inside the documents, so a change
and its ``enterprise_registered`` event are one single-document write guarded by the revision."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from libs.common.events import EventEnvelope
from libs.common.idempotency import IDEMPOTENCY_INDEXES
from libs.common.outbox import (
    OUTBOX_INDEXES,
    new_document,
    strip_internal,
    with_events,
)
from libs.common.pagination import page
from libs.common.repository_tails import MongoRepository
from services.dispatch.enterprises.repository import EnterpriseFilter, Page, TakenError

ENTERPRISES = "enterprises"
INSPECTIONS = "enterprise_inspections"
ENTERPRISE_INDEXES: list[dict[str, Any]] = [
    {"keys": [("credit_key", 1)], "unique": True, "name": "credit_key"},
    {"keys": [("exercise", 1), ("status", 1), ("risk_rank", 1), ("_id", 1)]},
    {"keys": [("township_code", 1), ("exercise", 1), ("status", 1), ("risk_rank", 1)]},
    *IDEMPOTENCY_INDEXES,
    *OUTBOX_INDEXES,
]
INSPECTION_INDEXES: list[dict[str, Any]] = [
    {"keys": [("enterprise_id", 1), ("date", -1)]},
    {"keys": [("rectified_on", 1), ("deadline", 1)]},
    *OUTBOX_INDEXES,
]
OPEN_FINDINGS: dict[str, Any] = {"rectified_on": None, "deadline": {"$ne": None}}


class MongoEnterpriseRepository(MongoRepository):
    """EnterpriseRepository on a MongoDB database (or mongomock's, in tests)."""

    INDEXES = {ENTERPRISES: ENTERPRISE_INDEXES, INSPECTIONS: INSPECTION_INDEXES}
    EVENT_COLLECTIONS = (ENTERPRISES, INSPECTIONS)

    def __init__(self, db: Any) -> None:
        super().__init__(db)
        self.enterprises = db[ENTERPRISES]
        self.inspections = db[INSPECTIONS]

    def enterprise(self, enterprise_id: str) -> dict[str, Any] | None:
        """By ``_id``, without outbox fields."""
        return strip_internal(self.enterprises.find_one({"_id": enterprise_id}))

    def enterprise_by_idempotency_scope(self, scope: str) -> dict[str, Any] | None:
        """The idempotency index (the stamp kept: a replay compares its body hash)."""
        found: dict[str, Any] | None = self.enterprises.find_one({"_idem.key": scope})
        return found

    def add_enterprise(
        self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]
    ) -> dict[str, Any]:
        """One insert carrying its events."""
        try:
            self.enterprises.insert_one(new_document(doc, events))
        except DuplicateKeyError as exc:
            raise TakenError(self._taken(doc)) from exc
        return dict(doc)

    def _taken(self, doc: Mapping[str, Any]) -> str:
        if self.enterprises.find_one({"_id": doc["_id"]}) is not None:
            return "id"
        idem = (doc.get("_idem") or {}).get("key")
        if idem and self.enterprise_by_idempotency_scope(idem) is not None:
            return "Idempotency-Key"
        return "credit_code"

    def change_enterprise(
        self,
        enterprise_id: str,
        revision: int,
        fields: Mapping[str, Any],
        events: Sequence[EventEnvelope],
    ) -> dict[str, Any] | None:
        """Guard: the revision read."""
        found = self.enterprises.find_one_and_update(
            {"_id": enterprise_id, "revision": revision},
            with_events({"$set": dict(fields)}, events),
            return_document=ReturnDocument.AFTER,
        )
        return strip_internal(found)

    def enterprises_page(self, filters: EnterpriseFilter, limit: int, cursor: str | None) -> Page:
        """(risk_rank, _id) ascending."""
        rows, nxt = page(
            self.enterprises,
            _selector(filters),
            sort_field="risk_rank",
            descending=False,
            limit=limit,
            cursor=cursor,
        )
        return [strip_internal(r) or {} for r in rows], nxt

    def enterprises_in(self, township_codes: Sequence[str] | None, exercise: bool) -> list[Any]:
        """Active, by risk then id."""
        selector: dict[str, Any] = {"status": "active"}
        if not exercise:
            selector["exercise"] = {"$ne": True}
        if township_codes is not None:
            selector["township_code"] = {"$in": list(township_codes)}
        rows = self.enterprises.find(selector, sort=[("risk_rank", 1), ("_id", 1)])
        return [strip_internal(r) or {} for r in rows]

    def add_inspection(self, doc: Mapping[str, Any]) -> bool:
        """Insert once."""
        try:
            self.inspections.insert_one(dict(doc))
        except DuplicateKeyError:
            return False
        return True

    def inspection(self, inspection_id: str) -> dict[str, Any] | None:
        """By ``_id``."""
        return strip_internal(self.inspections.find_one({"_id": inspection_id}))

    def rectify(self, inspection_id: str, fields: Mapping[str, Any]) -> dict[str, Any] | None:
        """Guard: findings still open."""
        found = self.inspections.find_one_and_update(
            {"_id": inspection_id, **OPEN_FINDINGS},
            {"$set": dict(fields)},
            return_document=ReturnDocument.AFTER,
        )
        return strip_internal(found)

    def inspections_of(self, enterprise_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The enterprise index."""
        rows = self.inspections.find(
            {"enterprise_id": {"$in": list(enterprise_ids)}}, sort=[("date", -1), ("_id", -1)]
        )
        return [strip_internal(r) or {} for r in rows]

    def inspections_past_due(self, today: str) -> list[dict[str, Any]]:
        """Open, deadline before today, not flagged."""
        selector = {
            "rectified_on": None,
            "deadline": {"$ne": None, "$lt": today},
            "overdue_flagged": {"$ne": True},
        }
        rows = self.inspections.find(selector, sort=[("_id", 1)])
        return [strip_internal(r) or {} for r in rows]

    def mark_overdue(self, inspection_id: str, now: datetime, event: EventEnvelope) -> bool:
        """Guarded by not flagged; the event rides in the same update."""
        result = self.inspections.update_one(
            {"_id": inspection_id, "overdue_flagged": {"$ne": True}},
            with_events({"$set": {"overdue_flagged": True, "overdue_at": now}}, [event]),
        )
        return bool(result.modified_count)

    def figures(self, today: str) -> dict[str, Any]:
        """Counts on the indexes."""
        rows = self.enterprises.aggregate(
            [
                {"$match": {"exercise": {"$ne": True}, "status": "active"}},
                {"$group": {"_id": "$risk_level", "n": {"$sum": 1}}},
            ]
        )
        overdue = self.inspections.count_documents(
            {
                "rectified_on": None,
                "deadline": {"$ne": None, "$lt": today},
                "exercise": {"$ne": True},
            }
        )
        return {"enterprises": {r["_id"]: r["n"] for r in rows}, "overdue": overdue}


def _selector(filters: EnterpriseFilter) -> dict[str, Any]:
    selector: dict[str, Any] = (
        {"exercise": True} if filters.exercise else {"exercise": {"$ne": True}}
    )
    for name in ("township_code", "risk_level", "status"):
        value = getattr(filters, name)
        if value is not None:
            selector[name] = value
    if filters.hazard_type is not None:
        selector["hazard_types"] = filters.hazard_type
    return selector
