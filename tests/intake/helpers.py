"""Shared builders for intake tests: a complete report body and event delivery."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from typing import Any

from libs.common.bus import Publisher
from libs.common.events import EventEnvelope, make_event
from tests.support.stack import TOWNSHIP_A, Stack

BASE: dict[str, Any] = {
    "category": "flood",
    "township_code": TOWNSHIP_A,
    "title": "河口村河堤漫溢",
    "description": "持续强降雨致河口村段河堤漫溢，部分农田和民房进水。",
    "location": {"address": "城关镇河口村三组"},
    "casualties": {"deaths": 0, "injured": 0, "missing": 0, "trapped": 0},
    "affected": {
        "people_affected": 120,
        "people_evacuated": 40,
        "houses_damaged": 6,
        "houses_collapsed": 0,
        "direct_loss_cny": 150000,
    },
    "people_involved": 0,
    "measures_taken": "已转移群众40人，组织抢险队加固堤防。",
    "needs": "需要沙袋2000条、冲锋舟1艘。",
    "reporter": {"name": "张伟", "phone": "13800001111"},
    "approver": {"name": "李娜", "phone": "13900002222"},
    "source": "村委会电话报告",
}


def iso(moment: datetime) -> str:
    """ISO 8601 with offset, as clients send it."""
    return moment.isoformat()


def report(now: datetime, **overrides: Any) -> dict[str, Any]:
    """A complete report that occurred 30 and was discovered 20 minutes before ``now``."""
    body = copy.deepcopy(BASE)
    body["occurred_at"] = iso(now - timedelta(minutes=30))
    body["discovered_at"] = iso(now - timedelta(minutes=20))
    for key, value in overrides.items():
        body[key] = value
    return body


def casualties(**figures: int) -> dict[str, int]:
    """A casualties object with zeros except ``figures``."""
    return {"deaths": 0, "injured": 0, "missing": 0, "trapped": 0, **figures}


def affected(**figures: float) -> dict[str, float]:
    """An affected object with zeros except ``figures``."""
    base: dict[str, float] = {
        "people_affected": 0,
        "people_evacuated": 0,
        "houses_damaged": 0,
        "houses_collapsed": 0,
        "direct_loss_cny": 0,
    }
    return {**base, **figures}


def post(stack: Stack, body: dict[str, Any], who: str = "township_a", **kwargs: Any) -> Any:
    """POST a report."""
    return stack.call("POST", "/v1/incidents", who=who, json=body, **kwargs)


def created(stack: Stack, body: dict[str, Any], who: str = "township_a") -> dict[str, Any]:
    """POST a report that must be accepted; its JSON."""
    response = post(stack, body, who)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def reporting_event(stack: Stack, event_type: str, payload: dict[str, Any]) -> EventEnvelope:
    """An event as the reporting service would publish it."""
    return make_event(
        stack.clock, "reporting", event_type, payload, correlation_id=payload["incident_id"]
    )


def deliver(stack: Stack, *envelopes: EventEnvelope) -> None:
    """Publish envelopes on the bus (the same one twice = a redelivery) and wait for them."""
    publisher = Publisher(stack.runtime.settings, "reporting")
    try:
        publisher.publish(list(envelopes))
    finally:
        publisher.close()
    stack.settle()


def sent_events(stack: Stack, event_type: str, incident_id: str | None = None) -> list[dict]:
    """Events intake's relay has published (the embedded bus keeps a journal of them)."""
    stack.settle()
    journal = stack.runtime.relays["intake"].journal
    assert journal is not None
    events = [e.to_wire() for e in journal.since(0) if e.event_type == event_type]
    if incident_id is not None:
        events = [e for e in events if e["payload"]["incident_id"] == incident_id]
    return events
