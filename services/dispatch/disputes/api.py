"""HTTP routes of the dispute assignments (统一指派化解, 篇4): assign, approve, mediate, move up,
supervise (督办) and joint meetings (联席会议). Parse, authorize, call a use case, shape."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from libs.common.auth import Principal, Role
from libs.common.clock import UtcTime
from libs.common.idempotency import fingerprint, validate_key
from libs.common.jsontypes import JsonBool, JsonDay
from libs.common.openapi import Limit, errors
from libs.common.service import ServiceContext
from libs.common.text import Text
from services.dispatch import domain
from services.dispatch.disputes import domain as rules
from services.dispatch.disputes.usecases import DisputeUseCases, supervision_due
from services.dispatch.repository import AssignmentFilter
from services.dispatch.usecases import Keyed

OPERATIONS = (Role.OPERATOR, Role.LEADER)
MEDIATORS = (Role.OPERATOR, Role.LEADER, Role.TOWNSHIP)
PHONE = r"^\+?[0-9][0-9\- ]{4,19}$"
Name100 = Annotated[Text, StringConstraints(min_length=1, max_length=100)]
Decision = Annotated[Text, StringConstraints(min_length=1, max_length=500)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StabilityContact(_Strict):
    """稳控责任人：姓名、电话、单位。"""

    name: Text = Field(min_length=1, max_length=50, description="姓名 name")
    phone: str = Field(pattern=PHONE, description="电话 phone")
    unit: Text = Field(min_length=1, max_length=100, description="单位 unit")


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
    major: JsonBool = Field(
        default=False, description="重大矛盾纠纷 major dispute: needs a leader's approval (审批)"
    )
    cross_area: JsonBool = Field(
        default=False,
        description="跨区域、跨行业 cross-area dispute: handled at county level from the start",
    )
    note: Text = Field(default="", max_length=1000, description="处理意见 handling opinion")
    stability_contact: StabilityContact = Field(
        description="稳控责任人 stability-control person (涉稳纠纷按属地落实稳控工作和责任人)"
    )


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

    # Its own title: another service has a model of the same name in one OpenAPI document.
    model_config = ConfigDict(title="DisputeApproveIn")

    note: Text = Field(default="", max_length=1000, description="审批意见 approval note")


class SupervisionIn(_Strict):
    """A supervision (督办) of a dispute's handling (篇4 统一督查督办)."""

    form: Literal["letter", "meeting", "onsite", "notice"] = Field(
        description="督办形式 form: letter 发函, meeting 会议, onsite 现场, notice 通报"
        "（三三制调处用尽后须逐级加重）"
    )
    on: JsonDay = Field(description="督办日期 date")
    by: Text = Field(min_length=1, max_length=100, description="督办人或单位 by whom")
    note: Text = Field(default="", max_length=1000, description="督办内容 note")


class JointMeetingIn(_Strict):
    """A joint meeting (联席会议) on one or more disputes: who came and what was decided."""

    held_on: JsonDay = Field(description="会议日期 date")
    convener: Text = Field(min_length=1, max_length=100, description="召集人 convener")
    attendees: list[Name100] = Field(
        min_length=1, max_length=50, description="参会部门、单位 attendees (departments/units)"
    )
    decisions: list[Decision] = Field(min_length=1, max_length=50, description="议定事项 decisions")
    assignment_ids: list[Text] = Field(
        min_length=1, max_length=20, description="涉及的纠纷指派 linked assignments"
    )
    note: Text = Field(default="", max_length=2000, description="会议纪要 minutes")


def _meeting_out(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "held_on": doc["held_on"],
        "convener": doc["convener"],
        "attendees": doc["attendees"],
        "decisions": doc["decisions"],
        "note": doc.get("note", ""),
        "linked_assignments": len(doc["assignment_ids"]),
        "recorded_at": doc["recorded_at"],
        "recorded_by": doc["recorded_by"],
        "exercise": bool(doc.get("exercise")),
    }


def _supervision_out(record: Mapping[str, Any]) -> dict[str, Any]:
    """A recorded supervision with its form's label (the request's fingerprint stays inside)."""
    shown = {k: v for k, v in record.items() if k != "request_hash"}
    return {**shown, "form_label": rules.FORM_LABELS[record["form"]]}


def _assignment_out(
    doc: Mapping[str, Any], required: int, meetings: Sequence[Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """An assignment; its joint meetings when they were read (one assignment, not a list)."""
    attempts = [domain.Attempt(a["level"], a["outcome"]) for a in doc.get("attempts") or []]
    blocked = domain.escalation_error(doc["status"], doc["level"], attempts, required)
    due = supervision_due(doc, required)
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
        "stability_contact": doc.get("stability_contact"),
        "stability_contact_text": rules.stability_text(doc.get("stability_contact")),
        "supervisions": [_supervision_out(s) for s in doc.get("supervisions") or []],
        "supervision_required_form": due,
        "supervision_required_form_label": rules.FORM_LABELS[due],
        **({"joint_meetings": [_meeting_out(m) for m in meetings]} if meetings is not None else {}),
    }


def _keyed(principal: Principal, key: str | None, body: BaseModel) -> Keyed:
    """The caller, its checked Idempotency-Key and the body's fingerprint."""
    return Keyed(principal, validate_key(key), fingerprint(body.model_dump(mode="json")))


def build_router(ctx: ServiceContext, disputes: DisputeUseCases) -> APIRouter:
    """The /v1/assignments and /v1/joint-meetings routes, bound to the dispute use cases."""
    router = APIRouter(tags=["dispatch"])
    _assignment_routes(router, ctx, disputes)
    _mediation_routes(router, ctx, disputes)
    _supervision_routes(router, ctx, disputes)
    return router


def _assignment_routes(router: APIRouter, ctx: ServiceContext, disputes: DisputeUseCases) -> None:
    """Assigning a dispute, the assignments and one assignment."""
    required = disputes.attempts_per_level

    @router.post("/v1/assignments", status_code=201, summary="Assign a dispute (统一指派)")
    def create_assignment(
        body: AssignmentIn,
        principal: Principal = ctx.allow(*OPERATIONS),
        idempotency_key: str | None = Header(default=None),
    ) -> dict[str, Any]:
        keyed = _keyed(principal, idempotency_key, body)
        return _assignment_out(disputes.assign_dispute(body.model_dump(), keyed), required)

    @router.get("/v1/assignments", summary="Dispute assignments (督办台账)")
    def list_assignments(
        status: Literal["pending_approval", "active", "resolved", "closed"] | None = None,
        overdue: bool | None = None,
        incident_id: str | None = None,
        level: Literal["group", "village", "township", "county"] | None = None,
        exercise: bool | None = Query(default=None, description="演练 drills only / none"),
        limit: Limit = 50,
        cursor: str | None = None,
        principal: Principal = ctx.allow(*MEDIATORS),
    ) -> dict[str, Any]:
        township = principal.township_code if principal.role == Role.TOWNSHIP else None
        filters = AssignmentFilter(status, overdue, incident_id, level, exercise, township)
        rows, nxt = disputes.assignments_page(filters, limit, cursor)
        return {"items": [_assignment_out(r, required) for r in rows], "next_cursor": nxt}

    @router.get("/v1/assignments/{assignment_id}", summary="One dispute assignment")
    def get_assignment(
        assignment_id: str, principal: Principal = ctx.allow(*MEDIATORS)
    ) -> dict[str, Any]:
        doc = disputes.visible_assignment(assignment_id, principal)
        return _assignment_out(doc, required, disputes.meetings_of(assignment_id))


def _mediation_routes(router: APIRouter, ctx: ServiceContext, disputes: DisputeUseCases) -> None:
    """Approving an assignment, recording mediation and moving it up a level."""
    required = disputes.attempts_per_level

    @router.post("/v1/assignments/{assignment_id}/approve", summary="Approve a major dispute")
    def approve_assignment(
        assignment_id: str,
        body: ApproveIn | None = Body(default=None),
        principal: Principal = ctx.allow(Role.LEADER),
    ) -> dict[str, Any]:
        note = body.note if body else ""
        return _assignment_out(disputes.approve(assignment_id, note, principal), required)

    @router.post(
        "/v1/assignments/{assignment_id}/attempts", status_code=201, summary="Record mediation"
    )
    def record_attempt(
        assignment_id: str,
        body: AttemptIn,
        principal: Principal = ctx.allow(*MEDIATORS),
        idempotency_key: str | None = Header(default=None),
    ) -> dict[str, Any]:
        key = validate_key(idempotency_key)
        updated = disputes.record_attempt(assignment_id, body.model_dump(), key, principal)
        return _assignment_out(updated, required)

    @router.post("/v1/assignments/{assignment_id}/escalate", summary="Move up a level (三三制)")
    def escalate_assignment(
        assignment_id: str,
        body: EscalateIn | None = Body(default=None),
        principal: Principal = ctx.allow(*MEDIATORS),
    ) -> dict[str, Any]:
        request = (body or EscalateIn()).model_dump()
        return _assignment_out(disputes.escalate(assignment_id, request, principal), required)


def _supervision_routes(router: APIRouter, ctx: ServiceContext, disputes: DisputeUseCases) -> None:
    """Supervisions (督办) of an assignment and joint meetings."""
    required = disputes.attempts_per_level
    mediators = ctx.allow(Role.OPERATOR, Role.LEADER, Role.TOWNSHIP)

    @router.post(
        "/v1/assignments/{assignment_id}/supervisions",
        status_code=201,
        summary="Record a supervision (督办: 发函/会议/现场/通报)",
        description="三三制调处在某一层级用尽后，下一次督办须加重一级"
        "（发函 → 会议 → 现场 → 通报）；较轻的形式以 409 拒绝。"
        "答复中的 supervision_required_form 为下次督办至少应采用的形式。",
    )
    def supervise(
        assignment_id: str,
        body: SupervisionIn,
        principal: Principal = mediators,
        idempotency_key: str | None = Header(default=None),
    ) -> dict[str, Any]:
        keyed = _keyed(principal, idempotency_key, body)
        updated = disputes.supervise(assignment_id, body.model_dump(), keyed)
        return _assignment_out(updated, required, disputes.meetings_of(assignment_id))

    @router.post(
        "/v1/joint-meetings",
        status_code=201,
        summary="Record a joint meeting (联席会议)",
        responses=errors(404),  # an assignment it names is unknown or another township's
    )
    def hold_joint_meeting(
        body: JointMeetingIn,
        principal: Principal = mediators,
        idempotency_key: str | None = Header(default=None),
    ) -> dict[str, Any]:
        keyed = _keyed(principal, idempotency_key, body)
        return _meeting_out(disputes.hold_joint_meeting(body.model_dump(), keyed))
