"""The duty office on SQLite: one table per kind, the document as JSON with generated columns for
what queries filter and sort on, guarded changes as ``UPDATE … WHERE guard … RETURNING``, events
in the outbox table of the same transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from libs.common.events import EventEnvelope
from libs.common.outbox import SQLITE_OUTBOX_SCHEMA, append_events
from libs.common.repository_tails import SqliteRepository
from libs.common.sqlite import dumps, iso, loads, patched
from services.reporting.duty.repository import PUSH_HELD, PUSH_PENDING

_AT = '"$date"\''  # tail of a JSON path that reads a tagged datetime's text


def _date(field: str) -> str:
    return f"doc ->> '$.{field}.{_AT}"


SCHEMA = [
    "CREATE TABLE IF NOT EXISTS shifts ("
    " id TEXT PRIMARY KEY, doc TEXT NOT NULL CHECK (json_valid(doc)),"
    f" starts_at TEXT GENERATED ALWAYS AS ({_date('starts_at')}) VIRTUAL,"
    " exercise INTEGER GENERATED ALWAYS AS (doc ->> '$.exercise') VIRTUAL)",
    "CREATE INDEX IF NOT EXISTS shifts_start ON shifts (exercise, starts_at)",
    "CREATE TABLE IF NOT EXISTS handovers ("
    " id TEXT PRIMARY KEY, doc TEXT NOT NULL CHECK (json_valid(doc)),"
    " shift_id TEXT GENERATED ALWAYS AS (doc ->> '$.shift_id') VIRTUAL,"
    f" opened_at TEXT GENERATED ALWAYS AS ({_date('opened_at')}) VIRTUAL,"
    " exercise INTEGER GENERATED ALWAYS AS (doc ->> '$.exercise') VIRTUAL)",
    "CREATE UNIQUE INDEX IF NOT EXISTS handovers_shift ON handovers (shift_id)",
    "CREATE INDEX IF NOT EXISTS handovers_opened ON handovers (exercise, opened_at)",
    "CREATE TABLE IF NOT EXISTS spot_checks ("
    " id TEXT PRIMARY KEY, doc TEXT NOT NULL CHECK (json_valid(doc)),"
    f" called_at TEXT GENERATED ALWAYS AS ({_date('called_at')}) VIRTUAL,"
    " exercise INTEGER GENERATED ALWAYS AS (doc ->> '$.exercise') VIRTUAL)",
    "CREATE INDEX IF NOT EXISTS spot_checks_called ON spot_checks (exercise, called_at)",
    "CREATE TABLE IF NOT EXISTS tracked_incidents ("
    " id TEXT PRIMARY KEY, doc TEXT NOT NULL CHECK (json_valid(doc)))",
    "CREATE TABLE IF NOT EXISTS pushes ("
    " id TEXT PRIMARY KEY, doc TEXT NOT NULL CHECK (json_valid(doc)),"
    " status TEXT GENERATED ALWAYS AS (doc ->> '$.status') VIRTUAL,"
    " incident_id TEXT GENERATED ALWAYS AS (doc ->> '$.incident_id') VIRTUAL,"
    " exercise INTEGER GENERATED ALWAYS AS (doc ->> '$.exercise') VIRTUAL,"
    f" created_at TEXT GENERATED ALWAYS AS ({_date('created_at')}) VIRTUAL,"
    f" next_attempt_at TEXT GENERATED ALWAYS AS ({_date('next_attempt_at')}) VIRTUAL,"
    f" lease_until TEXT GENERATED ALWAYS AS ({_date('lease_until')}) VIRTUAL)",
    "CREATE INDEX IF NOT EXISTS pushes_due ON pushes (status, next_attempt_at)",
    "CREATE INDEX IF NOT EXISTS pushes_incident ON pushes (incident_id, status, created_at)",
    "CREATE INDEX IF NOT EXISTS pushes_created ON pushes (created_at)",
    "CREATE TABLE IF NOT EXISTS upstream_requests ("
    " id TEXT PRIMARY KEY, doc TEXT NOT NULL CHECK (json_valid(doc)),"
    " incident_id TEXT GENERATED ALWAYS AS (doc ->> '$.incident_id') VIRTUAL,"
    f" due_at TEXT GENERATED ALWAYS AS ({_date('due_at')}) VIRTUAL,"
    f" received_at TEXT GENERATED ALWAYS AS ({_date('received_at')}) VIRTUAL,"
    " exercise INTEGER GENERATED ALWAYS AS (doc ->> '$.exercise') VIRTUAL)",
    "CREATE INDEX IF NOT EXISTS requests_incident ON upstream_requests (incident_id, received_at)",
    "CREATE INDEX IF NOT EXISTS requests_due ON upstream_requests (exercise, due_at)",
    *SQLITE_OUTBOX_SCHEMA,
]
OPEN_REQUEST_LOOKBACK = timedelta(days=2)


class SqliteDutyRepository(SqliteRepository):
    """DutyRepository on one SQLite file (shared by the reporting processes of one host)."""

    SCHEMA = SCHEMA
    JOURNAL = True

    def _one(self, table: str, ident: str) -> dict[str, Any] | None:
        docs = self.db.documents(f"SELECT doc FROM {table} WHERE id = ?", (ident,))
        return docs[0] if docs else None

    # ------------------------------------------------------------ roster

    def save_shifts(self, shifts: Sequence[Mapping[str, Any]]) -> None:
        """Insert or replace each entry, one transaction."""
        with self.db.transaction() as conn:
            conn.executemany(
                "INSERT INTO shifts (id, doc) VALUES (?, ?)"
                " ON CONFLICT (id) DO UPDATE SET doc = excluded.doc",
                [(s["_id"], dumps(s)) for s in shifts],
            )

    def shifts_between(
        self, start: datetime, end: datetime, exercise: bool
    ) -> list[dict[str, Any]]:
        """Entries starting in [start, end), by the (exercise, starts_at) index."""
        return self.db.documents(
            "SELECT doc FROM shifts WHERE exercise = ? AND starts_at >= ? AND starts_at < ?"
            " ORDER BY starts_at",
            (int(exercise), iso(start), iso(end)),
        )

    def shift_by_id(self, shift_id: str) -> dict[str, Any] | None:
        """One entry by primary key."""
        return self._one("shifts", shift_id)

    def flag_shift(
        self, placeholder: Mapping[str, Any], flag: str, events: Sequence[EventEnvelope]
    ) -> bool:
        """Insert the placeholder if absent, then set the flag where it is not yet set."""
        expr, params = patched({flag: True})
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO shifts (id, doc) VALUES (?, ?) ON CONFLICT (id) DO NOTHING",
                (placeholder["_id"], dumps(placeholder)),
            )
            row = conn.execute(
                f"UPDATE shifts SET doc = {expr} WHERE id = ?"
                f" AND coalesce(doc ->> '$.{flag}', 0) = 0 RETURNING id",
                [*params, placeholder["_id"]],
            ).fetchone()
            if row is None:
                return False
            append_events(conn, placeholder["_id"], events)
        return True

    # ------------------------------------------------------------ handovers

    def open_handover(self, doc: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """Insert; the unique shift index keeps one handover per shift."""
        try:
            with self.db.transaction() as conn:
                conn.execute(
                    "INSERT INTO handovers (id, doc) VALUES (?, ?)", (doc["_id"], dumps(doc))
                )
        except sqlite3.IntegrityError:
            existing = self.handover_of_shift(doc["shift_id"])
            if existing is None:
                raise
            return existing, False
        return dict(doc), True

    def change_open_handover(
        self, handover_id: str, fields: Mapping[str, Any], events: Sequence[EventEnvelope]
    ) -> dict[str, Any] | None:
        """Guarded on the record being unconfirmed; the events in the same transaction."""
        expr, params = patched(fields)
        with self.db.transaction() as conn:
            row = conn.execute(
                f"UPDATE handovers SET doc = {expr} WHERE id = ?"
                " AND doc ->> '$.confirmed_at' IS NULL RETURNING doc",
                [*params, handover_id],
            ).fetchone()
            if row is None:
                return None
            append_events(conn, handover_id, events)
        return self.handover_by_id(handover_id)

    def handover_by_id(self, handover_id: str) -> dict[str, Any] | None:
        """One record by primary key."""
        return self._one("handovers", handover_id)

    def handover_of_shift(self, shift_id: str) -> dict[str, Any] | None:
        """By the unique shift index."""
        docs = self.db.documents("SELECT doc FROM handovers WHERE shift_id = ?", (shift_id,))
        return docs[0] if docs else None

    def recent_handovers(self, limit: int, exercise: bool) -> list[dict[str, Any]]:
        """Newest first by opening time."""
        return self.db.documents(
            "SELECT doc FROM handovers WHERE exercise = ? ORDER BY opened_at DESC, id LIMIT ?",
            (int(exercise), limit),
        )

    # ------------------------------------------------------------ spot checks

    def record_spot_check(self, doc: Mapping[str, Any]) -> None:
        """Insert one check."""
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO spot_checks (id, doc) VALUES (?, ?)", (doc["_id"], dumps(doc))
            )

    def spot_checks_between(
        self, start: datetime, end: datetime, exercise: bool
    ) -> list[dict[str, Any]]:
        """Checks called in [start, end), oldest first."""
        return self.db.documents(
            "SELECT doc FROM spot_checks WHERE exercise = ? AND called_at >= ? AND called_at < ?"
            " ORDER BY called_at, id",
            (int(exercise), iso(start), iso(end)),
        )

    # ------------------------------------------------------------ upward reporting

    def tracked_incident(self, incident_id: str) -> dict[str, Any] | None:
        """One incident the duty office follows."""
        return self._one("tracked_incidents", incident_id)

    def record_decision(
        self,
        incident: Mapping[str, Any] | None,
        pushes: Sequence[Mapping[str, Any]],
        events: Sequence[EventEnvelope],
    ) -> int:
        """The incident's facts, the new pushes and the events in one transaction."""
        created = 0
        with self.db.transaction() as conn:
            if incident is not None:
                conn.execute(
                    "INSERT INTO tracked_incidents (id, doc) VALUES (?, ?)"
                    " ON CONFLICT (id) DO UPDATE SET doc = excluded.doc",
                    (incident["_id"], dumps(incident)),
                )
            for push in pushes:
                cursor = conn.execute(
                    "INSERT INTO pushes (id, doc) VALUES (?, ?) ON CONFLICT (id) DO NOTHING",
                    (push["_id"], dumps(push)),
                )
                created += cursor.rowcount
            if events:
                append_events(conn, incident["_id"] if incident else "duty", events)
        return created

    def release_held(self, incident_id: str, now: datetime) -> int:
        """Held pushes of the incident become pending, due now."""
        expr, params = patched({"status": PUSH_PENDING, "next_attempt_at": now})
        with self.db.transaction() as conn:
            rows = conn.execute(
                f"UPDATE pushes SET doc = {expr} WHERE incident_id = ? AND status = ? RETURNING id",
                [*params, incident_id, PUSH_HELD],
            ).fetchall()
        return len(rows)

    def claim_due_pushes(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[dict[str, Any]]:
        """Lease the oldest due pushes whose lease has run out, in one statement."""
        expr, params = patched({"lease_until": lease_until})
        with self.db.transaction() as conn:
            rows = conn.execute(
                f"UPDATE pushes SET doc = {expr} WHERE id IN ("
                " SELECT id FROM pushes WHERE status = ? AND next_attempt_at <= ?"
                " AND (lease_until IS NULL OR lease_until <= ?)"
                " ORDER BY next_attempt_at, id LIMIT ?) RETURNING doc",
                [*params, PUSH_PENDING, iso(now), iso(now), limit],
            ).fetchall()
        return sorted((loads(r[0]) for r in rows), key=lambda p: (p["next_attempt_at"], p["_id"]))

    def settle_push(
        self,
        push_id: str,
        fields: Mapping[str, Any],
        appends: Mapping[str, Sequence[Any]],
        events: Sequence[EventEnvelope],
    ) -> bool:
        """Guarded on the push still pending; the lease is released with the outcome."""
        expr, params = patched({**fields, "lease_until": None}, appends)
        with self.db.transaction() as conn:
            row = conn.execute(
                f"UPDATE pushes SET doc = {expr} WHERE id = ? AND status = ? RETURNING id",
                [*params, push_id, PUSH_PENDING],
            ).fetchone()
            if row is None:
                return False
            append_events(conn, push_id, events)
        return True

    def push_by_id(self, push_id: str) -> dict[str, Any] | None:
        """One push by primary key."""
        return self._one("pushes", push_id)

    def pushes_page(
        self, incident_id: str | None, status: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """Newest first, narrowed by incident and status when given."""
        where, params = ["1 = 1"], list[Any]()
        if incident_id is not None:
            where.append("incident_id = ?")
            params.append(incident_id)
        if status is not None:
            where.append("status = ?")
            params.append(status)
        return self.db.documents(
            f"SELECT doc FROM pushes WHERE {' AND '.join(where)}"
            " ORDER BY created_at DESC, id LIMIT ?",
            [*params, limit],
        )

    def pushes_between(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Pushes created in [start, end)."""
        return self.db.documents(
            "SELECT doc FROM pushes WHERE created_at >= ? AND created_at < ? ORDER BY created_at",
            (iso(start), iso(end)),
        )

    def count_pushes(self) -> dict[str, int]:
        """Real pushes per status."""
        rows = self.db.query(
            "SELECT status, count(*) FROM pushes WHERE coalesce(exercise, 0) = 0 GROUP BY status"
        )
        return {str(status): int(count) for status, count in rows}

    def record_request(
        self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]
    ) -> tuple[dict[str, Any], bool]:
        """Insert once per id, with its events."""
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO upstream_requests (id, doc) VALUES (?, ?) ON CONFLICT (id) DO NOTHING",
                (doc["_id"], dumps(doc)),
            )
            if cursor.rowcount:
                append_events(conn, doc["_id"], events)
                return dict(doc), True
        stored = self._one("upstream_requests", doc["_id"])
        return (stored or dict(doc)), False

    def requests_of_incident(self, incident_id: str) -> list[dict[str, Any]]:
        """By the (incident, received) index."""
        return self.db.documents(
            "SELECT doc FROM upstream_requests WHERE incident_id = ? ORDER BY received_at, id",
            (incident_id,),
        )

    def open_requests(self, now: datetime) -> list[dict[str, Any]]:
        """Real requests due from two days ago on, by due time."""
        return self.db.documents(
            "SELECT doc FROM upstream_requests WHERE exercise = 0 AND due_at >= ?"
            " ORDER BY due_at, id",
            (iso(now - OPEN_REQUEST_LOOKBACK),),
        )
