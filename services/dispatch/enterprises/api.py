"""HTTP routes of the enterprise risk register (企业风险台账) and its inspections (检查):
parse, authorize, call a use case, shape."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from fastapi import APIRouter, Body, Header, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from libs.common.auth import Principal, Role
from libs.common.errors import field_error
from libs.common.idempotency import fingerprint, validate_key
from libs.common.jsontypes import JsonBool, JsonDay, JsonInt, JsonNumber
from libs.common.openapi import Limit
from libs.common.service import ServiceContext
from libs.common.text import Text
from services.dispatch.enterprises import domain
from services.dispatch.enterprises.repository import EnterpriseFilter
from services.dispatch.enterprises.usecases import EnterpriseUseCases

WRITERS = (Role.OPERATOR, Role.ADMIN)
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
CODE_PATTERN = r"^\d{9}$"
# A mainland mobile number, or a landline with its area code (0551-6660110, 05516660110).
PHONE = r"^(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})$"
RiskLevel = Literal["major", "large", "general", "low"]
GroupName = Literal["财产保全组", "职工利益保障组", "政策咨询组", "维护稳定组"]
assert set(GroupName.__args__) == set(domain.RESPONSE_GROUPS)  # type: ignore[attr-defined]
# The alphabet of GB 32100 (no I, O, S, V, Z); the check character is checked by the use case.
CREDIT_CODE = r"^[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ContactIn(_Strict):
    """联系人：姓名和电话（手机或带区号的座机）。"""

    name: Text = Field(min_length=1, max_length=50, description="姓名")
    phone: str = Field(pattern=PHONE, description="电话：手机 11 位或带区号座机")


class ResponseGroupIn(ContactIn):
    """篇3 的应急处置小组之一及其联系人。"""

    group: GroupName = Field(description="小组：财产保全组、职工利益保障组、政策咨询组、维护稳定组")


class EnterpriseIn(_Strict):
    """企业登记：风险等级、危险类型、位置、责任人、安全员和四个应急处置小组。"""

    id: str | None = Field(default=None, pattern=ID_PATTERN, description="企业编号；不给则生成")
    name: Text = Field(min_length=2, max_length=100, description="企业名称")
    credit_code: str = Field(
        pattern=CREDIT_CODE,
        description="统一社会信用代码（18 位数字或大写字母，按 GB 32100 校验）",
    )
    township_code: str = Field(pattern=CODE_PATTERN, description="所在乡镇代码")
    risk_level: RiskLevel = Field(
        description="风险等级：major 重大、large 较大、general 一般、low 低"
    )
    hazard_types: list[domain.HazardType] = Field(
        min_length=1, max_length=len(domain.HAZARD_TYPES), description="危险类型（清单内）"
    )
    lat: JsonNumber = Field(ge=-90, le=90, description="纬度")
    lon: JsonNumber = Field(ge=-180, le=180, description="经度")
    responsible: ContactIn = Field(description="主要负责人")
    safety_officer: ContactIn = Field(description="安全管理员")
    response_groups: list[ResponseGroupIn] = Field(
        default_factory=list, max_length=4, description="应急处置小组及联系人"
    )
    exercise: JsonBool = Field(default=False, description="演练：另行保存，不计入台账统计")


class EnterprisePatch(_Strict):
    """修改企业登记内容；须给出读到的版本（If-Match 或 revision），版本已变则 409。"""

    revision: JsonInt | None = Field(
        default=None, ge=1, description="读到的版本号（或用 If-Match）"
    )
    name: Text | None = Field(default=None, min_length=2, max_length=100)
    township_code: str | None = Field(default=None, pattern=CODE_PATTERN)
    risk_level: RiskLevel | None = None
    hazard_types: list[domain.HazardType] | None = Field(
        default=None, min_length=1, max_length=len(domain.HAZARD_TYPES)
    )
    lat: JsonNumber | None = Field(default=None, ge=-90, le=90)
    lon: JsonNumber | None = Field(default=None, ge=-180, le=180)
    responsible: ContactIn | None = None
    safety_officer: ContactIn | None = None
    response_groups: list[ResponseGroupIn] | None = Field(default=None, max_length=4)


class CloseIn(_Strict):
    """注销（关停、迁出）：原因必填，记录保留。"""

    # Its own title: another service has a model of the same name in one OpenAPI document.
    model_config = ConfigDict(title="EnterpriseCloseIn")

    reason: Text = Field(min_length=2, max_length=200, description="注销原因")
    revision: JsonInt | None = Field(default=None, ge=1, description="读到的版本号（可不给）")


class InspectionIn(_Strict):
    """一次检查：日期、检查人、发现的问题；有问题须给整改期限。"""

    date: JsonDay = Field(description="检查日期")
    inspector: Text = Field(min_length=1, max_length=50, description="检查人")
    findings: list[Text] = Field(default_factory=list, max_length=50, description="发现的问题")
    deadline: JsonDay | None = Field(default=None, description="整改期限（有问题时必填）")
    note: Text | None = Field(default=None, max_length=500, description="备注")


class RectifyIn(_Strict):
    """整改完成：日期和说明。"""

    rectified_on: JsonDay = Field(description="整改完成日期")
    rectification_note: Text = Field(min_length=2, max_length=500, description="整改情况说明")


def inspection_out(doc: Mapping[str, Any], today: dt.date) -> dict[str, Any]:
    """An inspection as the API shows it, with its rectification state."""
    state = domain.rectification_state(doc, today)
    return {
        "id": doc["_id"],
        "enterprise_id": doc["enterprise_id"],
        "date": doc["date"],
        "inspector": doc["inspector"],
        "findings": doc.get("findings") or [],
        "deadline": doc.get("deadline"),
        "note": doc.get("note"),
        "rectification": state,
        "rectification_label": domain.RECTIFICATION_LABELS[state],
        "rectified_on": doc.get("rectified_on"),
        "rectification_note": doc.get("rectification_note"),
        "exercise": bool(doc.get("exercise")),
        "recorded_at": doc.get("recorded_at"),
    }


def enterprise_out(
    ctx: ServiceContext,
    doc: Mapping[str, Any],
    inspections: Sequence[Mapping[str, Any]],
    today: dt.date,
) -> dict[str, Any]:
    """An enterprise with its inspections and whether a rectification is overdue (整改逾期)."""
    township = ctx.county.township(doc["township_code"])
    shown = [inspection_out(i, today) for i in inspections]
    overdue = sum(1 for i in shown if i["rectification"] == "overdue")
    return {
        "id": doc["_id"],
        "revision": doc["revision"],
        "name": doc["name"],
        "credit_code": doc["credit_code"],
        "township_code": doc["township_code"],
        "township_name": township.name if township else None,
        "risk_level": doc["risk_level"],
        "risk_label": domain.RISK_LEVELS[doc["risk_level"]],
        "hazard_types": doc.get("hazard_types") or [],
        "lat": doc.get("lat"),
        "lon": doc.get("lon"),
        "responsible": doc["responsible"],
        "safety_officer": doc["safety_officer"],
        "response_groups": doc.get("response_groups") or [],
        "status": doc["status"],
        "closed_reason": doc.get("closed_reason"),
        "exercise": bool(doc.get("exercise")),
        "source": doc.get("source", "api"),
        "inspections": shown,
        "open_rectifications": sum(1 for i in shown if i["rectification"] in ("open", "overdue")),
        "overdue_rectifications": overdue,
        "rectification_flag": "整改逾期" if overdue else None,
        "created_at": doc.get("created_at"),
        "updated_at": doc.get("updated_at"),
    }


def area_entry(doc: Mapping[str, Any]) -> dict[str, Any]:
    """An enterprise as a plan lists it."""
    return {
        "id": doc["_id"],
        "name": doc["name"],
        "township_code": doc["township_code"],
        "risk_level": doc["risk_level"],
        "risk_label": domain.RISK_LEVELS[doc["risk_level"]],
        "hazard_types": doc.get("hazard_types") or [],
        "responsible": doc["responsible"],
    }


def revision_of(if_match: str | None, body_revision: int | None) -> int:
    """The revision the caller read: ``If-Match`` ("3" or W/"3") or the body's ``revision``."""
    if if_match is not None:
        found = re.fullmatch(r'\s*(?:W/)?"?(\d{1,9})"?\s*', if_match)
        if found is None:
            raise field_error("header.If-Match", '须为读到的版本号，如 "3"')
        if body_revision is not None and int(found.group(1)) != body_revision:
            raise field_error("revision", "与 If-Match 不一致")
        return int(found.group(1))
    if body_revision is None:
        raise field_error(
            "revision", "须给出读到的版本号（revision 或 If-Match），以免覆盖他人修改"
        )
    return body_revision


def build_router(ctx: ServiceContext, register: EnterpriseUseCases) -> APIRouter:
    """The /v1/enterprises routes bound to the register's use cases."""
    router = APIRouter(tags=["dispatch"])
    _read_routes(router, ctx, register)
    _register_routes(router, ctx, register)
    _inspection_routes(router, ctx, register)
    return router


def _shown(
    ctx: ServiceContext, register: EnterpriseUseCases, doc: Mapping[str, Any]
) -> dict[str, Any]:
    """An enterprise as the API shows it, with its inspections as of today."""
    inspections = register.inspections_of([doc["_id"]])[doc["_id"]]
    return enterprise_out(ctx, doc, inspections, register.today())


def _read_routes(router: APIRouter, ctx: ServiceContext, register: EnterpriseUseCases) -> None:
    """The reference lists, the register and one enterprise, for every key."""
    anyone = ctx.allow(*Role)

    @router.get("/v1/enterprise-reference", summary="风险等级、危险类型和应急处置小组清单")
    def reference(_: Principal = anyone) -> dict[str, Any]:
        levels = [{"code": k, "label": v} for k, v in domain.RISK_LEVELS.items()]
        return {
            "risk_levels": levels,
            "hazard_types": list(domain.HAZARD_TYPES),
            "response_groups": list(domain.RESPONSE_GROUPS),
        }

    @router.get("/v1/enterprises", summary="企业风险台账（重大在前）")
    def list_enterprises(
        township_code: str | None = Query(default=None, pattern=CODE_PATTERN),
        risk_level: RiskLevel | None = None,
        hazard_type: domain.HazardType | None = Query(default=None, description="危险类型"),
        status: Literal["active", "closed"] = Query(default="active", description="在册或已注销"),
        exercise: bool = Query(default=False, description="true：只看演练企业"),
        limit: Limit = 50,
        cursor: str | None = None,
        principal: Principal = anyone,
    ) -> dict[str, Any]:
        if township_code is not None:
            principal.ensure_township(township_code, "query.township_code")
        if principal.role == Role.TOWNSHIP:
            township_code = principal.township_code
        filters = EnterpriseFilter(township_code, risk_level, hazard_type, status, exercise)
        rows, nxt = register.page(filters, limit, cursor)
        grouped = register.inspections_of([r["_id"] for r in rows])
        today = register.today()
        items = [enterprise_out(ctx, r, grouped[r["_id"]], today) for r in rows]
        return {"items": items, "next_cursor": nxt}

    @router.get("/v1/enterprises/{enterprise_id}", summary="一家企业（含检查和整改）")
    def get_enterprise(
        enterprise_id: str, response: Response, principal: Principal = anyone
    ) -> dict[str, Any]:
        doc = register.enterprise(enterprise_id, principal)
        response.headers["ETag"] = f'"{doc["revision"]}"'
        return _shown(ctx, register, doc)


def _register_routes(router: APIRouter, ctx: ServiceContext, register: EnterpriseUseCases) -> None:
    """Registering, changing and closing an enterprise."""

    @router.post("/v1/enterprises", status_code=201, summary="企业登记入台账")
    def create_enterprise(
        body: EnterpriseIn,
        response: Response,
        principal: Principal = ctx.allow(*WRITERS),
        idempotency_key: str | None = Header(default=None),
    ) -> dict[str, Any]:
        fields = body.model_dump(mode="json")
        digest = fingerprint(fields)
        doc = register.register(fields, principal, validate_key(idempotency_key), digest)
        response.headers["ETag"] = f'"{doc["revision"]}"'
        return _shown(ctx, register, doc)

    @router.patch("/v1/enterprises/{enterprise_id}", summary="修改企业登记（按版本，冲突 409）")
    def patch_enterprise(
        enterprise_id: str,
        body: EnterprisePatch,
        response: Response,
        principal: Principal = ctx.allow(*WRITERS),
        if_match: str | None = Header(default=None, description='读到的版本号（ETag），如 "3"'),
    ) -> dict[str, Any]:
        changes = body.model_dump(mode="json", exclude_unset=True, exclude={"revision"})
        if not changes:
            raise field_error("body", "至少修改一项")
        nulls = sorted(k for k, v in changes.items() if v is None)
        if nulls:
            raise field_error(nulls[0], "不能置空")
        revision = revision_of(if_match, body.revision)
        doc = register.change(enterprise_id, revision, changes, principal.name)
        response.headers["ETag"] = f'"{doc["revision"]}"'
        return _shown(ctx, register, doc)

    @router.post("/v1/enterprises/{enterprise_id}/close", summary="注销企业（关停、迁出）")
    def close_enterprise(
        enterprise_id: str,
        body: CloseIn,
        principal: Principal = ctx.allow(*WRITERS),
    ) -> dict[str, Any]:
        closed = register.close(enterprise_id, body.revision, body.reason, principal.name)
        return _shown(ctx, register, closed)


def _inspection_routes(
    router: APIRouter, ctx: ServiceContext, register: EnterpriseUseCases
) -> None:
    """Recording an inspection and its rectification."""

    @router.post(
        "/v1/enterprises/{enterprise_id}/inspections", status_code=201, summary="记录一次检查"
    )
    def create_inspection(
        enterprise_id: str,
        body: InspectionIn,
        principal: Principal = ctx.allow(*WRITERS),
        idempotency_key: str | None = Header(default=None),
    ) -> dict[str, Any]:
        key = validate_key(idempotency_key)
        doc = register.inspect(enterprise_id, body.model_dump(mode="json"), principal, key)
        return inspection_out(doc, register.today())

    @router.patch(
        "/v1/enterprises/{enterprise_id}/inspections/{inspection_id}",
        summary="整改完成（日期和说明）",
    )
    def rectify(
        enterprise_id: str,
        inspection_id: str,
        body: RectifyIn = Body(),
        principal: Principal = ctx.allow(*WRITERS),
    ) -> dict[str, Any]:
        fields = body.model_dump(mode="json")
        doc = register.rectified(enterprise_id, inspection_id, fields, principal.name)
        return inspection_out(doc, register.today())
