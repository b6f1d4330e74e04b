"""End to end on the embedded stack over HTTP: warning → plan → incident → dispatch → return."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.stack import TOWNSHIP_B, Stack, running_stack

pytestmark = pytest.mark.e2e


def _ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return dict(response.json())


def _team_status(stack: Stack, team_id: str) -> str:
    return str(_ok(stack.call("GET", f"/v1/teams/{team_id}"))["status"])


def test_red_warning_plan_incident_dispatch_and_return(tmp_path: Path) -> None:
    """All four services; the warning and the incident go in through their own APIs.

    A red flood warning for 青石镇 is issued by the water department and approved by the leader;
    dispatch activates a county-level plan from ``warning_issued`` and puts flood teams on
    standby. A flood incident reported by the township gets a ranked suggestion; the operator
    sends the first team with sandbags; the team goes en route, on scene, completes, is released
    with unused sandbags returned, and is available again.
    """
    with running_stack(tmp_path) as stack:
        now = stack.clock.now()
        warning = _ok(
            stack.call(
                "POST",
                "/v1/warnings",
                who="water_department",
                json={
                    "hazard": "flood",
                    "level": 1,
                    "headline": "青石镇洪水红色预警",
                    "description": "青石河水位超警戒，预计持续上涨。",
                    "instruction": "沿河群众立即转移。",
                    "areas": [TOWNSHIP_B],
                    "expires": (now + timedelta(hours=24)).isoformat(),
                },
            ),
            201,
        )
        assert warning["status"] == "pending_approval"
        _ok(stack.call("POST", f"/v1/warnings/{warning['id']}/approve", who="leader", json={}))
        stack.settle()

        plans = _ok(stack.call("GET", "/v1/plans", params={"status": "active"}))["items"]
        plan = next(p for p in plans if p["warning_id"] == warning["id"])
        assert plan["level"] == 1 and plan["scope"] == "county"
        assert "T04" in plan["teams_on_standby"]
        assert _team_status(stack, "T04") == "standby"

        occurred = (now - timedelta(minutes=20)).isoformat()
        incident = _ok(
            stack.call(
                "POST",
                "/v1/incidents",
                who="township_b",
                json={
                    "category": "flood",
                    "township_code": TOWNSHIP_B,
                    "title": "青石河堤段漫溢",
                    "description": "青石河东岸堤段漫溢，村庄进水。",
                    "occurred_at": occurred,
                    "discovered_at": occurred,
                    "location": {"address": "青石镇东村"},
                    "casualties": {"deaths": 0, "injured": 0, "missing": 0, "trapped": 3},
                    "affected": {"people_affected": 300, "people_evacuated": 120},
                    "people_involved": 0,
                    "measures_taken": "组织群众转移",
                    "needs": "抢险队伍和沙袋",
                    "reporter": {"name": "刘洋", "phone": "13800000104"},
                    "approver": {"name": "陈书记", "phone": "13800000105"},
                    "source": "township",
                },
            ),
            201,
        )
        stack.settle()

        suggestion = _ok(
            stack.call("GET", "/v1/dispatches/suggest", params={"incident_id": incident["id"]})
        )
        items = suggestion["items"]
        first = items[0]["team"]
        # Capability first (T08 covers flood, rescue and evacuation), then distance: of the
        # teams covering two, T04 based in 青石镇 itself comes before the county-seat teams.
        assert first["id"] == "T08" and items[0]["match_score"] == 3
        assert items[1]["team"]["id"] == "T04" and items[1]["distance_km"] == 0
        assert first["status"] == "standby"  # on alert from the plan, ready to go

        order = _ok(
            stack.call(
                "POST",
                "/v1/dispatches",
                json={
                    "incident_id": incident["id"],
                    "team_ids": [first["id"]],
                    "resources": [
                        {"warehouse_id": "W02", "item_code": "sandbag", "quantity": 2000}
                    ],
                    "note": "加固东岸堤段",
                },
                headers={"Idempotency-Key": "e2e-order"},
            ),
            201,
        )
        assert order["status"] == "ordered"
        assert _team_status(stack, first["id"]) == "deployed"
        for status in ("en_route", "on_scene", "completed"):
            stack.clock.advance(900)
            path = f"/v1/dispatches/{order['id']}/status"
            _ok(stack.call("POST", path, json={"status": status}))
        released = _ok(
            stack.call(
                "POST",
                f"/v1/dispatches/{order['id']}/status",
                json={
                    "status": "released",
                    "returned": [{"warehouse_id": "W02", "item_code": "sandbag", "quantity": 500}],
                },
            )
        )
        assert released["status"] == "released"
        assert _team_status(stack, first["id"]) == "available"
        sandbags = _ok(
            stack.call("GET", "/v1/stock", params={"warehouse_id": "W02", "item_code": "sandbag"})
        )["items"][0]
        assert sandbags["quantity"] == 8000 - 2000 + 500
        stack.settle()
        # The released order is on the incident's dispatch list with its returns.
        listed = _ok(stack.call("GET", "/v1/dispatches", params={"incident_id": incident["id"]}))
        assert [o["id"] for o in listed["items"]] == [order["id"]]
