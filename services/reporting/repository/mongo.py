"""Reporting on MongoDB (pymongo): events ride inside the document, so a change and its events are
one single-document write; counts are aggregated by the server."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from libs.common.clock import as_utc
from libs.common.events import EventEnvelope
from libs.common.idempotency import (
    IDEMPOTENCY,
    IDEMPOTENCY_INDEXES,
    apply_once,
    insert_once,
    merge_once,
)
from libs.common.outbox import (
    OUTBOX_INDEXES,
    new_document,
    with_events,
)
from libs.common.pagination import page
from libs.common.repository_tails import MongoRepository
from services.reporting.repository import (
    DEADLINES,
    DISPATCHES,
    DISPATCHES_UNDER_WAY,
    ENTERPRISE_NAMES,
    EXERCISE_ZERO_REPORTS,
    INCIDENTS,
    OUTBOX_COLLECTIONS,
    OVERDUE_FIELDS,
    PARKED,
    PLANS,
    REPORTS,
    SCAN_BATCH,
    STATE,
    STOCK_ALERTS,
    SUMMARIES,
    TIMELINE,
    WARNING_APPROVALS,
    WARNINGS,
    ZERO_CONFLICTS,
    ZERO_MISSED,
    ZERO_REPORTS,
    AuditFilter,
    ChainSlotTakenError,
    DeadlineFilter,
    DeadlineTally,
    FirstFollowup,
    Page,
    PlanMerge,
    ReportedIncident,
)

REAL = {"exercise": {"$ne": True}}
_DISARM = {"armed": None, "next_check_at": None}

INDEXES: dict[str, list[dict[str, Any]]] = {
    INCIDENTS: [
        {"keys": [("exercise", 1), ("reported_at", 1)]},
        {"keys": [("township_code", 1), ("exercise", 1), ("reported_at", 1)]},
        {"keys": [("township_code", 1), ("exercise", 1), ("occurred_at", 1)]},
        {"keys": [("status", 1), ("exercise", 1), ("grade", 1), ("reported_at", 1)]},
    ],
    REPORTS: [
        {"keys": [("chain_key", 1)], "unique": True, "name": "chain_key"},
        {"keys": [("incident_id", 1), ("seq", 1)], "unique": True, "name": "chain_seq"},
        {"keys": [("event_id", 1)]},
        {"keys": [("filed_at", 1)]},
        *IDEMPOTENCY_INDEXES,
        *OUTBOX_INDEXES,
    ],
    DEADLINES: [
        {"keys": [("armed", 1), ("next_check_at", 1)], "name": "scan"},
        {"keys": [("incident_id", 1), ("kind", 1), ("status", 1)]},
        {"keys": [("due_at", 1), ("_id", 1)]},
        {"keys": [("status", 1), ("due_at", 1), ("_id", 1)]},
        {"keys": [("township_code", 1), ("due_at", 1), ("_id", 1)]},
        {"keys": [("incident_id", 1), ("due_at", 1), ("_id", 1)]},
        {"keys": [("late", 1), ("met_at", 1)]},
        *OUTBOX_INDEXES,
    ],
    ZERO_REPORTS: [{"keys": [("date", 1), ("township_code", 1)]}, *OUTBOX_INDEXES],
    EXERCISE_ZERO_REPORTS: [{"keys": [("date", 1), ("township_code", 1)]}, *OUTBOX_INDEXES],
    ZERO_MISSED: [{"keys": [("date", 1)]}, *OUTBOX_INDEXES],
    ZERO_CONFLICTS: [
        {"keys": [("date", 1), ("attempted_at", 1)]},
        {"keys": [("attempted_at", 1)]},
        *OUTBOX_INDEXES,
    ],
    TIMELINE: [
        {"keys": [("incident_ids", 1), ("order_key", 1), ("_id", 1)]},
        {"keys": [("order_key", 1), ("_id", 1)]},
        {"keys": [("occurred_at", 1), ("_id", 1)]},
        {"keys": [("event_type", 1), ("order_key", 1)]},
        {"keys": [("source", 1), ("order_key", 1)]},
        {"keys": [("township_code", 1), ("order_key", 1)]},
    ],
    WARNINGS: [{"keys": [("ended_at", 1), ("issued_at", 1)]}],
    WARNING_APPROVALS: [{"keys": [("decision", 1), ("exercise", 1), ("requested_at", 1)]}],
    DISPATCHES: [{"keys": [("ordered_at", 1)]}, {"keys": [("status", 1), ("ordered_at", 1)]}],
    STOCK_ALERTS: [{"keys": [("at", 1)]}],
    PLANS: [{"keys": [("ended_at", 1), ("activated_at", 1)]}],
    PARKED: [{"keys": [("incident_id", 1), ("occurred_at", 1)]}],
    SUMMARIES: [{"keys": [("kind", 1), ("published_at", 1)]}, *OUTBOX_INDEXES],
}


def _plain(doc: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return dict(doc) if doc is not None else None


class MongoReportingRepository(MongoRepository):
    """ReportingRepository on a MongoDB database (or mongomock's, in tests)."""

    INDEXES = INDEXES
    EVENT_COLLECTIONS = OUTBOX_COLLECTIONS
    JOURNAL = True

    def __init__(self, db: Any) -> None:
        super().__init__(db)
        self.incidents = db[INCIDENTS]
        self.reports = db[REPORTS]
        self.deadlines = db[DEADLINES]
        self.zero_reports = db[ZERO_REPORTS]
        self.exercise_zero_reports = db[EXERCISE_ZERO_REPORTS]
        self.zero_missed = db[ZERO_MISSED]
        self.zero_conflicts = db[ZERO_CONFLICTS]
        self.states = db[STATE]
        self.timeline = db[TIMELINE]
        self.warnings = db[WARNINGS]
        self.approvals = db[WARNING_APPROVALS]
        self.dispatches = db[DISPATCHES]
        self.stock_alerts = db[STOCK_ALERTS]
        self.plans = db[PLANS]
        self.summaries = db[SUMMARIES]
        self.parked = db[PARKED]
        self.enterprise_names = db[ENTERPRISE_NAMES]

    # ------------------------------------------------------------ incidents

    def incident_view(self, incident_id: str) -> dict[str, Any] | None:
        """By ``_id``."""
        return _plain(self.incidents.find_one({"_id": incident_id}))

    def incident_titles(self, incident_ids: Sequence[str]) -> dict[str, str | None]:
        """``$in`` on ``_id``, titles only."""
        if not incident_ids:
            return {}
        rows = self.incidents.find(
            {"_id": {"$in": sorted(set(incident_ids))}}, projection={"title": 1}
        )
        return {row["_id"]: row.get("title") for row in rows}

    def record_incident_if_new(self, doc: Mapping[str, Any]) -> bool:
        """Insert once by ``_id``."""
        return insert_once(self.incidents, doc)

    def record_reported_incident(
        self,
        incident: Mapping[str, Any],
        initial: Mapping[str, Any],
        first_followup: FirstFollowup,
        timeline: Mapping[str, Any],
    ) -> ReportedIncident:
        """Four inserts once by ``_id`` in turn (each document whole on its own; a redelivery
        finishes what a crash between them left), the slot planned from the stored incident."""
        created = insert_once(self.incidents, incident)
        met = insert_once(self.deadlines, initial)
        followup = False
        current = self.incident_view(incident["_id"])
        if (
            current
            and current["status"] == "open"
            and not self.has_followup_deadline(current["_id"])
        ):
            slot = first_followup(current)
            followup = slot is not None and insert_once(self.deadlines, slot)
        entry = insert_once(self.timeline, timeline)
        return ReportedIncident(created, met, followup, entry)

    def set_grade_if_later(self, incident_id: str, grade: int, at: datetime) -> bool:
        """Guard: no grade time, or one not after ``at``."""
        result = self.incidents.update_one(
            {"_id": incident_id, "$or": [{"grade_at": None}, {"grade_at": {"$lte": at}}]},
            {"$set": {"grade": grade, "grade_at": at}},
        )
        return bool(result.matched_count)

    def add_regrade_once(self, incident_id: str, entry: Mapping[str, Any], event_id: str) -> bool:
        """``$push`` with the event id recorded in the same update."""
        return apply_once(
            self.incidents, {"_id": incident_id}, {"$push": {"regrades": dict(entry)}}, event_id
        )

    def set_incident_once(self, incident_id: str, fields: Mapping[str, Any], event_id: str) -> bool:
        """``$set`` with the event id recorded in the same update."""
        return apply_once(self.incidents, {"_id": incident_id}, {"$set": dict(fields)}, event_id)

    def take_report_figures(
        self,
        incident_id: str,
        seq: int,
        current: Mapping[str, Any],
        number: int,
        finalised_at: datetime | None,
    ) -> bool:
        """Guard: report_seq below ``seq``; ``$max`` on followup_count."""
        fields: dict[str, Any] = {"current": dict(current), "report_seq": seq}
        if finalised_at is not None:
            fields.update(finalised=True, finalised_at=finalised_at)
        result = self.incidents.update_one(
            {"_id": incident_id, "report_seq": {"$lt": seq}},
            {"$set": fields, "$max": {"followup_count": number}},
        )
        return bool(result.modified_count)

    def incidents_reported_between(
        self, start: datetime, end: datetime, *, late_only: bool = False
    ) -> list[dict[str, Any]]:
        """A range on (exercise, reported_at); merged duplicates filtered out of the range."""
        query: dict[str, Any] = {
            "exercise": False,
            "reported_at": {"$gte": start, "$lt": end},
            "status": {"$ne": "merged"},
        }
        if late_only:
            query["late"] = True
        return list(self.incidents.find(query, sort=[("reported_at", 1), ("_id", 1)]))

    def township_incidents_between(
        self, township_code: str, field: str, start: datetime, end: datetime
    ) -> list[str]:
        """A range on (township_code, exercise, field)."""
        rows = self.incidents.find(
            {"township_code": township_code, "exercise": False, field: {"$gte": start, "$lt": end}},
            sort=[(field, 1), ("_id", 1)],
            projection={"_id": 1},
        )
        return [row["_id"] for row in rows]

    def open_incidents_reported_before(self, end: datetime) -> list[dict[str, Any]]:
        """The open set."""
        return list(
            self.incidents.find(
                {"status": "open", "exercise": False, "reported_at": {"$lt": end}},
                sort=[("grade", 1), ("reported_at", 1), ("_id", 1)],
            )
        )

    def _count_by(self, collection: Any, match: Mapping[str, Any], key: str) -> dict[str, int]:
        rows = collection.aggregate(
            [{"$match": dict(match)}, {"$group": {"_id": f"${key}", "n": {"$sum": 1}}}]
        )
        return {row["_id"]: int(row["n"]) for row in rows}

    def incidents_reported_per_township(self, start: datetime, end: datetime) -> dict[str, int]:
        """``$group`` on the reported_at range."""
        return self._count_by(
            self.incidents,
            {"exercise": False, "reported_at": {"$gte": start, "$lt": end}},
            "township_code",
        )

    # ------------------------------------------------------------ reports

    def report_by_id(self, report_id: str) -> dict[str, Any] | None:
        """By ``_id``."""
        return _plain(self.reports.find_one({"_id": report_id}))

    def report_by_idempotency_scope(self, scope: str) -> dict[str, Any] | None:
        """By the unique sparse key index."""
        return _plain(self.reports.find_one({f"{IDEMPOTENCY}.key": scope}))

    def report_by_event_id(self, event_id: str) -> dict[str, Any] | None:
        """By the event_id index."""
        return _plain(self.reports.find_one({"event_id": event_id}))

    def final_report_filed(self, incident_id: str) -> bool:
        """By the unique chain key."""
        return self.reports.find_one({"chain_key": f"{incident_id}:final"}) is not None

    def last_report(self, incident_id: str) -> dict[str, Any] | None:
        """Highest seq."""
        rows = list(self.reports.find({"incident_id": incident_id}, sort=[("seq", -1)], limit=1))
        return dict(rows[0]) if rows else None

    def chain_of(self, incident_id: str) -> list[dict[str, Any]]:
        """In seq order, outbox left out."""
        rows = self.reports.find(
            {"incident_id": incident_id}, sort=[("seq", 1)], projection={"_outbox": 0}
        )
        return [dict(r) for r in rows]

    def record_report(
        self,
        doc: Mapping[str, Any],
        scope: str,
        digest: str,
        events: Sequence[EventEnvelope],
    ) -> tuple[dict[str, Any], bool]:
        """One insert carrying its events."""
        stamped = {**doc, IDEMPOTENCY: {"key": scope, "hash": digest}}
        try:
            self.reports.insert_one(new_document(stamped, events))
        except DuplicateKeyError:
            winner = self.report_by_idempotency_scope(scope)
            if winner is None:
                raise ChainSlotTakenError(doc["chain_key"]) from None
            return winner, False
        return stamped, True

    def claim_deadline_for_report(self, report_id: str, deadline_id: str) -> str | None:
        """Guard: no ``meets`` yet; either way the one it meets now."""
        self.reports.update_one(
            {"_id": report_id, "meets": {"$exists": False}}, {"$set": {"meets": deadline_id}}
        )
        claimed = (self.reports.find_one({"_id": report_id}) or {}).get("meets")
        return str(claimed) if claimed else None

    def note_report_meets(self, report_id: str, deadline_id: str, late: bool) -> bool | None:
        """Guard: no ``late`` yet (null or missing); then the stored one read back."""
        self.reports.update_one(
            {"_id": report_id, "late": None},
            {"$set": {"deadline_id": deadline_id, "deadline_ids": [deadline_id], "late": late}},
        )
        stored = self.reports.find_one({"_id": report_id}, projection={"late": 1})
        return None if stored is None or stored.get("late") is None else bool(stored["late"])

    def _not_merged(self) -> dict[str, Any]:
        """A filter leaving out what names a merged duplicate (the status index; few rows)."""
        return {"incident_id": {"$nin": self.incidents.distinct("_id", {"status": "merged"})}}

    def reports_filed_per_kind(self, start: datetime, end: datetime) -> dict[str, int]:
        """``$group`` on the filed_at range."""
        query = {**REAL, "filed_at": {"$gte": start, "$lt": end}, **self._not_merged()}
        return self._count_by(self.reports, query, "kind")

    def reports_filed_per_township(self, start: datetime, end: datetime) -> dict[str, int]:
        """``$group`` on the filed_at range."""
        return self._count_by(
            self.reports, {**REAL, "filed_at": {"$gte": start, "$lt": end}}, "township_code"
        )

    # ------------------------------------------------------------ deadlines

    def record_deadline_if_new(self, doc: Mapping[str, Any]) -> bool:
        """Insert once."""
        return insert_once(self.deadlines, doc)

    def deadline_by_id(self, deadline_id: str) -> dict[str, Any] | None:
        """By ``_id``."""
        return _plain(self.deadlines.find_one({"_id": deadline_id}))

    def has_followup_deadline(self, incident_id: str, status: str | None = None) -> bool:
        """On (incident_id, kind, status)."""
        query: dict[str, Any] = {"incident_id": incident_id, "kind": "followup"}
        if status is not None:
            query["status"] = status
        return self.deadlines.find_one(query) is not None

    def open_deadlines(self, incident_id: str) -> list[dict[str, Any]]:
        """Pending and overdue, by due time."""
        rows = self.deadlines.find(
            {"incident_id": incident_id, "status": {"$in": ["pending", "overdue"]}},
            sort=[("due_at", 1), ("_id", 1)],
        )
        return [dict(r) for r in rows]

    def pending_followups(self, incident_id: str) -> list[dict[str, Any]]:
        """On (incident_id, kind, status)."""
        return list(
            self.deadlines.find(
                {"incident_id": incident_id, "kind": "followup", "status": "pending"}
            )
        )

    def met_followup_dues(self, incident_id: str) -> set[datetime]:
        """On (incident_id, kind, status), the due times only."""
        rows = self.deadlines.find(
            {"incident_id": incident_id, "kind": "followup", "status": "met"},
            projection={"due_at": 1, "_id": 0},
        )
        return {as_utc(row["due_at"]) for row in rows}

    def end_deadlines(
        self, incident_id: str, kinds: Sequence[str], statuses: Mapping[str, str], reason: str
    ) -> int:
        """One ``update_many`` per status."""
        changed = 0
        for old, new in statuses.items():
            result = self.deadlines.update_many(
                {"incident_id": incident_id, "status": old, "kind": {"$in": list(kinds)}},
                {"$set": {"status": new, "cancel_reason": reason, **_DISARM}},
            )
            changed += result.modified_count
        return changed

    def cancel_superseded_escalations(self, incident_id: str, before: datetime, reason: str) -> int:
        """``update_many`` on pending escalations begun before ``before``."""
        result = self.deadlines.update_many(
            {
                "incident_id": incident_id,
                "kind": "escalation",
                "status": "pending",
                "window_start": {"$lt": before},
            },
            {"$set": {"status": "cancelled", "cancel_reason": reason, **_DISARM}},
        )
        return int(result.modified_count)

    def cancel_pending_deadline(self, deadline_id: str, reason: str) -> bool:
        """Guard: still pending."""
        result = self.deadlines.update_one(
            {"_id": deadline_id, "status": "pending"},
            {"$set": {"status": "cancelled", "cancel_reason": reason, **_DISARM}},
        )
        return bool(result.modified_count)

    def reset_final_deadline(self, deadline_id: str, grade: int, due_at: datetime) -> bool:
        """Guard: still pending."""
        result = self.deadlines.update_one(
            {"_id": deadline_id, "status": "pending"},
            {"$set": {"grade": grade, "due_at": due_at, "next_check_at": due_at}},
        )
        return bool(result.modified_count)

    def meet_deadline(self, deadline_id: str, met_at: datetime, report_id: str, late: bool) -> bool:
        """Guard: still pending or overdue."""
        result = self.deadlines.update_one(
            {"_id": deadline_id, "status": {"$in": ["pending", "overdue"]}},
            {
                "$set": {
                    "status": "met",
                    "met_at": met_at,
                    "met_by": report_id,
                    "late": late,
                    **_DISARM,
                }
            },
        )
        return bool(result.modified_count)

    def deadlines_due(self, now: datetime, limit: int = SCAN_BATCH) -> list[dict[str, Any]]:
        """A range on the scan index."""
        rows = self.deadlines.find(
            {"armed": True, "next_check_at": {"$lte": now}},
            sort=[("next_check_at", 1), ("_id", 1)],
            limit=limit,
        )
        return [dict(r) for r in rows]

    def mark_overdue(
        self, deadline_id: str, now: datetime, next_check_at: datetime, event: EventEnvelope
    ) -> bool:
        """Guard: still pending; the event inside the same update."""
        update = {
            "$set": {
                "status": "overdue",
                "escalation": 1,
                "overdue_at": now,
                "next_check_at": next_check_at,
            }
        }
        result = self.deadlines.update_one(
            {"_id": deadline_id, "status": "pending"}, with_events(update, [event])
        )
        return bool(result.modified_count)

    def mark_long_overdue(self, deadline_id: str, now: datetime, event: EventEnvelope) -> bool:
        """Guard: overdue at escalation 1; the event inside the same update."""
        update = {"$set": {"escalation": 2, "long_overdue_at": now, **_DISARM}}
        result = self.deadlines.update_one(
            {"_id": deadline_id, "status": "overdue", "escalation": 1},
            with_events(update, [event]),
        )
        return bool(result.modified_count)

    def disarm_deadline(self, deadline_id: str) -> None:
        """Plain ``$set``."""
        self.deadlines.update_one({"_id": deadline_id}, {"$set": dict(_DISARM)})

    def overdue_per_township(self) -> dict[str, int]:
        """``$group`` on the overdue set."""
        return self._count_by(self.deadlines, {"status": "overdue", **REAL}, "township_code")

    def deadlines_page(self, filters: DeadlineFilter, limit: int, cursor: str | None) -> Page:
        """Signed-cursor page on (due_at, _id)."""
        selector: dict[str, Any] = {}
        if filters.exercise is not None:
            selector["exercise"] = True if filters.exercise else {"$ne": True}
        for name in ("township_code", "status", "incident_id", "kind"):
            value = getattr(filters, name)
            if value is not None:
                selector[name] = value
        return page(
            self.deadlines,
            selector,
            sort_field="due_at",
            descending=False,
            limit=limit,
            cursor=cursor,
            projection={"_outbox": 0},
        )

    def late_deadlines_met_between(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """A range on met_at."""
        return list(
            self.deadlines.find(
                {
                    "met_at": {"$gte": start, "$lt": end},
                    "late": True,
                    "status": "met",
                    "kind": {"$ne": "initial"},
                    **REAL,
                    **self._not_merged(),
                },
                sort=[("met_at", 1), ("_id", 1)],
            )
        )

    def overdue_deadlines_due_before(self, end: datetime) -> list[dict[str, Any]]:
        """The overdue set by due time, projected to what a list shows."""
        return list(
            self.deadlines.find(
                {"status": "overdue", "due_at": {"$lt": end}, **REAL},
                sort=[("due_at", 1), ("_id", 1)],
                projection=dict.fromkeys(OVERDUE_FIELDS, 1),
            )
        )

    def deadline_tallies(self, start: datetime, end: datetime) -> dict[str, DeadlineTally]:
        """``$group`` per township on the due_at range."""
        met = {"$eq": ["$status", "met"]}
        late = {"$eq": ["$late", True]}
        later = {"$ne": ["$kind", "initial"]}

        def count(*conditions: Any) -> dict[str, Any]:
            return {"$sum": {"$cond": [{"$and": list(conditions)}, 1, 0]}}

        rows = self.deadlines.aggregate(
            [
                {
                    "$match": {
                        "due_at": {"$gte": start, "$lt": end},
                        "status": {"$ne": "cancelled"},
                        **REAL,
                    }
                },
                {
                    "$group": {
                        "_id": "$township_code",
                        "due": {"$sum": 1},
                        "on_time": count(met, {"$ne": ["$late", True]}),
                        "late": count(met, late),
                        "later_due": count(later),
                        "later_met": count(later, met),
                    }
                },
            ]
        )
        return {
            row["_id"]: DeadlineTally(
                row["due"], row["on_time"], row["late"], row["later_due"], row["later_met"]
            )
            for row in rows
        }

    # ------------------------------------------------------------ zero reports

    def record_zero_report(
        self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]
    ) -> tuple[dict[str, Any], bool]:
        """Insert once into the real or the drill collection."""
        collection = self.exercise_zero_reports if doc.get("exercise") else self.zero_reports
        try:
            collection.insert_one(new_document(doc, events))
        except DuplicateKeyError:
            return dict(collection.find_one({"_id": doc["_id"]}) or doc), False
        return dict(doc), True

    def zero_reports_of_day(self, day: date, *, exercise: bool = False) -> list[dict[str, Any]]:
        """On (date, township_code)."""
        collection = self.exercise_zero_reports if exercise else self.zero_reports
        return list(collection.find({"date": day.isoformat()}, sort=[("township_code", 1)]))

    def zero_reports_between(self, first: date, last: date) -> list[dict[str, Any]]:
        """A range on date."""
        return list(
            self.zero_reports.find(
                {"date": {"$gte": first.isoformat(), "$lte": last.isoformat()}},
                sort=[("date", 1), ("township_code", 1)],
            )
        )

    def record_missed_zero_report(
        self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]
    ) -> bool:
        """Insert once carrying its event."""
        return insert_once(self.zero_missed, new_document(doc, events))

    def missed_zero_reports_of_day(self, day: date) -> list[dict[str, Any]]:
        """On date."""
        return list(self.zero_missed.find({"date": day.isoformat()}))

    def record_contradiction(self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]) -> bool:
        """Insert once carrying its event."""
        return insert_once(self.zero_conflicts, new_document(doc, events))

    def contradictions_of_days(
        self, first: date, last: date, township_code: str | None = None, newest_first: bool = False
    ) -> list[dict[str, Any]]:
        """A range on date, sorted by the attempt."""
        selector: dict[str, Any] = {"date": {"$gte": first.isoformat(), "$lte": last.isoformat()}}
        if township_code:
            selector["township_code"] = township_code
        direction = -1 if newest_first else 1
        return list(
            self.zero_conflicts.find(
                selector, sort=[("attempted_at", direction), ("_id", direction)]
            )
        )

    def contradictions_attempted_between(
        self, start: datetime, end: datetime
    ) -> list[dict[str, Any]]:
        """A range on attempted_at."""
        return list(
            self.zero_conflicts.find(
                {"attempted_at": {"$gte": start, "$lt": end}},
                sort=[("attempted_at", 1), ("_id", 1)],
            )
        )

    # ------------------------------------------------------------ bookkeeping

    def state(self, key: str) -> dict[str, Any] | None:
        """By ``_id``."""
        return _plain(self.states.find_one({"_id": key}))

    def record_state_if_new(self, key: str, fields: Mapping[str, Any]) -> bool:
        """Insert once."""
        return insert_once(self.states, {"_id": key, **fields})

    def advance_cursor(self, key: str, field: str, value: str) -> bool:
        """Upsert; an existing cursor only moves forward."""
        try:
            result = self.states.update_one(
                {"_id": key, field: {"$not": {"$gte": value}}},
                {"$set": {field: value}},
                upsert=True,
            )
        except DuplicateKeyError:
            return False  # the cursor exists and is already there or beyond
        return bool(result.matched_count or result.upserted_id is not None)

    # ------------------------------------------------------------ timeline

    def record_timeline_entry(self, doc: Mapping[str, Any]) -> bool:
        """Insert once by event id."""
        return insert_once(self.timeline, doc)

    def has_timeline_entry(self, event_id: str) -> bool:
        """By ``_id``."""
        return self.timeline.find_one({"_id": event_id}, {"_id": 1}) is not None

    def timeline_page(self, incident_id: str, limit: int, cursor: str | None) -> Page:
        """Array membership on the multikey (incident_ids, order_key, _id) index."""
        return page(
            self.timeline,
            {"incident_ids": incident_id},
            sort_field="order_key",
            descending=False,
            limit=limit,
            cursor=cursor,
        )

    def audit_page(self, filters: AuditFilter, limit: int, cursor: str | None) -> Page:
        """Signed-cursor page on (order_key, _id)."""
        selector: dict[str, Any] = {}
        if filters.event_type:
            selector["event_type"] = filters.event_type
        if filters.source:
            selector["source"] = filters.source
        if filters.incident_id:
            selector["incident_ids"] = filters.incident_id
        if filters.township_code:
            selector["township_code"] = filters.township_code
        span: dict[str, Any] = {}
        if filters.occurred_from:
            span["$gte"] = filters.occurred_from
        if filters.occurred_before:
            span["$lt"] = filters.occurred_before
        if span:
            selector["occurred_at"] = span
        return page(
            self.timeline,
            selector,
            sort_field="order_key",
            descending=False,
            limit=limit,
            cursor=cursor,
        )

    def timeline_since(
        self, low: datetime, after: tuple[datetime, str] | None, limit: int
    ) -> list[dict[str, Any]]:
        """A range on (occurred_at, _id)."""
        query: dict[str, Any] = {"occurred_at": {"$gte": low}}
        if after is not None:
            query = {
                "$or": [
                    {"occurred_at": {"$gt": after[0]}},
                    {"occurred_at": after[0], "_id": {"$gt": after[1]}},
                ]
            }
        rows = self.timeline.find(query, sort=[("occurred_at", 1), ("_id", 1)], limit=limit)
        return [dict(r) for r in rows]

    # ------------------------------------------------------------ read models

    def warning_view(self, warning_id: str) -> dict[str, Any] | None:
        """By ``_id``."""
        return _plain(self.warnings.find_one({"_id": warning_id}))

    def keep_enterprise_name(
        self, enterprise_id: str, revision: int, name: str, exercise: bool = False
    ) -> bool:
        """Upsert guarded by a lower revision; a higher one stored makes the insert a duplicate."""
        try:
            result = self.enterprise_names.update_one(
                {"_id": enterprise_id, "revision": {"$lt": revision}},
                {"$set": {"revision": revision, "name": name, "exercise": exercise}},
                upsert=True,
            )
        except DuplicateKeyError:
            return False
        return bool(result.modified_count or result.upserted_id is not None)

    def enterprise_entry(self, enterprise_id: str) -> dict[str, Any] | None:
        """By ``_id``; a name kept before the flag was is a real enterprise's."""
        found = _plain(self.enterprise_names.find_one({"_id": enterprise_id}))
        return None if found is None else {**found, "exercise": bool(found.get("exercise"))}

    def apply_warning_version(
        self, warning_id: str, version: int, fields: Mapping[str, Any], event_id: str
    ) -> bool:
        """A stub first; then guarded by version, once per event."""
        insert_once(
            self.warnings,
            {
                "_id": warning_id,
                "version": 0,
                "status": "unknown",
                "issued_at": None,
                "ended_at": None,
            },
        )
        return apply_once(
            self.warnings,
            {"_id": warning_id, "version": {"$lte": version}},
            {"$set": dict(fields)},
            event_id,
        )

    def set_warning_issued_at_if_earlier(self, warning_id: str, at: datetime) -> None:
        """Guard: none yet, or a later one."""
        self.warnings.update_one(
            {"_id": warning_id, "$or": [{"issued_at": None}, {"issued_at": {"$gt": at}}]},
            {"$set": {"issued_at": at}},
        )

    def warnings_active_at(self, end: datetime) -> list[dict[str, Any]]:
        """Two ranges on (ended_at, issued_at)."""
        return list(
            self.warnings.find(
                {
                    "issued_at": {"$lt": end},
                    "$or": [{"ended_at": None}, {"ended_at": {"$gt": end}}],
                    **REAL,
                }
            )
        )

    def warning_approval(self, approval_id: str) -> dict[str, Any] | None:
        """By ``_id``."""
        return _plain(self.approvals.find_one({"_id": approval_id}))

    def _fill_once(self, stub: Mapping[str, Any], fields: Mapping[str, Any], unset: str) -> bool:
        """The stub inserted once, then ``fields`` set while ``unset`` is still null."""
        insert_once(self.approvals, stub)
        result = self.approvals.update_one(
            {"_id": stub["_id"], unset: None}, {"$set": dict(fields)}
        )
        return bool(result.matched_count)

    def record_approval_request(self, stub: Mapping[str, Any], fields: Mapping[str, Any]) -> bool:
        """Guard: no request time yet."""
        return self._fill_once(stub, fields, "requested_at")

    def record_approval_decision(self, stub: Mapping[str, Any], fields: Mapping[str, Any]) -> bool:
        """Guard: no decision yet."""
        return self._fill_once(stub, fields, "decision")

    def open_warning_approvals(self, exercise: bool) -> list[dict[str, Any]]:
        """The open set on the (decision, exercise, requested_at) index."""
        chosen = {"exercise": True} if exercise else REAL
        rows = self.approvals.find(
            {"decision": None, "requested_at": {"$ne": None}, **chosen},
            sort=[("requested_at", 1), ("_id", 1)],
        )
        return [dict(r) for r in rows]

    def dispatch_view(self, dispatch_id: str) -> dict[str, Any] | None:
        """By ``_id``."""
        return _plain(self.dispatches.find_one({"_id": dispatch_id}))

    def record_dispatch_if_new(self, doc: Mapping[str, Any]) -> bool:
        """Insert once."""
        return insert_once(self.dispatches, doc)

    def fill_dispatch_stub(self, dispatch_id: str, facts: Mapping[str, Any]) -> bool:
        """Guard: ordered_at not set."""
        result = self.dispatches.update_one(
            {"_id": dispatch_id, "ordered_at": None}, {"$set": dict(facts)}
        )
        return bool(result.modified_count)

    def advance_dispatch(
        self, dispatch_id: str, earlier: Sequence[str], status: str, at: datetime, event_id: str
    ) -> bool:
        """Guard: in an earlier status; once per event."""
        return apply_once(
            self.dispatches,
            {"_id": dispatch_id, "status": {"$in": list(earlier)}},
            {"$set": {"status": status, f"status_at.{status}": at}},
            event_id,
        )

    def dispatches_ordered_between(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """A range on ordered_at."""
        return list(
            self.dispatches.find(
                {"ordered_at": {"$gte": start, "$lt": end}, **REAL},
                sort=[("ordered_at", 1), ("_id", 1)],
            )
        )

    def dispatches_under_way(self) -> list[dict[str, Any]]:
        """``$in`` on status."""
        return list(
            self.dispatches.find(
                {"status": {"$in": list(DISPATCHES_UNDER_WAY)}, **REAL},
                sort=[("ordered_at", 1), ("_id", 1)],
            )
        )

    def record_stock_alert_if_new(self, doc: Mapping[str, Any]) -> bool:
        """Insert once."""
        return insert_once(self.stock_alerts, doc)

    def stock_alerts_between(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """A range on at."""
        return list(
            self.stock_alerts.find(
                {"at": {"$gte": start, "$lt": end}}, sort=[("at", 1), ("_id", 1)]
            )
        )

    def plan_view(self, plan_id: str) -> dict[str, Any] | None:
        """By ``_id``."""
        return _plain(self.plans.find_one({"_id": plan_id}))

    def merge_plan_event(self, plan_id: str, event_id: str, merge: PlanMerge) -> bool:
        """Revision-guarded fold (retried when another merge came between)."""
        return merge_once(self.plans, plan_id, event_id, merge)

    def plans_active_at(self, end: datetime) -> list[dict[str, Any]]:
        """Two ranges on (ended_at, activated_at)."""
        return list(
            self.plans.find(
                {
                    "activated_at": {"$lt": end},
                    "$or": [{"ended_at": None}, {"ended_at": {"$gt": end}}],
                    **REAL,
                }
            )
        )

    # ------------------------------------------------------------ early events

    def park_event_once(self, doc: Mapping[str, Any]) -> bool:
        """Insert once by event id."""
        return insert_once(self.parked, doc)

    def parked_events_of(self, incident_id: str) -> list[dict[str, Any]]:
        """On (incident_id, occurred_at)."""
        return list(
            self.parked.find({"incident_id": incident_id}, sort=[("occurred_at", 1), ("_id", 1)])
        )

    def unpark(self, event_id: str) -> None:
        """Delete by ``_id``."""
        self.parked.delete_one({"_id": event_id})

    # ------------------------------------------------------------ summaries

    def summary_by_id(self, ident: str) -> dict[str, Any] | None:
        """By ``_id``."""
        return _plain(self.summaries.find_one({"_id": ident}))

    def record_summary_once(self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]) -> bool:
        """Insert once carrying its event."""
        return insert_once(self.summaries, new_document(doc, events))

    # ------------------------------------------------------------ plumbing
