"""HTTP routes of the special campaigns (专项行动): start, end, list, read, file a report."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from fastapi import APIRouter, Body, Header, Query
from pydantic import BaseModel, ConfigDict, Field

from libs.common.auth import Principal, Role
from libs.common.idempotency import fingerprint, validate_key
from libs.common.jsontypes import JsonBool, JsonDay, JsonInt
from libs.common.service import ServiceContext
from libs.common.text import Text
from services.reporting.campaigns import domain
from services.reporting.campaigns.repository import CampaignFilter
from services.reporting.campaigns.usecases import Caller, CampaignUseCases

PARTICIPANT = r"^[A-Za-z0-9_-]{1,40}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StageIn(_Strict):
    """One stage of a campaign (工作阶段), e.g. 组织动员、全面排查、化解矛盾完善机制."""

    name: Text = Field(min_length=1, max_length=50, description="阶段名称")
    ends_on: JsonDay = Field(description="阶段结束日期（当地）")


class CampaignIn(_Strict):
    """A special campaign (专项行动) and its reporting rhythm (篇1)."""

    name: Text = Field(min_length=2, max_length=100, description="专项行动名称")
    starts_on: JsonDay = Field(description="开始日期（当地）")
    ends_on: JsonDay = Field(description="结束日期（当地）")
    stages: list[StageIn] = Field(default_factory=list, max_length=10, description="工作阶段")
    participants: list[Text] = Field(
        min_length=1, max_length=60, description="参加单位：乡镇代码或部门编号（县情文件）"
    )
    report_every_days: JsonInt | None = Field(
        default=None, ge=1, le=31, description="每几天报告一次（默认按时限配置，3 天）"
    )
    stage_report_days: JsonInt | None = Field(
        default=None, ge=1, le=7, description="阶段结束后几天内报送阶段报告（默认 2 天）"
    )
    note: Text = Field(default="", max_length=1000, description="说明")
    exercise: JsonBool = Field(default=False, description="演练：另行标记，不计入真实统计")


class CampaignEndIn(_Strict):
    """Ending a campaign (专项行动结束)."""

    reason: Text = Field(default="", max_length=500, description="结束说明")


class CampaignReportIn(_Strict):
    """A participant's campaign report (定期报告 or 阶段报告)."""

    participant: str = Field(pattern=PARTICIPANT, description="报送单位：乡镇代码或部门编号")
    kind: Literal["campaign_report", "campaign_stage"] = Field(
        description="campaign_report 定期报告；campaign_stage 阶段报告"
    )
    stage: JsonInt | None = Field(default=None, ge=1, le=10, description="阶段序号（阶段报告必填）")
    content: Text = Field(min_length=2, max_length=5000, description="报告内容")


def _caller(principal: Principal, key: str | None, body: BaseModel | None) -> Caller:
    digest = fingerprint(body.model_dump(mode="json") if body else {})
    return Caller(principal.name, principal.key_id, _unit(principal), validate_key(key), digest)


def _unit(principal: Principal) -> tuple[str, str] | None:
    """The only participant a key files for: a township's own code, a department's own id
    (a department key bound to none files for none); the county office any (None)."""
    if principal.role == Role.TOWNSHIP:
        return "township", principal.township_code or ""
    if principal.role == Role.DEPARTMENT:
        return "department", principal.department_code or ""
    return None


def _own_unit(principal: Principal) -> str | None:
    """The township a township key reads for; None for every county-level key."""
    return principal.township_code or "" if principal.role == Role.TOWNSHIP else None


def deadline_out(doc: Mapping[str, Any]) -> dict[str, Any]:
    """One of the campaign's deadlines as its view shows it."""
    return {
        "id": doc["_id"],
        "kind": doc["kind"],
        "kind_label": domain.KIND_LABELS[doc["kind"]],
        "participant": doc["township_code"],
        "participant_name": doc.get("participant_name"),
        "stage": doc.get("stage"),
        "due_at": doc["due_at"],
        "status": doc["status"],
        "late": doc.get("late", False),
        "escalation": doc.get("escalation", 0),
        "met_at": doc.get("met_at"),
        "met_by": doc.get("met_by"),
    }


def campaign_out(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A campaign as the API shows it."""
    return {
        "id": doc["_id"],
        "name": doc["name"],
        "starts_on": doc["starts_on"],
        "ends_on": doc["ends_on"],
        "stages": doc["stages"],
        "participants": doc["participants"],
        "report_every_days": doc["rhythm"]["report_every_days"],
        "stage_report_days": doc["rhythm"]["stage_report_days"],
        "report_time": doc["rhythm"]["report_time"],
        "note": doc.get("note", ""),
        "status": doc["status"],
        "status_label": domain.STATUS_LABELS[doc["status"]],
        "started_at": doc["started_at"],
        "started_by": doc["started_by"],
        "ended_at": doc.get("ended_at"),
        "ended_by": doc.get("ended_by"),
        "end_reason": doc.get("end_reason"),
        "exercise": bool(doc.get("exercise")),
    }


def report_out(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A campaign report as the API shows it."""
    return {
        "id": doc["_id"],
        "campaign_id": doc["campaign_id"],
        "participant": doc["participant"],
        "kind": doc["kind"],
        "kind_label": domain.KIND_LABELS[doc["kind"]],
        "stage": doc.get("stage"),
        "content": doc["content"],
        "filed_at": doc["filed_at"],
        "filed_by": doc["filed_by"],
        "deadline_id": doc.get("meets"),
        "late": doc.get("late", False),
        "exercise": bool(doc.get("exercise")),
    }


def build_router(ctx: ServiceContext, campaigns: CampaignUseCases) -> APIRouter:
    """The /v1/campaigns routes bound to the campaign use cases."""
    router = APIRouter(tags=["reporting"])
    _lifecycle_routes(router, ctx, campaigns)
    _read_routes(router, ctx, campaigns)
    _report_routes(router, ctx, campaigns)
    return router


def _detail(
    campaigns: CampaignUseCases, doc: Mapping[str, Any], unit: str | None = None
) -> dict[str, Any]:
    """A campaign with its deadlines and reports (only the unit's own, for a unit)."""
    deadlines = [deadline_out(d) for d in campaigns.deadlines_of(doc)]
    reports = [report_out(r) for r in campaigns.reports_of(doc["_id"])]
    if unit is not None:
        deadlines = [d for d in deadlines if d["participant"] == unit]
        reports = [r for r in reports if r["participant"] == unit]
    return {**campaign_out(doc), "deadlines": deadlines, "reports": reports}


def _lifecycle_routes(router: APIRouter, ctx: ServiceContext, campaigns: CampaignUseCases) -> None:
    """Starting and ending a campaign, by the county office."""
    county = ctx.allow(Role.OPERATOR, Role.LEADER)

    @router.post("/v1/campaigns", status_code=201, summary="启动专项行动（报送节奏）")
    def start_campaign(
        body: CampaignIn,
        principal: Principal = county,
        idempotency_key: str | None = Header(default=None),
    ) -> dict[str, Any]:
        caller = _caller(principal, idempotency_key, body)
        return _detail(campaigns, campaigns.start(body.model_dump(), caller))

    @router.post("/v1/campaigns/{campaign_id}/end", summary="结束专项行动，撤销此后的报告时限")
    def end_campaign(
        campaign_id: str,
        body: CampaignEndIn | None = Body(default=None),
        principal: Principal = county,
    ) -> dict[str, Any]:
        reason = body.reason if body else ""
        return _detail(campaigns, campaigns.end(campaign_id, principal.name, reason))


def _read_routes(router: APIRouter, ctx: ServiceContext, campaigns: CampaignUseCases) -> None:
    """The campaigns and one campaign, as each key may see them."""
    # A township key reads the campaigns its township takes part in, with its own deadlines and
    # reports (as it sees only its own incidents); the county office and departments read all.
    readers = ctx.allow(Role.ADMIN, Role.LEADER, Role.OPERATOR, Role.DEPARTMENT, Role.TOWNSHIP)

    @router.get(
        "/v1/campaigns",
        summary="专项行动列表（新的在前）",
        description="乡镇账号只列出本乡镇参加的专项行动。",
    )
    def list_campaigns(
        status: Literal["active", "ended"] | None = Query(default=None, description="状态"),
        exercise: bool | None = Query(default=None, description="演练 drills only / none"),
        limit: int = Query(default=50, ge=1, le=200, description="每页条数"),
        cursor: str | None = Query(default=None, description="翻页游标（上一页的 next_cursor）"),
        principal: Principal = readers,
    ) -> dict[str, Any]:
        filters = CampaignFilter(status, exercise, participant=_own_unit(principal))
        rows, nxt = campaigns.campaigns_page(filters, limit, cursor)
        return {"items": [campaign_out(r) for r in rows], "next_cursor": nxt}

    @router.get(
        "/v1/campaigns/{campaign_id}",
        summary="一项专项行动：时限与已报报告",
        description="乡镇账号只能读取本乡镇参加的专项行动，且只见本乡镇的时限与报告。",
    )
    def read_campaign(campaign_id: str, principal: Principal = readers) -> dict[str, Any]:
        unit = _own_unit(principal)
        return _detail(campaigns, campaigns.campaign_seen_by(campaign_id, unit), unit)


def _report_routes(router: APIRouter, ctx: ServiceContext, campaigns: CampaignUseCases) -> None:
    """Filing a participant's campaign report."""

    @router.post(
        "/v1/campaigns/{campaign_id}/reports",
        status_code=201,
        summary="报送专项行动报告（定期或阶段）",
        description="报告满足该单位最早的未报时限（阶段报告满足该阶段的时限）；"
        "晚于时限记为迟报。乡镇账号只能报送本乡镇的报告。",
    )
    def file_campaign_report(
        campaign_id: str,
        body: CampaignReportIn,
        principal: Principal = ctx.allow(Role.TOWNSHIP, Role.DEPARTMENT, Role.OPERATOR),
        idempotency_key: str | None = Header(default=None),
    ) -> dict[str, Any]:
        caller = _caller(principal, idempotency_key, body)
        return report_out(campaigns.file_report(campaign_id, body.model_dump(), caller))
