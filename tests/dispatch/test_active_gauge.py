"""`yingji_dispatch_orders_active` counts real orders in progress only, as the console tile does."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.dispatch.conftest import report_incident
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

APP_JS = Path(__file__).parents[2] / "services" / "reporting" / "console" / "app.js"


def _order(stack: Stack, incident_id: str, team_id: str, **body: Any) -> dict[str, Any]:
    placed = stack.call(
        "POST", "/v1/dispatches", json={"incident_id": incident_id, "team_ids": [team_id], **body}
    )
    assert placed.status_code == 201, placed.text
    return dict(placed.json())


def _move(stack: Stack, order: dict[str, Any], *statuses: str) -> None:
    for status in statuses:
        moved = stack.call("POST", f"/v1/dispatches/{order['id']}/status", json={"status": status})
        assert moved.status_code == 200, moved.text


def _gauge(stack: Stack, name: str) -> float:
    text = stack.client.get("/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    raise AssertionError(f"{name} not exposed")


def console_active_statuses() -> set[str]:
    """The statuses the console's 调度 tile counts as active (read from app.js)."""
    found = re.search(r"const ACTIVE_DISPATCH = new Set\(\[([^\]]*)\]\)", APP_JS.read_text())
    assert found, "ACTIVE_DISPATCH not found in the console"
    return set(re.findall(r'"(\w+)"', found.group(1)))


def test_gauge_counts_real_orders_in_progress_like_the_console_tile(dstack: Stack) -> None:
    real = report_incident(dstack)
    drill = report_incident(dstack, exercise=True)
    _order(dstack, real, "T03")  # ordered
    _move(dstack, _order(dstack, real, "T04"), "en_route")
    _move(dstack, _order(dstack, real, "T08"), "en_route", "on_scene")
    _move(dstack, _order(dstack, real, "T09"), "en_route", "on_scene", "completed")
    _move(dstack, _order(dstack, real, "T06"), "released")
    _order(dstack, drill, "T03", exercise=True)  # a drill order in progress

    assert _gauge(dstack, "yingji_dispatch_orders_active") == 3
    listed = dstack.call("GET", "/v1/dispatches", params={"limit": 200}).json()["items"]
    tile = [o for o in listed if not o.get("exercise") and o["status"] in console_active_statuses()]
    assert len(tile) == 3
