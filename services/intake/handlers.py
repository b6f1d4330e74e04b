"""Bus consumers: follow-ups re-grade incidents, final reports close them (both idempotent)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from libs.common.bus import Subscription
from libs.common.eventmodels.reporting import FinalReportFiledV1, FollowupFiledV1
from libs.common.events import EventEnvelope, parse_payload
from libs.common.idempotency import APPLIED, apply_once
from libs.common.outbox import with_events
from libs.common.service import ServiceContext, subscribe
from services.intake import events, metrics
from services.intake.config import IntakeConfig
from services.intake.domain import (
    GRADE_LABELS,
    Figures,
    escalation_reasons,
    merge_reasons,
    regrade_reason,
    report_is_outdated,
    upgrade,
)
from services.intake.store import IncidentStore

# Optimistic-concurrency retries before the bus's own retry takes over.
MAX_ATTEMPTS = 5


class ConcurrentUpdateError(RuntimeError):
    """The incident kept changing under the handler; the bus retries the event."""


def apply_report(
    ctx: ServiceContext,
    config: IntakeConfig,
    store: IncidentStore,
    envelope: EventEnvelope,
    *,
    incident_id: str,
    figures: Mapping[str, Any],
    label: str,
    number: int | None = None,
    close: bool = False,
) -> bool:
    """Take a report's figures as the incident's facts; upgrade, and close on a final report.

    Returns False (acknowledged, nothing changed) for a redelivered event, an unknown incident, a
    follow-up older than one already applied or than the final report, or a final report for an
    incident that is no longer open.
    """
    for _ in range(MAX_ATTEMPTS):
        doc = store.get(incident_id)
        if doc is None:
            ctx.log.warning("report_for_unknown_incident", incident_id=incident_id, label=label)
            return False
        if envelope.event_id in (doc.get(APPLIED) or []):
            return False
        if close and doc["status"] != "open":
            return False
        if report_is_outdated(doc, number):
            # An older follow-up arriving after a newer one or after the final report.
            return False
        plan = _plan(ctx, config, doc, envelope, figures, label, number=number, close=close)
        update, raised, added_reasons = plan
        selector = {"_id": incident_id, "version": doc["version"]}
        if apply_once(store.collection, selector, update, envelope.event_id):
            ctx.wake_relay()
            _count(doc, raised, added_reasons, close)
            return True
        fresh = store.get(incident_id)
        if fresh is not None and envelope.event_id in (fresh.get(APPLIED) or []):
            return False
    raise ConcurrentUpdateError(f"incident {incident_id} changed {MAX_ATTEMPTS} times; retrying")


def _plan(
    ctx: ServiceContext,
    config: IntakeConfig,
    doc: Mapping[str, Any],
    envelope: EventEnvelope,
    figures: Mapping[str, Any],
    label: str,
    *,
    number: int | None,
    close: bool,
) -> tuple[dict[str, Any], tuple[int, int] | None, list[str]]:
    """The update one report makes, the (old, new) grade of an upgrade, and new reasons."""
    now = ctx.clock.now()
    if figures["people_involved"] is None:
        # A report silent on people involved keeps the last count.
        figures = {**figures, "people_involved": doc["people_involved"]}
    grading = config.grading.grade(
        doc["category"], Figures.from_report(figures["casualties"], figures["affected"])
    )
    # A closed or merged incident records late figures but is never re-graded: its clocks ended.
    regrade = upgrade(doc["grade"], grading.grade) if doc["status"] == "open" else None
    grade = regrade.new_grade if regrade else doc["grade"]
    old_reasons = list(doc.get("escalation_reasons") or [])
    reasons = merge_reasons(
        old_reasons,
        escalation_reasons(
            grade, figures["people_involved"], doc.get("dispute"), config.grading.escalation
        ),
    )
    changes: dict[str, Any] = {
        "casualties": dict(figures["casualties"]),
        "affected": dict(figures["affected"]),
        "people_involved": figures["people_involved"],
        "figures_grade": grading.grade,
        "escalated": bool(reasons),
        "escalation_reasons": reasons,
        "updated_at": now,
    }
    if number is not None:
        changes["last_followup_number"] = number
    history: list[dict[str, Any]] = []
    outgoing = []
    if regrade is not None:
        reason = regrade_reason(label, grading)
        changes.update(
            grade=regrade.new_grade,
            grade_label=GRADE_LABELS[regrade.new_grade],
            grade_basis=[b.as_dict() for b in grading.basis],
        )
        history.append(
            {
                "kind": "regraded",
                "at": now,
                "by": label,
                "old_grade": regrade.old_grade,
                "new_grade": regrade.new_grade,
                "skipped_grades": regrade.skipped_grades,
                "reason": reason,
                "event_id": envelope.event_id,
            }
        )
        outgoing.append(
            events.incident_regraded(
                ctx.clock,
                doc,
                regrade,
                reason,
                figures=figures,
                escalation_reasons=reasons,
                causation_id=envelope.event_id,
            )
        )
    else:
        history.append(
            {
                "kind": "updated",
                "at": now,
                "by": label,
                "figures_grade": grading.grade,
                "event_id": envelope.event_id,
            }
        )
    if close:
        reason = f"{label} filed"
        changes.update(
            status="closed", closed_at=now, closed_by="final_report", close_reason=reason
        )
        history.append(
            {
                "kind": "closed",
                "at": now,
                "by": label,
                "closed_by": "final_report",
                "reason": reason,
                "event_id": envelope.event_id,
            }
        )
        outgoing.append(
            events.incident_closed(
                ctx.clock, doc, "final_report", reason, causation_id=envelope.event_id
            )
        )
    update = with_events(
        {
            "$set": changes,
            "$push": {"history": {"$each": history}},
            "$inc": {"version": 1},
        },
        outgoing,
    )
    raised = (regrade.old_grade, regrade.new_grade) if regrade else None
    added = [r for r in reasons if r not in old_reasons]
    return update, raised, added


def _count(
    doc: Mapping[str, Any], raised: tuple[int, int] | None, added: Sequence[str], close: bool
) -> None:
    if doc.get("exercise"):
        return  # drills (演练) are left out of every count
    if raised is not None:
        metrics.REGRADES.labels(str(raised[0]), str(raised[1])).inc()
    for reason in added:
        metrics.ESCALATIONS.labels(reason).inc()
    if close:
        metrics.CLOSED.labels("final_report").inc()


def _figures(payload: FollowupFiledV1 | FinalReportFiledV1) -> dict[str, Any]:
    """The figures a report states (``people_involved`` None when it says nothing about it)."""
    return {
        "casualties": payload.casualties.model_dump(),
        "affected": payload.affected.model_dump(),
        "people_involved": getattr(payload, "people_involved", None),
    }


def on_followup_filed(
    ctx: ServiceContext, config: IntakeConfig, store: IncidentStore
) -> Callable[[EventEnvelope], bool]:
    """续报 figures become the incident's facts; a higher grade re-grades it (upgrades only)."""

    def handle(envelope: EventEnvelope) -> bool:
        payload: Any = parse_payload(envelope)
        figures = _figures(payload)
        return apply_report(
            ctx,
            config,
            store,
            envelope,
            incident_id=payload.incident_id,
            figures=figures,
            label=f"续报 {payload.number} ({payload.report_id})",
            number=payload.number,
        )

    return handle


def on_final_report_filed(
    ctx: ServiceContext, config: IntakeConfig, store: IncidentStore
) -> Callable[[EventEnvelope], bool]:
    """终报 closes the incident (closed_by ``final_report``), upgrading first if its figures do."""

    def handle(envelope: EventEnvelope) -> bool:
        payload: Any = parse_payload(envelope)
        figures = _figures(payload)
        return apply_report(
            ctx,
            config,
            store,
            envelope,
            incident_id=payload.incident_id,
            figures=figures,
            label=f"终报 ({payload.report_id})",
            close=True,
        )

    return handle


def subscriptions(
    ctx: ServiceContext, config: IntakeConfig, store: IncidentStore
) -> list[Subscription]:
    """What intake consumes: reporting's follow-ups and final reports."""
    return [
        subscribe(
            "reporting",
            "followup_filed",
            "on_followup_filed",
            on_followup_filed(ctx, config, store),
        ),
        subscribe(
            "reporting",
            "final_report_filed",
            "on_final_report_filed",
            on_final_report_filed(ctx, config, store),
        ),
    ]
