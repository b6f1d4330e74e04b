"""Campaigns on SQLite: documents as JSON with generated columns for what lists filter and sort
on, the end as one guarded ``UPDATE … WHERE status = 'active' … RETURNING``, and events in the
outbox table written in the same transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from libs.common.errors import field_error
from libs.common.events import EventEnvelope
from libs.common.outbox import SQLITE_OUTBOX_SCHEMA, append_events
from libs.common.pagination import MAX_LIMIT, decode_cursor, encode_cursor
from libs.common.repository_tails import SqliteRepository
from libs.common.sqlite import dumps, iso, patched
from services.reporting.campaigns.repository import CampaignFilter, Page

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS campaigns ("
    " id TEXT PRIMARY KEY,"
    " doc TEXT NOT NULL CHECK (json_valid(doc)),"
    " status TEXT GENERATED ALWAYS AS (doc ->> '$.status') VIRTUAL,"
    " exercise INTEGER GENERATED ALWAYS AS (coalesce(doc ->> '$.exercise', 0)) VIRTUAL,"
    " started_at TEXT GENERATED ALWAYS AS (doc ->> '$.started_at.\"$date\"') VIRTUAL)",
    # The list walks (started_at, id) backwards; the scan reads the active ones.
    "CREATE INDEX IF NOT EXISTS campaigns_started ON campaigns (started_at, id)",
    "CREATE INDEX IF NOT EXISTS campaigns_status ON campaigns (status, started_at, id)",
    "CREATE TABLE IF NOT EXISTS campaign_reports ("
    " id TEXT PRIMARY KEY,"
    " doc TEXT NOT NULL CHECK (json_valid(doc)),"
    " campaign_id TEXT GENERATED ALWAYS AS (doc ->> '$.campaign_id') VIRTUAL,"
    " filed_at TEXT GENERATED ALWAYS AS (doc ->> '$.filed_at.\"$date\"') VIRTUAL)",
    "CREATE INDEX IF NOT EXISTS campaign_reports_campaign"
    " ON campaign_reports (campaign_id, filed_at, id)",
    *SQLITE_OUTBOX_SCHEMA,
]


class SqliteCampaignRepository(SqliteRepository):
    """CampaignRepository on one SQLite file (shared by reporting's processes on one host)."""

    SCHEMA = SCHEMA

    def campaign(self, campaign_id: str) -> dict[str, Any] | None:
        """One campaign by primary key."""
        docs = self.db.documents("SELECT doc FROM campaigns WHERE id = ?", (campaign_id,))
        return docs[0] if docs else None

    def record_campaign(
        self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]
    ) -> tuple[dict[str, Any], bool]:
        """One transaction: the row and its outbox rows; an existing id returns the stored one."""
        return self._insert("campaigns", doc, events, self.campaign)

    def end_campaign(
        self, campaign_id: str, fields: Mapping[str, Any], events: Sequence[EventEnvelope]
    ) -> bool:
        """Guard: still active."""
        expr, params = patched(fields)
        with self.db.transaction() as conn:
            row = conn.execute(
                f"UPDATE campaigns SET doc = {expr}"
                " WHERE id = ? AND status = 'active' RETURNING id",
                [*params, campaign_id],
            ).fetchone()
            if row is not None:
                append_events(conn, campaign_id, events)
        return row is not None

    def campaigns_page(self, filters: CampaignFilter, limit: int, cursor: str | None) -> Page:
        """Walks (started_at, id) descending from the cursor, filtering as it goes."""
        if not 1 <= limit <= MAX_LIMIT:
            raise field_error("query.limit", f"须在 1 到 {MAX_LIMIT} 之间")
        where, params = ["1 = 1"], list[Any]()
        if filters.status is not None:
            where.append("status = ?")
            params.append(filters.status)
        if filters.exercise is not None:
            where.append("exercise = ?")
            params.append(int(filters.exercise))
        if filters.participant is not None:
            where.append(
                "EXISTS (SELECT 1 FROM json_each(doc, '$.participants') AS p"
                " WHERE p.value ->> '$.code' = ?)"
            )
            params.append(filters.participant)
        if cursor:
            value, ident = decode_cursor(cursor)
            where.append("(started_at < ? OR (started_at = ? AND id < ?))")
            params += [iso(value), iso(value), ident]
        rows = self.db.documents(
            f"SELECT doc FROM campaigns WHERE {' AND '.join(where)}"
            " ORDER BY started_at DESC, id DESC LIMIT ?",
            [*params, limit + 1],
        )
        if len(rows) <= limit:
            return rows, None
        rows = rows[:limit]
        return rows, encode_cursor(rows[-1]["started_at"], rows[-1]["_id"])

    def active_campaigns(self) -> list[dict[str, Any]]:
        """A range of the status index."""
        return self.db.documents(
            "SELECT doc FROM campaigns WHERE status = 'active' ORDER BY started_at, id"
        )

    def campaign_report(self, report_id: str) -> dict[str, Any] | None:
        """One report by primary key."""
        docs = self.db.documents("SELECT doc FROM campaign_reports WHERE id = ?", (report_id,))
        return docs[0] if docs else None

    def record_campaign_report(
        self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]
    ) -> tuple[dict[str, Any], bool]:
        """One transaction: the row and its outbox rows; an existing id returns the stored one."""
        return self._insert("campaign_reports", doc, events, self.campaign_report)

    def reports_of_campaign(self, campaign_id: str) -> list[dict[str, Any]]:
        """A range of the (campaign_id, filed_at) index."""
        return self.db.documents(
            "SELECT doc FROM campaign_reports WHERE campaign_id = ? ORDER BY filed_at, id",
            (campaign_id,),
        )

    def _insert(
        self, table: str, doc: Mapping[str, Any], events: Sequence[EventEnvelope], read: Any
    ) -> tuple[dict[str, Any], bool]:
        try:
            with self.db.transaction() as conn:
                conn.execute(
                    f"INSERT INTO {table} (id, doc) VALUES (?, ?)", (doc["_id"], dumps(doc))
                )
                append_events(conn, doc["_id"], events)
        except sqlite3.IntegrityError:
            existing = read(doc["_id"])
            if existing is None:
                raise
            return existing, False
        return dict(doc), True
