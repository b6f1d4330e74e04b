"""Building information work's events from its documents; each carries its Chinese sentence."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from libs.common.clock import Clock
from libs.common.events import EventEnvelope, make_event
from services.reporting.information import domain

SOURCE = "reporting"


def item_submitted(clock: Clock, doc: Mapping[str, Any]) -> EventEnvelope:
    """``information_item_submitted`` for a new item."""
    kind = domain.ITEM_KIND_LABELS[doc["kind"]]
    return make_event(
        clock,
        SOURCE,
        "information_item_submitted",
        {
            "item_id": doc["_id"],
            "unit_kind": doc["unit_kind"],
            "unit_code": doc["unit_code"],
            "kind": doc["kind"],
            "title": doc["title"],
            "incident_id": doc.get("incident_id"),
            "week": doc["week"],
            "month": doc["month"],
            "exercise": bool(doc["exercise"]),
            "summary": f"{doc['unit_name']}报送{kind}「{doc['title']}」",
        },
        correlation_id=doc.get("incident_id") or f"information:{doc['_id']}",
    )


def feedback_recorded(clock: Clock, doc: Mapping[str, Any]) -> EventEnvelope:
    """``information_adopted``, ``information_instructed`` or ``information_noticed``."""
    common = {
        "feedback_id": doc["_id"],
        "unit_kind": doc["unit_kind"],
        "unit_code": doc["unit_code"],
        "date": doc["date"],
        "exercise": bool(doc["exercise"]),
        "summary": feedback_sentence(doc),
    }
    target = {"target_kind": doc.get("target_kind"), "target_id": doc.get("target_id")}
    if doc["type"] == "adoption":
        payload = {**common, **target, "adopted_level": doc["level"], "adopted_by": doc["by"]}
        event_type = "information_adopted"
    elif doc["type"] == "instruction":
        extra = {"leader": doc["leader"], "leader_level": doc["level"]}
        payload = {**common, **target, **extra}
        event_type = "information_instructed"
    else:
        payload = {**common, "reason": doc["reason"]}
        event_type = "information_noticed"
    correlation = f"information:{doc.get('target_id') or doc['unit_code']}"
    return make_event(clock, SOURCE, event_type, payload, correlation_id=correlation)


def feedback_sentence(doc: Mapping[str, Any]) -> str:
    """「县水利局「…」获市级采用」, 「…获县长（县级）批示」 or 「…被通报批评（瞒报）」."""
    about = f"{doc['unit_name']}「{doc['target_title']}」" if doc.get("target_title") else ""
    if doc["type"] == "adoption":
        return f"{about}获{domain.LEVEL_LABELS[doc['level']]}采用（{doc['by']}）"
    if doc["type"] == "instruction":
        level = domain.LEVEL_LABELS[doc["level"]]
        return f"{about}获{doc['leader']}（{level}）批示"
    return f"{doc['unit_name']}被通报批评（{domain.NOTICE_LABELS[doc['reason']]}）"


def quota_missed(clock: Clock, doc: Mapping[str, Any]) -> EventEnvelope:
    """``information_quota_missed`` for a unit below its quota at the end of a period."""
    quota = domain.QUOTA_LABELS[doc["quota"]]
    span = f"{doc['period_start']}至{doc['period_end']}"
    sentence = (
        f"{doc['unit_name']}{span}{quota}未完成：应报{doc['required']}条，实报{doc['submitted']}条"
    )
    return make_event(
        clock,
        SOURCE,
        "information_quota_missed",
        {
            "unit_kind": doc["unit_kind"],
            "unit_code": doc["unit_code"],
            "quota": doc["quota"],
            "period": doc["period"],
            "period_start": doc["period_start"],
            "period_end": doc["period_end"],
            "required": doc["required"],
            "submitted": doc["submitted"],
            "summary": sentence,
        },
        correlation_id=f"information:{doc['period']}",
    )
