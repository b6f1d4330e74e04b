"""Roster and stock: the county file seed, manual changes, adjustments, the ledger, alerts."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.dispatch.conftest import sent_events, stock, team, usecases_of
from tests.support.stack import Stack


def _adjust(stack: Stack, delta: float, item: str = "generator", **kw: Any) -> Any:
    body = {"warehouse_id": "W01", "item_code": item, "delta": delta, "reason": "盘点"}
    return stack.call("POST", "/v1/stock/adjust", json=body, **kw)


def test_county_file_seeds_once_and_never_overwrites(dstack: Stack) -> None:
    teams = dstack.call("GET", "/v1/teams", params={"limit": 200}).json()["items"]
    assert len(teams) == 15 and teams[0]["id"] == "T01" and teams[0]["township_name"] == "城关镇"
    assert stock(dstack, "W01", "tent")["quantity"] == 300
    patched = dstack.call("PATCH", "/v1/teams/T02", json={"status": "resting"})
    assert patched.status_code == 200 and patched.json()["status"] == "resting"
    assert _adjust(dstack, -5).status_code == 200
    # A restart runs setup again: nothing the county file says may reset live state.
    assert usecases_of(dstack).seed_from_county() == {"teams": 0, "warehouses": 0, "stock": 0}
    assert team(dstack, "T02")["status"] == "resting"
    assert stock(dstack, "W01", "generator")["quantity"] == 15


def test_roster_maintained_over_the_api(dstack: Stack) -> None:
    body = {
        "id": "T99",
        "name": "白沙镇应急分队",
        "kind": "rescue",
        "capabilities": ["flood", "rescue"],
        "township_code": "349901103",
        "headcount": 12,
        "contact": {"name": "钱进", "phone": "13800000099"},
    }
    created = dstack.call("POST", "/v1/teams", json=body, headers={"Idempotency-Key": "t99"})
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "available" and created.json()["source"] == "api"
    replay = dstack.call("POST", "/v1/teams", json=body, headers={"Idempotency-Key": "t99"})
    assert replay.status_code == 201
    assert dstack.call("POST", "/v1/teams", json=body).status_code == 409  # id taken
    bad = dstack.call("POST", "/v1/teams", json={**body, "id": "T98", "township_code": "349901999"})
    assert bad.status_code == 422 and bad.json()["error"]["fields"][0]["path"] == "township_code"
    kind = dstack.call("POST", "/v1/teams", json={**body, "id": "T98", "kind": "pirates"})
    assert kind.status_code == 422 and kind.json()["error"]["fields"][0]["path"] == "kind"
    caps = dstack.call("POST", "/v1/teams", json={**body, "id": "T98", "capabilities": ["Flood!"]})
    assert caps.status_code == 422
    # A misspelt capability would leave the team out of every suggestion and plan.
    typo = dstack.call(
        "POST", "/v1/teams", json={**body, "id": "T98", "capabilities": ["flood", "resuce"]}
    )
    assert typo.status_code == 422
    [field] = typo.json()["error"]["fields"]
    assert field["path"] == "capabilities.1" and field["reason"].startswith("未知专业能力；可选：")
    assert "rescue" in field["reason"]
    assert dstack.call("GET", "/v1/teams/T98").status_code == 404
    assert dstack.call("POST", "/v1/teams", who="township_a", json=body).status_code == 403

    patched = dstack.call(
        "PATCH", "/v1/teams/T99", json={"headcount": 20, "capabilities": ["flood"]}
    )
    assert patched.json()["headcount"] == 20 and patched.json()["capabilities"] == ["flood"]
    assert dstack.call("PATCH", "/v1/teams/T99", json={}).status_code == 422
    flod = dstack.call("PATCH", "/v1/teams/T99", json={"capabilities": ["flod"]})
    assert flod.status_code == 422 and flod.json()["error"]["fields"][0]["path"] == "capabilities.0"
    assert team(dstack, "T99")["capabilities"] == ["flood"]
    assert dstack.call("PATCH", "/v1/teams/T99", json={"status": "deployed"}).status_code == 422
    assert dstack.call("PATCH", "/v1/teams/NOPE", json={"headcount": 2}).status_code == 404
    filtered = dstack.call(
        "GET", "/v1/teams", params={"township_code": "349901103", "capability": "flood"}
    ).json()["items"]
    assert [t["id"] for t in filtered] == ["T99"]


def test_deployed_team_status_belongs_to_its_order(dstack: Stack) -> None:
    from tests.dispatch.conftest import report_incident

    incident = report_incident(dstack)
    dstack.call("POST", "/v1/dispatches", json={"incident_id": incident, "team_ids": ["T01"]})
    refused = dstack.call("PATCH", "/v1/teams/T01", json={"status": "available"})
    assert refused.status_code == 409 and refused.json()["error"]["fields"][0]["path"] == "status"
    # Roster facts may still be corrected while it is out.
    assert dstack.call("PATCH", "/v1/teams/T01", json={"headcount": 44}).status_code == 200
    assert team(dstack, "T01")["status"] == "deployed"


def test_adjustment_never_goes_negative_and_is_ledgered(dstack: Stack) -> None:
    refused = _adjust(dstack, -21)
    assert refused.status_code == 409
    assert refused.json()["error"]["fields"][0]["path"] == "delta"
    assert stock(dstack, "W01", "generator")["quantity"] == 20
    taken = _adjust(dstack, -20)
    assert taken.status_code == 200 and taken.json()["quantity"] == 0
    assert (
        taken.json()["entry"]["quantity_after"] == 0 and taken.json()["entry"]["by"] == "operator"
    )
    dstack.clock.advance(1)  # the ledger lists newest first; same-instant entries have no order
    assert _adjust(dstack, 7).json()["quantity"] == 7
    ledger = dstack.call("GET", "/v1/stock/ledger", params={"item_code": "generator"}).json()
    assert [e["delta"] for e in ledger["items"]] == [7, -20]
    assert all(e["reason"] == "盘点" for e in ledger["items"])
    assert _adjust(dstack, 0).status_code == 422
    missing = _adjust(dstack, 1, item="caviar")
    assert missing.status_code == 404
    assert dstack.call("GET", "/v1/stock/ledger", who="township_a").status_code == 403
    assert _adjust(dstack, 1, who="township_a").status_code == 403


def test_adjustment_idempotency_key(dstack: Stack) -> None:
    headers = {"Idempotency-Key": "count-7"}
    first = _adjust(dstack, -3, headers=headers)
    again = _adjust(dstack, -3, headers=headers)
    assert first.status_code == again.status_code == 200
    assert stock(dstack, "W01", "generator")["quantity"] == 17
    assert _adjust(dstack, -4, headers=headers).status_code == 409


def test_concurrent_adjustments_never_go_negative(dstack: Stack) -> None:
    repo = usecases_of(dstack).repo
    workers = 16
    barrier = threading.Barrier(workers)

    def take(index: int) -> str:
        barrier.wait()
        entry = {
            "_id": f"race-{index}",
            "warehouse_id": "W02",
            "item_code": "assault_boat",
            "reason": "并发",
            "kind": "adjustment",
            "by": "t",
        }
        move = repo.adjust_stock("W02:assault_boat", -1, {**entry, "at": dstack.clock.now()})
        return move.outcome

    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = list(pool.map(take, range(workers)))
    assert outcomes.count("applied") == 6 and outcomes.count("short") == 10
    assert stock(dstack, "W02", "assault_boat")["quantity"] == 0
    ledger = dstack.call("GET", "/v1/stock/ledger", params={"item_code": "assault_boat"}).json()
    assert sorted(e["quantity_after"] for e in ledger["items"]) == [0, 1, 2, 3, 4, 5]


def test_stock_low_emitted_once_below_minimum(dstack: Stack) -> None:
    # W01 generator: 20 in stock, minimum 5.
    _adjust(dstack, -15)
    assert stock(dstack, "W01", "generator")["below_min"] is False
    _adjust(dstack, -1)
    _adjust(dstack, -1)
    low = dstack.call("GET", "/v1/stock", params={"below_min": "true"}).json()["items"]
    assert [(r["warehouse_id"], r["item_code"]) for r in low] == [("W01", "generator")]
    _adjust(dstack, 10)  # recovers: the alert re-arms
    _adjust(dstack, -10)
    alerts = [e for e in sent_events(dstack) if e["event_type"] == "stock_low"]
    assert [a["payload"]["quantity"] for a in alerts] == [4, 3]
    assert "yingji_dispatch_stock_below_min 1.0" in dstack.client.get("/metrics").text


def test_new_stock_line_and_minimum(dstack: Stack) -> None:
    body = {
        "warehouse_id": "W02",
        "item_code": "rope",
        "name": "救援绳",
        "unit": "根",
        "quantity": 50,
        "min_level": 10,
    }
    created = dstack.call("POST", "/v1/stock", json=body)
    assert created.status_code == 201 and created.json()["quantity"] == 50
    assert dstack.call("POST", "/v1/stock", json=body).status_code == 409
    unknown = dstack.call("POST", "/v1/stock", json={**body, "warehouse_id": "W77"})
    assert unknown.status_code == 422
    raised = dstack.call("PATCH", "/v1/stock/W02/rope", json={"min_level": 60})
    assert raised.json()["below_min"] is True
    warehouses = dstack.call("GET", "/v1/warehouses").json()["items"]
    assert {w["id"]: w["lines"] for w in warehouses}["W02"] == 5


def test_metrics_names(dstack: Stack) -> None:
    text = dstack.client.get("/metrics").text
    for name in (
        'yingji_dispatch_teams{status="available"}',
        "yingji_dispatch_orders_active",
        "yingji_dispatch_stock_below_min",
        "yingji_dispatch_assignments_open",
        "yingji_dispatch_assignments_overdue",
        "yingji_dispatch_plans_active",
    ):
        assert name in text, name
