"""A data directory written by the previous embedded engine (litemongo documents under
``<data_dir>/store``) comes over to intake's SQLite file on first start, or through
``yingji migrate-store``, and every incident reads back identical over the API."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from libs.common.settings import Settings
from libs.common.sqlite import SqliteDatabase
from libs.common.store import EmbeddedEngine, StoreFactory, sqlite_file
from services.intake import service as intake_service
from services.intake.repository.legacy import import_legacy_incidents
from services.intake.repository.mongo import MongoIntakeRepository
from services.intake.repository.sqlite import SqliteIntakeRepository
from services.intake.service import SPEC
from tests.intake.helpers import BASE, casualties, created, deliver, iso, reporting_event
from tests.support.stack import TOWNSHIP_A, Stack, running_stack

pytestmark = pytest.mark.e2e


@contextmanager
def previous_engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Intake as it ran before: its documents in the litemongo store of the data directory."""
    with monkeypatch.context() as patch:
        patch.setattr(intake_service, "sqlite_file", lambda settings, name: None)
        # ctx.db is the previous engine's live store again, not the read-only reader.
        patch.setattr(StoreFactory, "database", StoreFactory.document_store)
        yield


def write_history(stack: Stack) -> tuple[list[str], dict[str, Any]]:
    """Reports, a duplicate, a re-grade from a follow-up, a merge and a close, over the API."""
    now = stack.clock.now()
    body = {**BASE, "occurred_at": iso(now - timedelta(hours=1)), "discovered_at": iso(now)}
    ids = [created(stack, {**body, "title": f"第{i}次報告"})["id"] for i in range(4)]
    drill = created(stack, {**body, "exercise": True, "trend": "持續上漲"})["id"]
    payload = {
        "report_id": "rep-1",
        "incident_id": ids[0],
        "township_code": TOWNSHIP_A,
        "number": 1,
        "casualties": casualties(deaths=2),
        "affected": BASE["affected"],
    }
    deliver(stack, reporting_event(stack, "followup_filed", payload))
    merge = {"primary_id": ids[0], "reason": "同一河堤漫溢"}
    assert stack.call("POST", f"/v1/incidents/{ids[1]}/merge", json=merge).status_code == 200
    close = {"reason": "險情解除"}
    response = stack.call("POST", f"/v1/incidents/{ids[2]}/close", who="leader", json=close)
    assert response.status_code == 200
    keyed = stack.call(
        "POST", "/v1/incidents", who="township_a", json=body, headers={"Idempotency-Key": "k-1"}
    )
    assert keyed.status_code == 201
    stack.settle()
    return [*ids, drill, keyed.json()["id"]], body


def read_all(stack: Stack, ids: list[str]) -> dict[str, Any]:
    """Every incident's detail and the whole list, page by page."""
    details = {i: stack.call("GET", f"/v1/incidents/{i}").json() for i in ids}
    pages, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = stack.call("GET", "/v1/incidents", params=params).json()
        pages.append([item["id"] for item in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            return {"details": details, "pages": pages}


def test_incidents_come_over_on_first_start_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    with previous_engine(monkeypatch), running_stack(tmp_path, [SPEC], data_dir=data) as old:
        ids, keyed_body = write_history(old)
        before = read_all(old, ids)
        old_key = old.keys["township_a"]
    assert not sqlite_file(Settings(data_dir=data), "intake").exists()  # type: ignore[union-attr]
    with running_stack(tmp_path, [SPEC], data_dir=data) as new:
        assert new.ctx("intake").resources["repository"].count_incidents() == len(ids)
        after = read_all(new, ids)
        # The key of a request made before the move still answers with the same incident.
        new.keys["old_township_a"] = old_key
        replay = new.call(
            "POST",
            "/v1/incidents",
            who="old_township_a",
            json=keyed_body,
            headers={"Idempotency-Key": "k-1"},
        )
    assert after == before
    kinds = [h["kind"] for h in before["details"][ids[0]]["history"]]
    assert kinds[0] == "reported" and {"updated", "merged"} <= set(kinds)
    assert before["details"][ids[1]]["status"] == "merged"
    assert before["details"][ids[2]]["status"] == "closed"
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.json()["id"] == ids[-1]


def test_pending_events_move_into_the_outbox_and_a_second_run_copies_nothing(
    tmp_path: Path,
) -> None:
    from libs.common.clock import ManualClock
    from tests.intake.test_repository_contract import T0, event, incident

    engine = EmbeddedEngine(tmp_path / "store")
    db = SqliteDatabase(tmp_path / "yingji_intake.sqlite3")
    try:
        legacy = MongoIntakeRepository(engine.database("yingji_intake"))
        legacy.ensure_schema()
        waiting = event("a")
        legacy.record_incident_with_event(incident("a"), "auto:a", "h", [waiting])
        legacy.record_incident_with_event(incident("b"), "auto:b", "h", [])
        repo = SqliteIntakeRepository(db)
        repo.ensure_schema()
        assert import_legacy_incidents(engine.database("yingji_intake"), repo) == 2
        assert import_legacy_incidents(engine.database("yingji_intake"), repo) == 0
        moved = repo.incident_by_id("a")
        assert moved is not None
        assert not any(key.startswith("_outbox") for key in moved)
        assert moved["_idem"] == {"key": "auto:a", "hash": "h"}
        [source] = repo.relay_parts().sources
        batch = source.claim(10, 30.0, "relay")
        assert batch is not None
        assert [e.event_id for e in batch.events] == [waiting.event_id]
        assert ManualClock(T0).now() == moved["occurred_at"]
    finally:
        db.close()
        engine.close()


def test_the_cli_migrates_a_data_directory(tmp_path: Path) -> None:
    from tests.intake.test_repository_contract import incident
    from yingji.cli import main

    data = tmp_path / "data"
    engine = EmbeddedEngine(data / "store")
    try:
        legacy = MongoIntakeRepository(engine.database("yingji_intake"))
        for ident in ("a", "b", "c"):
            legacy.record_incident_with_event(incident(ident), f"auto:{ident}", "h", [])
    finally:
        engine.close()
    main(["migrate-store", "--data-dir", str(data)])
    db = SqliteDatabase(data / "yingji_intake.sqlite3")
    try:
        repo = SqliteIntakeRepository(db)
        assert repo.count_incidents() == 3 and repo.imported()
    finally:
        db.close()
