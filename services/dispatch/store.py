"""The dispatch service's collections, indexes and every write that must be atomic.

Consistency without transactions:
- A team is reserved by one conditional update (``status in (available, standby)`` → ``deployed``
  with the holding order's id on the team), so two orders can never both take it.
- A stock line changes by one conditional ``$inc`` (``quantity >= taken``), which also pushes
  the ledger entry onto the line's ``_ledger_pending`` array and records the entry id in
  ``_applied``: the quantity and its ledger entry are one single-document write, and applying
  the same entry twice is impossible. The entry is then copied to the ``stock_ledger``
  collection under its deterministic id and pulled from the line (a timer finishes the copy
  after a crash; reading the ledger finishes it first), so no quantity change is ever visible
  without its ledger entry.
- A drill (演练, ``exercise``) order or plan reserves nothing: it records what it would have
  taken (``simulated``, ``simulated_standby``) read from the real roster and stock, and never
  changes a team, a stock line or the ledger.
- A dispatch order is written first, in state ``reserving`` with the planned teams and lines;
  each reservation names the order; on any failure what was taken is given back
  (compensation). An order stuck in ``reserving`` (the process died mid-order) is repaired by
  a timer the same way, so nothing stays reserved.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pymongo import ReturnDocument

from libs.common.clock import as_utc
from libs.common.errors import ApiError
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
from libs.common.outbox import new_document, with_events
from libs.common.service import ServiceContext
from libs.common.store import ensure_indexes
from services.dispatch import config, domain, events

TEAMS = "teams"
WAREHOUSES = "warehouses"
STOCK = "stock"
LEDGER = "stock_ledger"
ORDERS = "dispatches"
PLANS = "plans"
ASSIGNMENTS = "assignments"
INCIDENTS = "incidents"
WARNING_VIEWS = "warning_views"
OUTBOX_COLLECTIONS = (ORDERS, PLANS, ASSIGNMENTS, STOCK)

LEDGER_PENDING = "_ledger_pending"
LEDGER_FLAG = "_ledger_flag"
RELEASE_PENDING = "_release_pending"


def line_id(warehouse_id: str, item_code: str) -> str:
    """The ``_id`` of a stock line."""
    return f"{warehouse_id}:{item_code}"


class ConflictError(ApiError):
    """409 naming the field at fault."""

    def __init__(self, code: str, message: str, path: str | None = None) -> None:
        fields = [{"path": path, "reason": message}] if path else []
        super().__init__(409, code, message, fields=fields)


class DispatchStore:
    """Every read and write of the dispatch service."""

    def __init__(
        self,
        ctx: ServiceContext,
        table: domain.CapabilityTable | None = None,
        rules: domain.Rules | None = None,
    ) -> None:
        self.ctx = ctx
        self.clock = ctx.clock
        self.table = table or config.load_capabilities()
        self.rules = rules or config.load_rules()
        db = ctx.db
        self.teams = db[TEAMS]
        self.warehouses = db[WAREHOUSES]
        self.stock = db[STOCK]
        self.ledger = db[LEDGER]
        self.orders = db[ORDERS]
        self.plans = db[PLANS]
        self.assignments = db[ASSIGNMENTS]
        self.incidents = db[INCIDENTS]
        self.warning_views = db[WARNING_VIEWS]

    def now(self) -> datetime:
        """The service clock."""
        return as_utc(self.clock.now())

    # -----------------------------------------------------------------------------------------
    # Setup

    def ensure_indexes(self) -> None:
        """Indexes for every query the API and the timers make."""
        ensure_indexes(
            self.teams,
            [
                {"keys": [("status", 1)]},
                {"keys": [("township_code", 1)]},
                {"keys": [("dispatch_id", 1)], "sparse": True},
                {"keys": [("standby_plan_id", 1)], "sparse": True},
                *IDEMPOTENCY_INDEXES,
            ],
        )
        ensure_indexes(self.stock, [{"keys": [("warehouse_id", 1), ("item_code", 1)]}])
        ensure_indexes(self.stock, [{"keys": [(LEDGER_FLAG, 1)], "sparse": True}])
        ensure_indexes(
            self.ledger,
            [
                {"keys": [("at", -1)]},
                {"keys": [("warehouse_id", 1), ("item_code", 1), ("at", -1)]},
                {"keys": [("dispatch_id", 1)], "sparse": True},
            ],
        )
        ensure_indexes(
            self.orders,
            [
                {"keys": [("incident_id", 1), ("created_at", -1)]},
                {"keys": [("status", 1), ("reserve_deadline", 1)]},
                {"keys": [(RELEASE_PENDING, 1)], "sparse": True},
                {"keys": [("created_at", -1)]},
            ],
        )
        ensure_indexes(
            self.plans,
            [{"keys": [("status", 1), ("activated_at", -1)]}, {"keys": [("activated_at", -1)]}],
        )
        ensure_indexes(
            self.assignments,
            [
                {"keys": [("status", 1), ("due_at", 1)]},
                {"keys": [("incident_id", 1)]},
                {"keys": [("created_at", -1)]},
                # One open assignment per dispute (一个口子入、一个口子出).
                {"keys": [("open_incident", 1)], "unique": True, "sparse": True},
            ],
        )

    def seed_from_county(self) -> dict[str, int]:
        """Insert the county file's teams, warehouses and stock lines that are missing.

        Existing documents are never overwritten: a restart must not reset live quantities or
        statuses (a team out on an order stays deployed).
        """
        now = self.now()
        counts = {"teams": 0, "warehouses": 0, "stock": 0}
        for team in self.ctx.county.teams:
            doc = {
                "_id": team.id,
                "name": team.name,
                "kind": team.kind,
                "capabilities": list(team.capabilities),
                "township_code": team.township_code,
                "headcount": team.headcount,
                "contact": team.contact.model_dump(),
                "status": team.status
                if team.status in domain.MANUAL_TEAM_STATUSES
                else "available",
                "source": "county_file",
                "created_at": now,
                "updated_at": now,
                "status_changed_at": now,
            }
            counts["teams"] += insert_once(self.teams, doc)
        for warehouse in self.ctx.county.warehouses:
            counts["warehouses"] += insert_once(
                self.warehouses,
                {
                    "_id": warehouse.id,
                    "name": warehouse.name,
                    "township_code": warehouse.township_code,
                    "source": "county_file",
                    "created_at": now,
                },
            )
            for item in warehouse.stock:
                counts["stock"] += insert_once(
                    self.stock,
                    self.new_line(
                        warehouse.id, item.item_code, item.name, item.unit, item.min_level, now
                    )
                    | {"quantity": float(item.quantity), "source": "county_file"},
                )
        return counts

    @staticmethod
    def new_line(
        warehouse_id: str, item_code: str, name: str, unit: str, min_level: float, now: datetime
    ) -> dict[str, Any]:
        return {
            "_id": line_id(warehouse_id, item_code),
            "warehouse_id": warehouse_id,
            "item_code": item_code,
            "name": name,
            "unit": unit,
            "quantity": 0.0,
            "min_level": float(min_level),
            "seq": 0,
            "low_alerted": False,
            "created_at": now,
            "updated_at": now,
        }

    # -----------------------------------------------------------------------------------------
    # Incidents (local view from intake's events)

    def incident(self, incident_id: str) -> dict[str, Any] | None:
        """The local copy of an incident, once its category is known (what the API may show)."""
        return self.incidents.find_one({"_id": incident_id, "category": {"$ne": None}})

    def incident_view(self, incident_id: str) -> dict[str, Any] | None:
        """Whatever the incident's events have said so far (possibly only a close)."""
        return self.incidents.find_one({"_id": incident_id})

    def merge_incident_event(
        self,
        incident_id: str,
        event_id: str,
        merge: Callable[[Mapping[str, Any] | None], Mapping[str, Any]],
    ) -> bool:
        """Fold one incident event into the local view (created if absent), once per event."""
        return merge_once(self.incidents, incident_id, event_id, merge)

    def warning_view(self, warning_id: str) -> dict[str, Any] | None:
        """What the warning's events have said so far."""
        return self.warning_views.find_one({"_id": warning_id})

    def merge_warning_event(
        self,
        warning_id: str,
        event_id: str,
        merge: Callable[[Mapping[str, Any] | None], Mapping[str, Any]],
    ) -> bool:
        """Fold one warning event into the local view (created if absent), once per event."""
        return merge_once(self.warning_views, warning_id, event_id, merge)

    # -----------------------------------------------------------------------------------------
    # Teams

    def team(self, team_id: str) -> dict[str, Any] | None:
        """A team by id."""
        return self.teams.find_one({"_id": team_id})

    def dispatchable_teams(self) -> list[domain.TeamView]:
        """Teams that may be sent now (available or on standby)."""
        rows = self.teams.find({"status": {"$in": list(domain.DISPATCHABLE_STATUSES)}})
        return [team_view(row) for row in rows]

    def create_team(
        self, doc: Mapping[str, Any], scope: str, digest: str
    ) -> tuple[dict[str, Any], bool]:
        """Insert a team; 409 when its id is taken by another team."""
        from pymongo.errors import DuplicateKeyError

        try:
            return insert_idempotent(self.teams, doc, scope, digest)
        except DuplicateKeyError as exc:
            raise ConflictError("team_exists", f"team {doc['_id']} already exists", "id") from exc

    def patch_team(self, team_id: str, changes: Mapping[str, Any], by: str) -> dict[str, Any]:
        """Change a team's roster fields or its manual status, never under a running order."""
        for _ in range(5):
            current = self.team(team_id)
            if current is None:
                raise ApiError(404, "not_found", f"team {team_id} not found")
            update: dict[str, Any] = {**changes, "updated_at": self.now(), "updated_by": by}
            wanted = changes.get("status")
            if wanted is not None and wanted != current["status"]:
                reason = domain.manual_status_change_error(current["status"], wanted)
                if reason:
                    raise ConflictError("invalid_team_status", reason, "status")
                update["status_changed_at"] = self.now()
            unset: dict[str, str] = {}
            if wanted is not None and wanted != "standby":
                unset["standby_plan_id"] = ""
            ops: dict[str, Any] = {"$set": update}
            if unset:
                ops["$unset"] = unset
            # Conditional on the status read, so a concurrent order is never overwritten.
            result = self.teams.find_one_and_update(
                {"_id": team_id, "status": current["status"]},
                ops,
                return_document=ReturnDocument.AFTER,
            )
            if result is not None:
                return dict(result)
        raise ConflictError("concurrent_change", f"team {team_id} keeps changing; try again")

    def reserve_team(self, team_id: str, order_id: str) -> bool:
        """Take a team for an order if it is available or on standby (one atomic update)."""
        now = self.now()
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

    def unreserve_team(self, team_id: str, order_id: str) -> None:
        """Give a team back as it was before the order took it (compensation; idempotent)."""
        team = self.teams.find_one({"_id": team_id, "dispatch_id": order_id})
        if team is None:
            return
        restored = team.get("held_from") or "available"
        update: dict[str, Any] = {
            "$set": {"status": restored, "status_changed_at": self.now()},
            "$unset": {"dispatch_id": "", "held_from": ""},
        }
        if restored != "standby":
            update["$unset"]["standby_plan_id"] = ""
        self.teams.update_one({"_id": team_id, "dispatch_id": order_id}, update)

    def release_order_teams(self, order_id: str) -> list[str]:
        """After an order is released its teams are available again (idempotent)."""
        held = self.teams.find({"dispatch_id": order_id}, projection={"_id": 1})
        ids = [row["_id"] for row in held]
        if ids:
            self.teams.update_many(
                {"_id": {"$in": ids}, "dispatch_id": order_id},
                {
                    "$set": {"status": "available", "status_changed_at": self.now()},
                    "$unset": {"dispatch_id": "", "held_from": "", "standby_plan_id": ""},
                },
            )
        return ids

    # -----------------------------------------------------------------------------------------
    # Stock

    def line(self, warehouse_id: str, item_code: str) -> dict[str, Any] | None:
        """A stock line."""
        return self.stock.find_one({"_id": line_id(warehouse_id, item_code)})

    def create_line(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """Add an item to a warehouse; 409 when the line exists."""
        if not insert_once(self.stock, doc):
            raise ConflictError(
                "stock_line_exists",
                f"{doc['item_code']} already kept in {doc['warehouse_id']}",
                "item_code",
            )
        return dict(doc)

    def set_line_fields(self, warehouse_id: str, item_code: str, fields: Mapping[str, Any]) -> None:
        """Change a line's name, unit or minimum level (not its quantity)."""
        self.stock.update_one(
            {"_id": line_id(warehouse_id, item_code)},
            {"$set": {**fields, "updated_at": self.now()}},
        )
        self.reconcile_low(line_id(warehouse_id, item_code))

    def change_stock(
        self,
        warehouse_id: str,
        item_code: str,
        delta: float,
        *,
        entry_id: str,
        reason: str,
        kind: str,
        by: str,
        dispatch_id: str | None = None,
        correlation_id: str | None = None,
        body_hash: str | None = None,
    ) -> tuple[str, dict[str, Any] | None]:
        """Add ``delta`` to a line unless it would go negative; one atomic write with its ledger
        entry. Returns ``(outcome, line)`` with outcome ``applied``, ``duplicate`` (this entry
        was applied before), ``short`` or ``missing``.
        """
        ident = line_id(warehouse_id, item_code)
        now = self.now()
        entry = {
            "_id": entry_id,
            "warehouse_id": warehouse_id,
            "item_code": item_code,
            "delta": delta,
            "reason": reason,
            "kind": kind,
            "by": by,
            "at": now,
            "dispatch_id": dispatch_id,
        }
        if body_hash:
            entry["body_hash"] = body_hash
        selector: dict[str, Any] = {"_id": ident, APPLIED: {"$ne": entry_id}}
        if delta < 0:
            selector["quantity"] = {"$gte": -delta}
        after = self.stock.find_one_and_update(
            selector,
            {
                "$inc": {"quantity": delta, "seq": 1},
                "$push": {
                    LEDGER_PENDING: entry,
                    APPLIED: {"$each": [entry_id], "$slice": -APPLIED_KEEP},
                },
                "$set": {LEDGER_FLAG: True, "updated_at": now},
            },
            return_document=ReturnDocument.AFTER,
        )
        if after is None:
            current = self.stock.find_one({"_id": ident})
            if current is None:
                return "missing", None
            if entry_id in (current.get(APPLIED) or []):
                return "duplicate", dict(current)
            return "short", dict(current)
        self.flush_ledger(ident, known={entry_id: (after["quantity"], after["seq"])})
        self.reconcile_low(ident, correlation_id)
        return "applied", dict(after)

    def flush_ledger(self, ident: str, known: Mapping[str, tuple[float, int]] | None = None) -> int:
        """Copy a line's pending ledger entries to the ledger collection, then drop them."""
        line = self.stock.find_one({"_id": ident}, projection={LEDGER_PENDING: 1})
        pending = list((line or {}).get(LEDGER_PENDING) or [])
        if not pending:
            return 0
        known = known or {}
        for entry in pending:
            quantity_after, seq = known.get(entry["_id"], (None, None))
            row = {**entry, "quantity_after": quantity_after, "seq": seq}
            if not insert_once(self.ledger, row) and quantity_after is not None:
                # Another flush copied it first without the figure we know: fill it in.
                self.ledger.update_one(
                    {"_id": entry["_id"], "quantity_after": None},
                    {"$set": {"quantity_after": quantity_after, "seq": seq}},
                )
        ids = [entry["_id"] for entry in pending]
        self.stock.update_one({"_id": ident}, {"$pull": {LEDGER_PENDING: {"_id": {"$in": ids}}}})
        self.stock.update_one(
            {"_id": ident, LEDGER_PENDING: {"$size": 0}}, {"$unset": {LEDGER_FLAG: ""}}
        )
        return len(pending)

    def flush_all_ledgers(self) -> int:
        """Finish every interrupted ledger copy (cheap: only flagged lines)."""
        rows = self.stock.find({LEDGER_FLAG: True}, projection={"_id": 1})
        return sum(self.flush_ledger(row["_id"]) for row in rows)

    def reconcile_low(self, ident: str, correlation_id: str | None = None) -> bool:
        """Emit ``stock_low`` once when a line is below its minimum; re-arm when it recovers."""
        line = self.stock.find_one({"_id": ident})
        if line is None:
            return False
        below = {"$expr": {"$lt": ["$quantity", "$min_level"]}}
        if line["quantity"] < line["min_level"] and not line.get("low_alerted"):
            event = events.stock_low(self.clock, line, correlation_id)
            result = self.stock.update_one(
                {"_id": ident, "low_alerted": {"$ne": True}, **below},
                with_events({"$set": {"low_alerted": True, "low_since": self.now()}}, [event]),
            )
            if result.modified_count:
                self.ctx.wake_relay()
                return True
        elif line["quantity"] >= line["min_level"] and line.get("low_alerted"):
            self.stock.update_one(
                {"_id": ident, "low_alerted": True, "$expr": {"$gte": ["$quantity", "$min_level"]}},
                {"$set": {"low_alerted": False}, "$unset": {"low_since": ""}},
            )
        return False

    def reconcile_all_low(self) -> int:
        """Alert every line below its minimum that has not alerted yet (a crash between the
        change and the alert is caught here)."""
        rows = self.stock.find({"low_alerted": {"$ne": True}}, projection={"_id": 1})
        return sum(self.reconcile_low(row["_id"]) for row in rows)

    # -----------------------------------------------------------------------------------------
    # Dispatch orders

    def order(self, order_id: str) -> dict[str, Any] | None:
        """A dispatch order."""
        return self.orders.find_one({"_id": order_id})

    @staticmethod
    def take_entry_id(order_id: str, line: Mapping[str, Any]) -> str:
        """The ledger entry id of an order taking a line (deterministic, for repair)."""
        return f"{order_id}:take:{line['warehouse_id']}:{line['item_code']}"

    def place_order(
        self, order: Mapping[str, Any], scope: str, digest: str
    ) -> tuple[dict[str, Any], bool]:
        """Write the order, reserve everything it names, or give it all back and 409.

        Returns the order and whether this call created it (False: an idempotent replay).
        """
        if order.get("exercise"):
            return self._place_exercise_order(order, scope, digest)
        doc, created = insert_idempotent(self.orders, order, scope, digest)
        if not created:
            return doc, False
        try:
            failure = self._reserve(doc)
        except BaseException:
            self.abandon_order(doc, {"path": "", "reason": "reservation interrupted"})
            raise
        if failure is not None:
            self.abandon_order(doc, failure)
            raise ConflictError("dispatch_unavailable", failure["reason"], failure["path"])
        now = self.now()
        committed = {**doc, "status": "ordered"}
        result = self.orders.update_one(
            {"_id": doc["_id"], "status": "reserving"},
            with_events(
                {
                    "$set": {"status": "ordered", "ordered_at": now, "updated_at": now},
                    "$push": {"history": {"status": "ordered", "at": now, "by": doc["created_by"]}},
                },
                [events.dispatch_ordered(self.clock, committed)],
            ),
        )
        if result.matched_count == 0:
            # The repair timer took the order for an interrupted one and released it.
            self.abandon_order(doc, {"path": "", "reason": "reservation timed out"})
            raise ConflictError("dispatch_interrupted", "the reservation timed out; order again")
        self.ctx.wake_relay()
        return self.order(doc["_id"]) or committed, True

    def _place_exercise_order(
        self, order: Mapping[str, Any], scope: str, digest: str
    ) -> tuple[dict[str, Any], bool]:
        """A drill (演练) order: recorded as ordered with what it *would* have taken; no real
        team, stock line or ledger entry is touched, so one write carries it and its event."""
        now = self.now()
        doc = {
            **order,
            "status": "ordered",
            "ordered_at": now,
            "updated_at": now,
            "simulated": self.simulate_reservation(order),
            "history": [
                *order.get("history", []),
                {"status": "ordered", "at": now, "by": order["created_by"], "note": "演练"},
            ],
        }
        doc.pop("reserve_deadline", None)
        event = events.dispatch_ordered(self.clock, doc)
        stored, created = insert_idempotent(self.orders, new_document(doc, [event]), scope, digest)
        if created:
            self.ctx.wake_relay()
        return stored, created

    def simulate_reservation(self, order: Mapping[str, Any]) -> dict[str, Any]:
        """What an order would take from the real roster and stock, read without changing them."""
        teams = []
        for team_id in order["team_ids"]:
            team = self.team(team_id)
            status = team["status"] if team else "unknown"
            teams.append(
                {
                    "team_id": team_id,
                    "status": status,
                    "available": status in domain.DISPATCHABLE_STATUSES,
                }
            )
        lines = []
        for line in order["resources"]:
            current = self.line(line["warehouse_id"], line["item_code"])
            have = float(current["quantity"]) if current else 0.0
            lines.append({**line, "on_hand": have, "available": have >= line["quantity"]})
        return {
            "teams": teams,
            "resources": lines,
            "note": "演练：仅模拟占用，真实队伍状态、库存和台账均未改变",
        }

    def _reserve(self, order: Mapping[str, Any]) -> dict[str, str] | None:
        """Reserve the order's teams, then its supplies; the first failure, or None."""
        for index, team_id in enumerate(order["team_ids"]):
            if not self.reserve_team(team_id, order["_id"]):
                team = self.team(team_id)
                state = team["status"] if team else "unknown"
                return {
                    "path": f"team_ids.{index}",
                    "reason": f"team {team_id} is not available (it is {state})",
                }
        for index, line in enumerate(order["resources"]):
            outcome, current = self.change_stock(
                line["warehouse_id"],
                line["item_code"],
                -line["quantity"],
                entry_id=self.take_entry_id(order["_id"], line),
                reason=f"dispatch {order['_id']} for incident {order['incident_id']}",
                kind="dispatch",
                by=order["created_by"],
                dispatch_id=order["_id"],
                correlation_id=order["incident_id"],
            )
            if outcome in ("applied", "duplicate"):
                continue
            have = current["quantity"] if current else 0
            return {
                "path": f"resources.{index}.quantity",
                "reason": (
                    f"stock of {line['item_code']} in {line['warehouse_id']} is short: "
                    f"{have:g} left, {line['quantity']:g} asked"
                ),
            }
        return None

    def abandon_order(self, order: Mapping[str, Any], failure: Mapping[str, str]) -> None:
        """Give back whatever an order holds and mark it rejected (idempotent)."""
        for team_id in order["team_ids"]:
            self.unreserve_team(team_id, order["_id"])
        for line in order["resources"]:
            take = self.take_entry_id(order["_id"], line)
            current = self.line(line["warehouse_id"], line["item_code"]) or {}
            taken = take in (current.get(APPLIED) or []) or (
                self.ledger.find_one({"_id": take}, projection={"_id": 1}) is not None
            )
            if taken:
                self.change_stock(
                    line["warehouse_id"],
                    line["item_code"],
                    line["quantity"],
                    entry_id=f"{order['_id']}:undo:{line['warehouse_id']}:{line['item_code']}",
                    reason=f"dispatch {order['_id']} not placed: {failure['reason']}",
                    kind="compensation",
                    by="system",
                    dispatch_id=order["_id"],
                )
        self.orders.update_one(
            {"_id": order["_id"], "status": "reserving"},
            {
                "$set": {
                    "status": "rejected",
                    "rejection": dict(failure),
                    "rejected_at": self.now(),
                },
                # A rejected request may be retried with the same key once stock is back.
                "$unset": {IDEMPOTENCY: ""},
            },
        )

    def change_order_status(
        self,
        order_id: str,
        wanted: str,
        by: str,
        returned: Sequence[Mapping[str, Any]] = (),
        note: str | None = None,
    ) -> dict[str, Any]:
        """Move an order along its life cycle; 409 for a transition the life cycle forbids."""
        order = self.order(order_id)
        if order is None:
            raise ApiError(404, "not_found", f"dispatch {order_id} not found")
        current = order["status"]
        reason = domain.transition_error(current, wanted)
        if reason:
            raise ConflictError("invalid_transition", reason, "status")
        if returned and wanted != "released":
            raise ApiError(
                422,
                "invalid",
                "supplies are returned only on release",
                fields=[{"path": "returned", "reason": "only with status released"}],
            )
        dispatched = [
            domain.Line(r["warehouse_id"], r["item_code"], r["quantity"])
            for r in order["resources"]
        ]
        back = [domain.Line(r["warehouse_id"], r["item_code"], r["quantity"]) for r in returned]
        errors = domain.return_errors(dispatched, back)
        if errors:
            raise ApiError(422, "invalid_return", "returned supplies do not match", fields=errors)
        now = self.now()
        fields: dict[str, Any] = {"status": wanted, "updated_at": now, f"{wanted}_at": now}
        if wanted == "released":
            fields["returned"] = [dict(r) for r in returned]
            fields[RELEASE_PENDING] = True
        entry = {"status": wanted, "at": now, "by": by}
        if note:
            entry["note"] = note
        event = events.dispatch_status_changed(self.clock, order, current, wanted, returned)
        result = self.orders.update_one(
            {"_id": order_id, "status": current},
            with_events({"$set": fields, "$push": {"history": entry}}, [event]),
        )
        if result.matched_count == 0:
            raise ConflictError(
                "concurrent_change", f"dispatch {order_id} changed meanwhile; reload"
            )
        self.ctx.wake_relay()
        if wanted == "released":
            self.finish_release(order_id)
        return self.order(order_id) or order

    def finish_release(self, order_id: str) -> None:
        """Free a released order's teams and put back returned supplies (idempotent)."""
        order = self.order(order_id)
        if order is None or not order.get(RELEASE_PENDING):
            return
        if order.get("exercise"):
            # A drill order held nothing real, so nothing real comes back.
            self.orders.update_one({"_id": order_id}, {"$unset": {RELEASE_PENDING: ""}})
            return
        self.release_order_teams(order_id)
        for line in order.get("returned") or []:
            if line["quantity"] <= 0:
                continue
            self.change_stock(
                line["warehouse_id"],
                line["item_code"],
                line["quantity"],
                entry_id=f"{order_id}:return:{line['warehouse_id']}:{line['item_code']}",
                reason=f"unused supplies returned from dispatch {order_id}",
                kind="return",
                by=order["history"][-1]["by"] if order.get("history") else "system",
                dispatch_id=order_id,
                correlation_id=order["incident_id"],
            )
        self.orders.update_one({"_id": order_id}, {"$unset": {RELEASE_PENDING: ""}})

    def repair_orders(self) -> dict[str, int]:
        """Release what interrupted orders hold; finish interrupted releases."""
        now = self.now()
        stuck = self.orders.find({"status": "reserving", "reserve_deadline": {"$lt": now}})
        for order in stuck:
            self.abandon_order(order, {"path": "", "reason": "reservation interrupted"})
        releasing = self.orders.find({RELEASE_PENDING: True}, projection={"_id": 1})
        for row in releasing:
            self.finish_release(row["_id"])
        return {"abandoned": len(stuck), "released": len(releasing)}

    # -----------------------------------------------------------------------------------------
    # Response plans

    def plan(self, plan_id: str) -> dict[str, Any] | None:
        """A response plan."""
        return self.plans.find_one({"_id": plan_id})

    def activate_plan(
        self,
        plan: Mapping[str, Any],
        causation_id: str | None = None,
        scope_key: tuple[str, str] | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Put matching available teams on standby, then record the plan with its event.

        Converges under redelivery: teams already on standby for this plan are counted again,
        and the plan document (deterministic id) is inserted once.
        """
        existing = self.plan(plan["_id"])
        if existing is not None:
            return existing, False
        townships = None if plan["scope"] == "county" else list(plan["township_codes"])
        required = self.table.required(plan["hazard"])
        candidates = self.teams.find(
            {"status": "available", "capabilities": {"$in": list(required)}}
        )
        chosen = domain.standby_candidates(
            [team_view(row) for row in candidates], required, townships
        )
        now = self.now()
        if plan.get("exercise"):
            # A drill plan (演练) names the teams it would call; none is put on standby.
            return self._record_plan(
                {**plan, "teams_on_standby": [], "simulated_standby": sorted(chosen)},
                now,
                causation_id,
                scope_key,
            )
        for team_id in chosen:
            self.teams.update_one(
                {"_id": team_id, "status": "available"},
                {
                    "$set": {
                        "status": "standby",
                        "standby_plan_id": plan["_id"],
                        "status_changed_at": now,
                    }
                },
            )
        ours = self.teams.find(
            {"standby_plan_id": plan["_id"], "status": "standby"}, projection={"_id": 1}
        )
        return self._record_plan(
            {**plan, "teams_on_standby": sorted(row["_id"] for row in ours)},
            now,
            causation_id,
            scope_key,
        )

    def _record_plan(
        self,
        plan: Mapping[str, Any],
        now: datetime,
        causation_id: str | None,
        scope_key: tuple[str, str] | None,
    ) -> tuple[dict[str, Any], bool]:
        """Insert an activated plan with its ``plan_activated`` event (once per id)."""
        doc = {
            **plan,
            "status": "active",
            "activated_at": now,
            "history": [
                {
                    "action": "activated",
                    "level": plan["level"],
                    "at": now,
                    "by": plan.get("activated_by"),
                    "reason": plan.get("reason"),
                    "reason_label": plan.get("reason_label") or plan.get("reason"),
                }
            ],
        }
        event = events.plan_activated(self.clock, doc, causation_id)
        if scope_key is not None:
            created_doc, created = insert_idempotent(
                self.plans, new_document(doc, [event]), *scope_key
            )
        else:
            created = insert_once(self.plans, new_document(doc, [event]))
            created_doc = doc if created else (self.plan(plan["_id"]) or doc)
        if created:
            self.ctx.wake_relay()
        return dict(created_doc), created

    def change_plan_level(
        self,
        plan: Mapping[str, Any],
        level: int,
        reason: domain.PlanReason,
        by: str,
        applied_id: str,
    ) -> bool:
        """Step a plan up or down; applied once per ``applied_id``."""
        event = events.plan_changed(
            self.clock,
            plan,
            plan["level"],
            level,
            reason.text,
            causation_id=applied_id,
            reason_label=reason.label,
        )
        done = apply_once(
            self.plans,
            {"_id": plan["_id"], "status": "active", "level": plan["level"]},
            with_events(
                {
                    "$set": {"level": level, "updated_at": self.now()},
                    "$push": {
                        "history": {
                            "action": "changed",
                            "old_level": plan["level"],
                            "level": level,
                            "at": self.now(),
                            "by": by,
                            "reason": reason.text,
                            "reason_label": reason.label,
                        }
                    },
                },
                [event],
            ),
            applied_id,
        )
        if done:
            self.ctx.wake_relay()
        return done

    def end_plan(
        self, plan: Mapping[str, Any], reason: domain.PlanReason, by: str, applied_id: str
    ) -> bool:
        """Stand a plan down and release its standby teams (never deployed ones)."""
        done = False
        if plan["status"] == "active":
            released = self._standby_of(plan["_id"])
            event = events.plan_ended(
                self.clock,
                plan,
                reason.text,
                released,
                causation_id=applied_id,
                reason_label=reason.label,
            )
            done = apply_once(
                self.plans,
                {"_id": plan["_id"], "status": "active"},
                with_events(
                    {
                        "$set": {
                            "status": "ended",
                            "ended_at": self.now(),
                            "end_reason": reason.text,
                            "end_reason_label": reason.label,
                            "teams_released": released,
                        },
                        "$push": {
                            "history": {
                                "action": "ended",
                                "at": self.now(),
                                "by": by,
                                "reason": reason.text,
                                "reason_label": reason.label,
                            }
                        },
                    },
                    [event],
                ),
                applied_id,
            )
            if done:
                self.ctx.wake_relay()
        # Always (also on a redelivery): a crash after the plan ended must not strand teams.
        self.release_standby(plan["_id"])
        return done

    def _standby_of(self, plan_id: str) -> list[str]:
        rows = self.teams.find(
            {"standby_plan_id": plan_id, "status": "standby"}, projection={"_id": 1}
        )
        return sorted(row["_id"] for row in rows)

    def release_standby(self, plan_id: str) -> int:
        """Standby teams of an ended plan become available; deployed teams are untouched."""
        result = self.teams.update_many(
            {"standby_plan_id": plan_id, "status": "standby"},
            {
                "$set": {"status": "available", "status_changed_at": self.now()},
                "$unset": {"standby_plan_id": ""},
            },
        )
        return int(result.modified_count)

    def repair_standby(self) -> int:
        """Release teams left on standby for plans that have ended (after a crash)."""
        plan_ids = self.teams.distinct("standby_plan_id", {"status": "standby"})
        released = 0
        for plan_id in plan_ids:
            if not plan_id:
                continue
            plan = self.plan(plan_id)
            if plan is not None and plan["status"] == "ended":
                released += self.release_standby(plan_id)
        return released

    # -----------------------------------------------------------------------------------------
    # Assignments

    def assignment(self, assignment_id: str) -> dict[str, Any] | None:
        """A dispute assignment."""
        return self.assignments.find_one({"_id": assignment_id})

    def update_assignment(
        self,
        current: Mapping[str, Any],
        update: Mapping[str, Any],
        evts: Sequence[EventEnvelope] = (),
    ) -> dict[str, Any]:
        """Apply an update if the assignment did not change since it was read (version)."""
        merged = dict(update)
        merged.setdefault("$inc", {})["version"] = 1
        result = self.assignments.find_one_and_update(
            {"_id": current["_id"], "version": current["version"]},
            with_events(merged, list(evts)),
            return_document=ReturnDocument.AFTER,
        )
        if result is None:
            raise ConflictError("concurrent_change", "the assignment changed meanwhile; reload")
        if evts:
            self.ctx.wake_relay()
        return dict(result)

    def scan_overdue(self) -> int:
        """Flag open assignments past their deadline and emit ``assignment_overdue`` once."""
        now = self.now()
        due = self.assignments.find(
            {
                "status": {"$in": list(domain.OPEN_ASSIGNMENT_STATUSES)},
                "due_at": {"$lte": now},
                "overdue": False,
            }
        )
        flagged = 0
        for row in due:
            event = events.assignment_overdue(self.clock, row)
            result = self.assignments.update_one(
                {"_id": row["_id"], "overdue": False},
                with_events({"$set": {"overdue": True, "overdue_at": now}}, [event]),
            )
            flagged += result.modified_count
        if flagged:
            self.ctx.wake_relay()
        return flagged


def team_view(row: Mapping[str, Any]) -> domain.TeamView:
    """The ranking view of a team document."""
    return domain.TeamView(
        id=row["_id"],
        capabilities=tuple(row.get("capabilities") or ()),
        township_code=row["township_code"],
        headcount=int(row.get("headcount") or 0),
        status=row["status"],
    )


def deadline(now: datetime, seconds: float) -> datetime:
    """``now`` plus ``seconds``."""
    return now + timedelta(seconds=seconds)
