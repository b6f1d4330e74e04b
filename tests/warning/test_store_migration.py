"""The warning service's documents in the previous embedded engine's files (under
``<data_dir>/store``) come over to its SQLite file, pending events into its outbox, once;
``yingji migrate-store`` does the same.

That a whole data directory of the previous engine (incidents, warnings, orders, reports and keys)
reads back identical over the API, on first start and after ``migrate-store``, is
tests/platform/test_legacy_migration.py, on the fixture the previous engine wrote. Here the old
documents are written through the Mongo repository on mongomock in the previous engine's file
format (tests/support/legacy_store.py)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from libs.common.eventmodels import warning as warning_events
from libs.common.sqlite import SqliteDatabase
from services.warning.domain import township_target
from services.warning.repository.legacy import import_legacy_warnings
from services.warning.repository.mongo import MongoWarningRepository
from services.warning.repository.sqlite import SqliteWarningRepository
from services.warning.rules import load_rules
from services.warning.service import build_spec, use_cases
from tests.support.legacy_store import (
    mongomock_database,
    previous_engine_reader,
    write_previous_engine,
)
from tests.support.stack import running_stack
from tests.warning.conftest import TOWNSHIP_A

pytestmark = pytest.mark.e2e
assert warning_events  # the warning event models are registered

# The delivery job runs when the test says so: the history is the same on every run.
SPEC = build_spec(
    load_rules().with_changes(delivery={"worker_interval_seconds": 3600}), wake_on_issue=False
)


def test_pending_events_move_into_the_outbox_and_a_second_run_copies_nothing(
    tmp_path: Path,
) -> None:
    from tests.warning.test_repository_contract import expired, receipt, warning

    source = mongomock_database("yingji_warning")
    db = SqliteDatabase(tmp_path / "yingji_warning.sqlite3")
    try:
        legacy = MongoWarningRepository(source)
        legacy.ensure_schema()
        doc = warning("w")
        waiting = expired(doc)
        legacy.record_warning(doc, "auto:w", "h", [waiting])
        legacy.ensure_receipt(receipt("w", township_target(TOWNSHIP_A)))
        legacy.merge_incident_event("inc", "e1", lambda view: {"status": "open"})
        legacy.first_delivery("w:v1:349901001", doc["created_at"], "短信")
        repo = SqliteWarningRepository(db)
        repo.ensure_schema()
        assert import_legacy_warnings(previous_engine_reader(tmp_path, source), repo) == 4
        assert import_legacy_warnings(previous_engine_reader(tmp_path, source), repo) == 0
        moved = repo.warning_by_id("w")
        assert moved is not None
        assert not any(key.startswith("_outbox") for key in moved)
        assert moved["_idem"] == {"key": "auto:w", "hash": "h"}
        assert moved["expiry_due"] == doc["expiry_due"]
        assert repo.warnings_due_to_expire(doc["expires"] + timedelta(seconds=1), 5) == [moved]
        view = repo.incident("inc")
        assert view is not None and view["_applied"] == ["e1"]
        assert not repo.first_delivery("w:v1:349901001", doc["created_at"], "短信")
        [outbox] = repo.relay_parts().sources
        batch = outbox.claim(10, 30.0, "relay")
        assert batch is not None
        assert [e.event_id for e in batch.events] == [waiting.event_id]
    finally:
        db.close()


def test_the_cli_migrates_the_warning_service(tmp_path: Path) -> None:
    from tests.warning.test_repository_contract import warning
    from yingji.cli import main

    data = tmp_path / "data"
    source = mongomock_database("yingji_warning")
    legacy = MongoWarningRepository(source)
    for ident in ("a", "b", "c"):
        legacy.record_warning(warning(ident), f"auto:{ident}", "h", [])
    write_previous_engine(data, source)
    main(["migrate-store", "--data-dir", str(data)])
    db = SqliteDatabase(data / "yingji_warning.sqlite3")
    try:
        repo = SqliteWarningRepository(db)
        assert repo.imported()
        assert repo.count_active_by_level()[3] == 3
    finally:
        db.close()


def test_a_fresh_data_directory_is_marked_imported(tmp_path: Path) -> None:
    with running_stack(tmp_path, [SPEC], data_dir=tmp_path / "data") as first:
        repo = first.ctx("warning").resources["repository"]
        assert isinstance(repo, SqliteWarningRepository) and repo.imported()
        assert use_cases(first.ctx("warning")).repo is repo
