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
    "figures are lower than in the previous report without a correction: "
    "add corrections[] {field, reason} for each (数字下降须在 corrections[] 中逐项附核减说明，"
    "progress 中的文字说明不能代替)"
)


def visible_incident(
    repo: ReportingRepository, principal: Principal, incident_id: str
) -> dict[str, Any]:
    """The incident if the caller may see it; 404 when unknown, 403 for another township's."""
    incident = repo.incident_view(incident_id)
    if incident is None:
        raise ApiError(
            404,
            "incident_unknown",
            f"incident {incident_id} is unknown to reporting (not reported, or not yet received)",
            fields=[{"path": "incident_id", "reason": "unknown incident"}],
        )
    principal.ensure_township(incident["township_code"], "incident_id")
    return incident


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
    kind = raw["kind"]
    if key:
        scope = idempotency_scope(principal.key_id, key, "")
        replay = check_replay(repo.report_by_idempotency_scope(scope), digest)
        if replay is not None:
            return replay
    incident = visible_incident(repo, principal, raw["incident_id"])
    if incident["status"] == "merged":
        raise ApiError(
            409,
            "incident_merged",
            f"incident {incident['_id']} was merged into {incident.get('merged_into')}; "
            "report on the primary incident",
            fields=[{"path": "incident_id", "reason": "merged duplicate"}],
        )
    if raw.get("exercise") is not None and raw["exercise"] != bool(incident.get("exercise")):
        what = "a drill (演练)" if incident.get("exercise") else "real"
        raise field_error("exercise", f"the incident is {what}")
    if incident.get("finalised") or repo.final_report_filed(incident["_id"]):
        raise ApiError(
            409,
            "chain_finalised",
            f"the final report (终报) of {incident['_id']} is filed; the chain is closed",
            fields=[{"path": "incident_id", "reason": "final report already filed"}],
        )
    if kind == "followup" and incident["status"] == "closed":
        raise ApiError(
            409,
            "incident_closed",
            f"incident {incident['_id']} is closed; only its final report (终报) may be filed",
            fields=[{"path": "kind", "reason": "incident closed: file kind=final"}],
        )
    problems = (
        domain.missing_elements(raw) + domain.length_errors(raw) + domain.same_person_error(raw)
    )
    if problems:
        raise ApiError(
            422,
            "incomplete_report",
            "the report lacks required elements or breaks the length limits (要素不全)",
            fields=problems,
        )
    for attempt in range(5):
        last = repo.last_report(incident["_id"])
        if last is not None:
            previous = domain.flatten_figures(
                last["casualties"], last["affected"], last.get("people_involved")
            )
        else:
            previous = domain.flatten_figures(
                incident.get("casualties"),
                incident.get("affected"),
                incident.get("people_involved"),
            )
        current = domain.flatten_figures(raw["casualties"], raw["affected"], raw["people_involved"])
        fallen = domain.fallen_figures(previous, current)
        errors = domain.correction_errors(fallen, raw["corrections"])
        if errors:
            raise ApiError(
                422,
                "figures_fell",
                FIGURES_FELL_MESSAGE,
                fields=errors,
            )
        number = None
        if kind == "followup":
            number = (last.get("number") or 0) + 1 if last else 1
        seq = (last["seq"] if last else 0) + 1
        report_id = uuid.uuid4().hex
        doc = {
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
            "changes": domain.figure_changes(previous, current),
            "reporter": raw["reporter"],
            "approver": raw["approver"],
            "deadline_id": None,
            "late": None,
            "event_id": str(uuid.uuid4()),
        }
        event = events.report_filed(ctx.clock, doc)
        scope = idempotency_scope(principal.key_id, key, report_id)
        try:
            stored, created = repo.record_report(doc, scope, digest, [event])
        except ChainSlotTakenError:
            # Another report of the same chain won the number; read the chain again.
            if attempt == 4:
                break
            continue
        if created:
            ctx.wake_relay()
            metrics.REPORTS_FILED.labels(
                metrics.SERVICE,
                kind,
                incident["township_code"],
                metrics.exercise_label(doc["exercise"]),
            ).inc()
            deadlines.apply_report(ctx, repo, stored)
            return repo.report_by_id(report_id) or stored
        return stored
    raise ApiError(409, "concurrent_report", "another report of this chain was filed; retry")
