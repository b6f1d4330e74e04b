"""A data directory written by the previous embedded engine (litemongo documents under
``<data_dir>/store``) comes over to dispatch's SQLite file on first start, or through
``migrate_store``: teams, warehouses, stock and its ledger, orders (refused ones too), plans,
assignments and the local incident and warning views read back identical over the API."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from libs.common.settings import Settings
from libs.common.sqlite import SqliteDatabase
from libs.common.store import EmbeddedEngine, sqlite_file
from services.dispatch import events
from services.dispatch import service as dispatch_service
from services.dispatch.repository.legacy import import_legacy_dispatch
from services.dispatch.repository.mongo import MongoDispatchRepository
from services.dispatch.repository.sqlite import SqliteDispatchRepository
from services.dispatch.service import SPEC, migrate_store
from tests.dispatch.conftest import (
    deliver_twice,
    envelope,
    report_incident,
    usecases_of,
    warning_payload,
)
from tests.support.stack import Stack, running_stack

pytestmark = pytest.mark.e2e

LISTS = (
    "/v1/teams",
    "/v1/warehouses",
    "/v1/stock",
    "/v1/stock/ledger",
    "/v1/dispatches",
    "/v1/dispatches?status=rejected",
    "/v1/plans",
    "/v1/assignments",
)


@contextmanager
def previous_engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Dispatch as it ran before: its documents in the litemongo store of the data directory."""
    with monkeypatch.context() as patch:
        patch.setattr(dispatch_service, "sqlite_file", lambda settings, name: None)
        yield


def ok(response: Any, status: int = 200) -> dict[str, Any]:
    """The JSON of an expected answer."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def write_history(stack: Stack) -> dict[str, Any]:
    """Orders through their life cycle (one refused), stock changes, plans and a dispute."""
    incident = report_incident(stack, grade=2)
    dispute = report_incident(stack, category="dispute")
    deliver_twice(stack, envelope(stack, "warning", "warning_issued", warning_payload(stack)))
    tents = {"warehouse_id": "W01", "item_code": "tent", "quantity": 5}
    keyed = {"incident_id": incident, "team_ids": ["T03"], "resources": [tents]}
    headers = {"Idempotency-Key": "order-1"}
    order = ok(stack.call("POST", "/v1/dispatches", json=keyed, headers=headers), 201)
    for status in ("en_route", "on_scene", "completed"):
        ok(stack.call("POST", f"/v1/dispatches/{order['id']}/status", json={"status": status}))
    released = {"status": "released", "returned": [{**tents, "quantity": 2}]}
    ok(stack.call("POST", f"/v1/dispatches/{order['id']}/status", json=released))
    too_many = {"incident_id": incident, "resources": [{**tents, "quantity": 100_000}]}
    assert stack.call("POST", "/v1/dispatches", json=too_many).status_code == 409
    adjust = {"warehouse_id": "W01", "item_code": "generator", "delta": -17, "reason": "盘点"}
    ok(stack.call("POST", "/v1/stock/adjust", json=adjust))
    team = {
        "id": "T-new",
        "name": "新建队伍",
        "kind": "rescue",
        "capabilities": ["flood"],
        "township_code": "349901001",
        "headcount": 8,
        "contact": {"name": "张三", "phone": "13800000000"},
    }
    ok(stack.call("POST", "/v1/teams", json=team), 201)
    due = (stack.clock.now() + timedelta(hours=1)).isoformat()
    assignment = {
        "incident_id": dispute,
        "responsible_leader": "李副乡长",
        "responsible_unit": "乡综治办",
        "due_at": due,
    }
    made = ok(stack.call("POST", "/v1/assignments", json=assignment), 201)
    attempt = {"level": "group", "outcome": "unresolved", "note": "调解"}
    ok(stack.call("POST", f"/v1/assignments/{made['id']}/attempts", json=attempt), 201)
    stack.settle()
    return {"incident": incident, "order": order, "order_body": keyed, "order_key": headers}


def read_all(stack: Stack) -> dict[str, Any]:
    """Every list, page by page, and each order, plan and assignment in detail."""
    seen: dict[str, Any] = {}
    for path in LISTS:
        pages, cursor = [], None
        while True:
            params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
            page = ok(stack.call("GET", path, params=params))
            pages.append(page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        seen[path] = pages
    for path, listed in (("dispatches", "/v1/dispatches"), ("plans", "/v1/plans")):
        for item in (i for page in seen[listed] for i in page):
            seen[f"{path}/{item['id']}"] = ok(stack.call("GET", f"/v1/{path}/{item['id']}"))
    return seen


def test_dispatch_data_comes_over_on_first_start_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    with previous_engine(monkeypatch), running_stack(tmp_path, [SPEC], data_dir=data) as old:
        history = write_history(old)
        before = read_all(old)
        old_key = old.keys["operator"]
        view = usecases_of(old).repo.incident_view(history["incident"])
    assert not sqlite_file(Settings(data_dir=data), "dispatch").exists()  # type: ignore[union-attr]
    with running_stack(tmp_path, [SPEC], data_dir=data) as new:
        repo = usecases_of(new).repo
        assert isinstance(repo, SqliteDispatchRepository) and repo.imported()
        after = read_all(new)
        assert repo.incident_view(history["incident"]) == view
        # The key of a request made before the move still answers with the same order.
        new.keys["old_operator"] = old_key
        replay = new.call(
            "POST",
            "/v1/dispatches",
            who="old_operator",
            json=history["order_body"],
            headers=history["order_key"],
        )
    assert after == before
    assert len(before["/v1/dispatches?status=rejected"][0]) == 1
    assert {e["kind"] for page in before["/v1/stock/ledger"] for e in page} >= {
        "dispatch",
        "return",
        "adjustment",
    }
    assert before[f"dispatches/{history['order']['id']}"]["status"] == "released"
    assert replay.status_code == 201 and replay.json()["id"] == history["order"]["id"]


def test_pending_events_and_ledger_copies_move_and_a_second_run_copies_nothing(
    tmp_path: Path,
) -> None:
    from tests.dispatch.test_repository_contract import CLOCK, entry, line, order

    engine = EmbeddedEngine(tmp_path / "store")
    db = SqliteDatabase(tmp_path / "yingji_dispatch.sqlite3")
    try:
        legacy = MongoDispatchRepository(engine.database("yingji_dispatch"))
        legacy.ensure_schema()
        doc = order("o1", [], status="ordered")
        waiting = events.dispatch_ordered(CLOCK, doc)
        legacy.record_order(doc, "auto:o1", "h", [waiting])
        legacy.add_stock_line_once(line(4))
        # A crash between the stock change and its ledger copy leaves the entry on the line.
        legacy.stock.update_one(
            {"_id": "W01:tent"},
            {"$push": {"_ledger_pending": {**entry("e1"), "delta": -1}}, "$inc": {"quantity": -1}},
        )
        repo = SqliteDispatchRepository(db)
        repo.ensure_schema()
        assert import_legacy_dispatch(engine.database("yingji_dispatch"), repo) == 2
        assert import_legacy_dispatch(engine.database("yingji_dispatch"), repo) == 0
        moved = repo.order("o1")
        assert moved is not None and moved["_idem"] == {"key": "auto:o1", "hash": "h"}
        assert not any(key.startswith("_outbox") for key in moved)
        stock = repo.stock_line("W01:tent")
        assert stock is not None and stock["quantity"] == 3 and "_ledger_pending" not in stock
        copied = repo.ledger_entry("e1")
        assert copied is not None and copied["delta"] == -1
        [source] = repo.relay_parts().sources
        batch = source.claim(10, 30.0, "relay")
        assert batch is not None and [e.event_id for e in batch.events] == [waiting.event_id]
    finally:
        db.close()
        engine.close()


def test_migrate_store_copies_a_data_directory(tmp_path: Path) -> None:
    from tests.dispatch.test_repository_contract import team

    data = tmp_path / "data"
    engine = EmbeddedEngine(data / "store")
    try:
        legacy = MongoDispatchRepository(engine.database("yingji_dispatch"))
        for ident in ("T1", "T2", "T3"):
            legacy.add_team_once(team(ident))
        copied = migrate_store(Settings(data_dir=data), engine.database("yingji_dispatch"))
    finally:
        engine.close()
    assert copied == 3
    db = SqliteDatabase(data / "yingji_dispatch.sqlite3")
    try:
        repo = SqliteDispatchRepository(db)
        assert repo.imported()
        assert sorted(t["_id"] for t in repo.teams_by_ids(["T1", "T2", "T3"])) == ["T1", "T2", "T3"]
    finally:
        db.close()
