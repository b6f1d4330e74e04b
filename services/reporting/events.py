"""Building the reporting service's events from its documents."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from libs.common.clock import Clock
from libs.common.events import EventEnvelope, make_event

SOURCE = "reporting"


def report_filed(clock: Clock, report: Mapping[str, Any]) -> EventEnvelope:
    """``followup_filed`` or ``final_report_filed`` for a report document."""
    payload: dict[str, Any] = {
        "report_id": report["_id"],
        "incident_id": report["incident_id"],
        "township_code": report["township_code"],
        "casualties": report["casualties"],
        "affected": report["affected"],
        "exercise": bool(report.get("exercise")),
    }
    if report["kind"] == "followup":
        payload["number"] = report["number"]
        payload["people_involved"] = report.get("people_involved")
        event_type = "followup_filed"
    else:
        event_type = "final_report_filed"
    return make_event(
        clock,
        SOURCE,
        event_type,
        payload,
        correlation_id=report["incident_id"],
        event_id=report["event_id"],
    )


def report_overdue(
    clock: Clock, deadline: Mapping[str, Any], escalation: int, causation_id: str | None = None
) -> EventEnvelope:
    """``report_overdue`` for a deadline at escalation 1 or 2."""
    return make_event(
        clock,
        SOURCE,
        "report_overdue",
        {
            "deadline_id": deadline["_id"],
            "kind": deadline["kind"],
            "township_code": deadline["township_code"],
            "due_at": deadline["due_at"],
            "escalation": escalation,
            "incident_id": deadline.get("incident_id"),
            "exercise": bool(deadline.get("exercise")),
        },
        correlation_id=deadline.get("incident_id"),
        causation_id=causation_id,
    )


def zero_report_missed(clock: Clock, township_code: str, day: date) -> EventEnvelope:
    """``zero_report_missed`` for a township and day."""
    return make_event(
        clock,
        SOURCE,
        "zero_report_missed",
        {"township_code": township_code, "date": day.isoformat()},
        correlation_id=f"zero:{day.isoformat()}",
    )


def zero_report_filed(clock: Clock, doc: dict[str, Any]) -> EventEnvelope:
    """``zero_report_filed`` for a newly filed zero report."""
    return make_event(
        clock,
        SOURCE,
        "zero_report_filed",
        {
            "township_code": doc["township_code"],
            "date": doc["date"],
            "nothing_to_report": doc["nothing_to_report"],
            "late": doc["late"],
            "incident_ids": doc["incident_ids"],
            "exercise": bool(doc.get("exercise")),
        },
        correlation_id=f"zero:{doc['date']}",
    )


def zero_report_contradicted(clock: Clock, doc: Mapping[str, Any]) -> EventEnvelope:
    """``zero_report_contradicted``: a 「无事件」 refused for a day with incidents (疑似瞒报)."""
    return make_event(
        clock,
        SOURCE,
        "zero_report_contradicted",
        {
            "township_code": doc["township_code"],
            "date": doc["date"],
            "incident_ids": doc["incident_ids"],
            "attempted_by": doc["attempted_by"],
        },
        correlation_id=f"zero:{doc['date']}",
    )


def summary_published(
    clock: Clock, summary_id: str, kind: str, start: datetime, end: datetime
) -> EventEnvelope:
    """``summary_published`` for a daily summary or published monthly scores."""
    return make_event(
        clock,
        SOURCE,
        "summary_published",
        {"summary_id": summary_id, "kind": kind, "period_start": start, "period_end": end},
        correlation_id=summary_id,
    )
