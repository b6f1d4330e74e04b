"""The warning service's SQLite queries that a growing history would slow down are answered
from an index, never by reading a whole table (checked with EXPLAIN QUERY PLAN, so no timing
is involved)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from libs.common.sqlite import SqliteDatabase
from services.warning.repository.sqlite import (
    ACKNOWLEDGED,
    ESCALATED,
    REPEAT_OF,
    TARGET_CODE,
    TARGET_KIND,
    SqliteWarningRepository,
)

pytestmark = pytest.mark.store


@pytest.fixture
def db(tmp_path: Path) -> Iterator[SqliteDatabase]:
    """A SQLite file with the warning service's schema."""
    database = SqliteDatabase(tmp_path / "warning.sqlite3")
    SqliteWarningRepository(database).ensure_schema()
    yield database
    database.close()


def plan(db: SqliteDatabase, sql: str, params: tuple[object, ...]) -> str:
    """The query plan as one line per step."""
    return "\n".join(row[3] for row in db.query(f"EXPLAIN QUERY PLAN {sql}", params))


@pytest.mark.parametrize(
    ("sql", "params", "index"),
    [
        ("SELECT doc FROM warnings WHERE idem_key = ?", ("k",), "warnings_idem"),
        (
            "SELECT json_remove(doc, '$.versions') FROM warnings"
            " ORDER BY created_at DESC, id DESC LIMIT 51",
            (),
            "warnings_created",
        ),
        (
            "SELECT json_remove(doc, '$.versions') FROM warnings WHERE status IN (?)"
            " ORDER BY created_at DESC, id DESC LIMIT 51",
            ("active",),
            "warnings_status_created",
        ),
        (
            "SELECT doc FROM warnings WHERE status = 'active' AND exercise = 0"
            " ORDER BY issued_at DESC, id DESC LIMIT 500",
            (),
            "warnings_feed",
        ),
        (
            "SELECT level, count(*) FROM warnings"
            " WHERE status = 'active' AND exercise = 0 GROUP BY level",
            (),
            "warnings_active",
        ),
        (
            "SELECT doc FROM warnings WHERE expiry_due <= ? ORDER BY expiry_due LIMIT 200",
            ("x",),
            "warnings_expiry",
        ),
        ("SELECT id FROM warnings WHERE fanout_due = 1 LIMIT 50", (), "warnings_fanout"),
        (
            "SELECT doc FROM deliveries WHERE next_attempt_at <= ?"
            " ORDER BY next_attempt_at LIMIT 50",
            ("x",),
            "deliveries_due",
        ),
        (
            "SELECT json_remove(doc, '$.message') FROM deliveries"
            " WHERE warning_id = ? AND township_code IN (?, ?) ORDER BY version, channel",
            ("w", "a", "b"),
            "deliveries_by_warning",
        ),
        (
            f"SELECT warning_id, version, {TARGET_KIND}, {TARGET_CODE}, state FROM deliveries"
            f" INDEXED BY deliveries_by_warning WHERE warning_id IN (?, ?) AND {REPEAT_OF} IS NULL",
            ("w", "v"),
            "deliveries_by_warning",
        ),
        (
            f"SELECT warning_id, version, {TARGET_KIND}, {TARGET_CODE}, {ACKNOWLEDGED},"
            f" {ESCALATED} FROM acks INDEXED BY acks_reach"
            f" WHERE warning_id IN (?, ?) AND {REPEAT_OF} IS NULL",
            ("w", "v"),
            "acks_reach",
        ),
        (
            "UPDATE deliveries SET doc = json_set(doc, '$.state', 'superseded')"
            " WHERE warning_id = ? AND state = 'pending' AND version < ?",
            ("w", 2),
            "deliveries_older",
        ),
        (
            "SELECT count(*) FROM deliveries WHERE state = 'pending'",
            (),
            "deliveries_state",
        ),
        (
            "SELECT doc FROM acks WHERE ack_due_at <= ? ORDER BY ack_due_at LIMIT 500",
            ("x",),
            "acks_due",
        ),
        (
            "SELECT doc FROM acks WHERE warning_id = ? AND township_code IN (?)"
            " ORDER BY version, id",
            ("w", "a"),
            "acks_warning",
        ),
        (
            "UPDATE acks SET doc = json_set(doc, '$.state', 'closed')"
            " WHERE warning_id = ? AND state = 'pending' AND due_at >= ?",
            ("w", "x"),
            "acks_older",
        ),
        (
            "SELECT doc FROM suggestions WHERE incident_id = ? AND status = 'pending'",
            ("i",),
            "suggestions_incident",
        ),
        (
            "SELECT doc FROM suggestions WHERE status = ?"
            " ORDER BY created_at DESC, id DESC LIMIT 51",
            ("pending",),
            "suggestions_status",
        ),
        (
            "SELECT doc FROM suggestions ORDER BY created_at DESC, id DESC LIMIT 51",
            (),
            "suggestions_created",
        ),
    ],
)
def test_the_query_uses_its_index(
    db: SqliteDatabase, sql: str, params: tuple[object, ...], index: str
) -> None:
    steps = plan(db, sql, params)
    assert index in steps, steps
    # One warning's deliveries and receipts (townships × channels × versions) are sorted after
    # the index found them; every other list walks its index in order.
    if index not in ("deliveries_by_warning", "acks_warning"):
        assert "TEMP B-TREE" not in steps, steps
