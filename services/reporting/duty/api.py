"""HTTP routes of the duty office (值班室) under ``/v1/duty``: parse, authorize, call a use case,
shape the answer."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from libs.common.auth import Principal, Role
from libs.common.clock import UtcTime
from libs.common.errors import field_error
from libs.common.jsontypes import JsonBool, JsonDay, JsonInt, JsonNumber
from libs.common.openapi import Day, OptionalDay, day_query
from libs.common.service import ServiceContext
from libs.common.text import bounded_text
from services.reporting import documents
from services.reporting.duty import printing
from services.reporting.duty.usecases import DutyUseCases

# Who is on duty, and the roster, are the county's reference data: every key reads them.
READERS = (Role.ADMIN, Role.LEADER, Role.OPERATOR, Role.DEPARTMENT, Role.TOWNSHIP)
# Handovers, spot checks, the score and the pushes name every township's work: the duty office.
DUTY = (Role.ADMIN, Role.LEADER, Role.OPERATOR)
OFFICE = (Role.ADMIN, Role.OPERATOR)
# The city's platform calls back with a leader key the county issued to it (revocable, audited).
CITY = (Role.ADMIN, Role.LEADER)
MONTH = r"^(19|2\d)\d{2}-(0[1-9]|1[0-2])$"
# A spot check is made by the county office, or by the city with a leader key.
CHECKERS = (Role.ADMIN, Role.OPERATOR, Role.LEADER)
PHONE = r"^\+?\d[\d\- ]{4,23}$"
Name = bounded_text(50)
Note = bounded_text(4000, min_length=0)


class Person(BaseModel):
    """A person on duty and the phone to reach them on."""

    model_config = ConfigDict(extra="forbid", title="DutyPerson")

    name: Name = Field(description="姓名")  # type: ignore[valid-type]
    phone: str = Field(pattern=PHONE, description="联系电话")


class ShiftIn(BaseModel):
    """One shift of the week: the leader on duty (带班领导) and the duty officers (值班员)."""

    model_config = ConfigDict(extra="forbid")

    day: JsonDay = Field(description="日期（当地）")
    code: str = Field(
        pattern=r"^[a-z][a-z0-9_]{0,19}$", description="班次代码，如 day（白班）、night（夜班）"
    )
    leader: Person | None = Field(default=None, description="带班领导")
    officers: list[Person] = Field(default=[], max_length=10, description="值班员")


class WeekIn(BaseModel):
    """The shifts of one week to enter (others stay as they are)."""

    model_config = ConfigDict(extra="forbid")

    shifts: list[ShiftIn] = Field(max_length=100, description="本周各班次")
    exercise: JsonBool = Field(default=False, description="演练数据（不计入考核）")


class HandoverIn(BaseModel):
    """The outgoing officer opens the handover of the shift in force."""

    model_config = ConfigDict(extra="forbid")

    outgoing_officer: Name = Field(description="交班人")  # type: ignore[valid-type]
    notes: Note = Field(default="", description="交班事项")  # type: ignore[valid-type]
    exercise: JsonBool = Field(default=False, description="演练数据")


class NotesIn(BaseModel):
    """The outgoing officer's notes (only before confirmation)."""

    model_config = ConfigDict(extra="forbid")

    notes: Note = Field(description="交班事项")  # type: ignore[valid-type]


class ConfirmIn(BaseModel):
    """The incoming officer confirms receipt."""

    model_config = ConfigDict(extra="forbid")

    incoming_officer: Name = Field(description="接班人")  # type: ignore[valid-type]


class SpotCheckIn(BaseModel):
    """A spot check (抽查) of the duty office."""

    model_config = ConfigDict(extra="forbid")

    called_at: UtcTime = Field(description="抽查时间（带时区）")
    caller: Name = Field(description="抽查人")  # type: ignore[valid-type]
    caller_unit: bounded_text(60, min_length=0) = Field(  # type: ignore[valid-type]
        default="", description="抽查单位，如 市应急管理局"
    )
    answerer: bounded_text(50, min_length=0) = Field(  # type: ignore[valid-type]
        default="", description="接听人（脱岗时可空）"
    )
    rings: JsonInt | None = Field(default=None, ge=0, le=100, description="几声铃响内接听")
    minutes: JsonNumber | None = Field(default=None, ge=0, le=1440, description="几分钟内回应")
    result: Literal["on_duty", "absent"] = Field(description="结果：on_duty 在岗，absent 脱岗")
    exercise: JsonBool = Field(default=False, description="演练数据")


class UpstreamRequestIn(BaseModel):
    """The city's leader instruction (批示) or request for more information (续报要求)."""

    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(pattern=r"^[A-Za-z0-9._:-]{1,80}$", description="上级消息编号（幂等）")
    incident_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="事件编号")
    kind: Literal["instruction", "more_info"] = Field(
        description="instruction 领导批示；more_info 续报要求"
    )
    text: bounded_text(2000) = Field(description="批示或要求内容")  # type: ignore[valid-type]
    issued_by: bounded_text(50, min_length=0) = Field(  # type: ignore[valid-type]
        default="", description="批示领导或要求单位"
    )
    due_at: UtcTime | None = Field(default=None, description="要求报送时间（不填为 2 小时内）")


def shaped(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored record as the API shows it: ``id`` instead of the storage key."""
    return {"id": doc["_id"], **{k: v for k, v in doc.items() if k != "_id"}}


def build_router(ctx: ServiceContext, duty: DutyUseCases) -> APIRouter:
    """The duty office's routes."""
    router = APIRouter(tags=["duty"])
    _roster_routes(router, ctx, duty)
    _handover_routes(router, ctx, duty)
    _handover_closing_routes(router, ctx, duty)
    _handover_document_routes(router, ctx, duty)
    _spot_check_routes(router, ctx, duty)
    _upward_routes(router, ctx, duty)
    return router


def _roster_routes(router: APIRouter, ctx: ServiceContext, duty: DutyUseCases) -> None:
    """Who is on duty, and the weekly roster."""

    @router.get("/v1/duty/now", summary="当前值班（带班领导、值班员）")
    def on_duty_now(_: Principal = ctx.allow(*READERS)) -> dict[str, Any]:
        """Who is on duty now and who comes next."""
        return duty.on_duty_now()

    @router.get("/v1/duty/roster", summary="一周值班表")
    def roster(
        week: Annotated[OptionalDay, day_query("该周任一日期 YYYY-MM-DD（当地），默认本周")] = None,
        exercise: bool = Query(default=False, description="演练值班表"),
        _: Principal = ctx.allow(*READERS),
    ) -> dict[str, Any]:
        """Every shift of the week, with its people or empty."""
        return duty.week(week or duty.today(), exercise)

    @router.put(
        "/v1/duty/roster/{week}",
        summary="录入一周值班表",
        responses={422: {"description": "班次不在该周之内或班次代码未知"}},
    )
    def save_week(
        body: WeekIn,
        week: Annotated[
            Day, Path(description="该周任一日期 YYYY-MM-DD（当地），按所在周（周一至周日）录入")
        ],
        principal: Principal = ctx.allow(*OFFICE),
    ) -> dict[str, Any]:
        """Enter the given shifts of the week (each stamped with the shift in force)."""
        entries = [s.model_dump() for s in body.shifts]
        return duty.save_week(week, entries, principal.name, body.exercise)

    @router.post(
        "/v1/duty/roster/{week}/copy-last-week",
        summary="复制上周值班表",
        responses={409: {"description": "上周没有排班"}},
    )
    def copy_week(
        week: Annotated[Day, Path(description="该周任一日期 YYYY-MM-DD（当地）")],
        exercise: bool = Query(default=False, description="演练值班表"),
        principal: Principal = ctx.allow(*OFFICE),
    ) -> dict[str, Any]:
        """Last week's people on this week's shifts."""
        return duty.copy_last_week(week, principal.name, exercise)


def _handover_routes(router: APIRouter, ctx: ServiceContext, duty: DutyUseCases) -> None:
    """Listing, opening and reading handovers."""

    @router.get("/v1/duty/handovers", summary="交接班记录")
    def handovers(
        limit: int = Query(default=20, ge=1, le=100, description="条数"),
        exercise: bool = Query(default=False, description="演练记录"),
        _: Principal = ctx.allow(*DUTY),
    ) -> dict[str, Any]:
        """The latest handovers, newest first."""
        return {"items": [shaped(h) for h in duty.recent_handovers(limit, exercise)]}

    @router.post(
        "/v1/duty/handovers",
        status_code=201,
        summary="交班：开立交接记录（自动带出未结事项）",
        responses={409: {"description": "本班次已有交接记录"}},
    )
    def open_handover(
        body: HandoverIn, principal: Principal = ctx.allow(*OFFICE)
    ) -> dict[str, Any]:
        """Open the handover of the shift in force, pre-filled with what is still open."""
        opened = duty.open_handover(
            body.outgoing_officer, body.notes, principal.name, body.exercise
        )
        return shaped(opened)

    @router.get("/v1/duty/handovers/{handover_id}", summary="交接记录")
    def handover(
        handover_id: str = Path(max_length=64), _: Principal = ctx.allow(*DUTY)
    ) -> dict[str, Any]:
        """One handover record."""
        return shaped(duty.handover(handover_id))


def _handover_closing_routes(router: APIRouter, ctx: ServiceContext, duty: DutyUseCases) -> None:
    """The outgoing officer's notes, then the incoming officer's confirmation."""

    @router.patch(
        "/v1/duty/handovers/{handover_id}",
        summary="补充交班事项（确认前）",
        responses={409: {"description": "交接已确认，记录不可更改"}},
    )
    def add_notes(
        body: NotesIn,
        handover_id: str = Path(max_length=64),
        _: Principal = ctx.allow(*OFFICE),
    ) -> dict[str, Any]:
        """Change the notes until the incoming officer confirms."""
        return shaped(duty.add_notes(handover_id, body.notes))

    @router.post(
        "/v1/duty/handovers/{handover_id}/confirm",
        summary="接班确认",
        responses={409: {"description": "交接已确认，记录不可更改"}},
    )
    def confirm(
        body: ConfirmIn,
        handover_id: str = Path(max_length=64),
        principal: Principal = ctx.allow(*OFFICE),
    ) -> dict[str, Any]:
        """The incoming officer confirms; the record is closed for good."""
        confirmed = duty.confirm_handover(handover_id, body.incoming_officer, principal.name)
        return shaped(confirmed)


def _handover_document_routes(router: APIRouter, ctx: ServiceContext, duty: DutyUseCases) -> None:
    """The handover record as a document to print."""

    @router.get(
        "/v1/duty/handovers/{handover_id}/document",
        summary="交接班记录（.docx 或 PDF）",
        response_class=Response,
    )
    def handover_document(
        handover_id: str = Path(max_length=64),
        format: Literal["docx", "pdf"] = Query(default="docx", description="docx 或 pdf"),
        _: Principal = ctx.allow(*DUTY),
    ) -> Response:
        """The handover record laid out as an official document, for printing."""
        record = duty.handover(handover_id)
        official = printing.handover_document(record, duty.county, duty.tz)
        content, media_type, filename = documents.render(official, format)
        return Response(
            content,
            media_type=media_type,
            headers={"Content-Disposition": documents.disposition(filename)},
        )


def _spot_check_routes(router: APIRouter, ctx: ServiceContext, duty: DutyUseCases) -> None:
    """Spot checks of the duty office and its monthly score."""

    @router.get("/v1/duty/spot-checks", summary="抽查记录（按月）")
    def spot_checks(
        month: str = Query(pattern=MONTH, description="月份 YYYY-MM"),
        exercise: bool = Query(default=False, description="演练记录"),
        _: Principal = ctx.allow(*DUTY),
    ) -> dict[str, Any]:
        """The month's spot checks, oldest first."""
        return {"month": month, "items": [shaped(c) for c in duty.spot_checks(month, exercise)]}

    @router.post("/v1/duty/spot-checks", status_code=201, summary="登记抽查结果")
    def record_spot_check(
        body: SpotCheckIn, principal: Principal = ctx.allow(*CHECKERS)
    ) -> dict[str, Any]:
        """Record who called, who answered, how fast, and 在岗 or 脱岗."""
        if body.result == "on_duty" and not body.answerer:
            raise field_error("answerer", "在岗时须填写接听人")
        return shaped(duty.record_spot_check(body.model_dump(), principal.name, body.exercise))

    @router.get("/v1/duty/monthly", summary="值班月度小结与得分")
    def monthly(
        month: str = Query(pattern=MONTH, description="月份 YYYY-MM"),
        _: Principal = ctx.allow(*DUTY),
    ) -> dict[str, Any]:
        """Spot checks, missed handovers, late pushes and the duty office's score."""
        summary = duty.monthly(month)
        return {**summary, "spot_checks": [shaped(c) for c in summary["spot_checks"]]}


def _upward_routes(router: APIRouter, ctx: ServiceContext, duty: DutyUseCases) -> None:
    """Reports pushed to the city, and the city's instructions and requests."""

    @router.get("/v1/duty/upward", summary="向市级上报记录")
    def pushes(
        incident_id: str | None = Query(default=None, max_length=64, description="事件编号"),
        status: Literal["pending", "held", "delivered"] | None = Query(
            default=None, description="pending 待回执，held 待首报，delivered 已上报"
        ),
        limit: int = Query(default=50, ge=1, le=200, description="条数"),
        _: Principal = ctx.allow(*DUTY),
    ) -> dict[str, Any]:
        """Pushes to the city, newest first, and whether upward reporting is on."""
        items = [shaped(p) for p in duty.pushes(incident_id, status, limit)]
        return {**duty.upward_status(), "items": items}

    @router.get("/v1/duty/incidents/{incident_id}/upward", summary="事件的上报与上级批示")
    def incident_upward(
        incident_id: str = Path(max_length=64), _: Principal = ctx.allow(*DUTY)
    ) -> dict[str, Any]:
        """What went up for an incident, and the city's instructions and requests."""
        found = duty.upward_of_incident(incident_id)
        return {
            "incident_id": incident_id,
            "pushes": [shaped(p) for p in found["pushes"]],
            "requests": [shaped(r) for r in found["requests"]],
        }

    @router.post(
        "/v1/duty/upstream/requests",
        summary="上级平台回传批示或续报要求",
        responses={
            200: {"description": "同一上级消息编号已记录过：返回首次的记录"},
            404: {"description": "未上报过的事件"},
        },
    )
    def upstream_request(
        body: UpstreamRequestIn,
        response: Response,
        principal: Principal = ctx.allow(*CITY),
    ) -> dict[str, Any]:
        """Record the city's instruction or request on the incident; the township owes an
        answer by its due time. The same request id twice is answered with the first record."""
        stored, created = duty.receive_request(body.model_dump(), principal.name)
        response.status_code = 201 if created else 200
        return shaped(stored)
