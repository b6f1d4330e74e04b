"""Dispatch's documents in the previous embedded engine's files (under ``<data_dir>/store``)
come over to its SQLite file, pending events and ledger copies into place, once;
``migrate_store`` does the same.

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
from services.dispatch import events
from services.dispatch.repository.legacy import import_legacy_dispatch
from services.dispatch.repository.mongo import MongoDispatchRepository
from services.dispatch.repository.sqlite import SqliteDispatchRepository
from services.dispatch.service import migrate_store
from tests.support.legacy_store import (
    mongomock_database,
    previous_engine_reader,
)

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


def test_pending_events_and_ledger_copies_move_and_a_second_run_copies_nothing(
    tmp_path: Path,
) -> None:
    from tests.dispatch.test_repository_contract import CLOCK, entry, line, order

    source = mongomock_database("yingji_dispatch")
    db = SqliteDatabase(tmp_path / "yingji_dispatch.sqlite3")
    try:
        legacy = MongoDispatchRepository(source)
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
        assert import_legacy_dispatch(previous_engine_reader(tmp_path, source), repo) == 2
        assert import_legacy_dispatch(previous_engine_reader(tmp_path, source), repo) == 0
        moved = repo.order("o1")
        assert moved is not None and moved["_idem"] == {"key": "auto:o1", "hash": "h"}
        assert not any(key.startswith("_outbox") for key in moved)
        stock = repo.stock_line("W01:tent")
        assert stock is not None and stock["quantity"] == 3 and "_ledger_pending" not in stock
        copied = repo.ledger_entry("e1")
        assert copied is not None and copied["delta"] == -1
        [outbox] = repo.relay_parts().sources
        batch = outbox.claim(10, 30.0, "relay")
        assert batch is not None and [e.event_id for e in batch.events] == [waiting.event_id]
    finally:
        db.close()


def test_migrate_store_copies_a_data_directory(tmp_path: Path) -> None:
    from tests.dispatch.test_repository_contract import team

    data = tmp_path / "data"
    source = mongomock_database("yingji_dispatch")
    legacy = MongoDispatchRepository(source)
    for ident in ("T1", "T2", "T3"):
        legacy.add_team_once(team(ident))
    copied = migrate_store(Settings(data_dir=data), previous_engine_reader(data, source))
    assert copied == 3
    db = SqliteDatabase(data / "yingji_dispatch.sqlite3")
    try:
        repo = SqliteDispatchRepository(db)
        assert repo.imported()
        assert sorted(t["_id"] for t in repo.teams_by_ids(["T1", "T2", "T3"])) == ["T1", "T2", "T3"]
    finally:
        db.close()
