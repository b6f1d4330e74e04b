"""HTTP routes of the dispatch service: teams, stock, dispatch orders, plans, assignments."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from typing import Any, Literal

from fastapi import APIRouter, Body, Header, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from libs.common.auth import Principal, Role
from libs.common.clock import UtcTime
from libs.common.county import TEAM_KINDS, Contact
from libs.common.errors import ApiError, field_error, not_found
from libs.common.idempotency import (
    find_replay,
    fingerprint,
    idempotency_scope,
    insert_idempotent,
    validate_key,
)
from libs.common.openapi import Limit, errors
from libs.common.outbox import new_document
from libs.common.pagination import page
from libs.common.service import ServiceContext
from libs.common.text import Text
from services.dispatch import domain, events
from services.dispatch.metrics import (
    ORDERS,
    STOCK_ADJUSTMENTS,
    exercise_label,
    observe_on_scene,
    refresh,
)
from services.dispatch.store import (
    ConflictError,
    DispatchStore,
    deadline,
    line_id,
)

READ_ROLES = tuple(Role)
OPERATIONS = (Role.OPERATOR, Role.LEADER)
ROSTER = (Role.OPERATOR, Role.LEADER, Role.ADMIN)
STOCK_KEEPERS = (Role.OPERATOR, Role.ADMIN)

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
CODE_PATTERN = r"^\d{9}$"
NAME_PATTERN = r"^[a-z0-9_]{1,40}$"

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
    headcount: int = Field(ge=1, le=100_000, description="人数 headcount")
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
    headcount: int | None = Field(default=None, ge=1, le=100_000, description="人数 headcount")
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
            raise ValueError("send at least one field to change")
        for name in self.model_fields_set:
            if getattr(self, name) is None:
                raise ValueError(f"{name} may not be null")
        return self


def _names(values: list[str]) -> list[str]:
    import re

    for value in values:
        if not re.fullmatch(NAME_PATTERN, value):
            raise ValueError(f"{value!r}: lowercase letters, digits and _ only")
    if len(set(values)) != len(values):
        raise ValueError("capabilities must not repeat")
    return values


class ResourceIn(_Strict):
    """A quantity of one item from one warehouse (物资)."""

    warehouse_id: Text = Field(min_length=1, max_length=64, description="仓库编号 warehouse id")
    item_code: str = Field(pattern=NAME_PATTERN, description="物资代码 item code")
    quantity: float = Field(gt=0, le=1e9, allow_inf_nan=False, description="数量 quantity")


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
    exercise: bool = Field(
        default=False,
        description="演练 drill order: reserves no real team or stock, records what it would take; "
        "always true for a drill incident",
    )

    @model_validator(mode="after")
    def _not_empty(self) -> DispatchIn:
        if not self.team_ids and not self.resources:
            raise ValueError("an order needs at least one team or one resource line")
        return self


class ReturnedIn(_Strict):
    """Unused supplies brought back on release (归还物资)."""

    warehouse_id: Text = Field(min_length=1, max_length=64, description="仓库编号 warehouse id")
    item_code: str = Field(pattern=NAME_PATTERN, description="物资代码 item code")
    quantity: float = Field(ge=0, le=1e9, allow_inf_nan=False, description="归还数量 quantity")


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
    delta: float = Field(
        ge=-1e9, le=1e9, allow_inf_nan=False, description="变动数量 change (+ in, − out)"
    )
    reason: Text = Field(min_length=1, max_length=500, description="调整原因 reason")

    @field_validator("delta")
    @classmethod
    def _non_zero(cls, value: float) -> float:
        if value == 0:
            raise ValueError("must not be zero")
        return value


class StockLineIn(_Strict):
    """A new item kept in a warehouse (储备物资)."""

    warehouse_id: Text = Field(min_length=1, max_length=64, description="仓库编号 warehouse id")
    item_code: str = Field(pattern=NAME_PATTERN, description="物资代码 item code")
    name: Text = Field(min_length=1, max_length=100, description="物资名称 item name")
    unit: Text = Field(min_length=1, max_length=20, description="计量单位 unit")
    quantity: float = Field(
        default=0, ge=0, le=1e9, allow_inf_nan=False, description="初始数量 initial quantity"
    )
    min_level: float = Field(
        default=0, ge=0, le=1e9, allow_inf_nan=False, description="最低储备 minimum level"
    )


class StockLinePatch(_Strict):
    """Changes to a stock line's description or minimum level (not its quantity)."""

    name: Text | None = Field(default=None, min_length=1, max_length=100, description="物资名称")
    unit: Text | None = Field(default=None, min_length=1, max_length=20, description="计量单位")
    min_level: float | None = Field(
        default=None, ge=0, le=1e9, allow_inf_nan=False, description="最低储备 minimum level"
    )


class PlanIn(_Strict):
    """An operator's activation of a response plan (预案启动), e.g. on a township's request."""

    level: int = Field(ge=1, le=4, description="响应级别 response level, 1 = Ⅰ级 highest")
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
    exercise: bool = Field(
        default=False,
        description="演练 drill plan: puts no real team on standby, names the teams it would call",
    )

    @field_validator("township_codes")
    @classmethod
    def _codes(cls, values: list[str]) -> list[str]:
        import re

        for value in values:
            if not re.fullmatch(CODE_PATTERN, value):
                raise ValueError(f"{value!r} is not a 9-digit township code")
        return sorted(set(values))


class PlanLevelIn(_Strict):
    """A new response level (调整响应级别)."""

    level: int = Field(ge=1, le=4, description="响应级别 response level")
    reason: Text = Field(min_length=1, max_length=1000, description="调整理由 why")


class PlanEndIn(_Strict):
    """Standing a plan down (终止响应)."""

    reason: Text = Field(min_length=1, max_length=1000, description="终止理由 why")


class AssignmentIn(_Strict):
    """A dispute assignment (统一指派化解, 篇4)."""

    incident_id: Text = Field(min_length=1, max_length=64, description="纠纷事件编号 incident id")
    responsible_leader: Text = Field(
        min_length=1, max_length=50, description="化解责任领导 responsible leader"
    )
    responsible_unit: Text = Field(
        min_length=1, max_length=100, description="化解责任单位 responsible unit"
    )
    due_at: UtcTime = Field(description="化解时限 deadline (ISO 8601 with offset)")
    major: bool = Field(
        default=False, description="重大矛盾纠纷 major dispute: needs a leader's approval (审批)"
    )
    cross_area: bool = Field(
        default=False,
        description="跨区域、跨行业 cross-area dispute: handled at county level from the start",
    )
    note: Text = Field(default="", max_length=1000, description="处理意见 handling opinion")


class AttemptIn(_Strict):
    """One mediation attempt (调处) at the dispute's current level."""

    level: Literal["group", "village", "township", "county"] = Field(
        description="调处层级 level: group (社), village (村), township (乡), county (县)"
    )
    outcome: Literal["resolved", "unresolved"] = Field(
        description="调处结果 outcome: resolved (化解) or unresolved (未化解)"
    )
    note: Text = Field(default="", max_length=1000, description="调处情况 what was done")


class EscalateIn(_Strict):
    """Moving a dispute up one level (移交上一级) after 三三制 attempts."""

    reason: Text = Field(default="", max_length=1000, description="移交理由 why")
    responsible_leader: Text | None = Field(
        default=None, min_length=1, max_length=50, description="新责任领导 new responsible leader"
    )
    responsible_unit: Text | None = Field(
        default=None, min_length=1, max_length=100, description="新责任单位 new responsible unit"
    )
    due_at: UtcTime | None = Field(default=None, description="新化解时限 new deadline")


class ApproveIn(_Strict):
    """A leader's approval of a major-dispute assignment (党委书记审批)."""

    note: Text = Field(default="", max_length=1000, description="审批意见 approval note")


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


def _plan_out(doc: Mapping[str, Any]) -> dict[str, Any]:
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
    }


def _assignment_out(doc: Mapping[str, Any], required: int) -> dict[str, Any]:
    attempts = [domain.Attempt(a["level"], a["outcome"]) for a in doc.get("attempts") or []]
    blocked = domain.escalation_error(doc["status"], doc["level"], attempts, required)
    return {
        "id": doc["_id"],
        "incident_id": doc["incident_id"],
        "township_code": doc.get("township_code"),
        "responsible_leader": doc["responsible_leader"],
        "responsible_unit": doc["responsible_unit"],
        "due_at": doc["due_at"],
        "major": doc["major"],
        "cross_area": doc.get("cross_area", False),
        "note": doc.get("note", ""),
        "status": doc["status"],
        "level": doc["level"],
        "level_label": domain.MEDIATION_LEVEL_LABELS[doc["level"]],
        "attempts": doc.get("attempts") or [],
        "unresolved_at_level": domain.unresolved_at(attempts, doc["level"]),
        "attempts_required": required,
        "escalation_allowed": blocked is None,
        "escalations": doc.get("escalations") or [],
        "overdue": doc.get("overdue", False),
        "overdue_at": doc.get("overdue_at"),
        "created_at": doc["created_at"],
        "created_by": doc["created_by"],
        "approved_by": doc.get("approved_by"),
        "approved_at": doc.get("approved_at"),
        "resolved_at": doc.get("resolved_at"),
        "exercise": bool(doc.get("exercise")),
    }


def _page_out(rows: list[dict[str, Any]], cursor: str | None) -> dict[str, Any]:
    return {"items": rows, "next_cursor": cursor}


# ---------------------------------------------------------------------------------------------
# Router


def build_router(ctx: ServiceContext) -> APIRouter:
    """The dispatch router."""
    router = APIRouter(tags=["dispatch"])
    store = DispatchStore(ctx)
    county = ctx.county
    required_attempts = store.rules.attempts_per_level

    def known_township(code: str, path: str) -> None:
        if county.township(code) is None:
            raise field_error(path, f"{code} is not a township of {county.name}")

    def idem(
        principal: Principal, key: str | None, body: BaseModel, new_id: str
    ) -> tuple[str | None, str, str]:
        checked = validate_key(key)
        scope = idempotency_scope(principal.key_id, checked, new_id)
        return checked, scope, fingerprint(body.model_dump(mode="json"))

    # -- teams ----------------------------------------------------------------------------------

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
        selector: dict[str, Any] = {}
        if status:
            selector["status"] = status
        if kind:
            selector["kind"] = kind
        if township_code:
            selector["township_code"] = township_code
        if capability:
            selector["capabilities"] = capability
        rows, nxt = page(
            store.teams, selector, sort_field="_id", descending=False, limit=limit, cursor=cursor
        )
        return _page_out([_team_out(r, ctx, principal) for r in rows], nxt)

    @router.get("/v1/teams/{team_id}", summary="One team")
    def get_team(team_id: str, principal: Principal = ctx.allow(*READ_ROLES)) -> dict[str, Any]:
        team = store.team(team_id)
        if team is None:
            raise not_found("team", team_id)
        return _team_out(team, ctx, principal)

    @router.post("/v1/teams", status_code=201, summary="Add a team to the roster")
    def create_team(
        body: TeamIn,
        principal: Principal = ctx.allow(*ROSTER),
        idempotency_key: str | None = Header(default=None),
    ) -> dict[str, Any]:
        known_township(body.township_code, "township_code")
        team_id = body.id or f"T-{uuid.uuid4().hex[:10]}"
        key, scope, digest = idem(principal, idempotency_key, body, team_id)
        if key and (replay := find_replay(store.teams, scope, digest)):
            return _team_out(replay, ctx)
        now = store.now()
        doc = {
            "_id": team_id,
            **body.model_dump(mode="json", exclude={"id"}),
            "source": "api",
            "created_by": principal.name,
            "created_at": now,
            "updated_at": now,
            "status_changed_at": now,
        }
        created, _ = store.create_team(doc, scope, digest)
        refresh(store)
        return _team_out(created, ctx)

    @router.patch("/v1/teams/{team_id}", summary="Change a team (roster fields, manual status)")
    def patch_team(
        team_id: str, body: TeamPatch, principal: Principal = ctx.allow(*ROSTER)
    ) -> dict[str, Any]:
        if body.township_code:
            known_township(body.township_code, "township_code")
        changes = body.model_dump(mode="json", exclude_unset=True)
        updated = store.patch_team(team_id, changes, principal.name)
        refresh(store)
        return _team_out(updated, ctx)

    # -- stock ----------------------------------------------------------------------------------

    @router.get("/v1/warehouses", summary="Emergency supply stores (应急物资储备库)")
    def list_warehouses(_: Principal = ctx.allow(*READ_ROLES)) -> dict[str, Any]:
        rows = store.warehouses.find({}, sort=[("_id", 1)], limit=500)
        items = [
            {
                "id": r["_id"],
                "name": r["name"],
                "township_code": r["township_code"],
                "lines": store.stock.count_documents({"warehouse_id": r["_id"]}),
            }
            for r in rows
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
        selector: dict[str, Any] = {}
        if warehouse_id:
            selector["warehouse_id"] = warehouse_id
        if item_code:
            selector["item_code"] = item_code
        if below_min is not None:
            op = "$lt" if below_min else "$gte"
            selector["$expr"] = {op: ["$quantity", "$min_level"]}
        rows, nxt = page(
            store.stock, selector, sort_field="_id", descending=False, limit=limit, cursor=cursor
        )
        return _page_out([_stock_out(r) for r in rows], nxt)

    @router.post("/v1/stock", status_code=201, summary="Keep a new item in a warehouse")
    def create_stock_line(
        body: StockLineIn, principal: Principal = ctx.allow(*STOCK_KEEPERS)
    ) -> dict[str, Any]:
        if store.warehouses.find_one({"_id": body.warehouse_id}) is None:
            raise field_error("warehouse_id", f"unknown warehouse {body.warehouse_id}")
        now = store.now()
        doc = store.new_line(
            body.warehouse_id, body.item_code, body.name, body.unit, body.min_level, now
        ) | {"source": "api", "created_by": principal.name}
        store.create_line(doc)
        if body.quantity > 0:
            store.change_stock(
                body.warehouse_id,
                body.item_code,
                body.quantity,
                entry_id=f"{doc['_id']}:initial",
                reason="initial stock",
                kind="adjustment",
                by=principal.name,
            )
        store.reconcile_low(doc["_id"])
        refresh(store)
        return _stock_out(store.line(body.warehouse_id, body.item_code) or doc)

    @router.patch(
        "/v1/stock/{warehouse_id}/{item_code}", summary="Change a line's name, unit or minimum"
    )
    def patch_stock_line(
        warehouse_id: str,
        item_code: str,
        body: StockLinePatch,
        _: Principal = ctx.allow(*STOCK_KEEPERS),
    ) -> dict[str, Any]:
        if store.line(warehouse_id, item_code) is None:
            raise not_found("stock line", line_id(warehouse_id, item_code))
        changes = body.model_dump(exclude_unset=True, exclude_none=True)
        if not changes:
            raise field_error("body", "send at least one of name, unit, min_level")
        store.set_line_fields(warehouse_id, item_code, changes)
        refresh(store)
        return _stock_out(store.line(warehouse_id, item_code) or {})

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
        key = validate_key(idempotency_key)
        digest = fingerprint(body.model_dump(mode="json"))
        entry_id = (
            "adj:" + hashlib.sha256(f"{principal.key_id}:{key}".encode()).hexdigest()[:32]
            if key
            else f"adj:{uuid.uuid4().hex}"
        )
        outcome, line = store.change_stock(
            body.warehouse_id,
            body.item_code,
            body.delta,
            entry_id=entry_id,
            reason=body.reason,
            kind="adjustment",
            by=principal.name,
            body_hash=digest,
        )
        STOCK_ADJUSTMENTS.labels("adjustment", outcome).inc()
        if outcome == "missing":
            raise ApiError(
                404,
                "not_found",
                f"{body.item_code} is not kept in warehouse {body.warehouse_id}",
                fields=[{"path": "item_code", "reason": "no such stock line"}],
            )
        assert line is not None
        if outcome == "short":
            raise ConflictError(
                "stock_short",
                f"{line['quantity']:g} {line['unit']} of {body.item_code} left; "
                f"cannot take {-body.delta:g} (stock never goes negative)",
                "delta",
            )
        if outcome == "duplicate":
            store.flush_ledger(line["_id"])
            entry = store.ledger.find_one({"_id": entry_id}) or {}
            if entry.get("body_hash") != digest:
                raise ApiError(
                    409,
                    "idempotency_conflict",
                    "this Idempotency-Key was already used with a different request body",
                    fields=[
                        {"path": "header.Idempotency-Key", "reason": "reused with another body"}
                    ],
                )
        refresh(store)
        entry = store.ledger.find_one({"_id": entry_id})
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
        # Finish any interrupted copy first: a change is never shown without its entry.
        store.flush_all_ledgers()
        selector: dict[str, Any] = {}
        for name, value in (
            ("warehouse_id", warehouse_id),
            ("item_code", item_code),
            ("dispatch_id", dispatch_id),
            ("kind", kind),
        ):
            if value:
                selector[name] = value
        rows, nxt = page(store.ledger, selector, sort_field="at", limit=limit, cursor=cursor)
        return _page_out([_ledger_out(r) for r in rows], nxt)

    # -- dispatch orders ------------------------------------------------------------------------

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
        incident = store.incident(incident_id)
        if incident is None or not principal.may_act_for(incident["township_code"]):
            raise not_found("incident", incident_id)
        ranked = domain.rank_teams(
            store.dispatchable_teams(),
            incident["category"],
            incident["township_code"],
            county.distance_km,
            store.table,
            include_unmatched=include_unmatched,
        )[:limit]
        teams = {
            t["_id"]: t for t in store.teams.find({"_id": {"$in": [s.team_id for s in ranked]}})
        }
        return {
            "incident_id": incident_id,
            "category": incident["category"],
            "township_code": incident["township_code"],
            "required_capabilities": list(store.table.required(incident["category"])),
            "items": [
                {
                    "rank": s.rank,
                    "team": _team_out(teams[s.team_id], ctx, principal),
                    "matched_capabilities": list(s.matched),
                    "match_score": len(s.matched),
                    "distance_km": s.distance_km,
                }
                for s in ranked
                if s.team_id in teams
            ],
        }

    @router.post("/v1/dispatches", status_code=201, summary="Order teams and supplies (调派)")
    def create_dispatch(
        body: DispatchIn,
        principal: Principal = ctx.allow(*OPERATIONS),
        idempotency_key: str | None = Header(default=None),
    ) -> dict[str, Any]:
        order_id = uuid.uuid4().hex
        key, scope, digest = idem(principal, idempotency_key, body, order_id)
        if key and (replay := find_replay(store.orders, scope, digest)):
            return _order_out(replay)
        errors = []
        seen: set[str] = set()
        for index, team_id in enumerate(body.team_ids):
            if team_id in seen:
                errors.append({"path": f"team_ids.{index}", "reason": "team listed twice"})
            elif store.team(team_id) is None:
                errors.append({"path": f"team_ids.{index}", "reason": f"unknown team {team_id}"})
            seen.add(team_id)
        lines = [domain.Line(r.warehouse_id, r.item_code, r.quantity) for r in body.resources]
        for index in domain.duplicate_lines(lines):
            errors.append({"path": f"resources.{index}", "reason": "stock line listed twice"})
        for index, line in enumerate(lines):
            if store.line(line.warehouse_id, line.item_code) is None:
                errors.append(
                    {
                        "path": f"resources.{index}.item_code",
                        "reason": f"{line.item_code} is not kept in {line.warehouse_id}",
                    }
                )
        incident = store.incident(body.incident_id)
        if incident is None:
            errors.append({"path": "incident_id", "reason": "unknown incident"})
        exercise = body.exercise or bool(incident and incident.get("exercise"))
        if incident is not None and body.exercise and not incident.get("exercise"):
            errors.append(
                {"path": "exercise", "reason": "a drill order (演练) needs a drill incident"}
            )
        if errors:
            ORDERS.labels("invalid", exercise_label(exercise)).inc()
            raise ApiError(422, "invalid", "the order is not valid", fields=errors)
        assert incident is not None
        if incident.get("status") != "open":
            ORDERS.labels("rejected", exercise_label(exercise)).inc()
            raise ConflictError("incident_closed", "the incident is closed", "incident_id")
        now = store.now()
        order = {
            "_id": order_id,
            "incident_id": body.incident_id,
            "township_code": incident["township_code"],
            "team_ids": list(body.team_ids),
            "resources": [r.model_dump() for r in body.resources],
            "note": body.note,
            "status": "reserving",
            "created_at": now,
            "created_by": principal.name,
            "updated_at": now,
            "reserve_deadline": deadline(now, store.rules.reserve_timeout_seconds),
            "history": [{"status": "requested", "at": now, "by": principal.name}],
            "exercise": exercise,
        }
        try:
            placed, created = store.place_order(order, scope, digest)
        except ConflictError:
            ORDERS.labels("rejected", exercise_label(exercise)).inc()
            refresh(store)
            raise
        if created:
            ORDERS.labels("ordered", exercise_label(exercise)).inc()
        refresh(store)
        return _order_out(placed)

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
        selector: dict[str, Any] = {}
        if incident_id:
            selector["incident_id"] = incident_id
        if exercise is not None:
            selector["exercise"] = True if exercise else {"$ne": True}
        # Refused requests are kept for the record but only listed when asked for.
        selector["status"] = status or {"$ne": "rejected"}
        if principal.role == Role.TOWNSHIP:
            selector["township_code"] = principal.township_code
        rows, nxt = page(
            store.orders, selector, sort_field="created_at", limit=limit, cursor=cursor
        )
        return _page_out([_order_out(r) for r in rows], nxt)

    @router.get("/v1/dispatches/{dispatch_id}", summary="One dispatch order")
    def get_dispatch(
        dispatch_id: str, principal: Principal = ctx.allow(*READ_ROLES)
    ) -> dict[str, Any]:
        order = store.order(dispatch_id)
        if order is None or not principal.may_act_for(order.get("township_code") or ""):
            raise not_found("dispatch", dispatch_id)
        return _order_out(order)

    @router.post("/v1/dispatches/{dispatch_id}/status", summary="Order life cycle step")
    def dispatch_status(
        dispatch_id: str, body: StatusIn, principal: Principal = ctx.allow(*OPERATIONS)
    ) -> dict[str, Any]:
        returned = [r.model_dump() for r in body.returned]
        order = store.change_order_status(
            dispatch_id, body.status, principal.name, returned, body.note
        )
        if body.status == "on_scene" and not order.get("exercise"):
            observe_on_scene(order.get("ordered_at"), order["on_scene_at"])
        refresh(store)
        return _order_out(order)

    # -- plans ----------------------------------------------------------------------------------

    def plan_visible(plan: Mapping[str, Any], principal: Principal) -> bool:
        if principal.role != Role.TOWNSHIP:
            return True
        return plan.get("scope") == "county" or principal.township_code in (
            plan.get("township_codes") or []
        )

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
        selector: dict[str, Any] = {}
        if exercise is not None:
            selector["exercise"] = True if exercise else {"$ne": True}
        for name, value in (
            ("status", status),
            ("trigger_kind", trigger_kind),
            ("incident_id", incident_id),
            ("warning_id", warning_id),
        ):
            if value:
                selector[name] = value
        if principal.role == Role.TOWNSHIP:
            selector["$or"] = [{"scope": "county"}, {"township_codes": principal.township_code}]
        rows, nxt = page(
            store.plans, selector, sort_field="activated_at", limit=limit, cursor=cursor
        )
        return _page_out([_plan_out(r) for r in rows], nxt)

    @router.get("/v1/plans/{plan_id}", summary="One response plan")
    def get_plan(plan_id: str, principal: Principal = ctx.allow(*READ_ROLES)) -> dict[str, Any]:
        plan = store.plan(plan_id)
        if plan is None or not plan_visible(plan, principal):
            raise not_found("plan", plan_id)
        return _plan_out(plan)

    @router.post("/v1/plans", status_code=201, summary="Activate a plan (预案启动) by hand")
    def create_plan(
        body: PlanIn,
        principal: Principal = ctx.allow(*OPERATIONS),
        idempotency_key: str | None = Header(default=None),
    ) -> dict[str, Any]:
        for index, code in enumerate(body.township_codes):
            known_township(code, f"township_codes.{index}")
        if body.requesting_township:
            known_township(body.requesting_township, "requesting_township")
        if body.hazard not in store.table.categories:
            raise field_error(
                "hazard", f"unknown hazard; one of {', '.join(sorted(store.table.categories))}"
            )
        plan_id = f"plan-{uuid.uuid4().hex[:12]}"
        key, scope, digest = idem(principal, idempotency_key, body, plan_id)
        if key and (replay := find_replay(store.plans, scope, digest)):
            return _plan_out(replay)
        plan = {
            "_id": plan_id,
            "level": body.level,
            "trigger_kind": "operator",
            "trigger_id": plan_id,
            "incident_id": None,
            "warning_id": None,
            "hazard": body.hazard,
            "township_codes": body.township_codes,
            "scope": body.scope or domain.plan_scope(body.level, store.rules.plans),
            "reason": body.reason,
            "requested_by": body.requested_by,
            "requesting_township": body.requesting_township,
            "activated_by": principal.name,
            "exercise": body.exercise,
        }
        created, _ = store.activate_plan(plan, scope_key=(scope, digest))
        refresh(store)
        return _plan_out(created)

    @router.post("/v1/plans/{plan_id}/level", summary="Step a plan up or down (调整响应级别)")
    def plan_level(
        plan_id: str, body: PlanLevelIn, principal: Principal = ctx.allow(*OPERATIONS)
    ) -> dict[str, Any]:
        plan = store.plan(plan_id)
        if plan is None:
            raise not_found("plan", plan_id)
        if plan["status"] != "active":
            raise ConflictError("plan_ended", "the plan has ended", "level")
        if plan["level"] == body.level:
            raise ConflictError("same_level", f"the plan is already at level {body.level}", "level")
        if not store.change_plan_level(
            plan,
            body.level,
            domain.manual_reason(body.reason),
            principal.name,
            f"api:{uuid.uuid4().hex}",
        ):
            raise ConflictError("concurrent_change", "the plan changed meanwhile; reload")
        return _plan_out(store.plan(plan_id) or plan)

    @router.post("/v1/plans/{plan_id}/end", summary="Stand a plan down (终止响应)")
    def plan_end(
        plan_id: str, body: PlanEndIn, principal: Principal = ctx.allow(*OPERATIONS)
    ) -> dict[str, Any]:
        plan = store.plan(plan_id)
        if plan is None:
            raise not_found("plan", plan_id)
        if plan["status"] != "active":
            raise ConflictError("plan_ended", "the plan has already ended")
        store.end_plan(
            plan, domain.manual_reason(body.reason), principal.name, f"api:{uuid.uuid4().hex}"
        )
        refresh(store)
        return _plan_out(store.plan(plan_id) or plan)

    # -- dispute assignments --------------------------------------------------------------------

    def load_assignment(assignment_id: str, principal: Principal) -> dict[str, Any]:
        doc = store.assignment(assignment_id)
        if doc is None or not principal.may_act_for(doc.get("township_code") or ""):
            raise not_found("assignment", assignment_id)
        return doc

    @router.post("/v1/assignments", status_code=201, summary="Assign a dispute (统一指派)")
    def create_assignment(
        body: AssignmentIn,
        principal: Principal = ctx.allow(*OPERATIONS),
        idempotency_key: str | None = Header(default=None),
    ) -> dict[str, Any]:
        assignment_id = uuid.uuid4().hex
        key, scope, digest = idem(principal, idempotency_key, body, assignment_id)
        if key and (replay := find_replay(store.assignments, scope, digest)):
            return _assignment_out(replay, required_attempts)
        incident = store.incident(body.incident_id)
        if incident is None:
            raise field_error("incident_id", "unknown incident")
        if incident["category"] not in domain.DISPUTE_CATEGORIES:
            raise field_error(
                "incident_id",
                f"the incident is {incident['category']}, not a dispute "
                f"({' or '.join(domain.DISPUTE_CATEGORIES)})",
            )
        if incident.get("status") != "open":
            raise ConflictError("incident_closed", "the incident is closed", "incident_id")
        now = store.now()
        if body.due_at <= now:
            raise field_error("due_at", "must be in the future")
        doc = {
            "_id": assignment_id,
            "incident_id": body.incident_id,
            "township_code": incident["township_code"],
            "responsible_leader": body.responsible_leader,
            "responsible_unit": body.responsible_unit,
            "due_at": body.due_at,
            "major": body.major,
            "cross_area": body.cross_area,
            "note": body.note,
            "status": "pending_approval" if body.major else "active",
            "level": "county" if body.cross_area else "group",
            "attempts": [],
            "escalations": [],
            "overdue": False,
            "open_incident": body.incident_id,
            "created_at": now,
            "created_by": principal.name,
            "version": 1,
            "exercise": bool(incident.get("exercise")),
        }
        evts = [] if body.major else [events.assignment_created(ctx.clock, doc)]
        from pymongo.errors import DuplicateKeyError

        try:
            created, _ = insert_idempotent(
                store.assignments, new_document(doc, evts), scope, digest
            )
        except DuplicateKeyError as exc:
            raise ConflictError(
                "assignment_exists",
                "the dispute already has an open assignment (one door in, one door out)",
                "incident_id",
            ) from exc
        ctx.wake_relay()
        refresh(store)
        return _assignment_out(created, required_attempts)

    @router.get("/v1/assignments", summary="Dispute assignments (督办台账)")
    def list_assignments(
        status: Literal["pending_approval", "active", "resolved", "closed"] | None = None,
        overdue: bool | None = None,
        incident_id: str | None = None,
        level: Literal["group", "village", "township", "county"] | None = None,
        exercise: bool | None = Query(default=None, description="演练 drills only / none"),
        limit: Limit = 50,
        cursor: str | None = None,
        principal: Principal = ctx.allow(Role.OPERATOR, Role.LEADER, Role.TOWNSHIP),
    ) -> dict[str, Any]:
        selector: dict[str, Any] = {}
        if exercise is not None:
            selector["exercise"] = True if exercise else {"$ne": True}
        for name, value in (("status", status), ("incident_id", incident_id), ("level", level)):
            if value:
                selector[name] = value
        if overdue is not None:
            selector["overdue"] = overdue
        if principal.role == Role.TOWNSHIP:
            selector["township_code"] = principal.township_code
        rows, nxt = page(
            store.assignments, selector, sort_field="created_at", limit=limit, cursor=cursor
        )
        return _page_out([_assignment_out(r, required_attempts) for r in rows], nxt)

    @router.get("/v1/assignments/{assignment_id}", summary="One dispute assignment")
    def get_assignment(
        assignment_id: str,
        principal: Principal = ctx.allow(Role.OPERATOR, Role.LEADER, Role.TOWNSHIP),
    ) -> dict[str, Any]:
        return _assignment_out(load_assignment(assignment_id, principal), required_attempts)

    @router.post("/v1/assignments/{assignment_id}/approve", summary="Approve a major dispute")
    def approve_assignment(
        assignment_id: str,
        body: ApproveIn | None = Body(default=None),
        principal: Principal = ctx.allow(Role.LEADER),
    ) -> dict[str, Any]:
        doc = load_assignment(assignment_id, principal)
        if doc["status"] != "pending_approval":
            raise ConflictError("not_pending", f"the assignment is {doc['status']}, not pending")
        now = store.now()
        approved = {**doc, "status": "active", "approved_by": principal.name}
        updated = store.update_assignment(
            doc,
            {
                "$set": {
                    "status": "active",
                    "approved_by": principal.name,
                    "approved_at": now,
                    "approval_note": body.note if body else "",
                }
            },
            [events.assignment_created(ctx.clock, approved)],
        )
        refresh(store)
        return _assignment_out(updated, required_attempts)

    @router.post(
        "/v1/assignments/{assignment_id}/attempts", status_code=201, summary="Record mediation"
    )
    def record_attempt(
        assignment_id: str,
        body: AttemptIn,
        principal: Principal = ctx.allow(Role.OPERATOR, Role.LEADER, Role.TOWNSHIP),
        idempotency_key: str | None = Header(default=None),
    ) -> dict[str, Any]:
        doc = load_assignment(assignment_id, principal)
        key = validate_key(idempotency_key)
        attempt_id = (
            hashlib.sha256(f"{principal.key_id}:{key}".encode()).hexdigest()[:24]
            if key
            else uuid.uuid4().hex[:24]
        )
        if key and any(a.get("id") == attempt_id for a in doc.get("attempts") or []):
            return _assignment_out(doc, required_attempts)
        reason = domain.attempt_error(doc["status"], doc["level"], body.level)
        if reason:
            raise ConflictError("attempt_refused", reason, "level")
        now = store.now()
        attempt = {
            "id": attempt_id,
            "level": body.level,
            "outcome": body.outcome,
            "note": body.note,
            "at": now,
            "by": principal.name,
        }
        update: dict[str, Any] = {"$push": {"attempts": attempt}}
        if body.outcome == "resolved":
            update["$set"] = {"status": "resolved", "resolved_at": now}
            update["$unset"] = {"open_incident": ""}
        updated = store.update_assignment(doc, update)
        refresh(store)
        return _assignment_out(updated, required_attempts)

    @router.post("/v1/assignments/{assignment_id}/escalate", summary="Move up a level (三三制)")
    def escalate_assignment(
        assignment_id: str,
        body: EscalateIn | None = Body(default=None),
        principal: Principal = ctx.allow(Role.OPERATOR, Role.LEADER, Role.TOWNSHIP),
    ) -> dict[str, Any]:
        doc = load_assignment(assignment_id, principal)
        request = body or EscalateIn()
        attempts = [domain.Attempt(a["level"], a["outcome"]) for a in doc.get("attempts") or []]
        blocked = domain.escalation_error(doc["status"], doc["level"], attempts, required_attempts)
        if blocked:
            raise ConflictError("escalation_refused", blocked, "level")
        now = store.now()
        if request.due_at is not None and request.due_at <= now:
            raise field_error("due_at", "must be in the future")
        to_level = domain.next_level(doc["level"])
        assert to_level is not None
        unresolved = domain.unresolved_at(attempts, doc["level"])
        fields: dict[str, Any] = {"level": to_level}
        for name in ("responsible_leader", "responsible_unit", "due_at"):
            value = getattr(request, name)
            if value is not None:
                fields[name] = value
        if "due_at" in fields:
            fields["overdue"] = False
        escalation = {
            "from_level": doc["level"],
            "to_level": to_level,
            "reason": request.reason,
            "unresolved_attempts": unresolved,
            "at": now,
            "by": principal.name,
        }
        event = events.assignment_escalated(
            ctx.clock, doc, doc["level"], to_level, request.reason or None, unresolved
        )
        updated = store.update_assignment(
            doc, {"$set": fields, "$push": {"escalations": escalation}}, [event]
        )
        refresh(store)
        return _assignment_out(updated, required_attempts)

    return router
