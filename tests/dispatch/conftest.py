"""Fixtures for the dispatch tests: a dispatch-only stack and helpers to feed it events."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from libs.common.events import EventEnvelope, make_event
from services.dispatch import handlers
from services.dispatch.service import SPEC, use_cases
from services.dispatch.usecases import DispatchUseCases
from tests.support.stack import Stack, running_stack

TOWN = "349901001"  # 城关镇: T01, T03, T06, T08, T10, T11, T14, T15 are based here
QINGSHI = "349901101"  # 青石镇: T04


@pytest.fixture
def dstack(tmp_path: Path) -> Iterator[Stack]:
    """The dispatch service alone, in-process, on a manual clock."""
    with running_stack(tmp_path, specs=[SPEC]) as running:
        yield running


def usecases_of(stack: Stack) -> DispatchUseCases:
    """The running dispatch service's use cases (its repository as ``.repo``)."""
    return use_cases(stack.ctx("dispatch"))


def sent_events(stack: Stack) -> list[dict[str, Any]]:
    """Events dispatch's relay has published (the embedded bus keeps a journal of them)."""
    stack.settle()
    journal = stack.runtime.relays["dispatch"].journal
    assert journal is not None
    return [e.to_wire() for e in journal.since(0)]


def envelope(stack: Stack, source: str, event_type: str, payload: dict[str, Any]) -> EventEnvelope:
    """An event as another service would emit it."""
    correlation = payload.get("incident_id") or payload.get("warning_id")
    return make_event(stack.clock, source, event_type, payload, correlation_id=correlation)


def deliver_twice(stack: Stack, event: EventEnvelope) -> tuple[bool, bool]:
    """Deliver an event, then redeliver it (at-least-once bus)."""
    by_type = {s.event_type: s.handler for s in handlers.subscriptions(usecases_of(stack))}
    first = by_type[event.event_type](event)
    second = by_type[event.event_type](event)
    return bool(first), bool(second)


def incident_payload(
    stack: Stack,
    *,
    incident_id: str | None = None,
    township: str = TOWN,
    category: str = "flood",
    grade: int = 4,
    escalated: bool = False,
    escalation_reasons: list[str] | None = None,
    people_involved: int = 0,
    exercise: bool = False,
) -> dict[str, Any]:
    """An ``incident_reported`` payload."""
    now = stack.clock.now()
    return {
        "incident_id": incident_id or uuid.uuid4().hex,
        "township_code": township,
        "category": category,
        "title": f"{category} in {township}",
        "grade": grade,
        "occurred_at": now.isoformat(),
        "discovered_at": now.isoformat(),
        "reported_at": now.isoformat(),
        "escalated": escalated,
        "escalation_reasons": escalation_reasons or [],
        "people_involved": people_involved,
        "exercise": exercise,
    }


def report_incident(stack: Stack, **kwargs: Any) -> str:
    """Feed intake's ``incident_reported`` to dispatch (twice) and return the incident id."""
    payload = incident_payload(stack, **kwargs)
    deliver_twice(stack, envelope(stack, "intake", "incident_reported", payload))
    return str(payload["incident_id"])


def warning_payload(
    stack: Stack,
    *,
    warning_id: str | None = None,
    level: int = 1,
    hazard: str = "flood",
    areas: list[str] | None = None,
    exercise: bool = False,
) -> dict[str, Any]:
    """A ``warning_issued`` payload."""
    now = stack.clock.now()
    return {
        "warning_id": warning_id or uuid.uuid4().hex,
        "version": 1,
        "level": level,
        "color": {1: "red", 2: "orange", 3: "yellow", 4: "blue"}[level],
        "hazard": hazard,
        "areas": areas or [QINGSHI],
        "exercise": exercise,
        "headline": "test warning",
        "effective": now.isoformat(),
        "expires": now.replace(year=now.year + 1).isoformat(),
    }


def team(stack: Stack, team_id: str) -> dict[str, Any]:
    """A team as the API shows it."""
    response = stack.call("GET", f"/v1/teams/{team_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def stock(stack: Stack, warehouse_id: str, item_code: str) -> dict[str, Any]:
    """A stock line as the API shows it."""
    response = stack.call(
        "GET", "/v1/stock", params={"warehouse_id": warehouse_id, "item_code": item_code}
    )
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert len(items) == 1
    return dict(items[0])
