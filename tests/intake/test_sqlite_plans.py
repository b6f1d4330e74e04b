"""Every query intake's SQLite repository makes is answered from an index, never by reading the
whole table (checked with EXPLAIN QUERY PLAN, so no timing is involved)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from libs.common.sqlite import SqliteDatabase
from services.intake.repository.sqlite import SqliteIntakeRepository

pytestmark = pytest.mark.store


@pytest.fixture
def db(tmp_path: Path) -> Iterator[SqliteDatabase]:
    """A SQLite file with intake's schema."""
    database = SqliteDatabase(tmp_path / "intake.sqlite3")
    SqliteIntakeRepository(database).ensure_schema()
    yield database
    database.close()


def plan(db: SqliteDatabase, sql: str, params: tuple[object, ...]) -> str:
    """The query plan as one line per step."""
    return "\n".join(row[3] for row in db.query(f"EXPLAIN QUERY PLAN {sql}", params))


@pytest.mark.parametrize(
    ("sql", "params", "index"),
    [
        (
            "SELECT doc FROM incidents WHERE category = ? AND status = 'open' AND exercise = ?"
            " AND occurred_at BETWEEN ? AND ? ORDER BY occurred_at, id LIMIT 500",
            ("flood", 0, "a", "b"),
            "incidents_duplicates",
        ),
        (
            "SELECT id FROM incidents WHERE category = ? AND status = 'open' AND exercise = ?"
            " AND township_code = ? AND occurred_at BETWEEN ? AND ?",
            ("flood", 0, "349901001", "a", "b"),
            "incidents_duplicates_township",
        ),
        ("SELECT doc FROM incidents WHERE idem_key = ?", ("k",), "incidents_idem"),
        (
            "SELECT doc FROM incidents ORDER BY reported_at DESC, id DESC LIMIT 51",
            (),
            "incidents_reported",
        ),
        (
            "SELECT doc FROM incidents WHERE township_code = ?"
            " ORDER BY reported_at DESC, id DESC LIMIT 51",
            ("349901001",),
            "incidents_township",
        ),
        (
            "SELECT doc FROM incidents WHERE status = ? AND grade = ?"
            " ORDER BY reported_at DESC, id DESC LIMIT 51",
            ("open", 1),
            "incidents_status_grade_list",
        ),
        (
            "SELECT doc FROM incidents WHERE status = ?"
            " ORDER BY reported_at DESC, id DESC LIMIT 51",
            ("open",),
            "incidents_status_list",
        ),
        (
            "SELECT doc FROM incidents WHERE category = ?"
            " ORDER BY reported_at DESC, id DESC LIMIT 51",
            ("flood",),
            "incidents_category_list",
        ),
        (
            "SELECT grade, count(*) FROM incidents WHERE status = 'open' AND exercise = 0"
            " GROUP BY grade",
            (),
            "incidents_status",
        ),
    ],
)
def test_queries_use_their_index(
    db: SqliteDatabase, sql: str, params: tuple[object, ...], index: str
) -> None:
    steps = plan(db, sql, params)
    assert index in steps, steps
    assert "SCAN incidents\n" not in steps + "\n", steps
    assert "USE TEMP B-TREE FOR ORDER BY" not in steps, steps


def test_pending_events_are_found_without_reading_sent_history(db: SqliteDatabase) -> None:
    steps = plan(
        db,
        "SELECT 1 FROM outbox WHERE aggregate_id = ? AND lease_until >= ?",
        ("a", 0.0),
    )
    assert "outbox_aggregate" in steps, steps
