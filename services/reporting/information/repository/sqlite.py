"""Information work on SQLite: items, feedback and missed flags as JSON with generated columns
for what lists filter on, each inserted once by id in one transaction with its outbox rows."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from libs.common.events import EventEnvelope
from libs.common.outbox import SQLITE_OUTBOX_SCHEMA, append_events
from libs.common.repository_tails import SqliteRepositoryWithState
from libs.common.sqlite import dumps
from services.reporting.information.repository import Counts, Period

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS information_items ("
    " id TEXT PRIMARY KEY,"
    " doc TEXT NOT NULL CHECK (json_valid(doc)),"
    " exercise INTEGER GENERATED ALWAYS AS (doc ->> '$.exercise') VIRTUAL,"
    " month TEXT GENERATED ALWAYS AS (doc ->> '$.month') VIRTUAL,"
    " week TEXT GENERATED ALWAYS AS (doc ->> '$.week') VIRTUAL,"
    " unit_kind TEXT GENERATED ALWAYS AS (doc ->> '$.unit_kind') VIRTUAL,"
    " unit_code TEXT GENERATED ALWAYS AS (doc ->> '$.unit_code') VIRTUAL,"
    " kind TEXT GENERATED ALWAYS AS (doc ->> '$.kind') VIRTUAL,"
    " submitted_at TEXT GENERATED ALWAYS AS (doc ->> '$.submitted_at.\"$date\"') VIRTUAL)",
    # A month's list (newest first) and the counts of a month or a week, real or drill.
    "CREATE INDEX IF NOT EXISTS information_items_month"
    " ON information_items (exercise, month, unit_kind, unit_code, submitted_at)",
    "CREATE INDEX IF NOT EXISTS information_items_week"
    " ON information_items (exercise, week, unit_kind, unit_code, kind)",
    "CREATE TABLE IF NOT EXISTS information_feedback ("
    " id TEXT PRIMARY KEY,"
    " doc TEXT NOT NULL CHECK (json_valid(doc)),"
    " target_kind TEXT GENERATED ALWAYS AS (doc ->> '$.target_kind') VIRTUAL,"
    " target_id TEXT GENERATED ALWAYS AS (doc ->> '$.target_id') VIRTUAL,"
    " exercise INTEGER GENERATED ALWAYS AS (doc ->> '$.exercise') VIRTUAL,"
    " month TEXT GENERATED ALWAYS AS (doc ->> '$.month') VIRTUAL,"
    " day TEXT GENERATED ALWAYS AS (doc ->> '$.date') VIRTUAL,"
    " recorded_at TEXT GENERATED ALWAYS AS (doc ->> '$.recorded_at.\"$date\"') VIRTUAL)",
    "CREATE INDEX IF NOT EXISTS information_feedback_target"
    " ON information_feedback (target_kind, target_id, recorded_at)",
    "CREATE INDEX IF NOT EXISTS information_feedback_month"
    " ON information_feedback (exercise, month, day, id)",
    "CREATE TABLE IF NOT EXISTS information_missed ("
    " id TEXT PRIMARY KEY,"
    " doc TEXT NOT NULL CHECK (json_valid(doc)),"
    " period TEXT GENERATED ALWAYS AS (doc ->> '$.period') VIRTUAL)",
    "CREATE INDEX IF NOT EXISTS information_missed_period ON information_missed (period, id)",
    *SQLITE_OUTBOX_SCHEMA,
]


class SqliteInformationRepository(SqliteRepositoryWithState):
    """InformationRepository on one SQLite file (shared by reporting's processes on one host)."""

    SCHEMA = SCHEMA

    def item(self, item_id: str) -> dict[str, Any] | None:
        """One item by primary key."""
        docs = self.db.documents("SELECT doc FROM information_items WHERE id = ?", (item_id,))
        return docs[0] if docs else None

    def _insert_once(
        self, table: str, doc: Mapping[str, Any], events: Sequence[EventEnvelope]
    ) -> bool:
        """One transaction: the row and its outbox rows, unless the id is taken."""
        with self.db.transaction() as conn:
            row = conn.execute(
                f"INSERT OR IGNORE INTO {table} (id, doc) VALUES (?, ?) RETURNING id",
                (doc["_id"], dumps(doc)),
            ).fetchone()
            if row is not None:
                append_events(conn, doc["_id"], events)
        return row is not None

    def record_item(
        self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]
    ) -> tuple[dict[str, Any], bool]:
        """Insert once; an existing id returns the stored item."""
        if self._insert_once("information_items", doc, events):
            return dict(doc), True
        existing = self.item(doc["_id"])
        if existing is None:
            raise sqlite3.IntegrityError(f"information item {doc['_id']} vanished")
        return existing, False

    def items_of_month(
        self, month: str, exercise: bool, unit_kind: str | None = None, unit_code: str | None = None
    ) -> list[dict[str, Any]]:
        """A range of the month index, newest first."""
        where, params = "exercise = ? AND month = ?", [int(exercise), month]
        if unit_kind is not None:
            where += " AND unit_kind = ?"
            params.append(unit_kind)
        if unit_code is not None:
            where += " AND unit_code = ?"
            params.append(unit_code)
        return self.db.documents(
            f"SELECT doc FROM information_items WHERE {where} ORDER BY submitted_at DESC, id",
            params,
        )

    def item_counts(self, period: Period, value: str) -> Counts:
        """GROUP BY unit and kind over the week or month index (real items only)."""
        column = {"week": "week", "month": "month"}[period]
        rows = self.db.query(
            f"SELECT unit_kind, unit_code, kind, COUNT(*) FROM information_items"
            f" WHERE exercise = 0 AND {column} = ? GROUP BY unit_kind, unit_code, kind",
            (value,),
        )
        return {(r[0], r[1], r[2]): int(r[3]) for r in rows}

    def record_feedback(
        self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]
    ) -> tuple[dict[str, Any], bool]:
        """Insert once; an existing id returns the stored feedback."""
        if self._insert_once("information_feedback", doc, events):
            return dict(doc), True
        found = self.db.documents(
            "SELECT doc FROM information_feedback WHERE id = ?", (doc["_id"],)
        )
        if not found:
            raise sqlite3.IntegrityError(f"feedback {doc['_id']} vanished")
        return found[0], False

    def feedback_of_target(self, target_kind: str, target_id: str) -> list[dict[str, Any]]:
        """The target index, oldest first."""
        return self.db.documents(
            "SELECT doc FROM information_feedback WHERE target_kind = ? AND target_id = ?"
            " ORDER BY recorded_at, id",
            (target_kind, target_id),
        )

    def feedback_of_month(self, month: str, exercise: bool) -> list[dict[str, Any]]:
        """The month index."""
        return self.db.documents(
            "SELECT doc FROM information_feedback WHERE exercise = ? AND month = ?"
            " ORDER BY day, id",
            (int(exercise), month),
        )

    def record_missed(self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]) -> bool:
        """Insert once (by id), the event with it."""
        return self._insert_once("information_missed", doc, events)

    def missed_of_period(self, period: str) -> list[dict[str, Any]]:
        """The period's flags, by id."""
        return self.db.documents(
            "SELECT doc FROM information_missed WHERE period = ? ORDER BY id", (period,)
        )
