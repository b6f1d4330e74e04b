"""Epidemic reports on SQLite: the report as JSON with generated columns for what lists filter on,
a correction as one guarded ``UPDATE … WHERE version = ? … RETURNING``, and events in the outbox
table written in the same transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from libs.common.events import EventEnvelope
from libs.common.outbox import SQLITE_OUTBOX_SCHEMA, append_events
from libs.common.repository_tails import SqliteRepositoryWithState
from libs.common.sqlite import dumps, patched

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS epidemic_reports ("
    " id TEXT PRIMARY KEY,"
    " doc TEXT NOT NULL CHECK (json_valid(doc)),"
    " day TEXT GENERATED ALWAYS AS (doc ->> '$.date') VIRTUAL,"
    " exercise INTEGER GENERATED ALWAYS AS (doc ->> '$.exercise') VIRTUAL,"
    " township_code TEXT GENERATED ALWAYS AS (doc ->> '$.township_code') VIRTUAL,"
    " unit_id TEXT GENERATED ALWAYS AS (doc ->> '$.unit_id') VIRTUAL,"
    " disease_code TEXT GENERATED ALWAYS AS (doc ->> '$.disease_code') VIRTUAL,"
    " version INTEGER GENERATED ALWAYS AS (doc ->> '$.version') VIRTUAL)",
    # A day's line, real or drill, county-wide or one township's, in unit and disease order.
    "CREATE INDEX IF NOT EXISTS epidemic_reports_day"
    " ON epidemic_reports (exercise, day, township_code, unit_id, disease_code)",
    "CREATE TABLE IF NOT EXISTS epidemic_missed ("
    " id TEXT PRIMARY KEY,"
    " doc TEXT NOT NULL CHECK (json_valid(doc)),"
    " day TEXT GENERATED ALWAYS AS (doc ->> '$.date') VIRTUAL)",
    "CREATE INDEX IF NOT EXISTS epidemic_missed_day ON epidemic_missed (day, id)",
    *SQLITE_OUTBOX_SCHEMA,
]


class SqliteEpidemicRepository(SqliteRepositoryWithState):
    """EpidemicRepository on one SQLite file (shared by reporting's processes on one host)."""

    SCHEMA = SCHEMA

    def report(self, report_id: str) -> dict[str, Any] | None:
        """One report by primary key."""
        docs = self.db.documents("SELECT doc FROM epidemic_reports WHERE id = ?", (report_id,))
        return docs[0] if docs else None

    def record_report(
        self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]
    ) -> tuple[dict[str, Any], bool]:
        """One transaction: the row and its outbox rows; an existing id returns the stored one."""
        try:
            with self.db.transaction() as conn:
                conn.execute(
                    "INSERT INTO epidemic_reports (id, doc) VALUES (?, ?)",
                    (doc["_id"], dumps(doc)),
                )
                append_events(conn, doc["_id"], events)
        except sqlite3.IntegrityError:
            existing = self.report(doc["_id"])
            if existing is None:
                raise
            return existing, False
        return dict(doc), True

    def correct_report(
        self,
        report_id: str,
        version: int,
        fields: Mapping[str, Any],
        earlier: Mapping[str, Any],
        events: Sequence[EventEnvelope],
    ) -> bool:
        """Guard: still at ``version``; the version moves on and the earlier figures are kept."""
        expr, params = patched(fields, {"history": [earlier]})
        with self.db.transaction() as conn:
            row = conn.execute(
                f"UPDATE epidemic_reports SET doc = json_set({expr}, '$.version', version + 1)"
                " WHERE id = ? AND version = ? RETURNING id",
                [*params, report_id, version],
            ).fetchone()
            if row is not None:
                append_events(conn, report_id, events)
        return row is not None

    def reports_of_day(
        self, day: str, exercise: bool, township_code: str | None = None
    ) -> list[dict[str, Any]]:
        """A range of the day index."""
        where, params = "exercise = ? AND day = ?", [int(exercise), day]
        if township_code is not None:
            where += " AND township_code = ?"
            params.append(township_code)
        return self.db.documents(
            f"SELECT doc FROM epidemic_reports WHERE {where}"
            " ORDER BY township_code, unit_id, disease_code",
            params,
        )

    def record_missed(self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]) -> bool:
        """Insert once (by id), the event with it."""
        with self.db.transaction() as conn:
            row = conn.execute(
                "INSERT OR IGNORE INTO epidemic_missed (id, doc) VALUES (?, ?) RETURNING id",
                (doc["_id"], dumps(doc)),
            ).fetchone()
            if row is not None:
                append_events(conn, doc["_id"], events)
        return row is not None

    def missed_of_day(self, day: str) -> list[dict[str, Any]]:
        """The day's flags, by id."""
        return self.db.documents(
            "SELECT doc FROM epidemic_missed WHERE day = ? ORDER BY id", (day,)
        )
