"""Dispatch orders: all or nothing, races for the last units and team, life cycle, repair."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from libs.common.idempotency import fingerprint, idempotency_scope
from services.dispatch import events
from services.dispatch.repository import take_entry_id
from services.dispatch.repository.sqlite import SqliteDispatchRepository
from services.dispatch.service import repair
from services.dispatch.usecases import ConflictError, DispatchUseCases
from tests.dispatch.conftest import report_incident, stock, team, usecases_of
from tests.support.errors import refusal
from tests.support.stack import Stack


def _order(stack: Stack, incident_id: str, **body: Any) -> Any:
    return stack.call("POST", "/v1/dispatches", json={"incident_id": incident_id, **body})


def _ledger(stack: Stack, **params: Any) -> list[dict[str, Any]]:
    response = stack.call("GET", "/v1/stock/ledger", params={"limit": 200, **params})
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def test_order_is_all_or_nothing_when_a_team_is_busy(dstack: Stack) -> None:
    incident = report_incident(dstack)
    first = _order(dstack, incident, team_ids=["T03"])
    assert first.status_code == 201, first.text
    before = stock(dstack, "W01", "tent")["quantity"]

    refused = _order(
        dstack,
        incident,
        team_ids=["T08", "T03"],
        resources=[{"warehouse_id": "W01", "item_code": "tent", "quantity": 5}],
    )
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["fields"][0]["path"] == "team_ids.1"
    assert "T03" in error["message"]
    # Nothing stays reserved: T08 was taken first and given back; no tent left the store.
    assert team(dstack, "T08")["status"] == "available"
    assert stock(dstack, "W01", "tent")["quantity"] == before
    listed = dstack.call("GET", "/v1/dispatches", params={"incident_id": incident}).json()
    assert [o["id"] for o in listed["items"]] == [first.json()["id"]]
    rejected = dstack.call("GET", "/v1/dispatches", params={"status": "rejected"}).json()
    assert rejected["items"][0]["rejection"]["path"] == "team_ids.1"


def test_order_is_all_or_nothing_when_stock_is_short(dstack: Stack) -> None:
    incident = report_incident(dstack)
    refused = _order(
        dstack,
        incident,
        team_ids=["T04"],
        resources=[
            {"warehouse_id": "W02", "item_code": "pump", "quantity": 5},
            {"warehouse_id": "W02", "item_code": "assault_boat", "quantity": 7},
        ],
    )
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["fields"][0]["path"] == "resources.1.quantity"
    assert "assault_boat" in error["message"] and "剩余 6" in error["message"]
    assert team(dstack, "T04")["status"] == "available"
    assert stock(dstack, "W02", "pump")["quantity"] == 12
    assert stock(dstack, "W02", "assault_boat")["quantity"] == 6
    # SQLite takes an order in one transaction: a refused one leaves no entry. MongoDB takes line
    # by line: the pumps taken and given back are both on the ledger. Either way, net zero.
    pumps = _ledger(dstack, item_code="pump")
    transactional = isinstance(usecases_of(dstack).repo, SqliteDispatchRepository)
    expected = [] if transactional else ["compensation", "dispatch"]
    assert sorted(e["kind"] for e in pumps) == expected
    assert sum(e["delta"] for e in pumps) == 0


def test_invalid_orders_name_the_field(dstack: Stack) -> None:
    incident = report_incident(dstack)
    response = _order(
        dstack,
        incident,
        team_ids=["T01", "T01", "NOPE"],
        resources=[
            {"warehouse_id": "W01", "item_code": "tent", "quantity": 1},
            {"warehouse_id": "W01", "item_code": "tent", "quantity": 2},
            {"warehouse_id": "W09", "item_code": "tent", "quantity": 2},
        ],
    )
    assert response.status_code == 422
    paths = {f["path"] for f in response.json()["error"]["fields"]}
    assert {"team_ids.1", "team_ids.2", "resources.1", "resources.2.item_code"} <= paths
    assert _order(dstack, "unknown", team_ids=["T01"]).status_code == 422
    negative = _order(
        dstack, incident, resources=[{"warehouse_id": "W01", "item_code": "tent", "quantity": -1}]
    )
    assert negative.status_code == 422
    assert negative.json()["error"]["fields"][0]["path"] == "resources.0.quantity"
    assert _order(dstack, incident).status_code == 422  # neither team nor supplies
    assert team(dstack, "T01")["status"] == "available"
    township = dstack.call(
        "POST", "/v1/dispatches", who="township_a", json={"incident_id": incident, "team_ids": []}
    )
    assert township.status_code == 403


def test_idempotency_key_replays_the_order(dstack: Stack) -> None:
    incident = report_incident(dstack)
    body = {
        "incident_id": incident,
        "team_ids": ["T06"],
        "resources": [{"warehouse_id": "W03", "item_code": "first_aid_kit", "quantity": 3}],
    }
    headers = {"Idempotency-Key": "order-1"}
    first = dstack.call("POST", "/v1/dispatches", json=body, headers=headers)
    again = dstack.call("POST", "/v1/dispatches", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert stock(dstack, "W03", "first_aid_kit")["quantity"] == 397
    other = dstack.call("POST", "/v1/dispatches", json={**body, "note": "x"}, headers=headers)
    assert other.status_code == 409


def _race(store: DispatchUseCases, orders: list[dict[str, Any]]) -> list[str | None]:
    """Place every order at once from its own thread; each returns its id or None (409)."""
    barrier = threading.Barrier(len(orders))

    def place(order: dict[str, Any]) -> str | None:
        scope = idempotency_scope("race", None, order["_id"])
        barrier.wait()
        try:
            placed, _ = store.place_order(order, scope, fingerprint(order["_id"]))
        except ConflictError:
            return None
        return str(placed["_id"])

    with ThreadPoolExecutor(max_workers=len(orders)) as pool:
        return list(pool.map(place, orders))


def _planned(store: DispatchUseCases, incident: str, teams: list[str], lines: list[Any]) -> Any:
    now = store.now()
    return {
        "_id": uuid.uuid4().hex,
        "incident_id": incident,
        "township_code": "349901001",
        "team_ids": teams,
        "resources": lines,
        "note": "",
        "status": "reserving",
        "created_at": now,
        "created_by": "racer",
        "updated_at": now,
        "reserve_deadline": now + timedelta(seconds=120),
        "history": [],
    }


def test_threads_racing_for_the_last_units_never_oversubscribe(dstack: Stack) -> None:
    incident = report_incident(dstack)
    store = usecases_of(dstack)
    boats = [{"warehouse_id": "W02", "item_code": "assault_boat", "quantity": 1}]
    orders = [_planned(store, incident, [], boats) for _ in range(10)]
    results = _race(store, orders)
    winners = [r for r in results if r]
    assert len(winners) == 6  # exactly the six boats in stock
    line = stock(dstack, "W02", "assault_boat")
    assert line["quantity"] == 0
    takes = _ledger(dstack, item_code="assault_boat", kind="dispatch")
    assert sorted(e["dispatch_id"] for e in takes) == sorted(winners)
    assert all(e["quantity_after"] >= 0 for e in takes)
    # Losers hold nothing and are recorded as rejected.
    for order, result in zip(orders, results, strict=True):
        if result is None:
            assert store.repo.order(order["_id"])["status"] == "rejected"  # type: ignore[index]


def test_threads_racing_for_the_last_team_never_oversubscribe(dstack: Stack) -> None:
    incident = report_incident(dstack)
    store = usecases_of(dstack)
    tents = [{"warehouse_id": "W01", "item_code": "tent", "quantity": 2}]
    orders = [_planned(store, incident, ["T13"], tents) for _ in range(8)]
    results = _race(store, orders)
    winners = [r for r in results if r]
    assert len(winners) == 1
    assert team(dstack, "T13")["status"] == "deployed"
    assert team(dstack, "T13")["dispatch_id"] == winners[0]
    # Only the winner's tents left the store.
    assert stock(dstack, "W01", "tent")["quantity"] == 298


def test_mixed_race_losers_give_their_teams_back(dstack: Stack) -> None:
    """Each order takes its own team first, then fights over three generators."""
    incident = report_incident(dstack)
    store = usecases_of(dstack)
    have = stock(dstack, "W01", "generator")["quantity"]
    body = {"warehouse_id": "W01", "item_code": "generator", "delta": 3 - have, "reason": "盘点"}
    assert dstack.call("POST", "/v1/stock/adjust", json=body).status_code == 200
    teams = ["T01", "T02", "T03", "T04", "T05", "T06", "T07", "T08"]
    generator = [{"warehouse_id": "W01", "item_code": "generator", "quantity": 1}]
    orders = [_planned(store, incident, [t], generator) for t in teams]
    results = _race(store, orders)
    assert sum(1 for r in results if r) == 3
    statuses = [team(dstack, t)["status"] for t in teams]
    assert statuses.count("deployed") == 3
    assert statuses.count("available") == 5
    assert stock(dstack, "W01", "generator")["quantity"] == 0


def test_life_cycle_and_release_with_returns(dstack: Stack) -> None:
    incident = report_incident(dstack)
    created = _order(
        dstack,
        incident,
        team_ids=["T04", "T09"],
        resources=[{"warehouse_id": "W02", "item_code": "sandbag", "quantity": 1000}],
    )
    assert created.status_code == 201
    order = created.json()
    assert order["status"] == "ordered" and order["edxl_rm_phase"] == "commit"
    path = f"/v1/dispatches/{order['id']}/status"

    assert dstack.call("POST", path, json={"status": "on_scene"}).status_code == 409
    assert dstack.call("POST", path, json={"status": "en_route"}).status_code == 200
    assert dstack.call("POST", path, json={"status": "en_route"}).status_code == 409
    dstack.clock.advance(1800)
    scene = dstack.call("POST", path, json={"status": "on_scene"})
    assert scene.status_code == 200 and scene.json()["edxl_rm_phase"] == "deployment"
    assert dstack.call("POST", path, json={"status": "released"}).status_code == 409
    assert dstack.call("POST", path, json={"status": "completed"}).status_code == 200
    assert team(dstack, "T04")["status"] == "deployed"

    too_many = dstack.call(
        "POST",
        path,
        json={
            "status": "released",
            "returned": [{"warehouse_id": "W02", "item_code": "sandbag", "quantity": 1001}],
        },
    )
    assert too_many.status_code == 422
    assert too_many.json()["error"]["fields"][0]["path"] == "returned.0.quantity"
    released = dstack.call(
        "POST",
        path,
        json={
            "status": "released",
            "returned": [{"warehouse_id": "W02", "item_code": "sandbag", "quantity": 400}],
        },
    )
    assert released.status_code == 200, released.text
    body = released.json()
    assert body["status"] == "released" and body["edxl_rm_phase"] == "release"
    assert [h["status"] for h in body["history"]] == [
        "requested",
        "ordered",
        "en_route",
        "on_scene",
        "completed",
        "released",
    ]
    assert team(dstack, "T04")["status"] == "available"
    assert team(dstack, "T09")["status"] == "available"
    assert stock(dstack, "W02", "sandbag")["quantity"] == 8000 - 1000 + 400
    assert dstack.call("POST", path, json={"status": "released"}).status_code == 409
    returns = _ledger(dstack, dispatch_id=order["id"], kind="return")
    assert returns[0]["delta"] == 400
    metrics = dstack.client.get("/metrics").text
    assert "yingji_dispatch_order_to_on_scene_seconds_bucket" in metrics
    assert "yingji_dispatch_orders_active" in metrics


def test_orders_for_closed_incidents_are_refused(dstack: Stack) -> None:
    from tests.dispatch.conftest import deliver_twice, envelope

    incident = report_incident(dstack)
    closed = {
        "incident_id": incident,
        "township_code": "349901001",
        "closed_by": "leader",
        "reason": "done",
    }
    deliver_twice(dstack, envelope(dstack, "intake", "incident_closed", closed))
    refused = _order(dstack, incident, team_ids=["T01"])
    assert refusal(refused) == (409, "incident_closed", ["incident_id"])
    # Nothing was reserved or recorded: the team is free and the incident has no order.
    assert team(dstack, "T01")["status"] == "available"
    listed = dstack.call("GET", "/v1/dispatches", params={"incident_id": incident})
    assert listed.status_code == 200 and listed.json()["items"] == []


def test_township_sees_only_its_own_orders(dstack: Stack) -> None:
    ours = report_incident(dstack, township="349901001")
    theirs = report_incident(dstack, township="349901101")
    mine = _order(dstack, ours, team_ids=["T01"]).json()
    other = _order(dstack, theirs, team_ids=["T04"]).json()
    listed = dstack.call("GET", "/v1/dispatches", who="township_a").json()["items"]
    assert [o["id"] for o in listed] == [mine["id"]]
    assert dstack.call("GET", f"/v1/dispatches/{other['id']}", who="township_a").status_code == 404


def test_an_interrupted_order_is_repaired_by_the_timer(dstack: Stack) -> None:
    """A process that died between reservations leaves a `reserving` order; the timer frees it."""
    incident = report_incident(dstack)
    store = usecases_of(dstack)
    repo = store.repo
    order = _planned(
        store, incident, ["T05"], [{"warehouse_id": "W03", "item_code": "tent", "quantity": 20}]
    )
    # What a process writes step by step when its engine has no transactions (MongoDB).
    repo.record_order(order, f"auto:{order['_id']}", "h", [])
    assert repo.take_team("T05", order["_id"], store.now())
    line = order["resources"][0]
    entry = {
        "_id": take_entry_id(order["_id"], line),
        "warehouse_id": "W03",
        "item_code": "tent",
        "reason": "调派",
        "kind": "dispatch",
        "by": "racer",
        "at": store.now(),
        "dispatch_id": order["_id"],
    }
    assert repo.take_stock("W03:tent", 20, entry).outcome == "applied"
    # ... the process dies here. Before the deadline the repair leaves it alone.
    repair(store)
    assert team(dstack, "T05")["status"] == "deployed"
    dstack.clock.advance(121)
    assert repair(store)["abandoned"] == 1
    assert repair(store)["abandoned"] == 0
    assert team(dstack, "T05")["status"] == "available"
    assert stock(dstack, "W03", "tent")["quantity"] == 120
    assert repo.order(order["_id"])["status"] == "rejected"  # type: ignore[index]


def test_an_interrupted_release_is_finished_by_the_timer(dstack: Stack) -> None:
    incident = report_incident(dstack)
    store = usecases_of(dstack)
    created = _order(dstack, incident, team_ids=["T12"]).json()
    # Simulate a crash after the order was marked released but before its team was freed.
    order = store.repo.order(created["id"])
    assert order is not None
    moved = events.dispatch_status_changed(dstack.clock, order, "ordered", "released")
    fields = {"status": "released", "_release_pending": True}
    entry = {"status": "released", "at": store.now(), "by": "operator"}
    assert store.repo.step_order(created["id"], "ordered", fields, entry, moved)
    assert team(dstack, "T12")["status"] == "deployed"
    assert repair(store)["released"] == 1
    assert team(dstack, "T12")["status"] == "available"
