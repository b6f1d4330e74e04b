"""The enterprise register on SQLite (its own file): documents as JSON with generated columns
for what lists filter and sort on, a change as one ``UPDATE … WHERE revision = ? RETURNING``,
and the ``enterprise_registered`` event in the outbox table of the same transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from libs.common.errors import field_error
from libs.common.events import EventEnvelope
from libs.common.outbox import SQLITE_OUTBOX_SCHEMA, append_events
from libs.common.pagination import MAX_LIMIT, decode_cursor, encode_cursor
from libs.common.repository_tails import SqliteRepository
from libs.common.sqlite import dumps, loads, patched
from services.dispatch.enterprises.repository import EnterpriseFilter, Page, TakenError

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS enterprises ("
    " id TEXT PRIMARY KEY,"
    " doc TEXT NOT NULL CHECK (json_valid(doc)),"
    " credit_key TEXT GENERATED ALWAYS AS (doc ->> '$.credit_key') VIRTUAL,"
    " idem_key TEXT GENERATED ALWAYS AS (doc ->> '$._idem.key') VIRTUAL,"
    " township_code TEXT GENERATED ALWAYS AS (doc ->> '$.township_code') VIRTUAL,"
    " risk_level TEXT GENERATED ALWAYS AS (doc ->> '$.risk_level') VIRTUAL,"
    " risk_rank INTEGER GENERATED ALWAYS AS (doc ->> '$.risk_rank') VIRTUAL,"
    " status TEXT GENERATED ALWAYS AS (doc ->> '$.status') VIRTUAL,"
    " exercise INTEGER GENERATED ALWAYS AS (coalesce(doc ->> '$.exercise', 0)) VIRTUAL,"
    " revision INTEGER GENERATED ALWAYS AS (doc ->> '$.revision') VIRTUAL)",
    "CREATE UNIQUE INDEX IF NOT EXISTS enterprises_credit ON enterprises (credit_key)",
    "CREATE UNIQUE INDEX IF NOT EXISTS enterprises_idem ON enterprises (idem_key)",
    # Listings walk (risk_rank, id) inside the real or drill, active or closed part.
    "CREATE INDEX IF NOT EXISTS enterprises_list ON enterprises (exercise, status, risk_rank, id)",
    "CREATE INDEX IF NOT EXISTS enterprises_township"
    " ON enterprises (township_code, exercise, status, risk_rank, id)",
    "CREATE TABLE IF NOT EXISTS enterprise_inspections ("
    " id TEXT PRIMARY KEY,"
    " doc TEXT NOT NULL CHECK (json_valid(doc)),"
    " enterprise_id TEXT GENERATED ALWAYS AS (doc ->> '$.enterprise_id') VIRTUAL,"
    " day TEXT GENERATED ALWAYS AS (doc ->> '$.date') VIRTUAL,"
    " deadline TEXT GENERATED ALWAYS AS (doc ->> '$.deadline') VIRTUAL,"
    " rectified_on TEXT GENERATED ALWAYS AS (doc ->> '$.rectified_on') VIRTUAL,"
    " overdue_flagged INTEGER GENERATED ALWAYS AS (coalesce(doc ->> '$.overdue_flagged', 0))"
    "  VIRTUAL,"
    " exercise INTEGER GENERATED ALWAYS AS (coalesce(doc ->> '$.exercise', 0)) VIRTUAL)",
    "CREATE INDEX IF NOT EXISTS enterprise_inspections_of"
    " ON enterprise_inspections (enterprise_id, day)",
    # Open findings by deadline: the overdue scan and the gauge read only this range.
    "CREATE INDEX IF NOT EXISTS enterprise_inspections_open"
    " ON enterprise_inspections (rectified_on, deadline)",
    *SQLITE_OUTBOX_SCHEMA,
]
OPEN_FINDINGS = "rectified_on IS NULL AND deadline IS NOT NULL"


class SqliteEnterpriseRepository(SqliteRepository):
    """EnterpriseRepository on one SQLite file (shared by dispatch's processes on one host)."""

    SCHEMA = SCHEMA

    def enterprise(self, enterprise_id: str) -> dict[str, Any] | None:
        """Primary key."""
        docs = self.db.documents("SELECT doc FROM enterprises WHERE id = ?", (enterprise_id,))
        return docs[0] if docs else None

    def enterprise_by_idempotency_scope(self, scope: str) -> dict[str, Any] | None:
        """The idem index."""
        docs = self.db.documents("SELECT doc FROM enterprises WHERE idem_key = ?", (scope,))
        return docs[0] if docs else None

    def add_enterprise(
        self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]
    ) -> dict[str, Any]:
        """One transaction: the row and its outbox rows."""
        try:
            with self.db.transaction() as conn:
                conn.execute(
                    "INSERT INTO enterprises (id, doc) VALUES (?, ?)", (doc["_id"], dumps(doc))
                )
                append_events(conn, doc["_id"], events)
        except sqlite3.IntegrityError as exc:
            raise TakenError(self._taken(doc)) from exc
        return dict(doc)

    def _taken(self, doc: Mapping[str, Any]) -> str:
        if self.enterprise(doc["_id"]) is not None:
            return "id"
        idem = (doc.get("_idem") or {}).get("key")
        if idem and self.enterprise_by_idempotency_scope(idem) is not None:
            return "Idempotency-Key"
        return "credit_code"

    def change_enterprise(
        self,
        enterprise_id: str,
        revision: int,
        fields: Mapping[str, Any],
        events: Sequence[EventEnvelope],
    ) -> dict[str, Any] | None:
        """Guard: the revision read."""
        expr, params = patched(fields)
        with self.db.transaction() as conn:
            row = conn.execute(
                f"UPDATE enterprises SET doc = {expr} WHERE id = ? AND revision = ? RETURNING doc",
                [*params, enterprise_id, revision],
            ).fetchone()
            if row is not None:
                append_events(conn, enterprise_id, events)
        return loads(row[0]) if row is not None else None

    def enterprises_page(self, filters: EnterpriseFilter, limit: int, cursor: str | None) -> Page:
        """Walk (risk_rank, id) from the cursor."""
        if not 1 <= limit <= MAX_LIMIT:
            raise field_error("query.limit", f"须在 1 到 {MAX_LIMIT} 之间")
        where, params = _where(filters)
        if cursor:
            rank, ident = decode_cursor(cursor)
            where.append("(risk_rank > ? OR (risk_rank = ? AND id > ?))")
            params += [rank, rank, ident]
        rows = self.db.documents(
            f"SELECT doc FROM enterprises WHERE {' AND '.join(where)}"
            " ORDER BY risk_rank, id LIMIT ?",
            [*params, limit + 1],
        )
        if len(rows) <= limit:
            return rows, None
        rows = rows[:limit]
        return rows, encode_cursor(rows[-1]["risk_rank"], rows[-1]["_id"])

    def enterprises_in(self, township_codes: Sequence[str] | None, exercise: bool) -> list[Any]:
        """Active, by risk then id."""
        where = ["status = 'active'", "exercise IN (0, ?)"]
        params: list[Any] = [int(exercise)]
        if township_codes is not None:
            where.append(f"township_code IN ({','.join('?' * len(township_codes))})")
            params += list(township_codes)
        return self.db.documents(
            f"SELECT doc FROM enterprises WHERE {' AND '.join(where)} ORDER BY risk_rank, id",
            params,
        )

    def add_inspection(self, doc: Mapping[str, Any]) -> bool:
        """INSERT OR IGNORE."""
        with self.db.transaction() as conn:
            row = conn.execute(
                "INSERT OR IGNORE INTO enterprise_inspections (id, doc) VALUES (?, ?) RETURNING id",
                (doc["_id"], dumps(doc)),
            ).fetchone()
        return row is not None

    def inspection(self, inspection_id: str) -> dict[str, Any] | None:
        """Primary key."""
        docs = self.db.documents(
            "SELECT doc FROM enterprise_inspections WHERE id = ?", (inspection_id,)
        )
        return docs[0] if docs else None

    def rectify(self, inspection_id: str, fields: Mapping[str, Any]) -> dict[str, Any] | None:
        """Guard: findings still open."""
        expr, params = patched(fields)
        with self.db.transaction() as conn:
            row = conn.execute(
                f"UPDATE enterprise_inspections SET doc = {expr}"
                f" WHERE id = ? AND {OPEN_FINDINGS} RETURNING doc",
                [*params, inspection_id],
            ).fetchone()
        return loads(row[0]) if row is not None else None

    def inspections_of(self, enterprise_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The enterprise index."""
        if not enterprise_ids:
            return []
        marks = ",".join("?" * len(enterprise_ids))
        return self.db.documents(
            f"SELECT doc FROM enterprise_inspections WHERE enterprise_id IN ({marks})"
            " ORDER BY day DESC, id DESC",
            list(enterprise_ids),
        )

    def inspections_past_due(self, today: str) -> list[dict[str, Any]]:
        """The open range below ``today``."""
        return self.db.documents(
            "SELECT doc FROM enterprise_inspections"
            f" WHERE {OPEN_FINDINGS} AND deadline < ? AND overdue_flagged = 0 ORDER BY id",
            (today,),
        )

    def mark_overdue(self, inspection_id: str, now: datetime, event: EventEnvelope) -> bool:
        """Guard: not flagged; the event in the same transaction."""
        expr, params = patched({"overdue_flagged": True, "overdue_at": now})
        with self.db.transaction() as conn:
            row = conn.execute(
                f"UPDATE enterprise_inspections SET doc = {expr}"
                " WHERE id = ? AND overdue_flagged = 0 RETURNING id",
                [*params, inspection_id],
            ).fetchone()
            if row is not None:
                append_events(conn, inspection_id, [event])
        return row is not None

    def figures(self, today: str) -> dict[str, Any]:
        """Two indexed counts."""
        levels = self.db.query(
            "SELECT risk_level, count(*) FROM enterprises"
            " WHERE exercise = 0 AND status = 'active' GROUP BY risk_level"
        )
        overdue = self.db.query(
            "SELECT count(*) FROM enterprise_inspections"
            f" WHERE {OPEN_FINDINGS} AND deadline < ? AND exercise = 0",
            (today,),
        )
        return {"enterprises": dict(levels), "overdue": int(overdue[0][0])}


def _where(filters: EnterpriseFilter) -> tuple[list[str], list[Any]]:
    where: list[str] = ["exercise = ?"]
    params: list[Any] = [int(filters.exercise)]
    for column in ("township_code", "risk_level", "status"):
        value = getattr(filters, column)
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if filters.hazard_type is not None:
        where.append("EXISTS (SELECT 1 FROM json_each(doc, '$.hazard_types') WHERE value = ?)")
        params.append(filters.hazard_type)
    return where, params
