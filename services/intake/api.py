"""HTTP routes of the intake service: report, read, merge and close incidents."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)
from starlette.concurrency import run_in_threadpool

from libs.common.auth import Principal, Role
from libs.common.clock import UtcTime
from libs.common.errors import ApiError, validation_fields
from libs.common.idempotency import fingerprint, validate_key
from libs.common.jsontypes import JsonBool, JsonInt, JsonNumber
from libs.common.service import ServiceContext
from libs.common.text import Text, bounded_text
from services.intake import metrics
from services.intake.config import IntakeConfig
from services.intake.domain import (
    CATEGORIES,
    ESCALATION_TEXT,
    GRADE_LABELS,
    MEASURES,
    Category,
    missing_reason,
)
from services.intake.repository import IncidentFilter
from services.intake.usecases import IntakeUseCases, ReportCommand

INCIDENTS_PATH = "/v1/incidents"
READERS = (Role.LEADER, Role.OPERATOR, Role.DEPARTMENT, Role.TOWNSHIP)
REPORTERS = (Role.LEADER, Role.OPERATOR, Role.DEPARTMENT, Role.TOWNSHIP)


def _text(max_length: int) -> Any:
    """A string that must say something: trimmed, not blank, at most ``max_length`` characters."""
    return bounded_text(max_length)


Rating = Literal["low", "medium", "high"]
Status = Literal["open", "closed", "merged"]


class Contact(BaseModel):
    """A named person and how to reach them (篇6: 注明审签人及报送人姓名、联系方式)."""

    model_config = ConfigDict(extra="forbid", title="ReportContact")

    name: _text(50) = Field(description="姓名 (name)")  # type: ignore[valid-type]
    phone: str = Field(
        pattern=r"^\+?\d[\d\- ]{4,23}$",
        description="联系电话 (phone): digits, optional leading +, spaces or hyphens",
    )


class CallTaker(BaseModel):
    """接听人: the duty officer who took a phoned-in report (电话报告) and entered it."""

    model_config = ConfigDict(extra="forbid")

    name: _text(50) = Field(description="接听人姓名 (name of who took the call)")  # type: ignore[valid-type]
    phone: str | None = Field(
        default=None,
        pattern=r"^\+?\d[\d\- ]{4,23}$",
        description="接听人联系电话 (phone), optional: digits, leading +, spaces or hyphens",
    )


class Location(BaseModel):
    """Where it happened (地点, 篇2)."""

    model_config = ConfigDict(extra="forbid")

    address: _text(200) = Field(  # type: ignore[valid-type]
        description="地点 (address): village, road, landmark"
    )
    lat: JsonNumber | None = Field(
        default=None, ge=-90, le=90, description="纬度 (latitude, WGS84); give with lon"
    )
    lon: JsonNumber | None = Field(
        default=None, ge=-180, le=180, description="经度 (longitude, WGS84); give with lat"
    )

    @model_validator(mode="after")
    def _both_or_neither(self) -> Location:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("经度和纬度须同时填写")
        return self


class CasualtiesIn(BaseModel):
    """人员伤亡 (casualties, 篇2 灾害后果); an omitted figure means zero."""

    model_config = ConfigDict(extra="forbid")

    deaths: JsonInt = Field(default=0, ge=0, le=1_000_000, description="死亡人数 (deaths)")
    injured: JsonInt = Field(default=0, ge=0, le=1_000_000, description="受伤人数 (injured)")
    missing: JsonInt = Field(default=0, ge=0, le=1_000_000, description="失踪人数 (missing)")
    trapped: JsonInt = Field(default=0, ge=0, le=1_000_000, description="被困人数 (trapped)")


class AffectedIn(BaseModel):
    """影响范围与损失 (scope and losses, 篇2 范围、程度); an omitted figure means zero."""

    model_config = ConfigDict(extra="forbid")

    people_affected: JsonInt = Field(
        default=0, ge=0, le=100_000_000, description="受灾人数 (people affected)"
    )
    people_evacuated: JsonInt = Field(
        default=0, ge=0, le=100_000_000, description="紧急转移安置人数 (people evacuated)"
    )
    houses_damaged: JsonInt = Field(
        default=0, ge=0, le=100_000_000, description="损坏房屋（间） (houses damaged)"
    )
    houses_collapsed: JsonInt = Field(
        default=0, ge=0, le=100_000_000, description="倒塌房屋（间） (houses collapsed)"
    )
    direct_loss_cny: JsonNumber = Field(
        default=0,
        ge=0,
        le=1e13,
        allow_inf_nan=False,
        description="直接经济损失（元） (direct economic loss, CNY)",
    )


class DisputeIn(BaseModel):
    """矛盾纠纷研判 (dispute classification and markers, 篇1 / 篇4)."""

    model_config = ConfigDict(extra="forbid")

    nature: (
        Literal[
            "relocation",
            "enterprise",
            "labour_wages",
            "land",
            "internal",
            "family",
            "neighbourhood",
            "other",
        ]
        | None
    ) = Field(
        default=None,
        description=(
            "纠纷性质 (nature, 篇1): relocation 动迁, enterprise 涉企, labour_wages 劳资/欠薪, "
            "land 土地山林, internal 单位内部, family 家庭成员, neighbourhood 邻里, other 其他; "
            "null = 尚未研判 (not yet assessed)"
        ),
    )
    stability_impact: Rating | None = Field(
        default=None,
        description="对社会稳定的影响程度 (impact on social stability, 篇1); high escalates",
    )
    escalation_risk: Rating | None = Field(
        default=None,
        description="激化的可能性 (likelihood of escalating, 篇1); high escalates",
    )
    petition_or_lawsuit: JsonBool = Field(
        default=False, description="涉法涉诉 (involves petitions or lawsuits, 篇1); escalates"
    )
    repeated_petitions: JsonBool = Field(
        default=False, description="缠访缠诉 (repeated petitions or suits, 篇1); escalates"
    )
    key_persons: JsonBool = Field(
        default=False, description="涉及重点人员 (key persons involved, 篇1); escalates"
    )


class IncidentIn(BaseModel):
    """An initial report (首报) with every required element (要素齐全, 篇2 / 篇6 / 篇9)."""

    model_config = ConfigDict(extra="forbid")

    category: Category = Field(description="事件类别 / 灾害种类 (category, 篇2)")
    township_code: str = Field(
        pattern=r"^\d{9}$", description="乡镇（街道）代码 (township code, GB/T 2260 style)"
    )
    title: _text(100) = Field(description="标题 (title)")  # type: ignore[valid-type]
    description: _text(1500) = Field(  # type: ignore[valid-type]
        description=(
            "事件概况 (description): 程度、后果、危害 (篇2, 篇9); with measures_taken, needs, "
            "trend and scope at most 1500 characters in all (篇6: 综合信息不超过1500字; "
            "422 too_long, path body)"
        )
    )
    occurred_at: UtcTime = Field(description="发生时间 (occurred at), ISO 8601 with offset")
    discovered_at: UtcTime = Field(
        description="发现时间 (discovered at), ISO 8601 with offset; the 迟报 clock starts here"
    )
    location: Location = Field(description="地点 (location)")
    casualties: CasualtiesIn = Field(description="人员伤亡 (casualties)")
    affected: AffectedIn = Field(description="影响范围与损失 (scope and losses)")
    people_involved: JsonInt = Field(
        default=0,
        ge=0,
        le=10_000_000,
        description="涉及人数 (people involved); 10 or more escalates (篇3)",
    )
    measures_taken: _text(500) = Field(  # type: ignore[valid-type]
        description="已采取的措施 / 处置情况 (measures taken, 篇2 / 篇9); at most 500 characters"
    )
    needs: _text(500) = Field(  # type: ignore[valid-type]
        description=(
            "存在的困难和需求 / 请求协调事项 (difficulties, needs and coordination requested, "
            "篇2 / 篇9); write 无 when there are none; at most 500 characters"
        )
    )
    trend: _text(500) | None = Field(  # type: ignore[valid-type]
        default=None, description="发展态势 (development trend, 篇9)"
    )
    scope: _text(500) | None = Field(  # type: ignore[valid-type]
        default=None, description="影响范围描述 (scope in words: villages, roads, area; 篇2)"
    )
    reporter: Contact = Field(description="报送人 (submitter) with contact (篇6)")
    approver: Contact = Field(description="审签人 (reviewer/approver) with contact (篇6)")
    source: _text(100) = Field(  # type: ignore[valid-type]
        description="信息来源 (source), e.g. 村委会电话报告, 110 转警, 部门监测"
    )
    received_by: CallTaker | None = Field(
        default=None,
        description=(
            "接听人 (who took the call): for a phoned-in report (电话报告) entered on a "
            "township's behalf; the caller is the reporter (报送人). Omit for a report the "
            "township files itself."
        ),
    )
    dispute: DisputeIn | None = Field(
        default=None, description="矛盾纠纷研判 (dispute classification, 篇1 / 篇4)"
    )
    enterprise_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description=(
            "涉及企业编号 (enterprise on dispatch's risk register, 企业风险台账); only its form "
            "is checked here: the register is dispatch's"
        ),
    )
    exercise: JsonBool = Field(
        default=False, description="演练 (drill): true for exercise data, carried on every event"
    )


class MergeIn(BaseModel):
    """Merge this incident (a duplicate) into a primary incident."""

    model_config = ConfigDict(extra="forbid")

    primary_id: Text = Field(
        min_length=1, max_length=64, description="主事件编号 (the incident to keep)"
    )
    reason: _text(500) = Field(description="合并理由 (why they are the same event)")  # type: ignore[valid-type]


class CloseIn(BaseModel):
    """Close an incident (leader)."""

    model_config = ConfigDict(extra="forbid", title="IncidentCloseIn")

    reason: _text(500) = Field(description="结案理由 (why the incident is closed)")  # type: ignore[valid-type]


class GradeBasisOut(BaseModel):
    """A measure that reached the incident's grade."""

    measure: str = Field(description="deaths, injured, missing_trapped, people_evacuated, …")
    value: float
    threshold: float
    grade: int
    source: str = Field(description="where the threshold comes from")


class EscalationOut(BaseModel):
    """One escalation reason."""

    code: str
    text: str


class IncidentOut(BaseModel):
    """An incident as intake holds it: the latest facts, grade and flags."""

    id: str
    category: str
    township_code: str
    township_name: str
    title: str
    description: str
    occurred_at: datetime
    discovered_at: datetime
    reported_at: datetime = Field(description="受理时间: when intake accepted the report")
    location: dict[str, Any]
    casualties: dict[str, Any]
    affected: dict[str, Any]
    people_involved: int
    measures_taken: str
    needs: str
    trend: str | None = None
    scope: str | None = None
    reporter: dict[str, Any]
    approver: dict[str, Any]
    source: str
    received_by: dict[str, Any] | None = Field(
        default=None, description="接听人 of a phoned-in report (电话报告); null otherwise"
    )
    dispute: dict[str, Any] | None = None
    enterprise_id: str | None = Field(default=None, description="涉及企业编号；未涉及企业为 null")
    exercise: bool
    grade: int = Field(description="1 特别重大 (most severe) … 4 一般")
    grade_label: str
    grade_basis: list[GradeBasisOut] = Field(description="measures that reached the grade")
    initial_grade: int = Field(description="grade at the initial report")
    figures_grade: int = Field(description="grade the latest figures reach (downgrades are manual)")
    status: Status
    late: bool = Field(description="迟报: initial report after the grade's limit")
    report_delay_minutes: float = Field(description="discovery → report, minutes")
    late_limit_minutes: int = Field(description="the grade's initial-report limit in the profile")
    escalated: bool
    escalation_reasons: list[str]
    escalation_details: list[EscalationOut]
    possible_duplicates: list[str] = Field(description="ids of possible duplicates at report time")
    merged_into: str | None = None
    merged_ids: list[str] = []
    closed_at: datetime | None = None
    closed_by: str | None = None
    close_reason: str | None = None
    reported_by: dict[str, Any]
    updated_at: datetime
    version: int


class IncidentDetail(IncidentOut):
    """An incident with its history (reported, updated, regraded, merged, closed)."""

    history: list[dict[str, Any]]


class IncidentPage(BaseModel):
    """A page of incidents."""

    items: list[IncidentOut]
    next_cursor: str | None


def _is_missing(error: Mapping[str, Any]) -> bool:
    kind = error.get("type")
    if kind == "missing":
        return True
    if kind == "string_too_short" and (error.get("ctx") or {}).get("min_length") == 1:
        return True
    # An explicit null for a required object or text is as good as leaving it out.
    return error.get("input", ...) is None and kind in {
        "model_type",
        "model_attributes_type",
        "string_type",
        "datetime_type",
        "enum",
        "literal_error",
    }


def _metric_field(error: Mapping[str, Any], path: str) -> str:
    # Unknown field names come from the caller: one label for all of them keeps cardinality fixed.
    if error.get("type") == "extra_forbidden":
        return "unknown_field"
    if error.get("type") == "json_invalid":
        return "body"
    return path[:60]


class IntakeRoute(APIRoute):
    """Counts rejections by field, and names an incomplete report for what it is (漏报)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap the handler FastAPI builds with the rejection accounting."""
        handler = super().get_route_handler()
        is_report = self.path == INCIDENTS_PATH and "POST" in (self.methods or set())

        async def counted(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                errors = list(exc.errors())
                fields = validation_fields(errors)
                for error, row in zip(errors, fields, strict=True):
                    metrics.VALIDATION_REJECTIONS.labels(_metric_field(error, row["path"])).inc()
                missing = [row for e, row in zip(errors, fields, strict=True) if _is_missing(e)]
                if is_report and missing:
                    explained = [
                        {"path": row["path"], "reason": missing_reason(row["path"])}
                        if _is_missing(e)
                        else row
                        for e, row in zip(errors, fields, strict=True)
                    ]
                    names = ", ".join(row["path"] for row in missing)
                    raise ApiError(
                        422,
                        "incomplete_report",
                        f"报告要素不全，缺少：{names}",
                        fields=explained,
                    ) from exc
                raise
            except ApiError as exc:
                if exc.status == 422:
                    for row in exc.fields:
                        metrics.VALIDATION_REJECTIONS.labels(row["path"][:60]).inc()
                raise

        return counted


def build_router(ctx: ServiceContext, intake: IntakeUseCases) -> APIRouter:
    """The intake router: reports, reads, and the merge and close commands."""
    router = APIRouter(tags=["intake"], route_class=IntakeRoute)
    _report_route(router, ctx, intake)
    _list_route(router, ctx, intake)
    _incident_routes(router, ctx, intake)
    _change_routes(router, ctx, intake)
    return router


def _report_route(router: APIRouter, ctx: ServiceContext, intake: IntakeUseCases) -> None:
    @router.post(
        INCIDENTS_PATH,
        status_code=201,
        response_model=IncidentDetail,
        summary="Report an incident (首报)",
        responses={
            403: {"description": "a township key reporting for another township"},
            409: {"description": "Idempotency-Key reused with a different body"},
            422: {"description": "missing elements (incomplete_report), limits, bad times"},
        },
    )
    async def report_incident(
        body: IncidentIn,
        response: Response,
        principal: Principal = ctx.allow(*REPORTERS),
        idempotency_key: str | None = Header(
            default=None,
            description="幂等键: retry with the same key and body to get the original result",
        ),
    ) -> dict[str, Any]:
        """Accept an initial report: grade it, flag 迟报 and escalation, look for duplicates.

        A coroutine that sends only the store work to a worker thread: as a plain function the
        route and then its response check would each take a thread hop.
        """
        principal.ensure_township(body.township_code)
        command = ReportCommand(
            fields=body.model_dump(),
            digest=fingerprint(_fingerprinted(body)),
            idempotency_key=validate_key(idempotency_key),
            principal=principal,
        )
        doc, replayed = await run_in_threadpool(intake.report, command)
        if replayed:
            response.headers["Idempotent-Replayed"] = "true"
        return _view(doc, principal, detail=True)


def _list_route(router: APIRouter, ctx: ServiceContext, intake: IntakeUseCases) -> None:
    """The incident list, with its filters."""

    @router.get(
        INCIDENTS_PATH,
        response_model=IncidentPage,
        summary="List incidents (townships see their own)",
    )
    def list_incidents(
        principal: Principal = ctx.allow(*READERS),
        township_code: str | None = Query(
            default=None, pattern=r"^\d{9}$", description="乡镇代码 (township code)"
        ),
        category: Category | None = Query(default=None, description="事件类别 (category)"),
        status: Status | None = Query(default=None, description="状态: open, closed, merged"),
        grade: int | None = Query(default=None, ge=1, le=4, description="等级 1–4 (grade)"),
        exercise: bool | None = Query(default=None, description="演练 (drills only / none)"),
        late: bool | None = Query(default=None, description="迟报 (late reports)"),
        escalated: bool | None = Query(default=None, description="已升级上报 (escalated)"),
        reported_after: UtcTime | None = Query(
            default=None, description="受理时间不早于 (reported at or after)"
        ),
        reported_before: UtcTime | None = Query(
            default=None, description="受理时间早于 (reported before)"
        ),
        limit: int = Query(default=50, ge=1, le=200, description="page size"),
        cursor: str | None = Query(default=None, max_length=500, description="next_cursor"),
    ) -> dict[str, Any]:
        """Incidents, newest report first, with filters and cursor pagination."""
        filters = IncidentFilter(
            township_code=_township_seen(principal, township_code),
            category=category,
            status=status,
            grade=grade,
            exercise=exercise,
            late=late,
            escalated=escalated,
            reported_after=reported_after,
            reported_before=reported_before,
        )
        rows, next_cursor = intake.incidents_page(filters, limit, cursor)
        return {"items": [_view(r, principal) for r in rows], "next_cursor": next_cursor}


def _township_seen(principal: Principal, township_code: str | None) -> str | None:
    """The township a list is narrowed to: a township key sees only its own."""
    if principal.role != Role.TOWNSHIP:
        return township_code
    if township_code is not None:
        principal.ensure_township(township_code, path="query.township_code")
    return principal.township_code


def _incident_routes(router: APIRouter, ctx: ServiceContext, intake: IntakeUseCases) -> None:
    """The grading rules, one incident, and its possible duplicates."""

    @router.get(
        f"{INCIDENTS_PATH}/grading-rules",
        summary="The active grading table, escalation rules and initial-report limits",
    )
    def grading_rules(principal: Principal = ctx.allow(*READERS)) -> dict[str, Any]:
        """What intake grades by, with the source of every threshold."""
        return _grading_rules(intake.config)

    @router.get(
        f"{INCIDENTS_PATH}/{{incident_id}}",
        response_model=IncidentDetail,
        summary="One incident with its history",
    )
    def get_incident(
        incident_id: str = Path(max_length=64),
        principal: Principal = ctx.allow(*READERS),
    ) -> dict[str, Any]:
        """The incident's current facts and grade (re-grades from follow-ups show here)."""
        return _view(intake.visible_incident(incident_id, principal), principal, detail=True)

    @router.get(
        f"{INCIDENTS_PATH}/{{incident_id}}/duplicates",
        response_model=IncidentPage,
        summary="Open incidents that may be the same event",
    )
    def list_duplicates(
        incident_id: str = Path(max_length=64),
        principal: Principal = ctx.allow(*READERS),
    ) -> dict[str, Any]:
        """Same category and township (or close by), occurring within the window; open only."""
        rows = intake.duplicates_of(incident_id, principal)
        return {"items": [_view(d, principal) for d in rows], "next_cursor": None}


def _change_routes(router: APIRouter, ctx: ServiceContext, intake: IntakeUseCases) -> None:
    @router.post(
        f"{INCIDENTS_PATH}/{{incident_id}}/merge",
        response_model=IncidentDetail,
        summary="Merge a duplicate into its primary (both histories are kept)",
        responses={409: {"description": "either incident is not open, or a drill/real mix"}},
    )
    def merge_incident(
        body: MergeIn,
        incident_id: str = Path(max_length=64),
        principal: Principal = ctx.allow(Role.OPERATOR, Role.LEADER),
    ) -> dict[str, Any]:
        """Mark this incident as a duplicate of ``primary_id``; retrying a done merge is a no-op."""
        doc = intake.merge(incident_id, body.primary_id, body.reason, principal)
        return _view(doc, principal, detail=True)

    @router.post(
        f"{INCIDENTS_PATH}/{{incident_id}}/close",
        response_model=IncidentDetail,
        summary="Close an incident (leader)",
        responses={409: {"description": "the incident is not open"}},
    )
    def close_incident(
        body: CloseIn,
        incident_id: str = Path(max_length=64),
        principal: Principal = ctx.allow(Role.LEADER),
    ) -> dict[str, Any]:
        """Close an open incident; emits ``incident_closed`` with closed_by ``leader``."""
        return _view(intake.close(incident_id, body.reason, principal), principal, detail=True)


def _grading_rules(config: IntakeConfig) -> dict[str, Any]:
    """The grading table as the API shows it."""
    table = config.grading
    return {
        "measures": list(MEASURES),
        "default": {m: r.model_dump() for m, r in table.default.items()},
        "categories": {
            category: {m: r.model_dump() for m, r in table.rules_for(category).items()}
            for category in CATEGORIES
        },
        "escalation": table.escalation.model_dump(),
        "escalation_text": ESCALATION_TEXT,
        "deadline_profile": {
            "name": config.profile.name,
            "initial_minutes": {
                str(g): config.initial_minutes(g) for g in sorted(config.profile.grades)
            },
        },
    }


def _fingerprinted(body: IncidentIn) -> dict[str, Any]:
    """The body an Idempotency-Key is bound to. A report without 接听人 or enterprise keeps the
    fingerprint it had before those fields existed, so a retry across an upgrade is the same."""
    dumped = body.model_dump(mode="json")
    for added in ("received_by", "enterprise_id"):
        if dumped.get(added) is None:
            dumped.pop(added, None)
    return dumped


# Kept for the rules, not shown: the API gives the duplicates, the delay and the history instead.
INTERNAL_FIELDS = frozenset(
    {"possible_duplicates", "report_delay_seconds", "last_followup_number", "final_report_at"}
)


def _view(doc: Mapping[str, Any], principal: Principal, detail: bool = False) -> dict[str, Any]:
    """An incident as the API shows it to ``principal``."""
    duplicates: Sequence[Mapping[str, Any]] = doc.get("possible_duplicates") or []
    view = {
        key: value
        for key, value in doc.items()
        if not key.startswith("_") and key not in INTERNAL_FIELDS and (detail or key != "history")
    }
    view.update(
        id=doc["_id"],
        grade_label=GRADE_LABELS[doc["grade"]],
        report_delay_minutes=round(doc["report_delay_seconds"] / 60, 1),
        escalation_details=[
            {"code": code, "text": ESCALATION_TEXT.get(code, code)}
            for code in doc.get("escalation_reasons") or []
        ],
        # A township sees only its own incidents among the possible duplicates.
        possible_duplicates=[
            d["id"] for d in duplicates if principal.may_act_for(d["township_code"])
        ],
    )
    return view
