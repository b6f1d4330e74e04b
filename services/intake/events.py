"""Building intake's events from incident documents."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from libs.common.clock import Clock
from libs.common.eventmodels.intake import (
    IncidentClosedV1,
    IncidentMergedV1,
    IncidentRegradedV1,
    IncidentReportedV1,
)
from libs.common.events import EventEnvelope, make_event
from services.intake.domain import Regrade

SOURCE = "intake"


def incident_reported(clock: Clock, doc: Mapping[str, Any]) -> EventEnvelope:
    """首报 accepted: the incident's facts, grade and flags."""
    location = doc.get("location") or {}
    payload = IncidentReportedV1(
        incident_id=doc["_id"],
        township_code=doc["township_code"],
        category=doc["category"],
        title=doc["title"],
        grade=doc["grade"],
        occurred_at=doc["occurred_at"],
        discovered_at=doc["discovered_at"],
        reported_at=doc["reported_at"],
        late=doc["late"],
        escalated=doc["escalated"],
        escalation_reasons=list(doc["escalation_reasons"]),
        casualties=doc["casualties"],
        affected=doc["affected"],
        people_involved=doc["people_involved"],
        lat=location.get("lat"),
        lon=location.get("lon"),
        exercise=doc["exercise"],
        address=location.get("address"),
        dispute=doc.get("dispute"),
        description=doc.get("description"),
        scope=doc.get("scope"),
        measures_taken=doc.get("measures_taken"),
        needs=doc.get("needs"),
        trend=doc.get("trend"),
        source=doc.get("source"),
        reporter=doc.get("reporter"),
        approver=doc.get("approver"),
        received_by=doc.get("received_by"),
        enterprise_id=doc.get("enterprise_id"),
    )
    return make_event(clock, SOURCE, "incident_reported", payload, correlation_id=doc["_id"])


def incident_regraded(
    clock: Clock,
    doc: Mapping[str, Any],
    regrade: Regrade,
    reason: str,
    *,
    figures: Mapping[str, Any],
    escalation_reasons: list[str],
    causation_id: str | None,
) -> EventEnvelope:
    """The grade rose after new figures; carries the figures and 越级 (skipped_grades)."""
    payload = IncidentRegradedV1(
        incident_id=doc["_id"],
        township_code=doc["township_code"],
        category=doc["category"],
        old_grade=regrade.old_grade,
        new_grade=regrade.new_grade,
        reason=reason,
        skipped_grades=regrade.skipped_grades,
        exercise=bool(doc.get("exercise")),
        escalated=bool(escalation_reasons),
        escalation_reasons=escalation_reasons,
        casualties=figures["casualties"],
        affected=figures["affected"],
        people_involved=figures["people_involved"],
    )
    return make_event(
        clock,
        SOURCE,
        "incident_regraded",
        payload,
        correlation_id=doc["_id"],
        causation_id=causation_id,
    )


def incident_merged(
    clock: Clock, doc: Mapping[str, Any], primary_id: str, merged_by: str, reason: str
) -> EventEnvelope:
    """A duplicate was merged into its primary."""
    payload = IncidentMergedV1(
        incident_id=doc["_id"],
        primary_id=primary_id,
        township_code=doc["township_code"],
        merged_by=merged_by,
        reason=reason,
        exercise=bool(doc.get("exercise")),
    )
    return make_event(clock, SOURCE, "incident_merged", payload, correlation_id=doc["_id"])


def incident_closed(
    clock: Clock,
    doc: Mapping[str, Any],
    closed_by: str,
    reason: str,
    causation_id: str | None = None,
) -> EventEnvelope:
    """The incident was closed by a leader or by its final report."""
    payload = IncidentClosedV1(
        incident_id=doc["_id"],
        township_code=doc["township_code"],
        closed_by=closed_by,
        reason=reason,
        exercise=bool(doc.get("exercise")),
    )
    return make_event(
        clock,
        SOURCE,
        "incident_closed",
        payload,
        correlation_id=doc["_id"],
        causation_id=causation_id,
    )
