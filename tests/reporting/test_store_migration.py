"""A data directory written by the previous embedded engine (litemongo documents under
``<data_dir>/store``) comes over to reporting's SQLite file on first start, or through
``yingji migrate-store``, and every report chain, deadline, timeline, zero report and published
summary reads back identical over the API."""

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
from services.reporting import service as reporting_service
from services.reporting.repository.legacy import import_legacy_documents
from services.reporting.repository.mongo import MongoReportingRepository
from services.reporting.repository.sqlite import SqliteReportingRepository
from services.reporting.service import SPEC
from tests.reporting.support import (
    emit,
    incident_reported,
    report_body,
    scan,
    zero_body,
)
from tests.support.stack import TOWNSHIP_A, TOWNSHIP_B, Stack, running_stack

pytestmark = pytest.mark.e2e
DUTY_EVENTS = {
    "duty_shift_unstaffed",
    "duty_handover_missing",
    "duty_handover_confirmed",
    "upward_report_sent",
    "upward_report_failed",
    "upstream_request_received",
}


@contextmanager
def previous_engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Reporting as it ran before: its documents in the litemongo store of the data directory."""
    with monkeypatch.context() as patch:
        patch.setattr(reporting_service, "sqlite_file", lambda settings, name: None)
        # The service's database is the live previous engine again, not today's read-only
        # reader of its files (which only the import needs).
        patch.setattr(StoreFactory, "database", lambda self, service: self.document_store(service))
        yield


def write_history(stack: Stack) -> tuple[list[str], dict[str, Any]]:
    """Incidents, a keyed follow-up, a re-grade, a close, overdue deadlines, a zero report and a
    published daily summary."""
    ids = [
        incident_reported(stack, grade=4).payload["incident_id"],
        incident_reported(stack, township_code=TOWNSHIP_B).payload["incident_id"],
        incident_reported(stack, exercise=True).payload["incident_id"],
    ]
    body = report_body(ids[0], affected={**report_body("")["affected"], "people_affected": 9})
    keyed = stack.call("POST", "/v1/reports", json=body, headers={"Idempotency-Key": "k-1"})
    assert keyed.status_code == 201, keyed.text
    emit(
        stack,
        "intake",
        "incident_regraded",
        {
            "incident_id": ids[0],
            "township_code": TOWNSHIP_A,
            "category": "flood",
            "old_grade": 4,
            "new_grade": 3,
            "reason": "人数上升",
            "skipped_grades": False,
            "exercise": False,
        },
        correlation_id=ids[0],
    )
    emit(
        stack,
        "intake",
        "incident_closed",
        {
            "incident_id": ids[1],
            "township_code": TOWNSHIP_B,
            "closed_by": "leader",
            "reason": "险情解除",
            "exercise": False,
        },
        correlation_id=ids[1],
    )
    day = stack.clock.now().date()
    # 「无事件」 on a day with an incident is refused and kept as possible concealment (疑似瞒报).
    refused = stack.call(
        "POST", "/v1/zero-reports", who="township_a", json=zero_body(TOWNSHIP_A, day)
    )
    assert refused.status_code == 409, refused.text
    listed = zero_body(TOWNSHIP_B, day, nothing_to_report=False, incident_ids=[ids[1]])
    filed = stack.call("POST", "/v1/zero-reports", who="township_b", json=listed)
    assert filed.status_code == 201, filed.text
    # Late in the night, before the day's zero-report cut-off (so no missed-report alert is
    # counted into the process-wide counters other tests read): follow-up slots fell due.
    stack.clock.advance(timedelta(hours=20))
    scan(stack)
    published = stack.call("POST", "/v1/summaries/daily/publish", params={"date": day.isoformat()})
    assert published.status_code == 201, published.text
    stack.settle()
    return ids, body


def pages(stack: Stack, path: str, **params: Any) -> list[list[dict[str, Any]]]:
    """Every page of a list, a few items at a time."""
    found, cursor = [], None
    while True:
        query = {"limit": 3, **params, **({"cursor": cursor} if cursor else {})}
        page = stack.call("GET", path, params=query).json()
        found.append(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return found


def read_all(stack: Stack, ids: list[str], day: str) -> dict[str, Any]:
    """Everything reporting answers about the history."""
    return {
        "chains": {
            i: stack.call("GET", "/v1/reports", params={"incident_id": i}).json() for i in ids
        },
        "timelines": {i: stack.call("GET", f"/v1/timeline/{i}").json() for i in ids},
        "deadlines": pages(stack, "/v1/deadlines"),
        # The duty office keeps its own file (nothing of it moves); its timer raises what is
        # due at the new start (an unstaffed shift a day ahead), so its events are left out.
        "audit": [
            item
            for page in pages(stack, "/v1/audit")
            for item in page
            if item["event_type"] not in DUTY_EVENTS
        ],
        "zero": stack.call("GET", "/v1/zero-reports", params={"date": day}).json(),
        "daily": stack.call("GET", "/v1/summaries/daily", params={"date": day}).json(),
        "scores": stack.call("GET", "/v1/scores", params={"month": day[:7]}).json(),
    }


def test_reporting_comes_over_on_first_start_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    with previous_engine(monkeypatch), running_stack(tmp_path, [SPEC], data_dir=data) as old:
        day = old.clock.now().date().isoformat()
        ids, keyed_body = write_history(old)
        before = read_all(old, ids, day)
        now = old.clock.now()
        operator_key = old.keys["operator"]
    assert not sqlite_file(Settings(data_dir=data), "reporting").exists()  # type: ignore[union-attr]
    with running_stack(tmp_path, [SPEC], data_dir=data, start=now) as new:
        repo = new.ctx("reporting").resources["repository"]
        assert isinstance(repo, SqliteReportingRepository) and repo.imported()
        after = read_all(new, ids, day)
        # The key of a request made before the move still answers with the same report.
        new.keys["old_operator"] = operator_key
        replay = new.call(
            "POST",
            "/v1/reports",
            who="old_operator",
            json=keyed_body,
            headers={"Idempotency-Key": "k-1"},
        )
    assert after == before
    assert [item["kind"] for item in before["chains"][ids[0]]["items"]] == ["initial", "followup"]
    assert before["daily"]["published_at"] is not None
    assert before["zero"]["contradictions"] and before["zero"]["filed"]
    assert any(d["status"] == "overdue" for page in before["deadlines"] for d in page)
    assert replay.status_code in (200, 201)
    assert replay.json()["id"] == before["chains"][ids[0]]["items"][1]["id"]


def test_pending_events_move_into_the_outbox_and_a_second_run_copies_nothing(
    tmp_path: Path,
) -> None:
    from tests.reporting.test_repository_contract import T0, deadline, event

    engine = EmbeddedEngine(tmp_path / "store")
    db = SqliteDatabase(tmp_path / "yingji_reporting.sqlite3")
    try:
        legacy = MongoReportingRepository(engine.database("yingji_reporting"))
        legacy.ensure_schema()
        legacy.record_deadline_if_new(deadline("d1"))
        waiting = event("d1")
        assert legacy.mark_overdue("d1", T0, T0, waiting)
        entry = {"_id": "e1", "order_key": "k", "incident_ids": ["i1", "i2"], "occurred_at": T0}
        legacy.record_timeline_entry(entry)
        repo = SqliteReportingRepository(db)
        repo.ensure_schema()
        assert import_legacy_documents(engine.database("yingji_reporting"), repo) == 2
        assert import_legacy_documents(engine.database("yingji_reporting"), repo) == 0
        moved = repo.deadline_by_id("d1")
        assert moved is not None
        assert not any(key.startswith("_outbox") for key in moved)
        assert (moved["status"], moved["due_at"]) == ("overdue", T0)
        [source] = repo.relay_parts().sources
        batch = source.claim(10, 30.0, "relay")
        assert batch is not None
        assert [e.event_id for e in batch.events] == [waiting.event_id]
        # An entry about two incidents is found from either after the move.
        assert [r["_id"] for r in repo.timeline_page("i2", 10, None)[0]] == ["e1"]
    finally:
        db.close()
        engine.close()


def test_the_cli_migrates_a_data_directory(tmp_path: Path) -> None:
    from tests.reporting.test_repository_contract import deadline
    from yingji.cli import main

    data = tmp_path / "data"
    engine = EmbeddedEngine(data / "store")
    try:
        legacy = MongoReportingRepository(engine.database("yingji_reporting"))
        for ident in ("a", "b", "c"):
            legacy.record_deadline_if_new(deadline(ident))
    finally:
        engine.close()
    main(["migrate-store", "--data-dir", str(data)])
    db = SqliteDatabase(data / "yingji_reporting.sqlite3")
    try:
        repo = SqliteReportingRepository(db)
        assert repo.imported()
        assert sorted(d["_id"] for d in repo.deadlines_due(deadline("x")["due_at"])) == [
            "a",
            "b",
            "c",
        ]
    finally:
        db.close()
