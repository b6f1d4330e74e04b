"""Dispatch on MongoDB (pymongo): events ride inside the document they concern, so a change and
its events are one single-document write, atomic on every deployment.

Without transactions an order is reserved step by step: written first as ``reserving``, each
team taken by one conditional update naming the order, each stock line by one conditional
``$inc`` that also pushes its ledger entry onto the line (``_ledger_pending``) and records the
entry id in ``_applied``; the entry is then copied to ``stock_ledger`` under its id and pulled
from the line (``finish_ledger_copies`` completes a copy a crash interrupted). On a shortfall the
use cases give back what was taken; an order stuck in ``reserving`` is repaired the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from libs.common.events import EventEnvelope
from libs.common.idempotency import (
    APPLIED,
    APPLIED_KEEP,
    IDEMPOTENCY,
    IDEMPOTENCY_INDEXES,
    apply_once,
    insert_idempotent,
    insert_once,
    merge_once,
)
from libs.common.outbox import (
    OUTBOX_INDEXES,
    new_document,
    strip_internal,
    with_events,
)
from libs.common.pagination import page
from libs.common.repository_tails import MongoRepository
from services.dispatch import domain
from services.dispatch.repository import (
    AssignmentFilter,
    DuplicateKeyTaken,
    LedgerFilter,
    Merge,
    OrderFilter,
    Page,
    Placement,
    PlanFilter,
    Shortfall,
    StockFilter,
    StockMove,
    TeamFilter,
)

TEAMS = "teams"
WAREHOUSES = "warehouses"
STOCK = "stock"
LEDGER = "stock_ledger"
ORDERS = "dispatches"
PLANS = "plans"
ASSIGNMENTS = "assignments"
INCIDENTS = "incidents"
WARNING_VIEWS = "warning_views"
MEETINGS = "joint_meetings"
OUTBOX_COLLECTIONS = (ORDERS, PLANS, ASSIGNMENTS, STOCK, MEETINGS)

LEDGER_PENDING = "_ledger_pending"
LEDGER_FLAG = "_ledger_flag"
RELEASE_PENDING = "_release_pending"
NOT_DRILL = {"$ne": True}
# Quantity against minimum; a missing figure counts as 0 (mongomock cannot compare a missing one).
_FIGURES = [{"$ifNull": ["$quantity", 0]}, {"$ifNull": ["$min_level", 0]}]
BELOW_MIN = {"$lt": _FIGURES}
AT_OR_ABOVE_MIN = {"$gte": _FIGURES}

INDEXES: dict[str, list[dict[str, Any]]] = {
    TEAMS: [
        {"keys": [("status", 1)]},
        {"keys": [("township_code", 1)]},
        {"keys": [("dispatch_id", 1)], "sparse": True},
        {"keys": [("standby_plan_id", 1)], "sparse": True},
        *IDEMPOTENCY_INDEXES,
    ],
    STOCK: [
        {"keys": [("warehouse_id", 1), ("item_code", 1)]},
        {"keys": [(LEDGER_FLAG, 1)], "sparse": True},
        *OUTBOX_INDEXES,
    ],
    LEDGER: [
        {"keys": [("at", -1)]},
        {"keys": [("warehouse_id", 1), ("item_code", 1), ("at", -1)]},
        {"keys": [("dispatch_id", 1)], "sparse": True},
    ],
    ORDERS: [
        {"keys": [("incident_id", 1), ("created_at", -1)]},
        {"keys": [("status", 1), ("reserve_deadline", 1)]},
        {"keys": [(RELEASE_PENDING, 1)], "sparse": True},
        {"keys": [("created_at", -1)]},
        *OUTBOX_INDEXES,
        *IDEMPOTENCY_INDEXES,
    ],
    PLANS: [
        {"keys": [("status", 1), ("activated_at", -1)]},
        {"keys": [("activated_at", -1)]},
        *OUTBOX_INDEXES,
        *IDEMPOTENCY_INDEXES,
    ],
    ASSIGNMENTS: [
        {"keys": [("status", 1), ("due_at", 1)]},
        {"keys": [("incident_id", 1)]},
        {"keys": [("created_at", -1)]},
        # One open assignment per dispute (一个口子入、一个口子出).
        {"keys": [("open_incident", 1)], "unique": True, "sparse": True},
        *OUTBOX_INDEXES,
        *IDEMPOTENCY_INDEXES,
    ],
    # A meeting's linked assignments (multikey), in meeting order.
    MEETINGS: [{"keys": [("assignment_ids", 1), ("held_on", 1), ("_id", 1)]}, *OUTBOX_INDEXES],
}


def _equal(**fields: Any) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if value is not None}


def _drills(exercise: bool | None) -> dict[str, Any]:
    if exercise is None:
        return {}
    return {"exercise": True if exercise else NOT_DRILL}


class MongoDispatchRepository(MongoRepository):
    """DispatchRepository on a MongoDB database (or mongomock's, in tests)."""

    INDEXES = INDEXES
    EVENT_COLLECTIONS = OUTBOX_COLLECTIONS
    JOURNAL = True

    def __init__(self, db: Any) -> None:
        super().__init__(db)
        self.teams = db[TEAMS]
        self.warehouses = db[WAREHOUSES]
        self.stock = db[STOCK]
        self.ledger = db[LEDGER]
        self.orders = db[ORDERS]
        self.plans = db[PLANS]
        self.assignments = db[ASSIGNMENTS]
        self.incidents = db[INCIDENTS]
        self.warning_views = db[WARNING_VIEWS]

    # Local views -------------------------------------------------------------------------------

    def incident_view(self, incident_id: str) -> dict[str, Any] | None:
        """By ``_id``."""
        return self.incidents.find_one({"_id": incident_id})

    def merge_incident_event(self, incident_id: str, event_id: str, merge: Merge) -> bool:
        """Revision-guarded merge (libs.common.idempotency.merge_once)."""
        return merge_once(self.incidents, incident_id, event_id, merge)

    def warning_view(self, warning_id: str) -> dict[str, Any] | None:
        """By ``_id``."""
        return self.warning_views.find_one({"_id": warning_id})

    def merge_warning_event(self, warning_id: str, event_id: str, merge: Merge) -> bool:
        """Revision-guarded merge."""
        return merge_once(self.warning_views, warning_id, event_id, merge)

    # Teams -------------------------------------------------------------------------------------

    def team(self, team_id: str) -> dict[str, Any] | None:
        """By ``_id``."""
        return self.teams.find_one({"_id": team_id})

    def teams_by_ids(self, team_ids: Sequence[str]) -> list[dict[str, Any]]:
        """``_id`` in the list."""
        return list(self.teams.find({"_id": {"$in": list(team_ids)}})) if team_ids else []

    def team_by_idempotency_scope(self, scope: str) -> dict[str, Any] | None:
        """Unique sparse index on the key."""
        return self.teams.find_one({f"{IDEMPOTENCY}.key": scope})

    def teams_page(self, filters: TeamFilter, limit: int, cursor: str | None) -> Page:
        """Ascending ``_id``; a capability matches array membership."""
        selector = _equal(
            status=filters.status,
            kind=filters.kind,
            township_code=filters.township_code,
            capabilities=filters.capability,
        )
        return page(
            self.teams, selector, sort_field="_id", descending=False, limit=limit, cursor=cursor
        )

    def dispatchable_teams(self) -> list[dict[str, Any]]:
        """Status available or standby."""
        return list(self.teams.find({"status": {"$in": list(domain.DISPATCHABLE_STATUSES)}}))

    def available_teams_with_any(self, capabilities: Sequence[str]) -> list[dict[str, Any]]:
        """Available, capabilities intersecting."""
        return list(
            self.teams.find({"status": "available", "capabilities": {"$in": list(capabilities)}})
        )

    def add_team_once(self, doc: Mapping[str, Any]) -> bool:
        """Insert; a taken ``_id`` is a no."""
        return insert_once(self.teams, doc)

    def add_team(
        self, doc: Mapping[str, Any], scope: str, digest: str
    ) -> tuple[dict[str, Any], bool]:
        """Insert stamped; the id taken by a team of another key is ``DuplicateKeyTaken``."""
        try:
            return insert_idempotent(self.teams, doc, scope, digest)
        except DuplicateKeyError as exc:
            raise DuplicateKeyTaken(doc["_id"]) from exc

    def change_team_if_status(
        self, team_id: str, status: str, fields: Mapping[str, Any], removed: Sequence[str]
    ) -> dict[str, Any] | None:
        """find_one_and_update guarded by the status read."""
        ops: dict[str, Any] = {"$set": dict(fields)}
        if removed:
            ops["$unset"] = dict.fromkeys(removed, "")
        result = self.teams.find_one_and_update(
            {"_id": team_id, "status": status}, ops, return_document=ReturnDocument.AFTER
        )
        return dict(result) if result is not None else None

    def take_team(self, team_id: str, order_id: str, now: datetime) -> bool:
        """One conditional update per dispatchable status (the held-from status is recorded)."""
        for status in domain.DISPATCHABLE_STATUSES:
            result = self.teams.update_one(
                {"_id": team_id, "status": status},
                {
                    "$set": {
                        "status": "deployed",
                        "dispatch_id": order_id,
                        "held_from": status,
                        "status_changed_at": now,
                    }
                },
            )
            if result.modified_count:
                return True
        return False

    def give_back_team(self, team_id: str, order_id: str, now: datetime) -> None:
        """Guarded by the order holding it."""
        team = self.teams.find_one({"_id": team_id, "dispatch_id": order_id})
        if team is None:
            return
        restored = team.get("held_from") or "available"
        unset = {"dispatch_id": "", "held_from": ""}
        if restored != "standby":
            unset["standby_plan_id"] = ""
        self.teams.update_one(
            {"_id": team_id, "dispatch_id": order_id},
            {"$set": {"status": restored, "status_changed_at": now}, "$unset": unset},
        )

    def release_order_teams(self, order_id: str, now: datetime) -> list[str]:
        """update_many on ``dispatch_id``."""
        ids = [row["_id"] for row in self.teams.find({"dispatch_id": order_id}, {"_id": 1})]
        if ids:
            self.teams.update_many(
                {"_id": {"$in": ids}, "dispatch_id": order_id},
                {
                    "$set": {"status": "available", "status_changed_at": now},
                    "$unset": {"dispatch_id": "", "held_from": "", "standby_plan_id": ""},
                },
            )
        return ids

    def put_on_standby(self, team_id: str, plan_id: str, now: datetime) -> bool:
        """Guarded by status available."""
        result = self.teams.update_one(
            {"_id": team_id, "status": "available"},
            {"$set": {"status": "standby", "standby_plan_id": plan_id, "status_changed_at": now}},
        )
        return bool(result.modified_count)

    def standby_teams_of(self, plan_id: str) -> list[str]:
        """Sorted ids."""
        rows = self.teams.find({"standby_plan_id": plan_id, "status": "standby"}, {"_id": 1})
        return sorted(row["_id"] for row in rows)

    def release_standby(self, plan_id: str, now: datetime) -> int:
        """update_many guarded by standby."""
        result = self.teams.update_many(
            {"standby_plan_id": plan_id, "status": "standby"},
            {
                "$set": {"status": "available", "status_changed_at": now},
                "$unset": {"standby_plan_id": ""},
            },
        )
        return int(result.modified_count)

    def standby_plan_ids(self) -> list[str]:
        """distinct over standby teams."""
        return [p for p in self.teams.distinct("standby_plan_id", {"status": "standby"}) if p]

    # Warehouses and stock ----------------------------------------------------------------------

    def warehouse(self, warehouse_id: str) -> dict[str, Any] | None:
        """By ``_id``."""
        return self.warehouses.find_one({"_id": warehouse_id})

    def add_warehouse_once(self, doc: Mapping[str, Any]) -> bool:
        """Insert unless present."""
        return insert_once(self.warehouses, doc)

    def warehouses_with_line_counts(self, limit: int) -> list[tuple[dict[str, Any], int]]:
        """One count per warehouse (few warehouses per county)."""
        rows = self.warehouses.find({}, sort=[("_id", 1)], limit=limit)
        return [(r, self.stock.count_documents({"warehouse_id": r["_id"]})) for r in rows]

    def stock_line(self, ident: str) -> dict[str, Any] | None:
        """By ``_id``."""
        return self.stock.find_one({"_id": ident})

    def add_stock_line_once(self, doc: Mapping[str, Any]) -> bool:
        """Insert unless present."""
        return insert_once(self.stock, doc)

    def set_stock_line_fields(self, ident: str, fields: Mapping[str, Any]) -> None:
        """$set."""
        self.stock.update_one({"_id": ident}, {"$set": dict(fields)})

    def stock_page(self, filters: StockFilter, limit: int, cursor: str | None) -> Page:
        """Ascending ``_id``; below the minimum by ``$expr``."""
        selector = _equal(warehouse_id=filters.warehouse_id, item_code=filters.item_code)
        if filters.below_min is not None:
            selector["$expr"] = BELOW_MIN if filters.below_min else AT_OR_ABOVE_MIN
        return page(
            self.stock, selector, sort_field="_id", descending=False, limit=limit, cursor=cursor
        )

    def take_stock(self, ident: str, quantity: float, entry: Mapping[str, Any]) -> StockMove:
        """Guarded ``$inc`` of ``-quantity``."""
        return self._move(ident, -quantity, entry)

    def release_stock(self, ident: str, quantity: float, entry: Mapping[str, Any]) -> StockMove:
        """``$inc`` of ``quantity``."""
        return self._move(ident, quantity, entry)

    def adjust_stock(self, ident: str, delta: float, entry: Mapping[str, Any]) -> StockMove:
        """Guarded ``$inc`` of ``delta``."""
        return self._move(ident, delta, entry)

    def _move(self, ident: str, delta: float, entry: Mapping[str, Any]) -> StockMove:
        """The quantity, the pending ledger entry and the applied id in one update."""
        entry_id = entry["_id"]
        selector: dict[str, Any] = {"_id": ident, APPLIED: {"$ne": entry_id}}
        if delta < 0:
            selector["quantity"] = {"$gte": -delta}
        after = self.stock.find_one_and_update(
            selector,
            {
                "$inc": {"quantity": delta, "seq": 1},
                "$push": {
                    LEDGER_PENDING: {**entry, "delta": delta},
                    APPLIED: {"$each": [entry_id], "$slice": -APPLIED_KEEP},
                },
                "$set": {LEDGER_FLAG: True, "updated_at": entry["at"]},
            },
            return_document=ReturnDocument.AFTER,
        )
        if after is None:
            current = self.stock.find_one({"_id": ident})
            if current is None:
                return StockMove("missing", None)
            if entry_id in (current.get(APPLIED) or []):
                return StockMove("duplicate", dict(current))
            return StockMove("short", dict(current))
        self._flush_ledger(ident, known={entry_id: (after["quantity"], after["seq"])})
        return StockMove("applied", dict(after))

    def _flush_ledger(
        self, ident: str, known: Mapping[str, tuple[float, int]] | None = None
    ) -> int:
        """Copy a line's pending ledger entries to the ledger collection, then drop them.

        ``known`` carries the figures (quantity after, sequence) of the entries this caller
        applied; another flush may have copied such an entry first without them, so they are
        filled in whether the entry was still pending or not.
        """
        line = self.stock.find_one({"_id": ident}, projection={LEDGER_PENDING: 1})
        pending = list((line or {}).get(LEDGER_PENDING) or [])
        for entry in pending:
            insert_once(self.ledger, {**entry, "quantity_after": None, "seq": None})
        for entry_id, (quantity_after, seq) in (known or {}).items():
            self.ledger.update_one(
                {"_id": entry_id, "quantity_after": None},
                {"$set": {"quantity_after": quantity_after, "seq": seq}},
            )
        if not pending:
            return 0
        ids = [entry["_id"] for entry in pending]
        self.stock.update_one({"_id": ident}, {"$pull": {LEDGER_PENDING: {"_id": {"$in": ids}}}})
        self.stock.update_one(
            {"_id": ident, LEDGER_PENDING: {"$size": 0}}, {"$unset": {LEDGER_FLAG: ""}}
        )
        return len(pending)

    def stock_entry_recorded(self, ident: str, entry_id: str) -> bool:
        """In the line's applied ids, or already copied to the ledger."""
        line = self.stock.find_one({"_id": ident}, projection={APPLIED: 1}) or {}
        if entry_id in (line.get(APPLIED) or []):
            return True
        return self.ledger.find_one({"_id": entry_id}, projection={"_id": 1}) is not None

    def ledger_entry(self, entry_id: str) -> dict[str, Any] | None:
        """By ``_id`` (after finishing the line's pending copies)."""
        return self.ledger.find_one({"_id": entry_id})

    def ledger_page(self, filters: LedgerFilter, limit: int, cursor: str | None) -> Page:
        """Newest first."""
        selector = _equal(
            warehouse_id=filters.warehouse_id,
            item_code=filters.item_code,
            dispatch_id=filters.dispatch_id,
            kind=filters.kind,
        )
        return page(self.ledger, selector, sort_field="at", limit=limit, cursor=cursor)

    def finish_ledger_copies(self) -> int:
        """Only lines flagged as having pending entries."""
        rows = self.stock.find({LEDGER_FLAG: True}, projection={"_id": 1})
        return sum(self._flush_ledger(row["_id"]) for row in rows)

    def mark_stock_low(self, ident: str, now: datetime, event: EventEnvelope) -> bool:
        """Guarded by not alerted and below the minimum."""
        result = self.stock.update_one(
            {
                "_id": ident,
                "low_alerted": {"$ne": True},
                "$expr": BELOW_MIN,
            },
            with_events({"$set": {"low_alerted": True, "low_since": now}}, [event]),
        )
        return bool(result.modified_count)

    def clear_stock_low(self, ident: str) -> None:
        """Guarded by alerted and recovered."""
        self.stock.update_one(
            {"_id": ident, "low_alerted": True, "$expr": AT_OR_ABOVE_MIN},
            {"$set": {"low_alerted": False}, "$unset": {"low_since": ""}},
        )

    def lines_low_unalerted(self) -> list[str]:
        """``$expr`` on quantity and minimum."""
        rows = self.stock.find(
            {"low_alerted": {"$ne": True}, "$expr": BELOW_MIN},
            projection={"_id": 1},
        )
        return [row["_id"] for row in rows]

    # Orders ------------------------------------------------------------------------------------

    def order(self, order_id: str) -> dict[str, Any] | None:
        """By ``_id``."""
        return self.orders.find_one({"_id": order_id})

    def order_by_idempotency_scope(self, scope: str) -> dict[str, Any] | None:
        """Unique sparse index on the key."""
        return self.orders.find_one({f"{IDEMPOTENCY}.key": scope})

    def orders_page(self, filters: OrderFilter, limit: int, cursor: str | None) -> Page:
        """Newest first; rejected ones only when asked for."""
        selector = _equal(incident_id=filters.incident_id, township_code=filters.township_code)
        selector.update(_drills(filters.exercise))
        selector["status"] = filters.status or {"$ne": "rejected"}
        return page(self.orders, selector, sort_field="created_at", limit=limit, cursor=cursor)

    def record_order(
        self, doc: Mapping[str, Any], scope: str, digest: str, events: Sequence[EventEnvelope]
    ) -> tuple[dict[str, Any], bool]:
        """One insert carrying its events."""
        return insert_idempotent(self.orders, new_document(doc, events), scope, digest)

    def place_order(
        self,
        order: Mapping[str, Any],
        scope: str,
        digest: str,
        takes: Sequence[Mapping[str, Any]],
        ordered: Mapping[str, Any],
        event: EventEnvelope,
    ) -> Placement:
        """Written as reserving, then team by team and line by line; committed with its event."""
        doc, created = insert_idempotent(self.orders, order, scope, digest)
        if not created:
            return Placement(doc, False)
        shortfall = self._reserve(doc, takes)
        if shortfall is not None:
            return Placement(doc, True, shortfall)
        fields = {k: v for k, v in ordered.items() if k != "history"}
        result = self.orders.update_one(
            {"_id": doc["_id"], "status": "reserving"},
            with_events(
                {"$set": fields, "$push": {"history": {"$each": list(ordered["history"])}}},
                [event],
            ),
        )
        if result.matched_count == 0:
            # The repair timer took the order for an interrupted one and released it.
            return Placement(doc, True, Shortfall("interrupted"))
        return Placement(self.order(doc["_id"]) or doc, True)

    def _reserve(
        self, order: Mapping[str, Any], takes: Sequence[Mapping[str, Any]]
    ) -> Shortfall | None:
        """Take the order's teams, then its lines; the first shortfall, or None."""
        now = order["created_at"]
        for index, team_id in enumerate(order["team_ids"]):
            if not self.take_team(team_id, order["_id"], now):
                team = self.team(team_id)
                return Shortfall("team", index, team_status=team["status"] if team else "unknown")
        for index, (line, entry) in enumerate(zip(order["resources"], takes, strict=True)):
            ident = f"{line['warehouse_id']}:{line['item_code']}"
            move = self.take_stock(ident, line["quantity"], entry)
            if move.outcome not in ("applied", "duplicate"):
                have = float(move.line["quantity"]) if move.line else 0.0
                return Shortfall("line", index, on_hand=have)
        return None

    def reject_order(
        self, order: Mapping[str, Any], rejection: Mapping[str, Any], now: datetime
    ) -> None:
        """Guarded by reserving; the key is dropped so a retry may succeed."""
        self.orders.update_one(
            {"_id": order["_id"], "status": "reserving"},
            {
                "$set": {"status": "rejected", "rejection": dict(rejection), "rejected_at": now},
                "$unset": {IDEMPOTENCY: ""},
            },
        )

    def step_order(
        self,
        order_id: str,
        status: str,
        fields: Mapping[str, Any],
        entry: Mapping[str, Any],
        event: EventEnvelope,
    ) -> bool:
        """Guarded by the status read."""
        result = self.orders.update_one(
            {"_id": order_id, "status": status},
            with_events({"$set": dict(fields), "$push": {"history": dict(entry)}}, [event]),
        )
        return bool(result.matched_count)

    def clear_release_pending(self, order_id: str) -> None:
        """$unset the flag."""
        self.orders.update_one({"_id": order_id}, {"$unset": {RELEASE_PENDING: ""}})

    def orders_left_reserving(self, before: datetime) -> list[dict[str, Any]]:
        """Reserving with a deadline before ``before``."""
        return list(self.orders.find({"status": "reserving", "reserve_deadline": {"$lt": before}}))

    def orders_releasing(self) -> list[str]:
        """Flagged orders."""
        return [r["_id"] for r in self.orders.find({RELEASE_PENDING: True}, projection={"_id": 1})]

    # Plans -------------------------------------------------------------------------------------

    def plan(self, plan_id: str) -> dict[str, Any] | None:
        """By ``_id``."""
        return self.plans.find_one({"_id": plan_id})

    def plan_by_idempotency_scope(self, scope: str) -> dict[str, Any] | None:
        """Unique sparse index on the key."""
        return self.plans.find_one({f"{IDEMPOTENCY}.key": scope})

    def plans_page(self, filters: PlanFilter, limit: int, cursor: str | None) -> Page:
        """Latest activation first; a township sees county-wide plans and plans naming it."""
        selector = _equal(
            status=filters.status,
            trigger_kind=filters.trigger_kind,
            incident_id=filters.incident_id,
            warning_id=filters.warning_id,
        )
        selector.update(_drills(filters.exercise))
        if filters.township is not None:
            selector["$or"] = [{"scope": "county"}, {"township_codes": filters.township}]
        return page(self.plans, selector, sort_field="activated_at", limit=limit, cursor=cursor)

    def record_plan(
        self,
        doc: Mapping[str, Any],
        events: Sequence[EventEnvelope],
        scope_key: tuple[str, str] | None,
    ) -> tuple[dict[str, Any], bool]:
        """Insert once per id (or per key)."""
        if scope_key is not None:
            return insert_idempotent(self.plans, new_document(doc, events), *scope_key)
        created = insert_once(self.plans, new_document(doc, events))
        return (dict(doc) if created else (self.plan(doc["_id"]) or dict(doc))), created

    def change_plan_level(
        self,
        plan_id: str,
        old_level: int,
        fields: Mapping[str, Any],
        entry: Mapping[str, Any],
        event: EventEnvelope,
        applied_id: str,
    ) -> bool:
        """apply_once guarded by active and the old level."""
        return apply_once(
            self.plans,
            {"_id": plan_id, "status": "active", "level": old_level},
            with_events({"$set": dict(fields), "$push": {"history": dict(entry)}}, [event]),
            applied_id,
        )

    def end_plan(
        self,
        plan_id: str,
        fields: Mapping[str, Any],
        entry: Mapping[str, Any],
        event: EventEnvelope,
        applied_id: str,
    ) -> bool:
        """apply_once guarded by active."""
        return apply_once(
            self.plans,
            {"_id": plan_id, "status": "active"},
            with_events({"$set": dict(fields), "$push": {"history": dict(entry)}}, [event]),
            applied_id,
        )

    # Assignments -------------------------------------------------------------------------------

    def assignment(self, assignment_id: str) -> dict[str, Any] | None:
        """By ``_id``."""
        return self.assignments.find_one({"_id": assignment_id})

    def assignment_by_idempotency_scope(self, scope: str) -> dict[str, Any] | None:
        """Unique sparse index on the key."""
        return self.assignments.find_one({f"{IDEMPOTENCY}.key": scope})

    def assignments_page(self, filters: AssignmentFilter, limit: int, cursor: str | None) -> Page:
        """Newest first."""
        selector = _equal(
            status=filters.status,
            incident_id=filters.incident_id,
            level=filters.level,
            township_code=filters.township_code,
            overdue=filters.overdue,
        )
        selector.update(_drills(filters.exercise))
        return page(self.assignments, selector, sort_field="created_at", limit=limit, cursor=cursor)

    def record_assignment(
        self, doc: Mapping[str, Any], scope: str, digest: str, events: Sequence[EventEnvelope]
    ) -> tuple[dict[str, Any], bool]:
        """Insert stamped; the unique ``open_incident`` index refuses a second open one."""
        try:
            return insert_idempotent(self.assignments, new_document(doc, events), scope, digest)
        except DuplicateKeyError as exc:
            raise DuplicateKeyTaken(doc["open_incident"]) from exc

    def change_assignment(
        self,
        assignment_id: str,
        version: int,
        fields: Mapping[str, Any],
        appends: Mapping[str, Sequence[Any]],
        removed: Sequence[str],
        events: Sequence[EventEnvelope],
    ) -> dict[str, Any] | None:
        """find_one_and_update guarded by the version."""
        update: dict[str, Any] = {"$inc": {"version": 1}}
        if fields:
            update["$set"] = dict(fields)
        if appends:
            update["$push"] = {name: {"$each": list(values)} for name, values in appends.items()}
        if removed:
            update["$unset"] = dict.fromkeys(removed, "")
        result = self.assignments.find_one_and_update(
            {"_id": assignment_id, "version": version},
            with_events(update, list(events)),
            return_document=ReturnDocument.AFTER,
        )
        return dict(result) if result is not None else None

    def close_assignments_of_incident(self, incident_id: str, closed_at: datetime) -> int:
        """update_many on the incident's open ones."""
        result = self.assignments.update_many(
            {"incident_id": incident_id, "status": {"$in": list(domain.OPEN_ASSIGNMENT_STATUSES)}},
            {"$set": {"status": "closed", "closed_at": closed_at}, "$unset": {"open_incident": ""}},
        )
        return int(result.modified_count)

    def assignments_past_due(self, now: datetime) -> list[dict[str, Any]]:
        """Open, due, not flagged."""
        return list(
            self.assignments.find(
                {
                    "status": {"$in": list(domain.OPEN_ASSIGNMENT_STATUSES)},
                    "due_at": {"$lte": now},
                    "overdue": False,
                }
            )
        )

    def mark_assignment_overdue(
        self, assignment_id: str, now: datetime, event: EventEnvelope
    ) -> bool:
        """Guarded by not flagged."""
        result = self.assignments.update_one(
            {"_id": assignment_id, "overdue": False},
            with_events({"$set": {"overdue": True, "overdue_at": now}}, [event]),
        )
        return bool(result.modified_count)

    # Figures and relay -------------------------------------------------------------------------

    def current_figures(self) -> dict[str, Any]:
        """A handful of indexed counts."""
        real = {"exercise": NOT_DRILL}
        open_selector = {"status": {"$in": list(domain.OPEN_ASSIGNMENT_STATUSES)}, **real}
        active = {"status": {"$in": list(domain.ACTIVE_ORDER_STATUSES)}, **real}
        return {
            "teams": {s: self.teams.count_documents({"status": s}) for s in domain.TEAM_STATUSES},
            "stock_below_min": self.stock.count_documents({"$expr": BELOW_MIN}),
            "orders_active": self.orders.count_documents(active),
            "plans_active": self.plans.count_documents({"status": "active", **real}),
            "assignments_open": self.assignments.count_documents(open_selector),
            "assignments_overdue": self.assignments.count_documents(
                {**open_selector, "overdue": True}
            ),
        }

    def joint_meeting(self, meeting_id: str) -> dict[str, Any] | None:
        """By ``_id``, without outbox fields."""
        return strip_internal(self.db[MEETINGS].find_one({"_id": meeting_id}))

    def record_joint_meeting(
        self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]
    ) -> tuple[dict[str, Any], bool]:
        """One insert carrying its events (the links are its ``assignment_ids``)."""
        try:
            self.db[MEETINGS].insert_one(new_document(doc, events))
        except DuplicateKeyError:
            return self.joint_meeting(doc["_id"]) or dict(doc), False
        return dict(doc), True

    def meetings_of_assignment(self, assignment_id: str) -> list[dict[str, Any]]:
        """Array membership on the multikey index."""
        rows = self.db[MEETINGS].find(
            {"assignment_ids": assignment_id}, sort=[("held_on", 1), ("_id", 1)]
        )
        return [strip_internal(r) or {} for r in rows]
