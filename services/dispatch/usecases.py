"""Dispatch's use cases: the only place that combines the rules, the repository and the events.

Commands (order teams and supplies, move an order along, adjust stock, activate and end plans)
and queries (pages, one document, suggestions). The HTTP routes,
the bus handlers and the timers call these and nothing else.

Consistency:
- A team is taken by one guarded update (available or standby → deployed, naming the order),
  a stock line by one guarded change (never below zero) written with its ledger entry, once
  per entry id; so two orders can never both take the last unit or the last team.
- An order takes everything it names or nothing (``place_order``); what a refused or
  interrupted order took is given back here (``_abandon``), and the repair timer does the same
  for an order left ``reserving`` past its deadline.
- A drill (演练, ``exercise``) order or plan reserves nothing: it records what it would have
  taken, read from the real roster and stock, and changes no team, line or ledger.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from libs.common.auth import Principal, Role
from libs.common.clock import Clock, as_utc
from libs.common.county import County
from libs.common.errors import ApiError, field_error, not_found
from libs.common.events import EventEnvelope, parse_payload
from libs.common.idempotency import check_replay, idempotency_scope
from services.dispatch import domain, events, metrics
from services.dispatch.repository import (
    DispatchRepository,
    DuplicateKeyTaken,
    LedgerFilter,
    OrderFilter,
    Page,
    PlanFilter,
    Shortfall,
    StockFilter,
    TeamFilter,
    line_id,
    take_entry_id,
)

PATCH_ATTEMPTS = 5


class ConflictError(ApiError):
    """409 naming the field at fault."""

    def __init__(self, code: str, message: str, path: str | None = None) -> None:
        fields = [{"path": path, "reason": message}] if path else []
        super().__init__(409, code, message, fields=fields)


@dataclass(frozen=True)
class Keyed:
    """Who asks, and the request's Idempotency-Key (checked) and body fingerprint."""

    principal: Principal
    key: str | None
    digest: str

    def scope(self, new_id: str) -> str:
        """The unique key the created document carries."""
        return idempotency_scope(self.principal.key_id, self.key, new_id)


def incident_plan_id(incident_id: str) -> str:
    """The plan an incident activates."""
    return f"incident-{incident_id}"


def warning_plan_id(warning_id: str) -> str:
    """The plan a warning activates."""
    return f"warning-{warning_id}"


def team_view(row: Mapping[str, Any]) -> domain.TeamView:
    """The ranking view of a team document."""
    return domain.TeamView(
        id=row["_id"],
        capabilities=tuple(row.get("capabilities") or ()),
        township_code=row["township_code"],
        headcount=int(row.get("headcount") or 0),
        status=row["status"],
    )


def new_line(
    warehouse_id: str, item_code: str, name: str, unit: str, min_level: float, now: datetime
) -> dict[str, Any]:
    """A stock line document holding nothing yet."""
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


@dataclass
class DispatchUseCases:
    """Dispatch's commands and queries, bound to the repository, rules and clock."""

    repo: DispatchRepository
    county: County
    clock: Clock
    table: domain.CapabilityTable
    rules: domain.Rules
    wake_relay: Callable[[], None] = lambda: None
    log: Any = None

    def __post_init__(self) -> None:
        if self.log is None:
            self.log = structlog.get_logger().bind(service="dispatch")

    def now(self) -> datetime:
        """The service clock."""
        return as_utc(self.clock.now())

    def refresh_gauges(self) -> None:
        """Set every gauge from the repository's figures (the same on every replica)."""
        metrics.publish(self.repo.current_figures())

    def _ledger_entry(
        self, line: Mapping[str, Any], entry_id: str, reason: str, kind: str, by: str, **extra: Any
    ) -> dict[str, Any]:
        """A ledger entry of ``line`` (its warehouse and item) to write with a stock change;
        the engine adds the delta and the quantity after it."""
        return {
            "_id": entry_id,
            "warehouse_id": line["warehouse_id"],
            "item_code": line["item_code"],
            "reason": reason,
            "kind": kind,
            "by": by,
            "at": self.now(),
            "dispatch_id": None,
            **extra,
        }

    # Setup -------------------------------------------------------------------------------------

    def seed_from_county(self) -> dict[str, int]:
        """Insert the county file's teams, warehouses and stock lines that are missing.

        Existing documents are never overwritten: a restart must not reset live quantities or
        statuses (a team out on an order stays deployed).
        """
        now = self.now()
        counts = {"teams": 0, "warehouses": 0, "stock": 0}
        for team in self.county.teams:
            status = team.status if team.status in domain.MANUAL_TEAM_STATUSES else "available"
            doc = {
                "_id": team.id,
                "name": team.name,
                "kind": team.kind,
                "capabilities": list(team.capabilities),
                "township_code": team.township_code,
                "headcount": team.headcount,
                "contact": team.contact.model_dump(),
                "status": status,
                "source": "county_file",
                "created_at": now,
                "updated_at": now,
                "status_changed_at": now,
            }
            counts["teams"] += self.repo.add_team_once(doc)
        for warehouse in self.county.warehouses:
            counts["warehouses"] += self.repo.add_warehouse_once(
                {
                    "_id": warehouse.id,
                    "name": warehouse.name,
                    "township_code": warehouse.township_code,
                    "source": "county_file",
                    "created_at": now,
                }
            )
            for item in warehouse.stock:
                line = new_line(
                    warehouse.id, item.item_code, item.name, item.unit, item.min_level, now
                )
                line |= {"quantity": float(item.quantity), "source": "county_file"}
                counts["stock"] += self.repo.add_stock_line_once(line)
        return counts

    # Incidents (local view) --------------------------------------------------------------------

    def incident(self, incident_id: str) -> dict[str, Any] | None:
        """The local copy of an incident once its category is known (what the API may show)."""
        view = self.repo.incident_view(incident_id)
        return view if view is not None and view.get("category") is not None else None

    # Teams -------------------------------------------------------------------------------------

    def teams_page(self, filters: TeamFilter, limit: int, cursor: str | None) -> Page:
        """The roster in id order."""
        return self.repo.teams_page(filters, limit, cursor)

    def team(self, team_id: str) -> dict[str, Any]:
        """One team; 404 when unknown."""
        team = self.repo.team(team_id)
        if team is None:
            raise not_found("team", team_id)
        return team

    def create_team(self, fields: Mapping[str, Any], team_id: str, keyed: Keyed) -> dict[str, Any]:
        """Add a team to the roster; a retry with the same key answers the same team."""
        self._known_capabilities(fields["capabilities"])
        scope = keyed.scope(team_id)
        if keyed.key and (
            replay := check_replay(self.repo.team_by_idempotency_scope(scope), keyed.digest)
        ):
            return replay
        now = self.now()
        doc = {
            "_id": team_id,
            **fields,
            "source": "api",
            "created_by": keyed.principal.name,
            "created_at": now,
            "updated_at": now,
            "status_changed_at": now,
        }
        try:
            created, _ = self.repo.add_team(doc, scope, keyed.digest)
        except DuplicateKeyTaken as exc:
            raise ConflictError("team_exists", f"队伍 {team_id} 已存在", "id") from exc
        self.refresh_gauges()
        return created

    def patch_team(self, team_id: str, changes: Mapping[str, Any], by: str) -> dict[str, Any]:
        """Change roster fields or the manual status, never under a running order."""
        for _ in range(PATCH_ATTEMPTS):
            current = self.team(team_id)
            self._known_capabilities(changes.get("capabilities") or [])
            fields: dict[str, Any] = {**changes, "updated_at": self.now(), "updated_by": by}
            wanted = changes.get("status")
            if wanted is not None and wanted != current["status"]:
                reason = domain.manual_status_change_error(current["status"], wanted)
                if reason:
                    raise ConflictError("invalid_team_status", reason, "status")
                fields["status_changed_at"] = self.now()
            removed = ["standby_plan_id"] if wanted is not None and wanted != "standby" else []
            # Guarded by the status read, so a concurrent order is never overwritten.
            updated = self.repo.change_team_if_status(team_id, current["status"], fields, removed)
            if updated is not None:
                self.refresh_gauges()
                return updated
        raise ConflictError("concurrent_change", f"队伍 {team_id} 正被并发修改，请重试")

    def _known_capabilities(self, capabilities: Sequence[str]) -> None:
        errors = self.table.unknown_errors(capabilities)
        if errors:
            raise ApiError(422, "validation_failed", "请求内容不合规", errors)

    def suggest(
        self, incident_id: str, principal: Principal, limit: int, include_unmatched: bool
    ) -> tuple[dict[str, Any], list[tuple[domain.Suggestion, dict[str, Any]]]]:
        """Dispatchable teams ranked for an incident, with their documents."""
        incident = self.incident(incident_id)
        if incident is None or not principal.may_act_for(incident["township_code"]):
            raise not_found("incident", incident_id)
        ranked = domain.rank_teams(
            [team_view(row) for row in self.repo.dispatchable_teams()],
            incident["category"],
            incident["township_code"],
            self.county.distance_km,
            self.table,
            include_unmatched=include_unmatched,
        )[:limit]
        teams = {t["_id"]: t for t in self.repo.teams_by_ids([s.team_id for s in ranked])}
        return incident, [(s, teams[s.team_id]) for s in ranked if s.team_id in teams]

    # Stock -------------------------------------------------------------------------------------

    def warehouses(self) -> list[tuple[dict[str, Any], int]]:
        """Warehouses with how many lines each keeps."""
        return self.repo.warehouses_with_line_counts(500)

    def stock_page(self, filters: StockFilter, limit: int, cursor: str | None) -> Page:
        """Stock lines in id order."""
        return self.repo.stock_page(filters, limit, cursor)

    def create_line(self, fields: Mapping[str, Any], by: str) -> dict[str, Any]:
        """Keep a new item in a warehouse, its initial quantity entered in the ledger."""
        warehouse_id, item_code = fields["warehouse_id"], fields["item_code"]
        if self.repo.warehouse(warehouse_id) is None:
            raise field_error("warehouse_id", f"未知仓库 {warehouse_id}")
        if fraction := domain.fraction_error(fields["quantity"], fields["unit"]):
            raise field_error("quantity", fraction)
        now = self.now()
        doc = new_line(
            warehouse_id, item_code, fields["name"], fields["unit"], fields["min_level"], now
        ) | {"source": "api", "created_by": by}
        if not self.repo.add_stock_line_once(doc):
            raise ConflictError(
                "stock_line_exists", f"仓库 {warehouse_id} 已储备 {item_code}", "item_code"
            )
        if fields["quantity"] > 0:
            entry = self._ledger_entry(doc, f"{doc['_id']}:initial", "初始库存", "adjustment", by)
            self.repo.release_stock(doc["_id"], fields["quantity"], entry)
        self._reconcile_low(doc["_id"])
        self.refresh_gauges()
        return self.repo.stock_line(doc["_id"]) or doc

    def patch_line(
        self, warehouse_id: str, item_code: str, changes: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Change a line's name, unit or minimum (not its quantity)."""
        ident = line_id(warehouse_id, item_code)
        if self.repo.stock_line(ident) is None:
            raise not_found("stock line", ident)
        if not changes:
            raise field_error("body", "至少提交 name、unit、min_level 之一")
        self.repo.set_stock_line_fields(ident, {**changes, "updated_at": self.now()})
        self._reconcile_low(ident)
        self.refresh_gauges()
        return self.repo.stock_line(ident) or {}

    def adjust_stock(
        self, warehouse_id: str, item_code: str, delta: float, reason: str, keyed: Keyed
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """A stock adjustment with its reason; a retry with the same key applies it once."""
        principal = keyed.principal
        entry_id = (
            "adj:" + hashlib.sha256(f"{principal.key_id}:{keyed.key}".encode()).hexdigest()[:32]
            if keyed.key
            else f"adj:{uuid.uuid4().hex}"
        )
        ident = line_id(warehouse_id, item_code)
        self._refuse_fraction(ident, delta, "delta")
        entry = self._ledger_entry(
            {"warehouse_id": warehouse_id, "item_code": item_code},
            entry_id,
            reason,
            "adjustment",
            principal.name,
            body_hash=keyed.digest,
        )
        move = self.repo.adjust_stock(ident, delta, entry)
        metrics.STOCK_ADJUSTMENTS.labels("adjustment", move.outcome).inc()
        if move.outcome == "missing" or move.line is None:
            raise ApiError(
                404,
                "not_found",
                f"仓库 {warehouse_id} 未储备 {item_code}",
                fields=[{"path": "item_code", "reason": "无此库存条目"}],
            )
        line = move.line
        if move.outcome == "short":
            raise ConflictError(
                "stock_short",
                f"{item_code} 仅剩 {line['quantity']:g} {line['unit']}，"
                f"不能取出 {-delta:g}（库存不能为负）",
                "delta",
            )
        self.repo.finish_ledger_copies()
        written = self.repo.ledger_entry(entry_id)
        if move.outcome == "duplicate" and (written or {}).get("body_hash") != keyed.digest:
            raise ApiError(
                409,
                "idempotency_conflict",
                "该 Idempotency-Key 已用于另一个请求体",
                fields=[{"path": "header.Idempotency-Key", "reason": "已用于另一个请求体"}],
            )
        if move.outcome == "applied":
            self._reconcile_low(ident)
        self.refresh_gauges()
        return self.repo.stock_line(ident) or line, written

    def ledger_page(self, filters: LedgerFilter, limit: int, cursor: str | None) -> Page:
        """The ledger, newest first (interrupted copies finished first)."""
        self.repo.finish_ledger_copies()
        return self.repo.ledger_page(filters, limit, cursor)

    def _reconcile_low(self, ident: str, correlation_id: str | None = None) -> bool:
        """Emit ``stock_low`` once when a line is below its minimum; re-arm when it recovers."""
        line = self.repo.stock_line(ident)
        if line is None:
            return False
        if line["quantity"] < line["min_level"] and not line.get("low_alerted"):
            event = events.stock_low(self.clock, line, correlation_id)
            if self.repo.mark_stock_low(ident, self.now(), event):
                self.wake_relay()
                return True
        elif line["quantity"] >= line["min_level"] and line.get("low_alerted"):
            self.repo.clear_stock_low(ident)
        return False

    # Dispatch orders ---------------------------------------------------------------------------

    def order_teams_and_supplies(
        self,
        incident_id: str,
        team_ids: Sequence[str],
        resources: Sequence[Mapping[str, Any]],
        note: str,
        exercise: bool,
        keyed: Keyed,
    ) -> dict[str, Any]:
        """Check an order request, then place it all or nothing (a drill only simulates)."""
        order_id = uuid.uuid4().hex
        scope = keyed.scope(order_id)
        if keyed.key and (
            replay := check_replay(self.repo.order_by_idempotency_scope(scope), keyed.digest)
        ):
            return replay
        incident = self.incident(incident_id)
        drill = exercise or bool(incident and incident.get("exercise"))
        errors = self._order_errors(incident, team_ids, resources, exercise)
        if errors:
            metrics.ORDERS.labels("invalid", metrics.exercise_label(drill)).inc()
            raise ApiError(422, "invalid", "调派单无效", fields=errors)
        assert incident is not None
        if incident.get("status") != "open":
            metrics.ORDERS.labels("rejected", metrics.exercise_label(drill)).inc()
            raise ConflictError("incident_closed", "事件已关闭", "incident_id")
        now = self.now()
        order = {
            "_id": order_id,
            "incident_id": incident_id,
            "township_code": incident["township_code"],
            "team_ids": list(team_ids),
            "resources": [dict(r) for r in resources],
            "note": note,
            "status": "reserving",
            "created_at": now,
            "created_by": keyed.principal.name,
            "updated_at": now,
            "reserve_deadline": now + timedelta(seconds=self.rules.reserve_timeout_seconds),
            "history": [{"status": "requested", "at": now, "by": keyed.principal.name}],
            "exercise": drill,
        }
        try:
            placed, created = self.place_order(order, scope, keyed.digest)
        except ConflictError:
            metrics.ORDERS.labels("rejected", metrics.exercise_label(drill)).inc()
            self.refresh_gauges()
            raise
        if created:
            metrics.ORDERS.labels("ordered", metrics.exercise_label(drill)).inc()
        self.refresh_gauges()
        return placed

    def _order_errors(
        self,
        incident: Mapping[str, Any] | None,
        team_ids: Sequence[str],
        resources: Sequence[Mapping[str, Any]],
        exercise: bool,
    ) -> list[dict[str, str]]:
        """What makes an order request invalid, field by field."""
        errors = []
        known = {t["_id"] for t in self.repo.teams_by_ids(list(team_ids))}
        seen: set[str] = set()
        for index, team_id in enumerate(team_ids):
            if team_id in seen:
                errors.append({"path": f"team_ids.{index}", "reason": "队伍重复"})
            elif team_id not in known:
                errors.append({"path": f"team_ids.{index}", "reason": f"未知队伍 {team_id}"})
            seen.add(team_id)
        lines = [domain.Line(r["warehouse_id"], r["item_code"], r["quantity"]) for r in resources]
        for index in domain.duplicate_lines(lines):
            errors.append({"path": f"resources.{index}", "reason": "库存条目重复"})
        errors += self._resource_errors(lines)
        if incident is None:
            errors.append({"path": "incident_id", "reason": "未知事件"})
        elif exercise and not incident.get("exercise"):
            errors.append({"path": "exercise", "reason": "演练调派单只能用于演练事件"})
        return errors

    def _resource_errors(self, lines: Sequence[domain.Line]) -> list[dict[str, str]]:
        """Lines naming stock a warehouse does not keep, or a fraction of a whole-unit item."""
        errors = []
        for index, line in enumerate(lines):
            stock = self.repo.stock_line(line_id(line.warehouse_id, line.item_code))
            if stock is None:
                reason = f"仓库 {line.warehouse_id} 未储备 {line.item_code}"
                errors.append({"path": f"resources.{index}.item_code", "reason": reason})
            elif fraction := domain.fraction_error(line.quantity, stock["unit"]):
                errors.append({"path": f"resources.{index}.quantity", "reason": fraction})
        return errors

    def _refuse_fraction(self, ident: str, quantity: float, path: str) -> None:
        """422 when ``quantity`` would split an item the stock line counts in whole units."""
        stock = self.repo.stock_line(ident)
        reason = domain.fraction_error(quantity, stock["unit"]) if stock else None
        if reason:
            raise field_error(path, reason)

    def place_order(
        self, order: Mapping[str, Any], scope: str, digest: str
    ) -> tuple[dict[str, Any], bool]:
        """Take everything the order names or nothing (409 naming what was missing).

        Returns the order and whether this call created it (False: an idempotent replay).
        """
        if order.get("exercise"):
            return self._place_exercise_order(order, scope, digest)
        now = self.now()
        by = order["created_by"]
        takes = [
            self._ledger_entry(
                line,
                take_entry_id(order["_id"], line),
                f"调派单 {order['_id']} 调拨（事件 {order['incident_id']}）",
                "dispatch",
                by,
                dispatch_id=order["_id"],
            )
            for line in order["resources"]
        ]
        ordered = {
            "status": "ordered",
            "ordered_at": now,
            "updated_at": now,
            "history": [{"status": "ordered", "at": now, "by": by}],
        }
        event = events.dispatch_ordered(self.clock, {**order, "status": "ordered"})
        try:
            placement = self.repo.place_order(order, scope, digest, takes, ordered, event)
        except BaseException:
            self._abandon(order, "预留中断")
            raise
        if placement.shortfall is not None:
            reason = self._shortfall_reason(order, placement.shortfall)
            self._abandon(order, reason["reason"], reason["path"])
            if placement.shortfall.kind == "interrupted":
                raise ConflictError("dispatch_interrupted", "预留超时，请重新下单")
            raise ConflictError("dispatch_unavailable", reason["reason"], reason["path"])
        if placement.created:
            self.wake_relay()
            for line in order["resources"]:
                ident = line_id(line["warehouse_id"], line["item_code"])
                self._reconcile_low(ident, order["incident_id"])
        return placement.order, placement.created

    def _shortfall_reason(self, order: Mapping[str, Any], shortfall: Shortfall) -> dict[str, str]:
        """The path and words of what an order could not take."""
        if shortfall.kind == "team":
            team_id = order["team_ids"][shortfall.index]
            return {
                "path": f"team_ids.{shortfall.index}",
                "reason": f"队伍 {team_id} 不可调派（当前状态：{shortfall.team_status}）",
            }
        if shortfall.kind == "line":
            line = order["resources"][shortfall.index]
            return {
                "path": f"resources.{shortfall.index}.quantity",
                "reason": (
                    f"仓库 {line['warehouse_id']} 的 {line['item_code']} 库存不足："
                    f"剩余 {shortfall.on_hand:g}，需要 {line['quantity']:g}"
                ),
            }
        return {"path": "", "reason": "预留超时"}

    def _place_exercise_order(
        self, order: Mapping[str, Any], scope: str, digest: str
    ) -> tuple[dict[str, Any], bool]:
        """A drill order: recorded as ordered with what it *would* have taken; no real team,
        stock line or ledger entry is touched, so one write carries it and its event."""
        now = self.now()
        doc = {
            **order,
            "status": "ordered",
            "ordered_at": now,
            "updated_at": now,
            "simulated": self._simulate_reservation(order),
            "history": [
                *order.get("history", []),
                {"status": "ordered", "at": now, "by": order["created_by"], "note": "演练"},
            ],
        }
        doc.pop("reserve_deadline", None)
        event = events.dispatch_ordered(self.clock, doc)
        stored, created = self.repo.record_order(doc, scope, digest, [event])
        if created:
            self.wake_relay()
        return stored, created

    def _simulate_reservation(self, order: Mapping[str, Any]) -> dict[str, Any]:
        """What an order would take from the real roster and stock, read without changing them."""
        found = {t["_id"]: t for t in self.repo.teams_by_ids(order["team_ids"])}
        teams = []
        for team_id in order["team_ids"]:
            status = found[team_id]["status"] if team_id in found else "unknown"
            available = status in domain.DISPATCHABLE_STATUSES
            teams.append({"team_id": team_id, "status": status, "available": available})
        lines = []
        for line in order["resources"]:
            current = self.repo.stock_line(line_id(line["warehouse_id"], line["item_code"]))
            have = float(current["quantity"]) if current else 0.0
            lines.append({**line, "on_hand": have, "available": have >= line["quantity"]})
        note = "演练：仅模拟占用，真实队伍状态、库存和台账均未改变"
        return {"teams": teams, "resources": lines, "note": note}

    def _abandon(self, order: Mapping[str, Any], reason: str, path: str = "") -> None:
        """Give back whatever an order holds and keep it as rejected (idempotent)."""
        now = self.now()
        for team_id in order["team_ids"]:
            self.repo.give_back_team(team_id, order["_id"], now)
        for line in order["resources"]:
            ident = line_id(line["warehouse_id"], line["item_code"])
            if self.repo.stock_entry_recorded(ident, take_entry_id(order["_id"], line)):
                entry = self._ledger_entry(
                    line,
                    f"{order['_id']}:undo:{line['warehouse_id']}:{line['item_code']}",
                    f"调派单 {order['_id']} 未成立，退回：{reason}",
                    "compensation",
                    "system",
                    dispatch_id=order["_id"],
                )
                self.repo.release_stock(ident, line["quantity"], entry)
                self._reconcile_low(ident)
        self.repo.reject_order(order, {"path": path, "reason": reason}, now)

    def orders_page(self, filters: OrderFilter, limit: int, cursor: str | None) -> Page:
        """Orders newest first."""
        return self.repo.orders_page(filters, limit, cursor)

    def visible_order(self, order_id: str, principal: Principal) -> dict[str, Any]:
        """One order; another township's is reported absent."""
        order = self.repo.order(order_id)
        if order is None or not principal.may_act_for(order.get("township_code") or ""):
            raise not_found("dispatch", order_id)
        return order

    def change_order_status(
        self,
        order_id: str,
        wanted: str,
        by: str,
        returned: Sequence[Mapping[str, Any]] = (),
        note: str | None = None,
    ) -> dict[str, Any]:
        """Move an order along its life cycle; on release its teams and returns come back."""
        order = self.repo.order(order_id)
        if order is None:
            raise not_found("dispatch", order_id)
        current = order["status"]
        self._check_step(order, current, wanted, returned)
        now = self.now()
        fields: dict[str, Any] = {"status": wanted, "updated_at": now, f"{wanted}_at": now}
        if wanted == "released":
            fields["returned"] = [dict(r) for r in returned]
            fields["_release_pending"] = True
        entry = {"status": wanted, "at": now, "by": by}
        if note:
            entry["note"] = note
        event = events.dispatch_status_changed(self.clock, order, current, wanted, returned)
        if not self.repo.step_order(order_id, current, fields, entry, event):
            raise ConflictError("concurrent_change", f"调派单 {order_id} 已被修改，请刷新")
        self.wake_relay()
        if wanted == "released":
            self.finish_release(order_id)
        moved = self.repo.order(order_id) or order
        if wanted == "on_scene" and not moved.get("exercise"):
            metrics.observe_on_scene(moved.get("ordered_at"), moved["on_scene_at"])
        self.refresh_gauges()
        return moved

    def _check_step(
        self,
        order: Mapping[str, Any],
        current: str,
        wanted: str,
        returned: Sequence[Mapping[str, Any]],
    ) -> None:
        """409 for a step the life cycle forbids; 422 for returns that do not match."""
        reason = domain.transition_error(current, wanted)
        if reason:
            raise ConflictError("invalid_transition", reason, "status")
        if returned and wanted != "released":
            raise ApiError(
                422,
                "invalid",
                "只有撤回（released）时才归还物资",
                fields=[{"path": "returned", "reason": "仅限 status 为 released"}],
            )
        dispatched = [
            domain.Line(r["warehouse_id"], r["item_code"], r["quantity"])
            for r in order["resources"]
        ]
        back = [domain.Line(r["warehouse_id"], r["item_code"], r["quantity"]) for r in returned]
        errors = domain.return_errors(dispatched, back)
        errors += self._returned_fraction_errors(back)
        if errors:
            raise ApiError(422, "invalid_return", "归还物资与调拨不符", fields=errors)

    def _returned_fraction_errors(self, back: Sequence[domain.Line]) -> list[dict[str, str]]:
        """Returned quantities that would split an item counted in whole units."""
        errors = []
        for index, line in enumerate(back):
            stock = self.repo.stock_line(line_id(line.warehouse_id, line.item_code))
            if stock and (fraction := domain.fraction_error(line.quantity, stock["unit"])):
                errors.append({"path": f"returned.{index}.quantity", "reason": fraction})
        return errors

    def finish_release(self, order_id: str) -> None:
        """Free a released order's teams and put back returned supplies (idempotent)."""
        order = self.repo.order(order_id)
        if order is None or not order.get("_release_pending"):
            return
        if order.get("exercise"):
            # A drill order held nothing real, so nothing real comes back.
            self.repo.clear_release_pending(order_id)
            return
        self.repo.release_order_teams(order_id, self.now())
        by = order["history"][-1]["by"] if order.get("history") else "system"
        for line in order.get("returned") or []:
            if line["quantity"] <= 0:
                continue
            ident = line_id(line["warehouse_id"], line["item_code"])
            entry = self._ledger_entry(
                line,
                f"{order_id}:return:{line['warehouse_id']}:{line['item_code']}",
                f"调派单 {order_id} 撤回，未用物资归还",
                "return",
                by,
                dispatch_id=order_id,
            )
            self.repo.release_stock(ident, line["quantity"], entry)
            self._reconcile_low(ident, order["incident_id"])
        self.repo.clear_release_pending(order_id)

    def repair(self) -> dict[str, int]:
        """The housekeeping job: interrupted orders and releases, ledger copies, low-stock
        alerts and standby teams of ended plans."""
        stuck = self.repo.orders_left_reserving(self.now())
        for order in stuck:
            self._abandon(order, "预留中断")
        releasing = self.repo.orders_releasing()
        for order_id in releasing:
            self.finish_release(order_id)
        result = {"abandoned": len(stuck), "released": len(releasing)}
        result["ledger"] = self.repo.finish_ledger_copies()
        result["stock_low"] = sum(self._reconcile_low(i) for i in self.repo.lines_low_unalerted())
        result["standby_released"] = self._repair_standby()
        self.refresh_gauges()
        return result

    def _repair_standby(self) -> int:
        """Release teams left on standby for plans that have ended (after a crash)."""
        released = 0
        for plan_id in self.repo.standby_plan_ids():
            plan = self.repo.plan(plan_id)
            if plan is not None and plan["status"] == "ended":
                released += self.repo.release_standby(plan_id, self.now())
        return released

    # Plans -------------------------------------------------------------------------------------

    def plans_page(self, filters: PlanFilter, limit: int, cursor: str | None) -> Page:
        """Plans, latest activation first."""
        return self.repo.plans_page(filters, limit, cursor)

    def visible_plan(self, plan_id: str, principal: Principal) -> dict[str, Any]:
        """One plan; a township sees county-wide plans and plans naming it."""
        plan = self.repo.plan(plan_id)
        if plan is None or not _plan_visible(plan, principal):
            raise not_found("plan", plan_id)
        return plan

    def activate_by_hand(self, fields: Mapping[str, Any], keyed: Keyed) -> dict[str, Any]:
        """An operator's activation (e.g. on a township's request)."""
        for index, code in enumerate(fields["township_codes"]):
            self._known_township(code, f"township_codes.{index}")
        if fields.get("requesting_township"):
            self._known_township(fields["requesting_township"], "requesting_township")
        if fields["hazard"] not in self.table.categories:
            known = "、".join(sorted(self.table.categories))
            raise field_error("hazard", f"未知灾种；可选：{known}")
        plan_id = f"plan-{uuid.uuid4().hex[:12]}"
        scope = keyed.scope(plan_id)
        if keyed.key and (
            replay := check_replay(self.repo.plan_by_idempotency_scope(scope), keyed.digest)
        ):
            return replay
        plan = {
            "_id": plan_id,
            **fields,
            "trigger_kind": "operator",
            "trigger_id": plan_id,
            "incident_id": None,
            "warning_id": None,
            "scope": fields.get("scope") or domain.plan_scope(fields["level"], self.rules.plans),
            "activated_by": keyed.principal.name,
        }
        created, _ = self.activate_plan(plan, scope_key=(scope, keyed.digest))
        self.refresh_gauges()
        return created

    def _known_township(self, code: str, path: str) -> None:
        if self.county.township(code) is None:
            raise field_error(path, f"{code} 不是{self.county.name}的乡镇")

    def change_level_by_hand(
        self, plan_id: str, level: int, reason: str, by: str
    ) -> dict[str, Any]:
        """Step a plan up or down by hand."""
        plan = self.repo.plan(plan_id)
        if plan is None:
            raise not_found("plan", plan_id)
        if plan["status"] != "active":
            raise ConflictError("plan_ended", "预案已终止", "level")
        if plan["level"] == level:
            raise ConflictError("same_level", f"预案已是 {level} 级", "level")
        applied = f"api:{uuid.uuid4().hex}"
        if not self.change_plan_level(plan, level, domain.manual_reason(reason), by, applied):
            raise ConflictError("concurrent_change", "预案已被修改，请刷新")
        return self.repo.plan(plan_id) or plan

    def end_by_hand(self, plan_id: str, reason: str, by: str) -> dict[str, Any]:
        """Stand a plan down by hand."""
        plan = self.repo.plan(plan_id)
        if plan is None:
            raise not_found("plan", plan_id)
        if plan["status"] != "active":
            raise ConflictError("plan_ended", "预案已终止")
        self.end_plan(plan, domain.manual_reason(reason), by, f"api:{uuid.uuid4().hex}")
        self.refresh_gauges()
        return self.repo.plan(plan_id) or plan

    def activate_plan(
        self,
        plan: Mapping[str, Any],
        causation_id: str | None = None,
        scope_key: tuple[str, str] | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Put matching available teams on standby, then record the plan with its event.

        Converges under redelivery: teams already on standby for this plan are counted again,
        and the plan (deterministic id) is recorded once.
        """
        existing = self.repo.plan(plan["_id"])
        if existing is not None:
            return existing, False
        townships = None if plan["scope"] == "county" else list(plan["township_codes"])
        required = self.table.required(plan["hazard"])
        candidates = self.repo.available_teams_with_any(list(required))
        chosen = domain.standby_candidates(
            [team_view(row) for row in candidates], required, townships
        )
        now = self.now()
        if plan.get("exercise"):
            # A drill plan (演练) names the teams it would call; none is put on standby.
            doc = {**plan, "teams_on_standby": [], "simulated_standby": sorted(chosen)}
            return self._record_plan(doc, now, causation_id, scope_key)
        for team_id in chosen:
            self.repo.put_on_standby(team_id, plan["_id"], now)
        doc = {**plan, "teams_on_standby": self.repo.standby_teams_of(plan["_id"])}
        return self._record_plan(doc, now, causation_id, scope_key)

    def _record_plan(
        self,
        plan: Mapping[str, Any],
        now: datetime,
        causation_id: str | None,
        scope_key: tuple[str, str] | None,
    ) -> tuple[dict[str, Any], bool]:
        """Record an activated plan with its ``plan_activated`` event (once per id)."""
        entry = {
            "action": "activated",
            "level": plan["level"],
            "at": now,
            "by": plan.get("activated_by"),
            "reason": plan.get("reason"),
            "reason_label": plan.get("reason_label") or plan.get("reason"),
        }
        doc = {**plan, "status": "active", "activated_at": now, "history": [entry]}
        event = events.plan_activated(self.clock, doc, causation_id)
        created_doc, created = self.repo.record_plan(doc, [event], scope_key)
        if created:
            self.wake_relay()
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
        now = self.now()
        entry = {
            "action": "changed",
            "old_level": plan["level"],
            "level": level,
            "at": now,
            "by": by,
            "reason": reason.text,
            "reason_label": reason.label,
        }
        fields = {"level": level, "updated_at": now}
        done = self.repo.change_plan_level(
            plan["_id"], plan["level"], fields, entry, event, applied_id
        )
        if done:
            self.wake_relay()
        return done

    def end_plan(
        self, plan: Mapping[str, Any], reason: domain.PlanReason, by: str, applied_id: str
    ) -> bool:
        """Stand a plan down and release its standby teams (never deployed ones)."""
        done = False
        if plan["status"] == "active":
            released = self.repo.standby_teams_of(plan["_id"])
            event = events.plan_ended(
                self.clock,
                plan,
                reason.text,
                released,
                causation_id=applied_id,
                reason_label=reason.label,
            )
            now = self.now()
            fields = {
                "status": "ended",
                "ended_at": now,
                "end_reason": reason.text,
                "end_reason_label": reason.label,
                "teams_released": released,
            }
            entry = {
                "action": "ended",
                "at": now,
                "by": by,
                "reason": reason.text,
                "reason_label": reason.label,
            }
            done = self.repo.end_plan(plan["_id"], fields, entry, event, applied_id)
            if done:
                self.wake_relay()
        # Always (also on a redelivery): a crash after the plan ended must not strand teams.
        self.repo.release_standby(plan["_id"], self.now())
        return done

    # Plans following incidents and warnings (bus) ----------------------------------------------

    def on_incident_event(self, envelope: EventEnvelope) -> bool:
        """``incident_reported`` / ``_regraded`` / ``_closed``: fold the event into the local
        view, then bring the incident's plan and assignments in line with the view.

        The view, not the event, decides: a close that came first keeps a late report from
        starting a plan; a re-grade that came first is not undone by the report's older grade;
        nothing starts a plan until the initial report has said the incident is real.
        """
        payload = parse_payload(envelope).model_dump(mode="python")
        incident_id = str(payload["incident_id"])
        merged = self.repo.merge_incident_event(
            incident_id,
            envelope.event_id,
            lambda view: domain.apply_incident_event(
                view, incident_id, envelope.event_type, payload, envelope.occurred_at
            ),
        )
        incident = self.repo.incident_view(incident_id)
        assert incident is not None
        if incident["status"] == "closed":
            return self._incident_closed(incident, envelope) or merged
        grade = domain.incident_plan_grade(incident)
        if grade is None:
            return merged
        # 篇3: only the 10-or-more-people escalation starts a plan by itself.
        escalated = bool(incident.get("crowd_rule"))
        return self._incident_plan(incident, grade, envelope, escalated) or merged

    def _incident_closed(self, incident: dict[str, Any], envelope: EventEnvelope) -> bool:
        """End the incident's plan and its open dispute assignments (again on every event)."""
        closed_at = incident.get("closed_at") or envelope.occurred_at
        self.repo.close_assignments_of_incident(incident["_id"], closed_at)
        plan = self.repo.plan(incident_plan_id(incident["_id"]))
        ended = False
        if plan is not None:
            reason = domain.incident_closed_reason(str(incident.get("close_reason") or ""))
            by = str(incident.get("closed_by") or "intake")
            ended = self.end_plan(plan, reason, by, envelope.event_id)
        self.refresh_gauges()
        return ended

    def _incident_plan(
        self, incident: dict[str, Any], grade: int, envelope: EventEnvelope, escalated: bool
    ) -> bool:
        """Activate or step the incident's plan as the rules say."""
        if incident.get("exercise"):
            return False  # drills do not move real teams to standby
        plan_id = incident_plan_id(incident["_id"])
        plan = self.repo.plan(plan_id)
        if plan is not None and plan["status"] != "active":
            return False
        force = escalated and self.rules.plans.activate_on_escalated
        action = domain.plan_action(
            plan["level"] if plan else None, grade, self.rules.plans, force=force
        )
        if action is None:
            return False
        kind, level = action
        if kind != "activate":
            assert plan is not None
            reason = domain.incident_regraded_reason(grade)
            return self.change_plan_level(plan, level, reason, "intake", envelope.event_id)
        reason = domain.incident_grade_reason(grade)
        if force and grade > self.rules.plans.activate_max_level:
            reason = domain.crowd_rule_reason()
        plan_doc = {
            "_id": plan_id,
            "level": level,
            "trigger_kind": "incident",
            "trigger_id": incident["_id"],
            "incident_id": incident["_id"],
            "warning_id": None,
            "hazard": incident.get("category") or "other",
            "township_codes": [incident["township_code"]],
            "scope": domain.plan_scope(level, self.rules.plans),
            "reason": reason.text,
            "reason_label": reason.label,
            "activated_by": "intake",
            "exercise": False,
        }
        _, created = self.activate_plan(plan_doc, causation_id=envelope.event_id)
        self.refresh_gauges()
        return created

    def on_warning_event(self, envelope: EventEnvelope) -> bool:
        """Issued, adjusted, lifted or expired: fold into the warning view, then the plan follows
        the view (levels 1–2 activate, other levels step it, lifted or expired ends it, also when
        the end came before the issue)."""
        p: Any = parse_payload(envelope)
        merged = self.repo.merge_warning_event(
            p.warning_id,
            envelope.event_id,
            lambda view: domain.apply_warning_event(
                view, p.warning_id, envelope.event_type, p.model_dump(mode="python")
            ),
        )
        warning = self.repo.warning_view(p.warning_id)
        assert warning is not None
        if warning["ended"]:
            return self._warning_ended(p, envelope) or merged
        level = domain.warning_plan_level(warning)
        if level is None:
            return merged
        if envelope.event_type == "warning_adjusted":
            reason = domain.warning_adjusted_reason(p.old_level, p.level, p.reason)
        else:
            reason = domain.warning_level_reason(level)
        return self._warning_level(warning, level, envelope, reason) or merged

    def _warning_ended(self, p: Any, envelope: EventEnvelope) -> bool:
        """Lifting or expiry ends the warning's plan and releases its standby teams."""
        plan = self.repo.plan(warning_plan_id(p.warning_id))
        if plan is None:
            return False
        lifted = envelope.event_type == "warning_lifted"
        reason = domain.warning_ended_reason(lifted, getattr(p, "reason", None))
        ended = self.end_plan(plan, reason, "warning", envelope.event_id)
        self.refresh_gauges()
        return ended

    def _warning_level(
        self,
        warning: dict[str, Any],
        level: int,
        envelope: EventEnvelope,
        reason: domain.PlanReason,
    ) -> bool:
        """Activate or step the warning's plan as the rules say."""
        plan_id = warning_plan_id(warning["_id"])
        plan = self.repo.plan(plan_id)
        if plan is not None and plan["status"] != "active":
            return False
        action = domain.plan_action(plan["level"] if plan else None, level, self.rules.plans)
        if action is None:
            return False
        kind, new_level = action
        if kind != "activate":
            assert plan is not None
            return self.change_plan_level(plan, new_level, reason, "warning", envelope.event_id)
        areas = [code for code in warning["areas"] if self.county.township(code) is not None]
        plan_doc = {
            "_id": plan_id,
            "level": new_level,
            "trigger_kind": "warning",
            "trigger_id": warning["_id"],
            "incident_id": None,
            "warning_id": warning["_id"],
            "hazard": warning["hazard"],
            "township_codes": areas,
            "scope": domain.plan_scope(new_level, self.rules.plans),
            "reason": reason.text,
            "reason_label": reason.label,
            "activated_by": "warning",
            "exercise": False,
        }
        _, created = self.activate_plan(plan_doc, causation_id=envelope.event_id)
        self.refresh_gauges()
        return created


def _plan_visible(plan: Mapping[str, Any], principal: Principal) -> bool:
    """A township sees county-wide plans and plans naming it; other roles see all."""
    if principal.role != Role.TOWNSHIP:
        return True
    return plan.get("scope") == "county" or principal.township_code in (
        plan.get("township_codes") or []
    )
