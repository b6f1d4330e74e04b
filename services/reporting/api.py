"""HTTP routes of the reporting service: report chains, deadlines, zero reports, timeline, audit,
summaries and scores."""

from __future__ import annotations

import datetime as dt
import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Header, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from libs.common.auth import Principal, Role
from libs.common.clock import UtcTime, as_utc
from libs.common.errors import ApiError, field_error
from libs.common.eventmodels.common import Affected, Casualties
from libs.common.jsontypes import JsonBool, JsonDay, JsonInt
from libs.common.openapi import DAY_PATTERN, Day, Month, OptionalDay, day_query, errors
from libs.common.service import ServiceContext
from libs.common.text import Text
from services.reporting import documents, domain, render
from services.reporting.repository import AuditFilter, DeadlineFilter
from services.reporting.usecases import ReportingUseCases, zero
from services.reporting.usecases.deadlines import profile

# One rule for falling figures, stated alike in this 422, the route's description and
# docs/api.md: a structured correction per figure keeps the data checkable; prose does not.
# The longest span of report days one request for refused 「无事件」 attempts may cover.
CONTRADICTION_DAYS = 92
FIGURES_FELL_RULE = (
    "A figure lower than in the previous report needs corrections[] {field, reason} (核减说明) "
    "naming it; an explanation in progress alone is not enough."
)
PHONE = r"^\+?[0-9][0-9\- ]{4,19}$"
FigurePath = Literal[
    "casualties.deaths",
    "casualties.injured",
    "casualties.missing",
    "casualties.trapped",
    "affected.people_affected",
    "affected.people_evacuated",
    "affected.houses_damaged",
    "affected.houses_collapsed",
    "affected.direct_loss_cny",
    "people_involved",
]


class Person(BaseModel):
    """A named person with a contact number (篇6: 审签人及报送人姓名、联系方式)."""

    model_config = ConfigDict(extra="forbid", title="ReportPerson")

    name: Text | None = Field(default=None, max_length=50, description="姓名")
    phone: str | None = Field(default=None, pattern=PHONE, description="联系电话")


class Signatory(BaseModel):
    """报送人或审签人：姓名和联系电话都必填（篇6：注明审签人及报送人姓名、联系方式）。"""

    model_config = ConfigDict(extra="forbid")

    name: Text = Field(min_length=1, max_length=50, pattern=r"\S", description="姓名")
    phone: str = Field(pattern=PHONE, description="联系电话")


class Correction(BaseModel):
    """Why a figure is lower than in the previous report (核减说明)."""

    model_config = ConfigDict(extra="forbid")

    field: FigurePath = Field(description="核减的数字字段，如 casualties.deaths")
    reason: Text = Field(min_length=2, max_length=300, description="核减原因（如：经核实重复统计）")


class ReportIn(BaseModel):
    """A follow-up (续报) or final (终报) report."""

    model_config = ConfigDict(extra="forbid")

    incident_id: Text = Field(min_length=1, max_length=100, description="事件编号")
    kind: Literal["followup", "final"] = Field(description="报告类型：followup 续报，final 终报")
    casualties: Casualties | None = Field(default=None, description="人员伤亡（灾害后果）")
    affected: Affected | None = Field(default=None, description="影响范围与损失（灾害后果）")
    people_involved: JsonInt | None = Field(default=None, ge=0, description="涉及人数")
    progress: Text | None = Field(
        default=None, max_length=5000, description="处置进展与发展态势（单项信息≤500字，篇6）"
    )
    measures_taken: Text | None = Field(default=None, max_length=5000, description="采取的措施")
    needs: Text | None = Field(
        default=None, max_length=5000, description="存在的困难和需求、请求协调事项"
    )
    change_note: Text | None = Field(
        default=None, max_length=5000, description="与上次报告相比的变化说明（可选）"
    )
    corrections: list[Correction] = Field(
        default_factory=list, max_length=20, description="数字下降时的核减说明，每个下降字段一条"
    )
    reporter: Person | None = Field(default=None, description="报送人")
    approver: Person | None = Field(default=None, description="审签人")
    exercise: JsonBool | None = Field(
        default=None,
        description="演练 drill report: when given, must match the incident's own drill flag",
    )


class ZeroReportIn(BaseModel):
    """A township's daily zero report (零报告)."""

    model_config = ConfigDict(extra="forbid")

    township_code: str = Field(pattern=r"^\d{9}$", description="乡镇代码")
    date: JsonDay = Field(description="所报日期（当地日期，次日08:00前报送）")
    nothing_to_report: JsonBool = Field(description="无事可报（零报告）")
    incident_ids: list[Text] = Field(
        default_factory=list, max_length=200, description="当日已报送的事件编号"
    )
    exercise: JsonBool = Field(
        default=False,
        description="演练 drill zero report: kept apart, never the township's real filing",
    )
    reporter: Signatory = Field(description="报送人（篇6）")
    approver: Signatory = Field(description="审签人，须为报送人以外的另一人（篇6）")


# ---------------------------------------------------------------- views


# 首报, 续报, 升级续报, 终报, and the city's 批示 or 续报要求 (upstream_request, 上级要求).
DeadlineKind = Literal[
    "initial",
    "followup",
    "escalation",
    "final",
    "upstream_request",
    "campaign_report",
    "campaign_stage",
]


def report_view(doc: dict[str, Any]) -> dict[str, Any]:
    """A follow-up or final report as the API shows it."""
    return {
        "id": doc["_id"],
        "incident_id": doc["incident_id"],
        "township_code": doc["township_code"],
        "kind": doc["kind"],
        "number": doc.get("number"),
        "filed_at": doc["filed_at"],
        "filed_by": doc.get("filed_by"),
        "casualties": doc["casualties"],
        "affected": doc["affected"],
        "people_involved": doc.get("people_involved"),
        "progress": doc.get("progress"),
        "measures_taken": doc.get("measures_taken"),
        "needs": doc.get("needs"),
        "change_note": doc.get("change_note"),
        "changes": doc.get("changes") or [],
        "corrections": doc.get("corrections") or [],
        "reporter": doc.get("reporter"),
        "approver": doc.get("approver"),
        "deadline_id": doc.get("deadline_id"),
        "deadline_ids": doc.get("deadline_ids") or [],
        "late": doc.get("late"),
    }


def initial_view(incident: dict[str, Any]) -> dict[str, Any]:
    """The initial report (首报) as intake announced it."""
    return {
        "id": f"{incident['_id']}:initial",
        "incident_id": incident["_id"],
        "township_code": incident["township_code"],
        "kind": "initial",
        "number": None,
        "filed_at": incident["reported_at"],
        "title": incident.get("title"),
        "category": incident["category"],
        "grade": incident.get("initial_grade", incident["grade"]),
        "occurred_at": incident["occurred_at"],
        "discovered_at": incident["discovered_at"],
        "casualties": incident.get("casualties") or {},
        "affected": incident.get("affected") or {},
        "people_involved": incident.get("people_involved"),
        "changes": [],
        "late": incident.get("late", False),
    }


def deadline_view(doc: dict[str, Any]) -> dict[str, Any]:
    """A deadline as the API shows it."""
    return {
        "id": doc["_id"],
        "incident_id": doc.get("incident_id"),
        "township_code": doc["township_code"],
        "kind": doc["kind"],
        "grade": doc.get("grade"),
        "profile": doc.get("profile"),
        "due_at": doc["due_at"],
        "window_start": doc.get("window_start"),
        "status": doc["status"],
        "late": doc.get("late", False),
        "escalation": doc.get("escalation", 0),
        "overdue_at": doc.get("overdue_at"),
        "met_at": doc.get("met_at"),
        "met_by": doc.get("met_by"),
        "cancel_reason": doc.get("cancel_reason"),
        "skipped_grades": doc.get("skipped_grades"),
        "exercise": bool(doc.get("exercise")),
        "kind_label": domain.DEADLINE_KIND_LABELS.get(doc["kind"], doc["kind"]),
        "campaign_id": doc.get("campaign_id"),
        "campaign_name": doc.get("campaign_name"),
        "participant_name": doc.get("participant_name"),
        "stage": doc.get("stage"),
    }


def timeline_view(doc: dict[str, Any]) -> dict[str, Any]:
    """One timeline or audit entry."""
    return {
        "event_id": doc["_id"],
        "event_type": doc["event_type"],
        "source": doc["source"],
        "occurred_at": doc["occurred_at"],
        "summary": doc.get("summary"),
        "correlation_id": doc.get("correlation_id"),
        "causation_id": doc.get("causation_id"),
        "incident_ids": doc.get("incident_ids") or [],
        "township_code": doc.get("township_code"),
        "payload": doc.get("payload") or {},
    }


# ---------------------------------------------------------------- helpers


def causal_order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events of the same instant arrive on separate queues in any order; put each effect after
    its cause (``causation_id``) when both are on the page."""
    ordered = list(rows)
    for _ in range(len(ordered)):
        moved = False
        index = {row["_id"]: n for n, row in enumerate(ordered)}
        for n, row in enumerate(ordered):
            cause = index.get(row.get("causation_id") or "")
            if cause is not None and cause > n:
                ordered.insert(cause, ordered.pop(n))
                moved = True
                break
        if not moved:
            break
    return ordered


# A period's bound: a plain day is the county's local (Beijing) day, ``from`` at its start and
# ``to`` inclusive of it (up to the start of the next day); a date-time with offset is taken as
# it is (``to`` exclusive). The schema says both forms, so clients and generators know.
DAY_OR_TIME = {"oneOf": [{"format": "date", "pattern": DAY_PATTERN}, {"format": "date-time"}]}
_TIME = TypeAdapter(UtcTime)


def period_bound(value: str, path: str, tz: ZoneInfo, *, end: bool) -> datetime:
    """A period's start (``end=False``) or exclusive end from a day or a date-time."""
    if re.fullmatch(DAY_PATTERN, value):
        try:
            start, after = domain.day_bounds(dt.date.fromisoformat(value), tz)
        except ValueError:
            raise field_error(path, "不是有效的日期", code="validation_failed") from None
        return after if end else start
    try:
        return _TIME.validate_python(value)
    except ValidationError:
        reason = "须为日期 YYYY-MM-DD 或带时区的时间，如 2026-07-06T08:00:00+08:00"
        raise field_error(path, reason, code="validation_failed") from None


def period(start: str, end: str, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC bounds of a period given as days or date-times; a 422 names each bad bound."""
    bounds: list[datetime] = []
    fields: list[dict[str, str]] = []
    for value, path, is_end in ((start, "query.from", False), (end, "query.to", True)):
        try:
            bounds.append(period_bound(value, path, tz, end=is_end))
        except ApiError as exc:
            fields += exc.fields
    if fields:
        raise ApiError(422, "validation_failed", "请求内容不合规", fields=fields)
    return bounds[0], bounds[1]


def _aware(value: datetime | None, path: str) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise field_error(path, "须带时区，如 2026-07-06T08:00:00+08:00")
    return as_utc(value)


def _township_filter(principal: Principal, requested: str | None) -> str | None:
    if principal.role == Role.TOWNSHIP:
        if requested and requested != principal.township_code:
            principal.ensure_township(requested, "query.township_code")
        return principal.township_code
    return requested


def _document(official: documents.Official, fmt: str) -> Response:
    """A .docx or PDF download with its Chinese file name (RFC 5987 ``filename*``)."""
    content, media_type, filename = documents.render(official, fmt)
    return Response(
        content,
        media_type=media_type,
        headers={"Content-Disposition": documents.disposition(filename)},
    )


# ---------------------------------------------------------------- router


# format=html answers the printable page.
# A summary as JSON, printable HTML, or an official document (.docx, PDF) to send upward.
DOCUMENTS = {
    "content": {
        "application/json": {},
        "text/html": {"schema": {"type": "string"}},
        documents.DOCX_TYPE: {"schema": {"type": "string", "format": "binary"}},
        documents.PDF_TYPE: {"schema": {"type": "string", "format": "binary"}},
    },
}

# Each tuple keeps its roles' order: docs/api.md lists a route's roles in it.
FILERS = (Role.TOWNSHIP, Role.OPERATOR, Role.DEPARTMENT, Role.LEADER)
READERS = (Role.OPERATOR, Role.LEADER, Role.ADMIN, Role.DEPARTMENT)
INSPECTORS = (Role.OPERATOR, Role.LEADER, Role.ADMIN)


def build_router(ctx: ServiceContext, uc: ReportingUseCases) -> APIRouter:
    """The reporting router, bound to this context's use cases."""
    router = APIRouter(tags=["reporting"])
    _report_routes(router, ctx, uc)
    _deadline_routes(router, ctx, uc)
    _zero_report_routes(router, ctx, uc)
    _timeline_routes(router, ctx, uc)
    _daily_summary_routes(router, ctx, uc)
    _situation_routes(router, ctx, uc)
    _score_routes(router, ctx, uc)
    return router


def _zone(ctx: ServiceContext) -> ZoneInfo:
    """The county's time zone, as its active deadline profile states it."""
    return domain.zone(profile(ctx))


def _chain_view(
    uc: ReportingUseCases, incident_id: str, incident: dict[str, Any]
) -> dict[str, Any]:
    """An incident's report chain as JSON: the initial report, then follow-ups and final."""
    items = [initial_view(incident)] + [report_view(r) for r in uc.chain(incident_id)]
    return {
        "incident_id": incident_id,
        "status": incident["status"],
        "grade": incident["grade"],
        "finalised": bool(incident.get("finalised")),
        "enterprise": uc.enterprise_of(incident),
        "items": items,
        "next_cursor": None,
    }


def _bulletin(
    ctx: ServiceContext,
    uc: ReportingUseCases,
    incident_id: str,
    report_id: str | None,
    fmt: str,
    principal: Principal,
) -> Response:
    """The 信息专报 of an incident's chain (or of one report of it) as .docx or PDF."""
    incident = uc.incident(incident_id)
    # A township sees its own incidents only: another township's is as if unknown (404).
    if incident is None or not principal.may_act_for(incident["township_code"]):
        raise ApiError(
            404,
            "incident_unknown",
            f"未找到事件 {incident_id}",
            fields=[{"path": "query.incident_id", "reason": "未知事件"}],
        )
    chain = uc.bulletin_chain(incident, report_id)
    if chain is None:
        raise ApiError(
            404,
            "not_found",
            f"报告 {report_id} 不在该事件的报告链中",
            fields=[{"path": "query.report_id", "reason": "不是该事件的报告"}],
        )
    return _document(documents.bulletin_document(chain, _zone(ctx)), fmt)


def _report_routes(router: APIRouter, ctx: ServiceContext, uc: ReportingUseCases) -> None:
    """Follow-up and final reports, and an incident's whole report chain."""
    anyone = ctx.allow(*Role)

    @router.post(
        "/v1/reports",
        status_code=201,
        summary="File a follow-up or final report; a figure lower than before needs "
        "corrections[] {field, reason}, text in progress is not enough (422 figures_fell)",
        description=FIGURES_FELL_RULE,
        responses=errors(404),
    )
    def create_report(
        body: ReportIn,
        principal: Principal = ctx.allow(*FILERS),
        idempotency_key: str | None = Header(default=None),
    ) -> dict[str, Any]:
        raw = body.model_dump(mode="json")
        return report_view(uc.file_report(principal, raw, idempotency_key))

    @router.get(
        "/v1/reports",
        summary="The report chain of an incident: initial, follow-ups, final (JSON, or the "
        "信息专报 as .docx or PDF)",
        responses={
            **errors(404),
            200: {
                "content": {
                    documents.DOCX_TYPE: {"schema": {"type": "string", "format": "binary"}},
                    documents.PDF_TYPE: {"schema": {"type": "string", "format": "binary"}},
                }
            },
        },
    )
    def list_reports(
        incident_id: str = Query(min_length=1, description="事件编号"),
        format: Literal["json", "docx", "pdf"] = Query(
            default="json",
            description="json; docx or pdf: the 信息专报 of every report in the chain "
            "(首报 / 续报第N次 / 终报), one per page",
        ),
        report_id: str | None = Query(
            default=None,
            max_length=200,
            description="docx/pdf: only this report of the chain (an id from items[].id)",
        ),
        principal: Principal = anyone,
    ) -> Any:
        if format != "json":
            return _bulletin(ctx, uc, incident_id, report_id, format, principal)
        return _chain_view(uc, incident_id, uc.visible_incident(principal, incident_id))

    @router.get("/v1/reports/{report_id}", summary="One follow-up or final report")
    def read_report(report_id: str, principal: Principal = anyone) -> dict[str, Any]:
        doc = uc.report(report_id)
        if doc is None or not principal.may_act_for(doc["township_code"]):
            raise ApiError(404, "not_found", f"未找到报告 {report_id}")
        return report_view(dict(doc))


def _deadline_routes(router: APIRouter, ctx: ServiceContext, uc: ReportingUseCases) -> None:
    """Report deadlines (报送时限) by status, township, incident and kind."""

    @router.get("/v1/deadlines", summary="Report deadlines by status and township")
    def list_deadlines(
        status: Literal["pending", "overdue", "met", "missed", "cancelled"] | None = Query(
            default=None, description="状态"
        ),
        township_code: str | None = Query(default=None, pattern=r"^\d{9}$", description="乡镇代码"),
        incident_id: str | None = Query(default=None, description="事件编号"),
        kind: DeadlineKind | None = Query(default=None, description="类型"),
        exercise: bool | None = Query(default=None, description="演练 drills only / none"),
        limit: int = Query(default=50, ge=1, le=200, description="每页条数"),
        cursor: str | None = Query(default=None, description="翻页游标（上一页的 next_cursor）"),
        principal: Principal = ctx.allow(*Role),
    ) -> dict[str, Any]:
        filters = DeadlineFilter(
            status=status or None,
            township_code=_township_filter(principal, township_code) or None,
            incident_id=incident_id or None,
            kind=kind or None,
            exercise=exercise,
        )
        rows, next_cursor = uc.deadlines_page(filters, limit, cursor)
        return {"items": [deadline_view(r) for r in rows], "next_cursor": next_cursor}


def _own_zero_status(result: dict[str, Any], township_code: str | None) -> dict[str, Any]:
    """A day's zero-report status cut down to one township's rows (for township keys)."""
    for part in ("filed", "missing", "late", "exercise_filed", "contradictions"):
        result[part] = [r for r in result[part] if r["township_code"] == township_code]
    return result


def _contradiction_days(
    ctx: ServiceContext, start: dt.date | None, end: dt.date | None
) -> tuple[dt.date, dt.date]:
    """The report days to search for refused 「无事件」: by default the last 7 up to today."""
    today = domain.local_date(ctx.clock.now(), _zone(ctx))
    last = end or today
    first = start or last - timedelta(days=6)
    if first > last:
        raise field_error("query.from", "不能晚于 to")
    if (last - first).days >= CONTRADICTION_DAYS:
        raise field_error("query.from", f"最多早于 to {CONTRADICTION_DAYS} 天")
    return first, last


def _zero_report_routes(router: APIRouter, ctx: ServiceContext, uc: ReportingUseCases) -> None:
    """Daily zero reports (零报告): filing, a day's status, and refused 「无事件」 attempts."""
    anyone = ctx.allow(*Role)

    @router.post("/v1/zero-reports", status_code=201, summary="File a daily zero report")
    def create_zero_report(
        body: ZeroReportIn,
        principal: Principal = ctx.allow(Role.TOWNSHIP, Role.OPERATOR),
    ) -> dict[str, Any]:
        principal.ensure_township(body.township_code)
        township = ctx.county.township(body.township_code)
        if township is None:
            raise field_error("township_code", "不是本县的乡镇")
        doc = uc.file_zero_report(body.model_dump(mode="json"), principal.key_id)
        return zero.view_of(doc, township.name)

    @router.get("/v1/zero-reports", summary="Zero-report status of every township for a day")
    def zero_status(
        date: Day,
        principal: Principal = anyone,
    ) -> dict[str, Any]:
        result = uc.zero_status(date)
        if principal.role == Role.TOWNSHIP:
            return _own_zero_status(result, principal.township_code)
        return result

    @router.get(
        "/v1/zero-reports/contradictions",
        summary="Refused 「无事件」 zero reports on days with incidents (疑似瞒报)",
        description=(
            "Every refused attempt to file 「无事件」 for a day on which the township had "
            "reported incidents, with the incidents that contradict it, the latest attempt "
            "first. `from`/`to` are report days (default: the last 7 days up to today), at most "
            f"{CONTRADICTION_DAYS} days apart. Township keys see their own township's only. "
            "Drills (演练) never appear: only real zero reports are checked against incidents."
        ),
    )
    def zero_contradictions(
        from_: Annotated[OptionalDay, day_query("起始日期 YYYY-MM-DD", alias="from")] = None,
        to: Annotated[OptionalDay, day_query("截止日期 YYYY-MM-DD（含）")] = None,
        township_code: str | None = Query(default=None, pattern=r"^\d{9}$", description="乡镇代码"),
        principal: Principal = anyone,
    ) -> dict[str, Any]:
        first, last = _contradiction_days(ctx, from_, to)
        code = _township_filter(principal, township_code)
        names = {t.code: t.name for t in ctx.county.townships}
        items = uc.contradictions(first, last, names, code)
        return {"from": first.isoformat(), "to": last.isoformat(), "items": items}


def _timeline_routes(router: APIRouter, ctx: ServiceContext, uc: ReportingUseCases) -> None:
    """An incident's timeline and the inspectors' audit trail of every event."""

    @router.get("/v1/timeline/{incident_id}", summary="Every event about an incident, in order")
    def timeline(
        incident_id: str,
        limit: int = Query(default=200, ge=1, le=200, description="每页条数"),
        cursor: str | None = Query(default=None, description="翻页游标（上一页的 next_cursor）"),
        principal: Principal = ctx.allow(*Role),
    ) -> dict[str, Any]:
        rows, next_cursor = uc.timeline_seen_by(principal, incident_id, limit, cursor)
        return {
            "incident_id": incident_id,
            "items": [timeline_view(r) for r in causal_order(rows)],
            "next_cursor": next_cursor,
        }

    @router.get("/v1/audit", summary="Audit trail of every event, for inspectors")
    def audit(
        from_: UtcTime | None = Query(default=None, alias="from", description="起始时间（含时区）"),
        to: UtcTime | None = Query(default=None, description="截止时间（含时区，不含）"),
        event_type: str | None = Query(default=None, description="事件类型"),
        source: str | None = Query(default=None, description="来源服务"),
        incident_id: str | None = Query(default=None, description="事件编号"),
        township_code: str | None = Query(default=None, pattern=r"^\d{9}$", description="乡镇代码"),
        limit: int = Query(default=100, ge=1, le=200, description="每页条数"),
        cursor: str | None = Query(default=None, description="翻页游标（上一页的 next_cursor）"),
        principal: Principal = ctx.allow(*INSPECTORS),
    ) -> dict[str, Any]:
        start, end = _aware(from_, "query.from"), _aware(to, "query.to")
        if start and end and end <= start:
            raise field_error("query.to", "须晚于 from")
        filters = AuditFilter(
            event_type=event_type or None,
            source=source or None,
            incident_id=incident_id or None,
            township_code=township_code or None,
            occurred_from=start,
            occurred_before=end,
        )
        rows, next_cursor = uc.audit_page(filters, limit, cursor)
        return {"items": [timeline_view(r) for r in rows], "next_cursor": next_cursor}


def _publication_view(doc: dict[str, Any], created: bool) -> dict[str, Any]:
    """A published daily summary as the API shows it."""
    return {
        "id": doc["_id"],
        "kind": doc["kind"],
        "date": doc["date"],
        "published_at": doc["published_at"],
        "published_by": doc["published_by"],
        "created": created,
    }


def _daily_summary_routes(router: APIRouter, ctx: ServiceContext, uc: ReportingUseCases) -> None:
    """The daily situation report (日报) and its publication."""

    @router.get(
        "/v1/summaries/daily",
        summary="Daily situation report (JSON, printable HTML, or .docx / PDF to send upward)",
        description="日报统计时段为前一日截止时间至当日截止时间（默认 17:00 至 17:00，取自时限配置"
        "的 daily_report_cutoff）：17:00 后首报的事件进入次日日报。",
        responses={200: DOCUMENTS},
    )
    def daily_summary(
        date: Day,
        format: Literal["json", "html", "docx", "pdf"] = Query(
            default="json", description="json、html、docx（公文格式）或 pdf"
        ),
        principal: Principal = ctx.allow(*READERS),
    ) -> Any:
        pack = uc.daily_summary(date)
        if format == "html":
            return HTMLResponse(render.daily_html(pack, ctx.county.name, _zone(ctx)))
        if format in ("docx", "pdf"):
            return _document(documents.daily_document(pack, _zone(ctx)), format)
        return pack

    @router.post(
        "/v1/summaries/daily/publish",
        status_code=201,
        summary="Publish the daily summary",
        responses={
            200: {"description": "Already published: the earlier publication"},
            **errors(409),
        },
    )
    def publish_daily(
        date: Day,
        principal: Principal = ctx.allow(Role.OPERATOR, Role.LEADER),
    ) -> Any:
        doc, created = uc.publish_daily(date, principal.key_id)
        body = _publication_view(doc, created)
        return JSONResponse(content=_jsonable(body), status_code=201 if created else 200)


def _situation_routes(router: APIRouter, ctx: ServiceContext, uc: ReportingUseCases) -> None:
    """The 会商研判 situation pack for any period."""

    @router.get(
        "/v1/summaries/situation",
        summary="会商研判 situation pack for any period, given as local days or date-times "
        "(JSON, HTML, .docx or PDF)",
        responses={200: DOCUMENTS},
    )
    def situation(
        from_: Annotated[
            str,
            Query(
                alias="from",
                description="起始：日期 YYYY-MM-DD（当地日，自当日零时起）或含时区的时间",
                json_schema_extra=DAY_OR_TIME,
            ),
        ],
        to: Annotated[
            str,
            Query(
                description="截止：日期 YYYY-MM-DD（当地日，含当日，即至次日零时）"
                "或含时区的时间（不含）",
                json_schema_extra=DAY_OR_TIME,
            ),
        ],
        format: Literal["json", "html", "docx", "pdf"] = Query(
            default="json", description="json、html、docx（公文格式）或 pdf"
        ),
        principal: Principal = ctx.allow(*READERS),
    ) -> Any:
        start, end = period(from_, to, _zone(ctx))
        if end <= start:
            raise field_error("query.to", "须晚于 from")
        if end - start > timedelta(days=366):
            raise field_error("query.to", "时段最长 366 天")
        if start > as_utc(ctx.clock.now()):
            # A period that has not begun has no situation to judge, only empty figures.
            raise field_error("query.from", "时段尚未开始：起始不能晚于现在")
        pack = uc.situation(start, end)
        if format == "html":
            return HTMLResponse(render.situation_html(pack, ctx.county.name, _zone(ctx)))
        if format in ("docx", "pdf"):
            return _document(documents.situation_document(pack, _zone(ctx)), format)
        return pack


def _own_scores(result: dict[str, Any], township_code: str | None) -> dict[str, Any]:
    """A month's scores cut down to one township's rows (for township keys)."""
    own = [r for r in result["items"] if r["township_code"] == township_code]
    result = {**result, "items": own}
    ranking = result.get("information_ranking")
    if ranking:  # publications before information work carry none
        townships = [r for r in ranking["townships"] if r["unit_code"] == township_code]
        result["information_ranking"] = {**ranking, "townships": townships}
    return result


def _score_routes(router: APIRouter, ctx: ServiceContext, uc: ReportingUseCases) -> None:
    """Monthly reporting scores per township (篇6)."""

    @router.get("/v1/scores", summary="Monthly reporting scores per township (篇6)")
    def scores(
        month: Month,
        principal: Principal = ctx.allow(Role.OPERATOR, Role.LEADER, Role.ADMIN, Role.TOWNSHIP),
    ) -> dict[str, Any]:
        if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
            raise field_error("query.month", "月份格式为 YYYY-MM")
        current = domain.local_date(ctx.clock.now(), _zone(ctx)).strftime("%Y-%m")
        if month > current:
            raise field_error("query.month", "须为已经开始的月份")
        result = uc.scores(month)
        if principal.role == Role.TOWNSHIP:
            return _own_scores(result, principal.township_code)
        return result


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value
