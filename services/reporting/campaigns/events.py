"""Building a campaign's events from its documents; each carries its Chinese sentence."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from libs.common.clock import Clock
from libs.common.events import EventEnvelope, make_event

SOURCE = "reporting"


def campaign_started(clock: Clock, doc: Mapping[str, Any]) -> EventEnvelope:
    """``campaign_started`` with the campaign's period, rhythm and participants."""
    rhythm = doc["rhythm"]
    drill = "（演练）" if doc.get("exercise") else ""
    summary = (
        f"启动专项行动「{doc['name']}」{drill}：{doc['starts_on']} 至 {doc['ends_on']}，"
        f"每{rhythm['report_every_days']}天报告一次，"
        f"各阶段结束后{rhythm['stage_report_days']}天内报送阶段小结"
    )
    return make_event(
        clock,
        SOURCE,
        "campaign_started",
        {
            "campaign_id": doc["_id"],
            "name": doc["name"],
            "starts_on": doc["starts_on"],
            "ends_on": doc["ends_on"],
            "participants": [p["code"] for p in doc["participants"]],
            "report_every_days": rhythm["report_every_days"],
            "stage_report_days": rhythm["stage_report_days"],
            "stages": len(doc["stages"]),
            "exercise": bool(doc.get("exercise")),
            "summary": summary,
        },
        correlation_id=f"campaign:{doc['_id']}",
    )


def campaign_ended(
    clock: Clock, doc: Mapping[str, Any], at: datetime, dropped: int
) -> EventEnvelope:
    """``campaign_ended``: the county stopped the campaign at ``at``."""
    return make_event(
        clock,
        SOURCE,
        "campaign_ended",
        {
            "campaign_id": doc["_id"],
            "name": doc["name"],
            "ended_at": at,
            "dropped_deadlines": dropped,
            "exercise": bool(doc.get("exercise")),
            "summary": f"专项行动「{doc['name']}」结束，此后的报告不再要求"
            f"（撤销 {dropped} 项时限）",
        },
        correlation_id=f"campaign:{doc['_id']}",
    )


def campaign_report_filed(
    clock: Clock, report: Mapping[str, Any], campaign_name: str, sentence: str
) -> EventEnvelope:
    """``campaign_report_filed`` for a new campaign report."""
    return make_event(
        clock,
        SOURCE,
        "campaign_report_filed",
        {
            "campaign_id": report["campaign_id"],
            "report_id": report["_id"],
            "participant": report["participant"],
            "kind": report["kind"],
            "stage": report.get("stage"),
            "deadline_id": report.get("meets"),
            "late": bool(report.get("late")),
            "exercise": bool(report.get("exercise")),
            "summary": f"专项行动「{campaign_name}」：{sentence}",
        },
        correlation_id=f"campaign:{report['campaign_id']}",
    )
