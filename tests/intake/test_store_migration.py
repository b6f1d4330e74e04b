"""Intake's documents in the previous embedded engine's files (under ``<data_dir>/store``) come
over to intake's SQLite file, pending events into its outbox, once; ``yingji migrate-store``
does the same.

That a whole data directory of the previous engine (incidents, warnings, orders, reports and keys)
reads back identical over the API, on first start and after ``migrate-store``, is
tests/platform/test_legacy_migration.py, on the fixture the previous engine wrote. Here the old
documents are written through the Mongo repository on mongomock in the previous engine's file
format (tests/support/legacy_store.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from libs.common.settings import Settings
from libs.common.sqlite import SqliteDatabase
from libs.common.store import StoreFactory
from services.intake.repository.legacy import import_legacy_incidents
from services.intake.repository.mongo import MongoIntakeRepository
from services.intake.repository.sqlite import SqliteIntakeRepository
from tests.support.legacy_store import mongomock_database, write_previous_engine

pytestmark = pytest.mark.e2e


def test_pending_events_move_into_the_outbox_and_a_second_run_copies_nothing(
    tmp_path: Path,
) -> None:
    from libs.common.clock import ManualClock
    from tests.intake.test_repository_contract import T0, event, incident

    source = mongomock_database("yingji_intake")
    legacy = MongoIntakeRepository(source)
    legacy.ensure_schema()
    waiting = event("a")
    legacy.record_incident_with_event(incident("a"), "auto:a", "h", [waiting])
    legacy.record_incident_with_event(incident("b"), "auto:b", "h", [])
    write_previous_engine(tmp_path, source)
    reader = StoreFactory(Settings(data_dir=tmp_path)).database("intake")
    db = SqliteDatabase(tmp_path / "yingji_intake.sqlite3")
    try:
        repo = SqliteIntakeRepository(db)
        repo.ensure_schema()
        assert import_legacy_incidents(reader, repo) == 2
        assert import_legacy_incidents(reader, repo) == 0
        moved = repo.incident_by_id("a")
        assert moved is not None
        assert not any(key.startswith("_outbox") for key in moved)
        assert moved["_idem"] == {"key": "auto:a", "hash": "h"}
        [outbox] = repo.relay_parts().sources
        batch = outbox.claim(10, 30.0, "relay")
        assert batch is not None
        assert [e.event_id for e in batch.events] == [waiting.event_id]
        assert ManualClock(T0).now() == moved["occurred_at"]
    finally:
        db.close()


def test_the_cli_migrates_a_data_directory(tmp_path: Path) -> None:
    from tests.intake.test_repository_contract import incident
    from yingji.cli import main

    data = tmp_path / "data"
    source = mongomock_database("yingji_intake")
    legacy = MongoIntakeRepository(source)
    for ident in ("a", "b", "c"):
        legacy.record_incident_with_event(incident(ident), f"auto:{ident}", "h", [])
    write_previous_engine(data, source)
    main(["migrate-store", "--data-dir", str(data)])
    db = SqliteDatabase(data / "yingji_intake.sqlite3")
    try:
        repo = SqliteIntakeRepository(db)
        assert repo.count_incidents() == 3 and repo.imported()
    finally:
        db.close()
