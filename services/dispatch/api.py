"""HTTP routes of the dispatch service: teams, stock, dispatch orders, plans (the dispute
assignments' routes are in ``services/dispatch/disputes/api.py``)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from fastapi import APIRouter, Header, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from libs.common.auth import Principal, Role
from libs.common.county import TEAM_KINDS, Contact
from libs.common.errors import field_error
from libs.common.idempotency import fingerprint, validate_key
from libs.common.jsontypes import JsonBool, JsonInt, JsonNumber
from libs.common.openapi import Limit, errors
from libs.common.service import ServiceContext
from libs.common.text import Text
from services.dispatch import domain
from services.dispatch.repository import (
    LedgerFilter,
    OrderFilter,
    PlanFilter,
    StockFilter,
    TeamFilter,
)
from services.dispatch.usecases import DispatchUseCases, Keyed

READ_ROLES = tuple(Role)
OPERATIONS = (Role.OPERATOR, Role.LEADER)
ROSTER = (Role.OPERATOR, Role.LEADER, Role.ADMIN)
STOCK_KEEPERS = (Role.OPERATOR, Role.ADMIN)

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
CODE_PATTERN = r"^\d{9}$"
NAME_PATTERN = r"^[a-z0-9_]{1,40}$"

# The enterprises of an area (None: the county), 重大 first; real ones, and drill ones for a drill.
AreaEnterprises = Callable[[Sequence[str] | None, bool], list[dict[str, Any]]]

TeamKind = Literal["rescue", "fire", "medical", "militia", "police", "utility", "expert"]
assert set(TeamKind.__args__) == set(TEAM_KINDS)  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------
# Request models


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TeamIn(_Strict):
    """A team or expert group joining the roster (应急救援队伍/专家组)."""

    id: str | None = Field(
        default=None, pattern=ID_PATTERN, description="队伍编号 team id; generated when omitted"
    )
    name: Text = Field(min_length=1, max_length=100, description="队伍名称 team name")
    kind: TeamKind = Field(description="队伍类型 kind: rescue, fire, medical, militia, police, …")
    capabilities: list[Text] = Field(
        min_length=1, max_length=30, description="专业能力 capabilities, e.g. flood, rescue"
    )
    township_code: str = Field(pattern=CODE_PATTERN, description="驻地乡镇代码 base township")
    headcount: JsonInt = Field(ge=1, le=100_000, description="人数 headcount")
    contact: Contact = Field(description="联系人 contact person and phone")
    status: Literal["available", "standby", "resting"] = Field(
        default="available", description="状态 status: available (待命可用), standby, resting"
    )

    @field_validator("capabilities")
    @classmethod
    def _capability_names(cls, values: list[str]) -> list[str]:
        return _names(values)


class TeamPatch(_Strict):
    """Changes to a team; `deployed` is set only by dispatch orders."""

    name: Text | None = Field(default=None, min_length=1, max_length=100, description="队伍名称")
    kind: TeamKind | None = Field(default=None, description="队伍类型 kind")
    capabilities: list[Text] | None = Field(
        default=None, min_length=1, max_length=30, description="专业能力 capabilities"
    )
    township_code: str | None = Field(
        default=None, pattern=CODE_PATTERN, description="驻地乡镇代码 base township"
    )
    headcount: JsonInt | None = Field(default=None, ge=1, le=100_000, description="人数 headcount")
    contact: Contact | None = Field(default=None, description="联系人 contact")
    status: Literal["available", "standby", "resting"] | None = Field(
        default=None, description="状态 status: available, standby or resting (休整)"
    )

    @field_validator("capabilities")
    @classmethod
    def _capability_names(cls, values: list[str] | None) -> list[str] | None:
        return None if values is None else _names(values)

    @model_validator(mode="after")
    def _something(self) -> TeamPatch:
        if not self.model_fields_set:
            raise ValueError("至少提交一个要修改的字段")
        for name in self.model_fields_set:
            if getattr(self, name) is None:
                raise ValueError(f"{name} 不能为 null")
        return self


def _names(values: list[str]) -> list[str]:
    for value in values:
        if not re.fullmatch(NAME_PATTERN, value):
            raise ValueError(f"{value!r}：只能用小写字母、数字和 _")
    if len(set(values)) != len(values):
        raise ValueError("能力不能重复")
    return values


class ResourceIn(_Strict):
    """A quantity of one item from one warehouse (物资)."""

    warehouse_id: Text = Field(min_length=1, max_length=64, description="仓库编号 warehouse id")
    item_code: str = Field(pattern=NAME_PATTERN, description="物资代码 item code")
    quantity: JsonNumber = Field(gt=0, le=1e9, allow_inf_nan=False, description="数量 quantity")


class DispatchIn(_Strict):
    """A dispatch order (调派单): teams and supplies for one incident, all or nothing."""

    incident_id: Text = Field(min_length=1, max_length=64, description="事件编号 incident id")
    team_ids: list[Text] = Field(
        default_factory=list, max_length=50, description="调派队伍 teams to send"
    )
    resources: list[ResourceIn] = Field(
        default_factory=list, max_length=50, description="调拨物资 supplies to send"
    )
    note: Text = Field(default="", max_length=1000, description="备注 note for the teams")
    exercise: JsonBool = Field(
        default=False,
        description="演练 drill order: reserves no real team or stock, records what it would take; "
        "always true for a drill incident",
    )

    @model_validator(mode="after")
    def _not_empty(self) -> DispatchIn:
        if not self.team_ids and not self.resources:
            raise ValueError("调派单至少需要一支队伍或一条物资")
        return self


class ReturnedIn(_Strict):
    """Unused supplies brought back on release (归还物资)."""

    warehouse_id: Text = Field(min_length=1, max_length=64, description="仓库编号 warehouse id")
    item_code: str = Field(pattern=NAME_PATTERN, description="物资代码 item code")
    quantity: JsonNumber = Field(ge=0, le=1e9, allow_inf_nan=False, description="归还数量 quantity")


class StatusIn(_Strict):
    """A step in the order's life cycle (EDXL-RM deployment status / release)."""

    status: Literal["en_route", "on_scene", "completed", "released"] = Field(
        description="状态 en_route (出发), on_scene (到达现场), completed (完成), released (撤回)"
    )
    note: Text | None = Field(default=None, max_length=1000, description="备注 note")
    returned: list[ReturnedIn] = Field(
        default_factory=list, max_length=50, description="归还物资 unused supplies, on release"
    )


class StockAdjustIn(_Strict):
    """A stock adjustment (库存调整) with its reason, for the ledger."""

    warehouse_id: Text = Field(min_length=1, max_length=64, description="仓库编号 warehouse id")
    item_code: str = Field(pattern=NAME_PATTERN, description="物资代码 item code")
    delta: JsonNumber = Field(
        ge=-1e9, le=1e9, allow_inf_nan=False, description="变动数量 change (+ in, − out)"
    )
    reason: Text = Field(min_length=1, max_length=500, description="调整原因 reason")

    @field_validator("delta")
    @classmethod
    def _non_zero(cls, value: float) -> float:
        if value == 0:
            raise ValueError("不能为 0")
        return value


class StockLineIn(_Strict):
    """A new item kept in a warehouse (储备物资)."""

    warehouse_id: Text = Field(min_length=1, max_length=64, description="仓库编号 warehouse id")
    item_code: str = Field(pattern=NAME_PATTERN, description="物资代码 item code")
    name: Text = Field(min_length=1, max_length=100, description="物资名称 item name")
    unit: Text = Field(min_length=1, max_length=20, description="计量单位 unit")
    quantity: JsonNumber = Field(
        default=0, ge=0, le=1e9, allow_inf_nan=False, description="初始数量 initial quantity"
    )
    min_level: JsonNumber = Field(
        default=0, ge=0, le=1e9, allow_inf_nan=False, description="最低储备 minimum level"
    )


class StockLinePatch(_Strict):
    """Changes to a stock line's description or minimum level (not its quantity)."""

    name: Text | None = Field(default=None, min_length=1, max_length=100, description="物资名称")
    unit: Text | None = Field(default=None, min_length=1, max_length=20, description="计量单位")
    min_level: JsonNumber | None = Field(
        default=None, ge=0, le=1e9, allow_inf_nan=False, description="最低储备 minimum level"
    )


class PlanIn(_Strict):
    """An operator's activation of a response plan (预案启动), e.g. on a township's request."""

    level: JsonInt = Field(ge=1, le=4, description="响应级别 response level, 1 = Ⅰ级 highest")
    hazard: str = Field(
        pattern=NAME_PATTERN, description="灾种 hazard or incident category (capabilities table)"
    )
    township_codes: list[Text] = Field(
        min_length=1, max_length=100, description="受影响乡镇 affected townships"
    )
    scope: Literal["township", "county"] | None = Field(
        default=None,
        description="范围 township (teams based there) or county (全县); default from the level",
    )
    requested_by: Text = Field(
        min_length=1, max_length=100, description="请求方 who asked (township, superior, …)"
    )
    requesting_township: str | None = Field(
        default=None, pattern=CODE_PATTERN, description="请求支援的乡镇 requesting township"
    )
    reason: Text = Field(min_length=1, max_length=1000, description="启动理由 why")
    exercise: JsonBool = Field(
        default=False,
        description="演练 drill plan: puts no real team on standby, names the teams it would call",
    )

    @field_validator("township_codes")
    @classmethod
    def _codes(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.fullmatch(CODE_PATTERN, value):
                raise ValueError(f"{value!r} 不是 9 位乡镇代码")
        return sorted(set(values))


class PlanLevelIn(_Strict):
    """A new response level (调整响应级别)."""

    level: JsonInt = Field(ge=1, le=4, description="响应级别 response level")
    reason: Text = Field(min_length=1, max_length=1000, description="调整理由 why")


class PlanEndIn(_Strict):
    """Standing a plan down (终止响应)."""

    reason: Text = Field(min_length=1, max_length=1000, description="终止理由 why")


# ---------------------------------------------------------------------------------------------
# Views


def _team_out(
    doc: Mapping[str, Any], ctx: ServiceContext, principal: Principal | None = None
) -> dict[str, Any]:
    township = ctx.county.township(doc["township_code"])
    # The roster is county data, but the order or plan a team serves may be another
    # township's: a township key gets the team without those links.
    linked = principal is None or principal.role != Role.TOWNSHIP
    standby = doc["status"] == "standby" and linked
    return {
        "id": doc["_id"],
        "name": doc["name"],
        "kind": doc["kind"],
        "capabilities": doc.get("capabilities") or [],
        "township_code": doc["township_code"],
        "township_name": township.name if township else None,
        "headcount": doc["headcount"],
        "contact": doc.get("contact"),
        "status": doc["status"],
        "dispatch_id": doc.get("dispatch_id") if linked else None,
        "standby_plan_id": doc.get("standby_plan_id") if standby else None,
        "source": doc.get("source", "api"),
        "status_changed_at": doc.get("status_changed_at"),
        "created_at": doc.get("created_at"),
        "updated_at": doc.get("updated_at"),
    }


def _stock_out(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "warehouse_id": doc["warehouse_id"],
        "item_code": doc["item_code"],
        "name": doc["name"],
        "unit": doc["unit"],
        "quantity": doc["quantity"],
        "min_level": doc["min_level"],
        "below_min": doc["quantity"] < doc["min_level"],
        "updated_at": doc.get("updated_at"),
    }


def _ledger_out(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "warehouse_id": doc["warehouse_id"],
        "item_code": doc["item_code"],
        "delta": doc["delta"],
        "quantity_after": doc.get("quantity_after"),
        "kind": doc["kind"],
        "reason": doc["reason"],
        "by": doc["by"],
        "at": doc["at"],
        "dispatch_id": doc.get("dispatch_id"),
    }


def _order_out(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "incident_id": doc["incident_id"],
        "township_code": doc.get("township_code"),
        "team_ids": doc["team_ids"],
        "resources": doc["resources"],
        "note": doc.get("note", ""),
        "status": doc["status"],
        "edxl_rm_phase": domain.EDXL_RM_PHASE.get(doc["status"]),
        "created_at": doc["created_at"],
        "created_by": doc["created_by"],
        "ordered_at": doc.get("ordered_at"),
        "en_route_at": doc.get("en_route_at"),
        "on_scene_at": doc.get("on_scene_at"),
        "completed_at": doc.get("completed_at"),
        "released_at": doc.get("released_at"),
        "returned": doc.get("returned") or [],
        "rejection": doc.get("rejection"),
        "history": doc.get("history") or [],
        "exercise": bool(doc.get("exercise")),
        "simulated": doc.get("simulated"),
    }


def _plan_out(
    doc: Mapping[str, Any], area: AreaEnterprises, principal: Principal
) -> dict[str, Any]:
    codes = None if doc.get("scope") == "county" else list(doc.get("township_codes") or [])
    if principal.role == Role.TOWNSHIP:
        # A township reads its own enterprises only, also in a county-wide plan.
        own = principal.township_code or ""
        codes = [own] if codes is None or own in codes else []
    return {
        "id": doc["_id"],
        "status": doc["status"],
        "level": doc["level"],
        "level_label": domain.RESPONSE_LEVEL_LABELS.get(doc["level"]),
        "trigger_kind": doc["trigger_kind"],
        "trigger_id": doc["trigger_id"],
        "incident_id": doc.get("incident_id"),
        "warning_id": doc.get("warning_id"),
        "hazard": doc.get("hazard"),
        "township_codes": doc.get("township_codes") or [],
        "scope": doc.get("scope"),
        "teams_on_standby": doc.get("teams_on_standby") or [],
        "reason": doc.get("reason"),
        "reason_label": doc.get("reason_label") or doc.get("reason"),
        "activated_by": doc.get("activated_by"),
        "requested_by": doc.get("requested_by"),
        "requesting_township": doc.get("requesting_township"),
        "activated_at": doc.get("activated_at"),
        "ended_at": doc.get("ended_at"),
        "end_reason": doc.get("end_reason"),
        "end_reason_label": doc.get("end_reason_label") or doc.get("end_reason"),
        "teams_released": doc.get("teams_released") or [],
        "history": [
            {**entry, "reason_label": entry.get("reason_label") or entry.get("reason")}
            for entry in doc.get("history") or []
        ],
        "exercise": bool(doc.get("exercise")),
        "simulated_standby": doc.get("simulated_standby") or [],
        "enterprises": area(codes, bool(doc.get("exercise"))),
    }


def _read_once(area: AreaEnterprises) -> AreaEnterprises:
    """``area`` for one page: plans of the same area (most are county-wide) read the register
    once between them."""
    known: dict[tuple[tuple[str, ...] | None, bool], list[dict[str, Any]]] = {}

    def same_page(codes: Sequence[str] | None, exercise: bool) -> list[dict[str, Any]]:
        key = (None if codes is None else tuple(codes), exercise)
        if key not in known:
            known[key] = area(codes, exercise)
        return known[key]

    return same_page


def _suggestion_out(
    suggestion: domain.Suggestion,
    team: Mapping[str, Any],
    ctx: ServiceContext,
    principal: Principal,
) -> dict[str, Any]:
    return {
        "rank": suggestion.rank,
        "team": _team_out(team, ctx, principal),
        "matched_capabilities": list(suggestion.matched),
        "match_score": len(suggestion.matched),
        "distance_km": suggestion.distance_km,
    }


def _page_out(rows: list[dict[str, Any]], cursor: str | None) -> dict[str, Any]:
    return {"items": rows, "next_cursor": cursor}


# ---------------------------------------------------------------------------------------------
# Router: each group of routes parses, authorizes, calls one use case and shapes the answer.


def build_router(
    ctx: ServiceContext, dispatch: DispatchUseCases, area: AreaEnterprises
) -> APIRouter:
    """The dispatch router, bound to the use cases; plans list their area's enterprises."""
    router = APIRouter(tags=["dispatch"])
    _team_routes(router, ctx, dispatch)
    _stock_routes(router, ctx, dispatch)
    _ledger_routes(router, ctx, dispatch)
    _order_routes(router, ctx, dispatch)
    _order_tracking_routes(router, ctx, dispatch)
    _plan_routes(router, ctx, dispatch, area)
    return router


def _keyed(principal: Principal, key: str | None, body: BaseModel) -> Keyed:
    """The caller, its checked Idempotency-Key and the body's fingerprint."""
    return Keyed(principal, validate_key(key), fingerprint(body.model_dump(mode="json")))


def _team_routes(router: APIRouter, ctx: ServiceContext, dispatch: DispatchUseCases) -> None:
    @router.get("/v1/teams", summary="Team roster (应急救援队伍名册)")
    def list_teams(
        status: Literal["available", "standby", "deployed", "resting"] | None = None,
        kind: TeamKind | None = None,
        township_code: str | None = Query(default=None, pattern=CODE_PATTERN),
        capability: str | None = Query(default=None, pattern=NAME_PATTERN),
        limit: Limit = 50,
        cursor: str | None = None,
        principal: Principal = ctx.allow(*READ_ROLES),
    ) -> dict[str, Any]:
        filters = TeamFilter(status, kind, township_code, capability)
        rows, nxt = dispatch.teams_page(filters, limit, cursor)
        return _page_out([_team_out(r, ctx, principal) for r in rows], nxt)

    @router.get("/v1/teams/{team_id}", summary="One team")
    def get_team(team_id: str, principal: Principal = ctx.allow(*READ_ROLES)) -> dict[str, Any]:
        return _team_out(dispatch.team(team_id), ctx, principal)

    @router.post("/v1/teams", status_code=201, summary="Add a team to the roster")
    def create_team(
        body: TeamIn,
        principal: Principal = ctx.allow(*ROSTER),
        idempotency_key: str | None = Header(default=None),
    ) -> dict[str, Any]:
        if ctx.county.township(body.township_code) is None:
            raise field_error("township_code", f"{body.township_code} 不是{ctx.county.name}的乡镇")
        team_id = body.id or f"T-{uuid.uuid4().hex[:10]}"
        fields = body.model_dump(mode="json", exclude={"id"})
        created = dispatch.create_team(fields, team_id, _keyed(principal, idempotency_key, body))
        return _team_out(created, ctx)

    @router.patch("/v1/teams/{team_id}", summary="Change a team (roster fields, manual status)")
    def patch_team(
        team_id: str, body: TeamPatch, principal: Principal = ctx.allow(*ROSTER)
    ) -> dict[str, Any]:
        if body.township_code and ctx.county.township(body.township_code) is None:
            raise field_error("township_code", f"{body.township_code} 不是{ctx.county.name}的乡镇")
        changes = body.model_dump(mode="json", exclude_unset=True)
        return _team_out(dispatch.patch_team(team_id, changes, principal.name), ctx)


def _stock_routes(router: APIRouter, ctx: ServiceContext, dispatch: DispatchUseCases) -> None:
    @router.get("/v1/warehouses", summary="Emergency supply stores (应急物资储备库)")
    def list_warehouses(_: Principal = ctx.allow(*READ_ROLES)) -> dict[str, Any]:
        items = [
            {"id": r["_id"], "name": r["name"], "township_code": r["township_code"], "lines": n}
            for r, n in dispatch.warehouses()
        ]
        return _page_out(items, None)

    @router.get("/v1/stock", summary="Stock lines (库存)")
    def list_stock(
        warehouse_id: str | None = None,
        item_code: str | None = Query(default=None, pattern=NAME_PATTERN),
        below_min: bool | None = Query(default=None, description="低于最低储备 only lines below"),
        limit: Limit = 200,
        cursor: str | None = None,
        _: Principal = ctx.allow(*READ_ROLES),
    ) -> dict[str, Any]:
        filters = StockFilter(warehouse_id, item_code, below_min)
        rows, nxt = dispatch.stock_page(filters, limit, cursor)
        return _page_out([_stock_out(r) for r in rows], nxt)

    @router.post("/v1/stock", status_code=201, summary="Keep a new item in a warehouse")
    def create_stock_line(
        body: StockLineIn, principal: Principal = ctx.allow(*STOCK_KEEPERS)
    ) -> dict[str, Any]:
        return _stock_out(dispatch.create_line(body.model_dump(), principal.name))

    @router.patch(
        "/v1/stock/{warehouse_id}/{item_code}", summary="Change a line's name, unit or minimum"
    )
    def patch_stock_line(
        warehouse_id: str,
        item_code: str,
        body: StockLinePatch,
        _: Principal = ctx.allow(*STOCK_KEEPERS),
    ) -> dict[str, Any]:
        changes = body.model_dump(exclude_unset=True, exclude_none=True)
        return _stock_out(dispatch.patch_line(warehouse_id, item_code, changes))


def _ledger_routes(router: APIRouter, ctx: ServiceContext, dispatch: DispatchUseCases) -> None:
    @router.post(
        "/v1/stock/adjust",
        summary="Adjust a stock line with a reason (ledger entry)",
        responses=errors(404),
    )
    def adjust_stock(
        body: StockAdjustIn,
        principal: Principal = ctx.allow(*STOCK_KEEPERS),
        idempotency_key: str | None = Header(default=None),
    ) -> dict[str, Any]:
        keyed = _keyed(principal, idempotency_key, body)
        line, entry = dispatch.adjust_stock(
            body.warehouse_id, body.item_code, body.delta, body.reason, keyed
        )
        return {**_stock_out(line), "entry": _ledger_out(entry) if entry else None}

    @router.get("/v1/stock/ledger", summary="Full stock ledger (库存台账)")
    def stock_ledger(
        warehouse_id: str | None = None,
        item_code: str | None = Query(default=None, pattern=NAME_PATTERN),
        dispatch_id: str | None = None,
        kind: Literal["adjustment", "dispatch", "return", "compensation"] | None = None,
        limit: Limit = 100,
        cursor: str | None = None,
        _: Principal = ctx.allow(Role.OPERATOR, Role.LEADER, Role.ADMIN),
    ) -> dict[str, Any]:
        filters = LedgerFilter(warehouse_id, item_code, dispatch_id, kind)
        rows, nxt = dispatch.ledger_page(filters, limit, cursor)
        return _page_out([_ledger_out(r) for r in rows], nxt)


def _order_routes(router: APIRouter, ctx: ServiceContext, dispatch: DispatchUseCases) -> None:
    @router.get(
        "/v1/dispatches/suggest",
        summary="Ranked teams for an incident (推荐队伍)",
        responses=errors(404),
    )
    def suggest(
        incident_id: str,
        limit: int = Query(default=10, ge=1, le=100),
        include_unmatched: bool = False,
        principal: Principal = ctx.allow(Role.OPERATOR, Role.LEADER, Role.TOWNSHIP),
    ) -> dict[str, Any]:
        incident, ranked = dispatch.suggest(incident_id, principal, limit, include_unmatched)
        return {
            "incident_id": incident_id,
            "category": incident["category"],
            "township_code": incident["township_code"],
            "required_capabilities": list(dispatch.table.required(incident["category"])),
            "items": [_suggestion_out(s, team, ctx, principal) for s, team in ranked],
        }

    @router.post("/v1/dispatches", status_code=201, summary="Order teams and supplies (调派)")
    def create_dispatch(
        body: DispatchIn,
        principal: Principal = ctx.allow(*OPERATIONS),
        idempotency_key: str | None = Header(default=None),
    ) -> dict[str, Any]:
        placed = dispatch.order_teams_and_supplies(
            body.incident_id,
            body.team_ids,
            [r.model_dump() for r in body.resources],
            body.note,
            body.exercise,
            _keyed(principal, idempotency_key, body),
        )
        return _order_out(placed)


def _order_tracking_routes(
    router: APIRouter, ctx: ServiceContext, dispatch: DispatchUseCases
) -> None:
    @router.get("/v1/dispatches", summary="Dispatch orders")
    def list_dispatches(
        incident_id: str | None = None,
        status: Literal[
            "reserving", "ordered", "en_route", "on_scene", "completed", "released", "rejected"
        ]
        | None = None,
        exercise: bool | None = Query(default=None, description="演练 drills only / none"),
        limit: Limit = 50,
        cursor: str | None = None,
        principal: Principal = ctx.allow(*READ_ROLES),
    ) -> dict[str, Any]:
        township = principal.township_code if principal.role == Role.TOWNSHIP else None
        filters = OrderFilter(incident_id, status, exercise, township)
        rows, nxt = dispatch.orders_page(filters, limit, cursor)
        return _page_out([_order_out(r) for r in rows], nxt)

    @router.get("/v1/dispatches/{dispatch_id}", summary="One dispatch order")
    def get_dispatch(
        dispatch_id: str, principal: Principal = ctx.allow(*READ_ROLES)
    ) -> dict[str, Any]:
        return _order_out(dispatch.visible_order(dispatch_id, principal))

    @router.post("/v1/dispatches/{dispatch_id}/status", summary="Order life cycle step")
    def dispatch_status(
        dispatch_id: str, body: StatusIn, principal: Principal = ctx.allow(*OPERATIONS)
    ) -> dict[str, Any]:
        returned = [r.model_dump() for r in body.returned]
        order = dispatch.change_order_status(
            dispatch_id, body.status, principal.name, returned, body.note
        )
        return _order_out(order)


def _plan_routes(
    router: APIRouter, ctx: ServiceContext, dispatch: DispatchUseCases, area: AreaEnterprises
) -> None:
    @router.get("/v1/plans", summary="Response plans (预案)")
    def list_plans(
        status: Literal["active", "ended"] | None = None,
        trigger_kind: Literal["incident", "warning", "operator"] | None = None,
        incident_id: str | None = None,
        warning_id: str | None = None,
        exercise: bool | None = Query(default=None, description="演练 drills only / none"),
        limit: Limit = 50,
        cursor: str | None = None,
        principal: Principal = ctx.allow(*READ_ROLES),
    ) -> dict[str, Any]:
        township = principal.township_code if principal.role == Role.TOWNSHIP else None
        filters = PlanFilter(status, trigger_kind, incident_id, warning_id, exercise, township)
        rows, nxt = dispatch.plans_page(filters, limit, cursor)
        page_area = _read_once(area)
        return _page_out([_plan_out(r, page_area, principal) for r in rows], nxt)

    @router.get("/v1/plans/{plan_id}", summary="One response plan")
    def get_plan(plan_id: str, principal: Principal = ctx.allow(*READ_ROLES)) -> dict[str, Any]:
        return _plan_out(dispatch.visible_plan(plan_id, principal), area, principal)

    @router.post("/v1/plans", status_code=201, summary="Activate a plan (预案启动) by hand")
    def create_plan(
        body: PlanIn,
        principal: Principal = ctx.allow(*OPERATIONS),
        idempotency_key: str | None = Header(default=None),
    ) -> dict[str, Any]:
        keyed = _keyed(principal, idempotency_key, body)
        return _plan_out(dispatch.activate_by_hand(body.model_dump(), keyed), area, principal)

    @router.post("/v1/plans/{plan_id}/level", summary="Step a plan up or down (调整响应级别)")
    def plan_level(
        plan_id: str, body: PlanLevelIn, principal: Principal = ctx.allow(*OPERATIONS)
    ) -> dict[str, Any]:
        plan = dispatch.change_level_by_hand(plan_id, body.level, body.reason, principal.name)
        return _plan_out(plan, area, principal)

    @router.post("/v1/plans/{plan_id}/end", summary="Stand a plan down (终止响应)")
    def plan_end(
        plan_id: str, body: PlanEndIn, principal: Principal = ctx.allow(*OPERATIONS)
    ) -> dict[str, Any]:
        return _plan_out(
            dispatch.end_by_hand(plan_id, body.reason, principal.name), area, principal
        )
