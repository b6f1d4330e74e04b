"""Helpers for the reporting tests: feed events on the bus, build report bodies, run timers."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from libs.common.bus import Publisher
from libs.common.events import EventEnvelope, make_event
from services.reporting import service as reporting_service
from tests.support.stack import TOWNSHIP_A, Stack

SHANGHAI = ZoneInfo("Asia/Shanghai")


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A Shanghai wall-clock time as aware UTC."""
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


def publish(stack: Stack, *envelopes: EventEnvelope, settle: bool = True) -> None:
    """Publish events as their source service would, then wait until they are handled."""
    publisher = Publisher(stack.runtime.settings, "test")
    try:
        publisher.publish(list(envelopes))
    finally:
        publisher.close()
    if settle:
        stack.settle()


def emit(
    stack: Stack,
    source: str,
    event_type: str,
    payload: dict[str, Any],
    *,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    settle: bool = True,
) -> EventEnvelope:
    """Build an event on the stack's clock and publish it."""
    envelope = make_event(
        stack.clock,
        source,
        event_type,
        payload,
        correlation_id=correlation_id,
        causation_id=causation_id,
    )
    publish(stack, envelope, settle=settle)
    return envelope


def incident_reported(
    stack: Stack,
    *,
    incident_id: str | None = None,
    township_code: str = TOWNSHIP_A,
    grade: int = 4,
    category: str = "flood",
    discovered_at: datetime | None = None,
    occurred_at: datetime | None = None,
    deaths: int = 0,
    injured: int = 0,
    people_affected: int = 0,
    exercise: bool = False,
    enterprise_id: str | None = None,
    settle: bool = True,
) -> EventEnvelope:
    """``incident_reported`` as intake emits it, reported now (naming ``enterprise_id`` of
    dispatch's register when given)."""
    ident = incident_id or f"inc-{uuid.uuid4().hex[:10]}"
    now = stack.clock.now()
    discovered = discovered_at or now - timedelta(minutes=10)
    return emit(
        stack,
        "intake",
        "incident_reported",
        {
            "incident_id": ident,
            "township_code": township_code,
            "category": category,
            "title": f"{category} {ident}",
            "grade": grade,
            "occurred_at": occurred_at or discovered - timedelta(minutes=5),
            "discovered_at": discovered,
            "reported_at": now,
            "casualties": {"deaths": deaths, "injured": injured, "missing": 0, "trapped": 0},
            "affected": {
                "people_affected": people_affected,
                "people_evacuated": 0,
                "houses_damaged": 0,
                "houses_collapsed": 0,
                "direct_loss_cny": 0,
            },
            "people_involved": 0,
            "exercise": exercise,
            **({"enterprise_id": enterprise_id} if enterprise_id else {}),
        },
        correlation_id=ident,
        settle=settle,
    )


def report_body(incident_id: str, kind: str = "followup", **overrides: Any) -> dict[str, Any]:
    """A complete follow-up or final report body."""
    body: dict[str, Any] = {
        "incident_id": incident_id,
        "kind": kind,
        "casualties": {"deaths": 0, "injured": 0, "missing": 0, "trapped": 0},
        "affected": {
            "people_affected": 0,
            "people_evacuated": 0,
            "houses_damaged": 0,
            "houses_collapsed": 0,
            "direct_loss_cny": 0,
        },
        "progress": "积水已基本排除，道路恢复通行。",
        "measures_taken": "组织抢险队员20人，调用抽水泵4台。",
        "needs": "暂无。",
        "reporter": {"name": "李华", "phone": "13900000001"},
        "approver": {"name": "王镇长", "phone": "13900000002"},
    }
    body.update(overrides)
    return body


def zero_body(code: str, day: date, **overrides: Any) -> dict[str, Any]:
    """A signed zero report (零报告) saying nothing happened, as a township files it."""
    body: dict[str, Any] = {
        "township_code": code,
        "date": day.isoformat(),
        "nothing_to_report": True,
        "reporter": {"name": "李华", "phone": "13900000001"},
        "approver": {"name": "王镇长", "phone": "13900000002"},
    }
    body.update(overrides)
    return body


def scan(stack: Stack) -> dict[str, int]:
    """Run the deadline scan once (as the timer would) and let its events go out."""
    result = reporting_service.scan_deadlines(stack.ctx("reporting"))
    stack.settle()
    return result


def deadlines(stack: Stack, **query: str) -> list[dict[str, Any]]:
    """Every deadline matching the query, read over HTTP as the operator."""
    params = {"limit": "200", **query}
    response = stack.call("GET", "/v1/deadlines", params=params)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def events_of(stack: Stack, event_type: str) -> list[dict[str, Any]]:
    """Every recorded event of a type (from the audit trail)."""
    response = stack.call("GET", "/v1/audit", params={"event_type": event_type, "limit": "200"})
    assert response.status_code == 200, response.text
    return list(response.json()["items"])
