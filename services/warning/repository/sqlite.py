"""The warning service on SQLite: each document as JSON, generated columns indexed for every
field a query filters or sorts on, guarded changes as one ``UPDATE … WHERE <guard> … RETURNING``,
and events in the outbox table, written in the same transaction as the change."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from libs.common.errors import field_error
from libs.common.events import EventEnvelope
from libs.common.idempotency import APPLIED, APPLIED_KEEP, IDEMPOTENCY, REVISION
from libs.common.outbox import (
    OUTBOX,
    SQLITE_OUTBOX_SCHEMA,
    append_events,
)
from libs.common.pagination import MAX_LIMIT, decode_cursor, encode_cursor
from libs.common.repository_tails import SqliteRepository
from libs.common.sqlite import dumps, from_iso, iso, loads, patched
from services.warning.lastmile.domain import ReachMarks
from services.warning.repository import (
    DELIVERIES,
    DOCUMENT_TABLES,
    ENTERPRISES,
    INCIDENTS,
    MARKS,
    RECEIPTS,
    SUGGESTIONS,
    TOKENS,
    WARNINGS,
    DeliveryOutcome,
    WarningExistsError,
    WarningFilter,
)

# What a version's reach counts of a delivery or receipt: its target (one written before targets
# had kinds is its township's), and whether it is an escalation repeat. The reach indexes hold
# these expressions, so a page of warnings reads them from the index and parses no document.
TARGET_KIND = "coalesce(doc ->> '$.target.kind', 'township')"
TARGET_CODE = "coalesce(doc ->> '$.target.code', township_code)"
REPEAT_OF = "(doc ->> '$.escalation_of')"
ACKNOWLEDGED = "((doc ->> '$.acked_at') IS NOT NULL)"
ESCALATED = "((doc ->> '$.overdue_at') IS NOT NULL)"
REACH = f"{REPEAT_OF}, {TARGET_KIND}, {TARGET_CODE}"


def _date(field: str) -> str:
    return f"doc ->> '$.{field}.\"$date\"'"


SCHEMA = [
    "CREATE TABLE IF NOT EXISTS warnings ("
    " id TEXT PRIMARY KEY,"
    " doc TEXT NOT NULL CHECK (json_valid(doc)),"
    " idem_key TEXT GENERATED ALWAYS AS (doc ->> '$._idem.key') VIRTUAL,"
    " status TEXT GENERATED ALWAYS AS (doc ->> '$.status') VIRTUAL,"
    " exercise INTEGER GENERATED ALWAYS AS (doc ->> '$.exercise') VIRTUAL,"
    " level INTEGER GENERATED ALWAYS AS (doc ->> '$.level') VIRTUAL,"
    " hazard TEXT GENERATED ALWAYS AS (doc ->> '$.hazard') VIRTUAL,"
    " rev INTEGER GENERATED ALWAYS AS (doc ->> '$.rev') VIRTUAL,"
    f" created_at TEXT GENERATED ALWAYS AS ({_date('created_at')}) VIRTUAL,"
    f" issued_at TEXT GENERATED ALWAYS AS ({_date('issued_at')}) VIRTUAL,"
    f" expiry_due TEXT GENERATED ALWAYS AS ({_date('expiry_due')}) VIRTUAL,"
    " fanout_due INTEGER GENERATED ALWAYS AS (doc ->> '$.fanout_due') VIRTUAL)",
    # NULLs are distinct in a unique index: warnings without a key never collide.
    "CREATE UNIQUE INDEX IF NOT EXISTS warnings_idem ON warnings (idem_key)",
    "CREATE INDEX IF NOT EXISTS warnings_created ON warnings (created_at, id)",
    "CREATE INDEX IF NOT EXISTS warnings_status_created ON warnings (status, created_at, id)",
    "CREATE INDEX IF NOT EXISTS warnings_active ON warnings (status, exercise, level)",
    "CREATE INDEX IF NOT EXISTS warnings_feed ON warnings (status, exercise, issued_at, id)",
    # Timers look only at what is due: partial indexes hold just those rows.
    "CREATE INDEX IF NOT EXISTS warnings_expiry ON warnings (expiry_due)"
    " WHERE expiry_due IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS warnings_fanout ON warnings (fanout_due) WHERE fanout_due = 1",
    "CREATE TABLE IF NOT EXISTS deliveries ("
    " id TEXT PRIMARY KEY,"
    " doc TEXT NOT NULL CHECK (json_valid(doc)),"
    " warning_id TEXT GENERATED ALWAYS AS (doc ->> '$.warning_id') VIRTUAL,"
    " version INTEGER GENERATED ALWAYS AS (doc ->> '$.version') VIRTUAL,"
    " township_code TEXT GENERATED ALWAYS AS (doc ->> '$.township_code') VIRTUAL,"
    " channel TEXT GENERATED ALWAYS AS (doc ->> '$.channel') VIRTUAL,"
    " state TEXT GENERATED ALWAYS AS (doc ->> '$.state') VIRTUAL,"
    " attempts INTEGER GENERATED ALWAYS AS (doc ->> '$.attempts') VIRTUAL,"
    f" next_attempt_at TEXT GENERATED ALWAYS AS ({_date('next_attempt_at')}) VIRTUAL)",
    "CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (next_attempt_at)"
    " WHERE next_attempt_at IS NOT NULL",
    # A warning's deliveries by township, in order; the reach expressions at the end let a
    # page of warnings count its reach from this index alone (it replaces deliveries_warning).
    "DROP INDEX IF EXISTS deliveries_warning",
    "CREATE INDEX IF NOT EXISTS deliveries_by_warning ON deliveries"
    f" (warning_id, township_code, version, channel, {REACH}, state)",
    "CREATE INDEX IF NOT EXISTS deliveries_older ON deliveries (warning_id, state, version)",
    "CREATE INDEX IF NOT EXISTS deliveries_state ON deliveries (state)",
    "CREATE TABLE IF NOT EXISTS acks ("
    " id TEXT PRIMARY KEY,"
    " doc TEXT NOT NULL CHECK (json_valid(doc)),"
    " warning_id TEXT GENERATED ALWAYS AS (doc ->> '$.warning_id') VIRTUAL,"
    " version INTEGER GENERATED ALWAYS AS (doc ->> '$.version') VIRTUAL,"
    " township_code TEXT GENERATED ALWAYS AS (doc ->> '$.township_code') VIRTUAL,"
    " state TEXT GENERATED ALWAYS AS (doc ->> '$.state') VIRTUAL,"
    f" due_at TEXT GENERATED ALWAYS AS ({_date('due_at')}) VIRTUAL,"
    f" ack_due_at TEXT GENERATED ALWAYS AS ({_date('ack_due_at')}) VIRTUAL)",
    "CREATE INDEX IF NOT EXISTS acks_due ON acks (ack_due_at) WHERE ack_due_at IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS acks_warning ON acks (warning_id, township_code, version)",
    "CREATE INDEX IF NOT EXISTS acks_older ON acks (warning_id, state, version)",
    f"CREATE INDEX IF NOT EXISTS acks_reach ON acks"
    f" (warning_id, version, {REACH}, {ACKNOWLEDGED}, {ESCALATED})",
    "CREATE TABLE IF NOT EXISTS suggestions ("
    " id TEXT PRIMARY KEY,"
    " doc TEXT NOT NULL CHECK (json_valid(doc)),"
    " incident_id TEXT GENERATED ALWAYS AS (doc ->> '$.incident_id') VIRTUAL,"
    " status TEXT GENERATED ALWAYS AS (doc ->> '$.status') VIRTUAL,"
    f" created_at TEXT GENERATED ALWAYS AS ({_date('created_at')}) VIRTUAL)",
    "CREATE INDEX IF NOT EXISTS suggestions_incident ON suggestions (incident_id, status)",
    "CREATE INDEX IF NOT EXISTS suggestions_created ON suggestions (created_at, id)",
    "CREATE INDEX IF NOT EXISTS suggestions_status ON suggestions (status, created_at, id)",
    "CREATE TABLE IF NOT EXISTS incidents (id TEXT PRIMARY KEY,"
    " doc TEXT NOT NULL CHECK (json_valid(doc)))",
    "CREATE TABLE IF NOT EXISTS delivery_marks (id TEXT PRIMARY KEY,"
    " doc TEXT NOT NULL CHECK (json_valid(doc)))",
    "CREATE TABLE IF NOT EXISTS ack_tokens (id TEXT PRIMARY KEY,"
    " doc TEXT NOT NULL CHECK (json_valid(doc)))",
    "CREATE TABLE IF NOT EXISTS enterprises ("
    " id TEXT PRIMARY KEY,"
    " doc TEXT NOT NULL CHECK (json_valid(doc)),"
    " township_code TEXT GENERATED ALWAYS AS (doc ->> '$.township_code') VIRTUAL)",
    "CREATE INDEX IF NOT EXISTS enterprises_township ON enterprises (township_code)",
    *SQLITE_OUTBOX_SCHEMA,
]
LEGACY_MARK = "warning_migrated_from_document_store"
# Statements that set or drop one field of a document (field names are constants).
SUPERSEDED_DELIVERY = "json_remove(json_set(doc, '$.state', 'superseded'), '$.next_attempt_at')"
SUPERSEDED_RECEIPT = "json_remove(json_set(doc, '$.state', 'superseded'), '$.ack_due_at')"
CLOSED_RECEIPT = "json_remove(json_set(doc, '$.state', 'closed'), '$.ack_due_at')"


class SqliteWarningRepository(SqliteRepository):
    """WarningRepository on one SQLite file (shared by the service's processes on one host)."""

    SCHEMA = SCHEMA
    JOURNAL = True

    def _one(self, table: str, ident: str) -> dict[str, Any] | None:
        docs = self.db.documents(f"SELECT doc FROM {table} WHERE id = ?", (ident,))
        return dict(docs[0]) if docs else None

    def _insert_once(
        self, table: str, doc: Mapping[str, Any], events: Sequence[EventEnvelope], aggregate: str
    ) -> bool:
        with self.db.transaction() as conn:
            row = conn.execute(
                f"INSERT OR IGNORE INTO {table} (id, doc) VALUES (?, ?) RETURNING id",
                (doc["_id"], dumps(doc)),
            ).fetchone()
            if row is not None and events:
                append_events(conn, aggregate, events)
        return row is not None

    def _update(
        self,
        table: str,
        new_doc: str,
        where: str,
        params: Sequence[Any],
        events: Sequence[EventEnvelope] = (),
    ) -> dict[str, Any] | None:
        """One guarded ``UPDATE … RETURNING`` and, if it matched, its events: one transaction.

        Events of a warning, its deliveries and receipts share the warning as their aggregate
        (published in order together); a suggestion is its own."""
        aggregate = "warning_id" if table in (DELIVERIES, RECEIPTS) else "id"
        with self.db.transaction() as conn:
            row = conn.execute(
                f"UPDATE {table} SET doc = {new_doc} WHERE {where} RETURNING doc, {aggregate}",
                list(params),
            ).fetchone()
            if row is not None and events:
                append_events(conn, row[1], events)
        return loads(row[0]) if row is not None else None

    # Warnings ------------------------------------------------------------------------------

    def warning_by_id(self, warning_id: str) -> dict[str, Any] | None:
        """One warning by primary key."""
        return self._one(WARNINGS, warning_id)

    def warning_by_idempotency_key(self, scope: str) -> dict[str, Any] | None:
        """The warning stamped with this key (unique index)."""
        docs = self.db.documents("SELECT doc FROM warnings WHERE idem_key = ?", (scope,))
        return dict(docs[0]) if docs else None

    def record_warning(
        self, doc: Mapping[str, Any], scope: str, digest: str, events: Sequence[EventEnvelope]
    ) -> tuple[dict[str, Any], bool]:
        """One transaction: the warning row and its outbox rows; a key race returns the winner."""
        stamped = {**doc, IDEMPOTENCY: {"key": scope, "hash": digest}}
        try:
            with self.db.transaction() as conn:
                conn.execute(
                    "INSERT INTO warnings (id, doc) VALUES (?, ?)", (doc["_id"], dumps(stamped))
                )
                append_events(conn, doc["_id"], events)
        except sqlite3.IntegrityError:
            winner = self.warning_by_idempotency_key(scope)
            if winner is None:
                raise WarningExistsError(str(doc["_id"])) from None
            return winner, False
        return stamped, True

    def change_warning(
        self,
        warning_id: str,
        rev: int,
        changes: Mapping[str, Any],
        unset: Sequence[str],
        events: Sequence[EventEnvelope],
    ) -> dict[str, Any] | None:
        """Guard: ``rev`` unchanged."""
        expr, params = patched({**changes, "rev": rev + 1})
        if unset:
            expr = f"json_remove({expr}, {', '.join(f'{_path(name)}' for name in unset)})"
        return self._update(
            WARNINGS, expr, "id = ? AND rev = ?", [*params, warning_id, rev], events
        )

    def versions_of(self, warning_id: str) -> list[dict[str, Any]]:
        """The versions array alone."""
        rows = self.db.query("SELECT doc -> '$.versions' FROM warnings WHERE id = ?", (warning_id,))
        return list(loads(rows[0][0]) or []) if rows and rows[0][0] else []

    def warnings_page(
        self, filters: WarningFilter, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Walks (created_at, id) descending from the cursor, filtering as it goes."""
        where, params = _warning_where(filters)
        return self._page(WARNINGS, "json_remove(doc, '$.versions')", where, params, limit, cursor)

    def _page(
        self,
        table: str,
        selected: str,
        where: list[str],
        params: list[Any],
        limit: int,
        cursor: str | None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        if not 1 <= limit <= MAX_LIMIT:
            raise field_error("query.limit", f"须在 1 到 {MAX_LIMIT} 之间")
        if cursor:
            value, ident = decode_cursor(cursor)
            moment = iso(value) if isinstance(value, datetime) else value
            where = [*where, "(created_at < ? OR (created_at = ? AND id < ?))"]
            params = [*params, moment, moment, ident]
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self.db.documents(
            f"SELECT {selected} FROM {table} {clause} ORDER BY created_at DESC, id DESC LIMIT ?",
            [*params, limit + 1],
        )
        if len(rows) <= limit:
            return rows, None
        rows = rows[:limit]
        return rows, encode_cursor(rows[-1]["created_at"], rows[-1]["_id"])

    def public_warnings(self, limit: int) -> list[dict[str, Any]]:
        """Walks the (status, exercise, issued_at, id) index backwards: newest issue first."""
        return self.db.documents(
            "SELECT doc FROM warnings WHERE status = 'active' AND exercise = 0"
            " ORDER BY issued_at DESC, id DESC LIMIT ?",
            (limit,),
        )

    def count_active_by_level(self) -> dict[int, int]:
        """Counted on the (status, exercise, level) index."""
        counts = dict(
            self.db.query(
                "SELECT level, count(*) FROM warnings"
                " WHERE status = 'active' AND exercise = 0 GROUP BY level"
            )
        )
        return {level: counts.get(level, 0) for level in (1, 2, 3, 4)}

    def warnings_due_to_expire(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        """The partial index holds only warnings with an expiry pending."""
        return self.db.documents(
            "SELECT doc FROM warnings WHERE expiry_due <= ? ORDER BY expiry_due LIMIT ?",
            (iso(now), limit),
        )

    def forget_expiry(self, warning_id: str) -> None:
        """Drop ``expiry_due``."""
        self._update(WARNINGS, "json_remove(doc, '$.expiry_due')", "id = ?", [warning_id])

    def warnings_awaiting_fanout(self, limit: int) -> list[str]:
        """The partial index holds only warnings awaiting fanout."""
        rows = self.db.query("SELECT id FROM warnings WHERE fanout_due = 1 LIMIT ?", (limit,))
        return [str(row[0]) for row in rows]

    def finish_fanout(self, warning_id: str, numbers: Sequence[int]) -> None:
        """One statement: the numbers leave the list; the flag follows whether any is left."""
        marks = ",".join("?" * len(numbers)) or "NULL"
        remaining = (
            "(SELECT json_group_array(value) FROM (SELECT value FROM json_each(doc, '$.fanout')"
            f" WHERE value NOT IN ({marks}) ORDER BY key))"
        )
        self._update(
            WARNINGS,
            f"json_set(doc, '$.fanout', json({remaining}),"
            f" '$.fanout_due', json(CASE WHEN json_array_length({remaining}) > 0"
            " THEN 'true' ELSE 'false' END))",
            "id = ?",
            [*numbers, *numbers, warning_id],
        )

    # Deliveries ----------------------------------------------------------------------------

    def plan_delivery(self, delivery: Mapping[str, Any]) -> bool:
        """Insert once by primary key."""
        return self._insert_once(DELIVERIES, delivery, [], str(delivery["warning_id"]))

    def delivery_by_id(self, delivery_id: str) -> dict[str, Any] | None:
        """One delivery by primary key."""
        return self._one(DELIVERIES, delivery_id)

    def supersede_older(self, warning_id: str, version: int) -> None:
        """Both tables in one transaction."""
        with self.db.transaction() as conn:
            older = "WHERE warning_id = ? AND state = 'pending' AND version < ?"
            conn.execute(
                f"UPDATE deliveries SET doc = {SUPERSEDED_DELIVERY} {older}", (warning_id, version)
            )
            conn.execute(
                f"UPDATE acks SET doc = {SUPERSEDED_RECEIPT} {older}", (warning_id, version)
            )

    def pending_deliveries(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        """The partial index holds only deliveries waiting for a try."""
        return self.db.documents(
            "SELECT doc FROM deliveries WHERE next_attempt_at <= ?"
            " ORDER BY next_attempt_at LIMIT ?",
            (iso(now), limit),
        )

    def claim_delivery(
        self, delivery_id: str, attempts: int, now: datetime, until: datetime
    ) -> dict[str, Any] | None:
        """Guard: pending, at ``attempts``, due."""
        return self._update(
            DELIVERIES,
            "json_set(doc, '$.next_attempt_at', json(?))",
            "id = ? AND state = 'pending' AND attempts = ? AND next_attempt_at <= ?",
            [dumps(until), delivery_id, attempts, iso(now)],
        )

    def supersede_delivery(self, delivery_id: str) -> None:
        """Guard: still pending."""
        self._update(DELIVERIES, SUPERSEDED_DELIVERY, "id = ? AND state = 'pending'", [delivery_id])

    def record_delivery_attempt(
        self, delivery_id: str, outcome: DeliveryOutcome, events: Sequence[EventEnvelope]
    ) -> None:
        """One update: state, tries, error; the next try's time set or removed."""
        fields: dict[str, Any] = {
            "state": outcome.state,
            "attempts": outcome.attempts,
            "last_error": outcome.error,
        }
        if outcome.state == "delivered":
            fields["delivered_at"] = outcome.at
        if outcome.state == "failed":
            fields["failed_at"] = outcome.at
        if outcome.exercise_ack_url:
            fields["exercise_ack_url"] = outcome.exercise_ack_url
        if outcome.next_attempt_at is not None:
            fields["next_attempt_at"] = outcome.next_attempt_at
        expr, params = patched(fields)
        if outcome.next_attempt_at is None:
            expr = f"json_remove({expr}, '$.next_attempt_at')"
        self._update(DELIVERIES, expr, "id = ?", [*params, delivery_id], events)

    def deliveries_for(self, warning_id: str, townships: Sequence[str]) -> list[dict[str, Any]]:
        """On the (warning_id, township_code, version, channel, …) index."""
        marks = ",".join("?" * len(townships)) or "NULL"
        return self.db.documents(
            "SELECT json_remove(doc, '$.message') FROM deliveries"
            f" WHERE warning_id = ? AND township_code IN ({marks})"
            " ORDER BY version, channel",
            [warning_id, *townships],
        )

    def reach_marks(self, versions: Mapping[str, int]) -> dict[str, ReachMarks]:
        """On the indexes that end with the reach expressions, named because the planner does
        not count what they save: every value is read from the index, none from a document."""
        ids = list(versions)
        where = (
            f" WHERE warning_id IN ({','.join('?' * len(ids)) or 'NULL'}) AND {REPEAT_OF} IS NULL"
        )
        head = f"SELECT warning_id, version, {TARGET_KIND}, {TARGET_CODE}"
        found = {wid: ReachMarks() for wid in versions}
        for wid, version, kind, code, state in self.db.query(
            f"{head}, state FROM deliveries INDEXED BY deliveries_by_warning{where}", ids
        ):
            if versions[wid] == version:
                found[wid].note_delivery(kind, code, state)
        for wid, version, kind, code, acknowledged, escalated in self.db.query(
            f"{head}, {ACKNOWLEDGED}, {ESCALATED} FROM acks INDEXED BY acks_reach{where}", ids
        ):
            if versions[wid] == version:
                found[wid].note_receipt(kind, code, bool(acknowledged), bool(escalated))
        return found

    def delivered_at_by_warning(self) -> dict[str, list[datetime]]:
        """When each warning's deliveries went out (benches read it after a run)."""
        found: dict[str, list[datetime]] = {}
        for wid, at in self.db.query(
            "SELECT warning_id, doc ->> '$.delivered_at.\"$date\"' FROM deliveries"
            " WHERE state = 'delivered'"
        ):
            found.setdefault(wid, []).append(from_iso(at))
        return found

    def count_pending_deliveries(self) -> int:
        """On the state index."""
        return int(self.db.query("SELECT count(*) FROM deliveries WHERE state = 'pending'")[0][0])

    def first_delivery(self, mark_id: str, at: datetime, channel: str) -> bool:
        """Insert the mark once."""
        return self._insert_once(MARKS, {"_id": mark_id, "at": at, "channel": channel}, [], "")

    # Receipts ------------------------------------------------------------------------------

    def ensure_receipt(self, receipt: Mapping[str, Any]) -> None:
        """INSERT OR IGNORE: an existing receipt is left as it is."""
        self._insert_once(RECEIPTS, receipt, [], str(receipt["warning_id"]))

    def receipt_by_id(self, receipt_id: str) -> dict[str, Any] | None:
        """One receipt by primary key."""
        return self._one(RECEIPTS, receipt_id)

    def acknowledge(self, receipt_id: str, fields: Mapping[str, Any], event: EventEnvelope) -> bool:
        """Guard: ``acked_at`` null or missing."""
        expr, params = patched({**fields, "state": "acked"})
        saved = self._update(
            RECEIPTS,
            f"json_remove({expr}, '$.ack_due_at')",
            "id = ? AND doc ->> '$.acked_at' IS NULL",
            [*params, receipt_id],
            [event],
        )
        return saved is not None

    def receipts_for(self, warning_id: str, townships: Sequence[str]) -> list[dict[str, Any]]:
        """On the (warning_id, township_code, version) index."""
        marks = ",".join("?" * len(townships)) or "NULL"
        return self.db.documents(
            f"SELECT doc FROM acks WHERE warning_id = ? AND township_code IN ({marks})"
            " ORDER BY version, id",
            [warning_id, *townships],
        )

    def receipts_overdue(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        """The partial index holds only receipts still owed."""
        return self.db.documents(
            "SELECT doc FROM acks WHERE ack_due_at <= ? ORDER BY ack_due_at LIMIT ?",
            (iso(now), limit),
        )

    def mark_receipt_overdue(self, receipt_id: str, now: datetime, event: EventEnvelope) -> bool:
        """Guard: pending and not acknowledged."""
        saved = self._update(
            RECEIPTS,
            "json_remove(json_set(doc, '$.state', 'overdue', '$.overdue_at', json(?)),"
            " '$.ack_due_at')",
            "id = ? AND state = 'pending' AND doc ->> '$.acked_at' IS NULL",
            [dumps(now), receipt_id],
            [event],
        )
        return saved is not None

    def close_receipt(self, receipt_id: str) -> None:
        """Guard: pending."""
        self._update(RECEIPTS, CLOSED_RECEIPT, "id = ? AND state = 'pending'", [receipt_id])

    def close_receipts_due_after(self, warning_id: str, expires: datetime) -> None:
        """Pending receipts of the warning due at or after ``expires``."""
        with self.db.transaction() as conn:
            conn.execute(
                f"UPDATE acks SET doc = {CLOSED_RECEIPT}"
                " WHERE warning_id = ? AND state = 'pending' AND due_at >= ?",
                (warning_id, iso(expires)),
            )

    # Link tokens ---------------------------------------------------------------------------

    def record_ack_token(self, token: Mapping[str, Any]) -> bool:
        """Insert once by primary key (the token's SHA-256)."""
        return self._insert_once(TOKENS, token, [], "")

    def ack_token(self, token_hash: str) -> dict[str, Any] | None:
        """One token by primary key."""
        return self._one(TOKENS, token_hash)

    # Enterprises ---------------------------------------------------------------------------

    def fold_enterprise(self, snapshot: Mapping[str, Any]) -> bool:
        """One upsert whose update is guarded by a lower kept revision."""
        with self.db.transaction() as conn:
            row = conn.execute(
                "INSERT INTO enterprises (id, doc) VALUES (?, ?)"
                " ON CONFLICT (id) DO UPDATE SET doc = excluded.doc"
                " WHERE CAST(enterprises.doc ->> '$.revision' AS INTEGER)"
                " < CAST(excluded.doc ->> '$.revision' AS INTEGER)"
                " RETURNING id",
                (snapshot["_id"], dumps(snapshot)),
            ).fetchone()
        return row is not None

    def enterprises_in(self, townships: Sequence[str]) -> list[dict[str, Any]]:
        """On the township index."""
        marks = ",".join("?" * len(townships)) or "NULL"
        return self.db.documents(
            f"SELECT doc FROM {ENTERPRISES} WHERE township_code IN ({marks}) ORDER BY id",
            list(townships),
        )

    # Suggestions ---------------------------------------------------------------------------

    def suggestion_by_id(self, suggestion_id: str) -> dict[str, Any] | None:
        """One suggestion by primary key."""
        return self._one(SUGGESTIONS, suggestion_id)

    def record_suggestion(self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]) -> bool:
        """Insert once, its event in the same transaction."""
        return self._insert_once(SUGGESTIONS, doc, events, str(doc["_id"]))

    def pending_suggestions(self, incident_id: str) -> list[dict[str, Any]]:
        """On the (incident_id, status) index."""
        return self.db.documents(
            "SELECT doc FROM suggestions WHERE incident_id = ? AND status = 'pending'",
            (incident_id,),
        )

    def supersede_suggestions(self, incident_id: str, keep_id: str) -> None:
        """Every other pending one of the incident."""
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE suggestions SET doc = json_set(doc, '$.status', 'superseded',"
                " '$.superseded_by', ?)"
                " WHERE incident_id = ? AND status = 'pending' AND id != ?",
                (keep_id, incident_id, keep_id),
            )

    def close_suggestion(self, suggestion_id: str, fields: Mapping[str, Any]) -> bool:
        """Guard: pending."""
        expr, params = patched(fields)
        saved = self._update(
            SUGGESTIONS, expr, "id = ? AND status = 'pending'", [*params, suggestion_id]
        )
        return saved is not None

    def suggestions_page(
        self, status: str | None, incident_id: str | None, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Walks (created_at, id) descending from the cursor."""
        where, params = [], list[Any]()
        if status:
            where.append("status = ?")
            params.append(status)
        if incident_id:
            where.append("incident_id = ?")
            params.append(incident_id)
        return self._page(SUGGESTIONS, "doc", where, params, limit, cursor)

    # Incident view -------------------------------------------------------------------------

    def incident(self, incident_id: str) -> dict[str, Any] | None:
        """The view of one incident."""
        return self._one(INCIDENTS, incident_id)

    def incidents_with_primaries(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Follows ``primary_id`` a few steps (merges chain rarely, and never in a loop)."""
        found: dict[str, dict[str, Any]] = {}
        wanted = list(dict.fromkeys(ids))
        for _ in range(5):
            if not wanted:
                break
            marks = ",".join("?" * len(wanted))
            rows = self.db.documents(f"SELECT doc FROM incidents WHERE id IN ({marks})", wanted)
            wanted = []
            for row in rows:
                found[row["_id"]] = dict(row)
                primary = row.get("primary_id")
                if primary and primary not in found:
                    wanted.append(primary)
        return found

    def merge_incident_event(
        self,
        incident_id: str,
        event_id: str,
        merge: Callable[[Mapping[str, Any] | None], Mapping[str, Any]],
    ) -> bool:
        """Read, fold and write inside one write transaction (nobody else writes meanwhile)."""
        with self.db.transaction() as conn:
            row = conn.execute("SELECT doc FROM incidents WHERE id = ?", (incident_id,)).fetchone()
            current = loads(row[0]) if row is not None else None
            applied = list((current or {}).get(APPLIED) or [])
            if event_id in applied:
                return False
            merged = {k: v for k, v in merge(current).items() if k not in (APPLIED, REVISION)}
            doc = {
                **(current or {}),
                **merged,
                "_id": incident_id,
                APPLIED: [*applied, event_id][-APPLIED_KEEP:],
                REVISION: int((current or {}).get(REVISION) or 0) + 1,
            }
            conn.execute(
                "INSERT INTO incidents (id, doc) VALUES (?, ?)"
                " ON CONFLICT (id) DO UPDATE SET doc = excluded.doc",
                (incident_id, dumps(doc)),
            )
        return True

    # The previous engine's data ------------------------------------------------------------

    def import_documents(self, table: str, docs: Iterable[Mapping[str, Any]]) -> int:
        """Copy documents of the previous store, their pending events into the outbox.

        Idempotent: a document already here is skipped, so an interrupted migration resumes.
        """
        if table not in DOCUMENT_TABLES:
            raise ValueError(f"no table {table!r}")
        copied = 0
        for doc in docs:
            pending = [EventEnvelope.model_validate(raw) for raw in doc.get(OUTBOX) or []]
            kept = {k: v for k, v in doc.items() if not k.startswith(OUTBOX)}
            aggregate = str(kept.get("warning_id") or kept["_id"])
            copied += int(self._insert_once(table, kept, pending, aggregate))
        return copied

    def finish_import(self) -> None:
        """Note that the previous store's documents are here (or that there were none)."""
        with self.db.transaction() as conn:
            self.db.set_meta(conn, LEGACY_MARK, "done")

    def imported(self) -> bool:
        """True once the previous store's documents were imported."""
        return self.db.get_meta(LEGACY_MARK) == "done"

    # Plumbing ------------------------------------------------------------------------------


def _path(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a field name: {name!r}")
    return f"'$.{name}'"


def _warning_where(filters: WarningFilter) -> tuple[list[str], list[Any]]:
    """Conditions on the indexed columns; area membership through the areas array."""
    where: list[str] = []
    params: list[Any] = []
    if filters.statuses is not None:
        where.append(f"status IN ({','.join('?' * len(filters.statuses)) or 'NULL'})")
        params.extend(filters.statuses)
    if filters.area is not None:
        where.append("EXISTS (SELECT 1 FROM json_each(doc, '$.areas') WHERE value = ?)")
        params.append(filters.area)
    for name in ("level", "hazard", "exercise"):
        if (value := getattr(filters, name)) is not None:
            where.append(f"{name} = ?")
            params.append(int(value) if isinstance(value, bool) else value)
    return where, params
