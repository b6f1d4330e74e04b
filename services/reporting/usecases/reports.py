"""Use cases of the report chain: filing a follow-up or final report (续报, 终报)."""

from __future__ import annotations

import uuid
from typing import Any

from libs.common.auth import Principal
from libs.common.errors import ApiError, field_error
from libs.common.idempotency import check_replay, fingerprint, idempotency_scope, validate_key
from libs.common.service import ServiceContext
from services.reporting import domain, events, metrics
from services.reporting.repository import ChainSlotTakenError, ReportingRepository
from services.reporting.usecases import deadlines

FIGURES_FELL_MESSAGE = (
    "数字低于上一次报告且未附核减说明：请在 corrections[] 中逐项填写 {field, reason}"
    "（progress 中的文字说明不能代替）"
)


def visible_incident(
    repo: ReportingRepository, principal: Principal, incident_id: str
) -> dict[str, Any]:
    """The incident if the caller may see it; 404 when unknown, and for a township key also
    when it is another township's (as if unknown: no answer tells that it exists)."""
    incident = repo.incident_view(incident_id)
    if incident is None or not principal.may_act_for(incident["township_code"]):
        raise ApiError(
            404,
            "incident_unknown",
            f"报告服务未收到事件 {incident_id}（尚未接报，或消息还在途中）",
            fields=[{"path": "incident_id", "reason": "未知事件"}],
        )
    return incident


def _title(repo: ReportingRepository, incident_id: str | None) -> str:
    """An incident's title for a refusal, or 另一起事件 when reporting does not know it."""
    view = repo.incident_view(incident_id or "") if incident_id else None
    return str(view["title"]) if view and view.get("title") else "另一起事件"


def file_report(
    ctx: ServiceContext,
    repo: ReportingRepository,
    principal: Principal,
    raw: dict[str, Any],
    idempotency_key: str | None,
) -> dict[str, Any]:
    """Validate and file a follow-up or final report (``raw``: the checked body as JSON);
    returns the stored document."""
    key = validate_key(idempotency_key)
    digest = fingerprint(raw)
    if key:
        replay = _replay(repo, principal, key, digest)
        if replay is not None:
            return replay
    incident = visible_incident(repo, principal, raw["incident_id"])
    _ensure_chain_open(repo, incident, raw)
    _ensure_complete(raw)
    for _attempt in range(5):
        filed = _try_filing(ctx, repo, principal, raw, incident, key, digest)
        if filed is not None:
            return filed
        # Another report of the same chain won the number; read the chain again.
    raise ApiError(409, "concurrent_report", "同一报告链刚有另一份报告报送，请重试")


def _replay(
    repo: ReportingRepository, principal: Principal, key: str, digest: str
) -> dict[str, Any] | None:
    """The report already filed under this idempotency key, if the same body is sent again."""
    scope = idempotency_scope(principal.key_id, key, "")
    return check_replay(repo.report_by_idempotency_scope(scope), digest)


def _ensure_chain_open(
    repo: ReportingRepository, incident: dict[str, Any], raw: dict[str, Any]
) -> None:
    """409 (or 422 for a drill mismatch) when the incident's chain takes no report of this kind."""
    if incident["status"] == "merged":
        raise ApiError(
            409,
            "incident_merged",
            f"该事件已作为重复报告并入「{_title(repo, incident.get('merged_into'))}」，"
            "请在主事件上报告",
            fields=[{"path": "incident_id", "reason": "已并入其他事件的重复报告"}],
        )
    if raw.get("exercise") is not None and raw["exercise"] != bool(incident.get("exercise")):
        what = "演练事件" if incident.get("exercise") else "真实事件"
        raise field_error("exercise", f"该事件是{what}")
    if incident.get("finalised") or repo.final_report_filed(incident["_id"]):
        raise ApiError(
            409,
            "chain_finalised",
            f"「{incident.get('title') or incident['_id']}」的终报已报送，报告链已结束",
            fields=[{"path": "incident_id", "reason": "终报已报送"}],
        )
    if raw["kind"] == "followup" and incident["status"] == "closed":
        raise ApiError(
            409,
            "incident_closed",
            f"「{incident.get('title') or incident['_id']}」已结案，只能报送终报",
            fields=[{"path": "kind", "reason": "事件已结案：请以 kind=final 报送终报"}],
        )


def _ensure_complete(raw: dict[str, Any]) -> None:
    """422 naming every missing element, over-long text or same reporter and approver."""
    problems = (
        domain.missing_elements(raw) + domain.length_errors(raw) + domain.same_person_error(raw)
    )
    if problems:
        raise ApiError(
            422,
            "incomplete_report",
            "报告要素不全或超出字数限制（要素不全）",
            fields=problems,
        )


def _try_filing(
    ctx: ServiceContext,
    repo: ReportingRepository,
    principal: Principal,
    raw: dict[str, Any],
    incident: dict[str, Any],
    key: str | None,
    digest: str,
) -> dict[str, Any] | None:
    """File the report as the next of its chain; None when another report took that slot."""
    last = repo.last_report(incident["_id"])
    previous = _previous_figures(incident, last)
    current = domain.flatten_figures(raw["casualties"], raw["affected"], raw["people_involved"])
    _ensure_corrections(previous, current, raw)
    doc = _report_doc(ctx, principal, raw, incident, last, domain.figure_changes(previous, current))
    event = events.report_filed(ctx.clock, doc)
    scope = idempotency_scope(principal.key_id, key, doc["_id"])
    try:
        stored, created = repo.record_report(doc, scope, digest, [event])
    except ChainSlotTakenError:
        return None
    if created:
        _after_filing(ctx, repo, stored, doc)
        return repo.report_by_id(doc["_id"]) or stored
    return stored


def _previous_figures(incident: dict[str, Any], last: dict[str, Any] | None) -> dict[str, float]:
    """The figures the report is compared with: the chain's last report's, else the initial's."""
    if last is not None:
        return domain.flatten_figures(
            last["casualties"], last["affected"], last.get("people_involved")
        )
    return domain.flatten_figures(
        incident.get("casualties"),
        incident.get("affected"),
        incident.get("people_involved"),
    )


def _ensure_corrections(
    previous: dict[str, float], current: dict[str, float], raw: dict[str, Any]
) -> None:
    """422 when a figure fell below the last report's without a correction saying why."""
    fallen = domain.fallen_figures(previous, current)
    errors = domain.correction_errors(fallen, raw["corrections"])
    if errors:
        raise ApiError(
            422,
            "figures_fell",
            FIGURES_FELL_MESSAGE,
            fields=errors,
        )


def _report_doc(
    ctx: ServiceContext,
    principal: Principal,
    raw: dict[str, Any],
    incident: dict[str, Any],
    last: dict[str, Any] | None,
    changes: list[dict[str, Any]],
) -> dict[str, Any]:
    """The report as stored: numbered after the chain's last report, with its figure changes."""
    kind = raw["kind"]
    number, seq = _chain_position(kind, last)
    report_id = uuid.uuid4().hex
    return {
        "_id": report_id,
        "incident_id": incident["_id"],
        "township_code": incident["township_code"],
        "kind": kind,
        "exercise": bool(incident.get("exercise", False)),
        "number": number,
        "seq": seq,
        "chain_key": f"{incident['_id']}:F{number}"
        if kind == "followup"
        else f"{incident['_id']}:final",
        "filed_at": ctx.clock.now(),
        "filed_by": principal.key_id,
        "casualties": raw["casualties"],
        "affected": raw["affected"],
        "people_involved": raw["people_involved"],
        "progress": raw["progress"],
        "measures_taken": raw["measures_taken"],
        "needs": raw["needs"],
        "change_note": raw["change_note"],
        "corrections": raw["corrections"],
        "changes": changes,
        "reporter": raw["reporter"],
        "approver": raw["approver"],
        "deadline_id": None,
        "late": None,
        "event_id": str(uuid.uuid4()),
    }


def _chain_position(kind: str, last: dict[str, Any] | None) -> tuple[int | None, int]:
    """The report's follow-up number (None for a final report) and its place in the chain."""
    number = None
    if kind == "followup":
        number = (last.get("number") or 0) + 1 if last else 1
    seq = (last["seq"] if last else 0) + 1
    return number, seq


def _after_filing(
    ctx: ServiceContext, repo: ReportingRepository, stored: dict[str, Any], doc: dict[str, Any]
) -> None:
    """A newly filed report wakes the relay, is counted and meets the deadlines it answers."""
    ctx.wake_relay()
    metrics.REPORTS_FILED.labels(
        metrics.SERVICE,
        doc["kind"],
        doc["township_code"],
        metrics.exercise_label(doc["exercise"]),
    ).inc()
    deadlines.apply_report(ctx, repo, stored)
