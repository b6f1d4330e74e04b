"""HTTP routes of information work (信息报送, 篇6): parse, authorize, call a use case, shape."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from libs.common.auth import Principal, Role
from libs.common.errors import field_error
from libs.common.jsontypes import JsonBool, JsonDay
from libs.common.openapi import Month, OptionalDay, day_query, errors
from libs.common.service import ServiceContext
from libs.common.text import Text
from services.reporting.information.usecases import InformationUseCases

UNIT_CODE = r"^[a-z0-9_]{2,40}$"
TARGET_ID = r"^[A-Za-z0-9:_-]{1,80}$"
UnitKind = Literal["department", "township"]
Level = Literal["county", "city", "province", "national"]
TargetKind = Literal["item", "report", "incident"]

# XML-safe text with at least one character that is not a space (a field's own pattern
# replaces the XML one in the schema, so it says both).
_UNSAFE = "\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\uFFFE\\uFFFF"
WORDS = f"^[^{_UNSAFE}]*[^\\s{_UNSAFE}][^{_UNSAFE}]*$"


class ItemIn(BaseModel):
    """An information item (信息) or research item (调研) a unit submits to the county office."""

    model_config = ConfigDict(extra="forbid")

    unit_kind: UnitKind = Field(description="报送单位类别：department 部门，township 乡镇")
    unit_code: str = Field(pattern=UNIT_CODE, description="部门代码或乡镇代码")
    kind: Literal["info", "research"] = Field(description="info 信息，research 调研信息")
    title: Text = Field(min_length=2, max_length=100, pattern=WORDS, description="标题")
    body: Text = Field(
        min_length=10,
        max_length=1500,
        pattern=WORDS,
        description="正文（综合信息不超过1500字；调研信息须有情况、有问题、有分析、有建议）",
    )
    incident_id: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$", description="关联事件（可选）"
    )
    exercise: JsonBool = Field(default=False, description="演练：另行保存，不计入配额和考评")


class _Feedback(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target_kind: TargetKind = Field(
        description="对象：item 报送的信息，report 续报或终报，incident 事件首报"
    )
    target_id: str = Field(pattern=TARGET_ID, description="信息、报告或事件编号")
    level: Level = Field(description="级别：county 县级，city 市级，province 省级，national 国家级")
    date: JsonDay = Field(description="日期（当地）")
    exercise: JsonBool | None = Field(default=None, description="演练：须与对象一致（可省略）")


class AdoptionIn(_Feedback):
    """The county office records that an item or report was adopted (采用) at a level."""

    by: Text = Field(
        min_length=2,
        max_length=60,
        pattern=WORDS,
        description="采用单位或刊物，如 市政府《政务信息》",
    )


class InstructionIn(_Feedback):
    """The county office records a leader's instruction (批示) on an item or report."""

    leader: Text = Field(min_length=2, max_length=50, pattern=WORDS, description="批示领导")
    text: Text = Field(min_length=2, max_length=1000, pattern=WORDS, description="批示内容")


class NoticeIn(BaseModel):
    """A notice of criticism (通报批评) against a unit: 迟报、漏报或瞒报."""

    model_config = ConfigDict(extra="forbid")

    unit_kind: UnitKind = Field(description="单位类别：department 部门，township 乡镇")
    unit_code: str = Field(pattern=UNIT_CODE, description="部门代码或乡镇代码")
    reason: Literal["late", "missed", "concealed"] = Field(
        description="late 迟报，missed 漏报，concealed 瞒报"
    )
    text: Text = Field(min_length=2, max_length=500, pattern=WORDS, description="通报内容")
    date: JsonDay = Field(description="通报日期（当地）")
    exercise: JsonBool = Field(default=False, description="演练：不计入考评")


def build_router(ctx: ServiceContext, info: InformationUseCases) -> APIRouter:
    """The /v1/information routes bound to the information use cases."""
    router = APIRouter(tags=["reporting"])
    _item_routes(router, ctx, info)
    _feedback_routes(router, ctx, info)
    _evaluation_routes(router, ctx, info)
    return router


def _answer(result: tuple[dict[str, Any], bool], response: Response) -> dict[str, Any]:
    """201 for a new record, 200 for the one stored before."""
    body, created = result
    response.status_code = 201 if created else 200
    return {**body, "created": created}


def _item_routes(router: APIRouter, ctx: ServiceContext, info: InformationUseCases) -> None:
    """The reporting units, and submitting and reading information items."""
    anyone = ctx.allow(*Role)

    @router.get("/v1/information/units", summary="报送信息的单位：县直部门和乡镇")
    def units(principal: Principal = anyone) -> dict[str, Any]:
        return {"items": info.units(), "next_cursor": None}

    @router.post(
        "/v1/information/items",
        status_code=201,
        summary="报送一条信息或调研信息（部门、乡镇，或值班员代录）",
        description="部门密钥只能以本部门名义报送，乡镇密钥只能以本乡镇名义报送。"
        "带 Idempotency-Key 重发同一请求返回已报送的信息（200）。",
        responses={200: {"description": "同一 Idempotency-Key 的重发：已报送的信息"}},
    )
    def submit(
        body: ItemIn,
        response: Response,
        principal: Principal = ctx.allow(Role.DEPARTMENT, Role.TOWNSHIP, Role.OPERATOR),
        idempotency_key: str | None = Header(default=None),
    ) -> dict[str, Any]:
        raw = body.model_dump(mode="json")
        return _answer(info.submit(raw, principal, idempotency_key), response)

    @router.get("/v1/information/items", summary="某月报送的信息（乡镇密钥只看本乡镇）")
    def items(
        month: Month,
        unit_code: str | None = Query(default=None, pattern=UNIT_CODE, description="单位代码"),
        exercise: bool = Query(default=False, description="true：只看演练信息"),
        principal: Principal = anyone,
    ) -> dict[str, Any]:
        return {"items": info.items(month, exercise, principal, unit_code), "next_cursor": None}

    @router.get(
        "/v1/information/items/{item_id}",
        summary="一条信息及其采用、批示情况",
        responses=errors(404),
    )
    def item(item_id: str, principal: Principal = anyone) -> dict[str, Any]:
        return info.item_or_404(item_id, principal)


def _feedback_routes(router: APIRouter, ctx: ServiceContext, info: InformationUseCases) -> None:
    """Adoptions, instructions and notices the county office records, and reading them."""
    anyone = ctx.allow(*Role)
    office = ctx.allow(Role.OPERATOR, Role.LEADER)

    @router.post(
        "/v1/information/adoptions",
        status_code=201,
        summary="记录信息或报告被采用（县、市、省、国家级）",
        description="同一对象同一级别只记一次：重发相同内容返回已记录的采用（200），内容不同 409。",
        responses={200: {"description": "已记录的采用"}, **errors(404, 409)},
    )
    def adopt(body: AdoptionIn, response: Response, principal: Principal = office) -> Any:
        raw = body.model_dump(mode="json")
        return _answer(info.record_feedback("adoption", raw, principal), response)

    @router.post(
        "/v1/information/instructions",
        status_code=201,
        summary="记录领导对信息或报告的批示",
        description="领导、级别、日期和内容相同的批示只记一次（重发返回 200）。",
        responses={200: {"description": "已记录的批示"}, **errors(404)},
    )
    def instruct(body: InstructionIn, response: Response, principal: Principal = office) -> Any:
        raw = body.model_dump(mode="json")
        return _answer(info.record_feedback("instruction", raw, principal), response)

    @router.post(
        "/v1/information/notices",
        status_code=201,
        summary="记录对单位迟报、漏报、瞒报的通报批评（考评扣分）",
        responses={200: {"description": "已记录的通报"}},
    )
    def notice(body: NoticeIn, response: Response, principal: Principal = office) -> Any:
        raw = body.model_dump(mode="json")
        return _answer(info.record_feedback("notice", raw, principal), response)

    @router.get("/v1/information/feedback", summary="某月记录的采用、批示和通报")
    def feedback(
        month: Month,
        exercise: bool = Query(default=False, description="true：只看演练记录"),
        principal: Principal = anyone,
    ) -> dict[str, Any]:
        return {"items": info.feedback(month, exercise, principal), "next_cursor": None}


def _evaluation_routes(router: APIRouter, ctx: ServiceContext, info: InformationUseCases) -> None:
    """The units' quotas and the monthly scores."""
    anyone = ctx.allow(*Role)

    @router.get(
        "/v1/information/quotas",
        summary="各单位本周、本月的信息报送配额完成情况（未完成标记）",
    )
    def quotas(
        day: Annotated[
            OptionalDay, day_query("日期 YYYY-MM-DD（当地），默认今天", alias="date")
        ] = None,
        principal: Principal = anyone,
    ) -> dict[str, Any]:
        return info.quotas(day or info.today(), principal)

    @router.get("/v1/information/scores", summary="某月信息工作考评：部门和乡镇的得分与排名")
    def scores(month: Month, principal: Principal = anyone) -> dict[str, Any]:
        if month > info.today().isoformat()[:7]:
            raise field_error("query.month", "须为已经开始的月份")
        return info.scores(month, principal)
