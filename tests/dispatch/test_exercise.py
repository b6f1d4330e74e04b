"""Drill (演练) orders and plans reserve nothing real: teams, stock and ledger stay as they were."""

from __future__ import annotations

from typing import Any

from services.dispatch.repository import TeamFilter
from tests.dispatch.conftest import report_incident, stock, team, usecases_of
from tests.support.stack import Stack

SANDBAGS = {"warehouse_id": "W01", "item_code": "sandbag", "quantity": 50}


def _ledger(stack: Stack) -> list[dict[str, Any]]:
    response = stack.call("GET", "/v1/stock/ledger", params={"limit": 200})
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def _statuses(stack: Stack) -> dict[str, str]:
    """Every team's status, read from the repository."""
    rows, _ = usecases_of(stack).repo.teams_page(TeamFilter(), 200, None)
    return {row["_id"]: row["status"] for row in rows}


def _order(stack: Stack, incident_id: str, **body: Any) -> Any:
    return stack.call("POST", "/v1/dispatches", json={"incident_id": incident_id, **body})


def test_drill_order_takes_no_real_team_stock_or_ledger_entry(dstack: Stack) -> None:
    drill = report_incident(dstack, exercise=True)
    sandbags = stock(dstack, "W01", "sandbag")["quantity"]
    ledger = _ledger(dstack)

    placed = _order(dstack, drill, team_ids=["T06"], resources=[SANDBAGS], exercise=True)

    assert placed.status_code == 201, placed.text
    order = placed.json()
    assert order["exercise"] is True
    assert order["status"] == "ordered"
    assert order["simulated"]["teams"] == [
        {"team_id": "T06", "status": "available", "available": True}
    ]
    assert order["simulated"]["resources"][0]["on_hand"] == sandbags
    assert team(dstack, "T06")["status"] == "available"
    assert stock(dstack, "W01", "sandbag")["quantity"] == sandbags
    assert _ledger(dstack) == ledger
    # The real landslide that follows still gets T06 (the 409 "T06 is not available" of old).
    real = report_incident(dstack, category="geological")
    assert _order(dstack, real, team_ids=["T06"]).status_code == 201


def test_drill_order_moves_along_and_releases_without_returning_real_stock(dstack: Stack) -> None:
    drill = report_incident(dstack, exercise=True)
    sandbags = stock(dstack, "W01", "sandbag")["quantity"]
    order = _order(dstack, drill, team_ids=["T03"], resources=[SANDBAGS]).json()
    assert order["exercise"] is True, "an order for a drill incident is a drill order"
    for step in ("en_route", "on_scene", "completed"):
        moved = dstack.call("POST", f"/v1/dispatches/{order['id']}/status", json={"status": step})
        assert moved.status_code == 200, moved.text
    released = dstack.call(
        "POST",
        f"/v1/dispatches/{order['id']}/status",
        json={"status": "released", "returned": [{**SANDBAGS, "quantity": 20}]},
    )
    assert released.status_code == 200, released.text
    assert stock(dstack, "W01", "sandbag")["quantity"] == sandbags
    assert team(dstack, "T03")["status"] == "available"
    assert _ledger(dstack) == []


def test_drill_order_is_refused_for_a_real_incident(dstack: Stack) -> None:
    real = report_incident(dstack)
    refused = _order(dstack, real, team_ids=["T03"], exercise=True)
    assert refused.status_code == 422
    assert refused.json()["error"]["fields"][0]["path"] == "exercise"
    assert team(dstack, "T03")["status"] == "available"


def test_drill_orders_are_listed_apart(dstack: Stack) -> None:
    drill = report_incident(dstack, exercise=True)
    real = report_incident(dstack)
    drill_order = _order(dstack, drill, team_ids=["T03"]).json()["id"]
    real_order = _order(dstack, real, team_ids=["T08"]).json()["id"]

    def listed(**params: Any) -> list[str]:
        return [
            o["id"] for o in dstack.call("GET", "/v1/dispatches", params=params).json()["items"]
        ]

    assert listed(exercise="true") == [drill_order]
    assert listed(exercise="false") == [real_order]


def test_drill_plan_puts_no_real_team_on_standby(dstack: Stack) -> None:
    body = {
        "level": 2,
        "hazard": "flood",
        "township_codes": ["349901001"],
        "requested_by": "演练导调组",
        "reason": "演练：防汛应急响应",
        "exercise": True,
    }
    created = dstack.call("POST", "/v1/plans", json=body)
    assert created.status_code == 201, created.text
    plan = created.json()
    assert plan["exercise"] is True
    assert plan["teams_on_standby"] == []
    assert plan["simulated_standby"], "a drill plan names the teams it would call"
    statuses = _statuses(dstack)
    assert set(statuses.values()) <= {"available", "resting"}
    ended = dstack.call("POST", f"/v1/plans/{plan['id']}/end", json={"reason": "演练结束"})
    assert ended.status_code == 200, ended.text
    assert _statuses(dstack) == statuses
