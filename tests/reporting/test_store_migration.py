"""Reporting's documents in the previous embedded engine's files (under ``<data_dir>/store``)
come over to its SQLite file, pending events into its outbox, once; ``yingji migrate-store``
does the same.

That a whole data directory of the previous engine (incidents, warnings, orders, reports and keys)
reads back identical over the API, on first start and after ``migrate-store``, is
tests/platform/test_legacy_migration.py, on the fixture the previous engine wrote. Here the old
documents are written through the Mongo repository on mongomock in the previous engine's file
format (tests/support/legacy_store.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from libs.common.sqlite import SqliteDatabase
from services.reporting.repository.legacy import import_legacy_documents
from services.reporting.repository.mongo import MongoReportingRepository
from services.reporting.repository.sqlite import SqliteReportingRepository
from tests.support.legacy_store import (
    mongomock_database,
    previous_engine_reader,
    write_previous_engine,
)

pytestmark = pytest.mark.e2e
DUTY_EVENTS = {
    "duty_shift_unstaffed",
    "duty_handover_missing",
    "duty_handover_confirmed",
    "upward_report_sent",
    "upward_report_failed",
    "upstream_request_received",
}


def test_pending_events_move_into_the_outbox_and_a_second_run_copies_nothing(
    tmp_path: Path,
) -> None:
    from tests.reporting.test_repository_contract import T0, deadline, event

    source = mongomock_database("yingji_reporting")
    db = SqliteDatabase(tmp_path / "yingji_reporting.sqlite3")
    try:
        legacy = MongoReportingRepository(source)
        legacy.ensure_schema()
        legacy.record_deadline_if_new(deadline("d1"))
        waiting = event("d1")
        assert legacy.mark_overdue("d1", T0, T0, waiting)
        entry = {"_id": "e1", "order_key": "k", "incident_ids": ["i1", "i2"], "occurred_at": T0}
        legacy.record_timeline_entry(entry)
        repo = SqliteReportingRepository(db)
        repo.ensure_schema()
        assert import_legacy_documents(previous_engine_reader(tmp_path, source), repo) == 2
        assert import_legacy_documents(previous_engine_reader(tmp_path, source), repo) == 0
        moved = repo.deadline_by_id("d1")
        assert moved is not None
        assert not any(key.startswith("_outbox") for key in moved)
        assert (moved["status"], moved["due_at"]) == ("overdue", T0)
        [outbox] = repo.relay_parts().sources
        batch = outbox.claim(10, 30.0, "relay")
        assert batch is not None
        assert [e.event_id for e in batch.events] == [waiting.event_id]
        # An entry about two incidents is found from either after the move.
        assert [r["_id"] for r in repo.timeline_page("i2", 10, None)[0]] == ["e1"]
    finally:
        db.close()


def test_the_cli_migrates_a_data_directory(tmp_path: Path) -> None:
    from tests.reporting.test_repository_contract import deadline
    from yingji.cli import main

    data = tmp_path / "data"
    source = mongomock_database("yingji_reporting")
    legacy = MongoReportingRepository(source)
    for ident in ("a", "b", "c"):
        legacy.record_deadline_if_new(deadline(ident))
    write_previous_engine(data, source)
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
