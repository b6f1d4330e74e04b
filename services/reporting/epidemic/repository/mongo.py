"""Epidemic reports on MongoDB (pymongo): events ride inside the documents, so a report or a
correction and its events are one single-document write."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pymongo.errors import DuplicateKeyError

from libs.common.events import EventEnvelope
from libs.common.outbox import (
    OUTBOX_INDEXES,
    new_document,
    strip_internal,
    with_events,
)
from libs.common.repository_tails import MongoRepositoryWithState

REPORTS = "epidemic_reports"
MISSED = "epidemic_missed"
STATE = "epidemic_state"
REPORT_INDEXES: list[dict[str, Any]] = [
    {"keys": [("exercise", 1), ("date", 1), ("township_code", 1), ("unit_id", 1)]},
    *OUTBOX_INDEXES,
]
MISSED_INDEXES: list[dict[str, Any]] = [{"keys": [("date", 1)]}, *OUTBOX_INDEXES]
ORDER = [("township_code", 1), ("unit_id", 1), ("disease_code", 1)]


class MongoEpidemicRepository(MongoRepositoryWithState):
    """EpidemicRepository on a MongoDB database (or mongomock's, in tests)."""

    INDEXES = {REPORTS: REPORT_INDEXES, MISSED: MISSED_INDEXES}
    EVENT_COLLECTIONS = (REPORTS, MISSED)
    STATE = STATE

    def __init__(self, db: Any) -> None:
        super().__init__(db)
        self.reports = db[REPORTS]
        self.missed = db[MISSED]

    def report(self, report_id: str) -> dict[str, Any] | None:
        """One report by ``_id``, without outbox fields."""
        return strip_internal(self.reports.find_one({"_id": report_id}))

    def record_report(
        self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]
    ) -> tuple[dict[str, Any], bool]:
        """One insert carrying its events; an existing id returns the stored report."""
        try:
            self.reports.insert_one(new_document(doc, events))
        except DuplicateKeyError:
            existing = self.report(doc["_id"])
            if existing is None:
                raise
            return existing, False
        return dict(doc), True

    def correct_report(
        self,
        report_id: str,
        version: int,
        fields: Mapping[str, Any],
        earlier: Mapping[str, Any],
        events: Sequence[EventEnvelope],
    ) -> bool:
        """Guard: still at ``version``."""
        update = {"$set": dict(fields), "$push": {"history": dict(earlier)}, "$inc": {"version": 1}}
        result = self.reports.update_one(
            {"_id": report_id, "version": version}, with_events(update, events)
        )
        return bool(result.matched_count)

    def reports_of_day(
        self, day: str, exercise: bool, township_code: str | None = None
    ) -> list[dict[str, Any]]:
        """Equality on the day index."""
        selector: dict[str, Any] = {"exercise": exercise, "date": day}
        if township_code is not None:
            selector["township_code"] = township_code
        rows = self.reports.find(selector, sort=ORDER)
        return [strip_internal(row) or {} for row in rows]

    def record_missed(self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]) -> bool:
        """Insert once; a duplicate id means it was raised before."""
        try:
            self.missed.insert_one(new_document(doc, events))
        except DuplicateKeyError:
            return False
        return True

    def missed_of_day(self, day: str) -> list[dict[str, Any]]:
        """The day's flags, by id."""
        rows = self.missed.find({"date": day}, sort=[("_id", 1)])
        return [strip_internal(row) or {} for row in rows]
