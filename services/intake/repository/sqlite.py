"""Intake's incidents on SQLite: the document as JSON, generated columns indexed for every field
a query filters or sorts on, guarded changes as one ``UPDATE … WHERE <guard> … RETURNING``, and
events in the outbox table, written in the same transaction as the document."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from libs.common.errors import field_error
from libs.common.events import EventEnvelope
from libs.common.idempotency import APPLIED, APPLIED_KEEP, IDEMPOTENCY
from libs.common.outbox import (
    OUTBOX,
    SQLITE_OUTBOX_SCHEMA,
    append_events,
    append_rows,
    outbox_rows,
)
from libs.common.pagination import MAX_LIMIT, decode_cursor, encode_cursor
from libs.common.repository_tails import SqliteRepository
from libs.common.sqlite import dumps, from_iso, iso, patched
from services.intake.domain import DuplicateProbe, Neighbourhood
from services.intake.repository import DUPLICATE_SCAN_LIMIT, IncidentFilter

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS incidents ("
    " id TEXT PRIMARY KEY,"
    " doc TEXT NOT NULL CHECK (json_valid(doc)),"
    " idem_key TEXT GENERATED ALWAYS AS (doc ->> '$._idem.key') VIRTUAL,"
    " category TEXT GENERATED ALWAYS AS (doc ->> '$.category') VIRTUAL,"
    " township_code TEXT GENERATED ALWAYS AS (doc ->> '$.township_code') VIRTUAL,"
    " status TEXT GENERATED ALWAYS AS (doc ->> '$.status') VIRTUAL,"
    " grade INTEGER GENERATED ALWAYS AS (doc ->> '$.grade') VIRTUAL,"
    " exercise INTEGER GENERATED ALWAYS AS (doc ->> '$.exercise') VIRTUAL,"
    " late INTEGER GENERATED ALWAYS AS (doc ->> '$.late') VIRTUAL,"
    " escalated INTEGER GENERATED ALWAYS AS (doc ->> '$.escalated') VIRTUAL,"
    " version INTEGER GENERATED ALWAYS AS (doc ->> '$.version') VIRTUAL,"
    " occurred_at TEXT GENERATED ALWAYS AS (doc ->> '$.occurred_at.\"$date\"') VIRTUAL,"
    " reported_at TEXT GENERATED ALWAYS AS (doc ->> '$.reported_at.\"$date\"') VIRTUAL,"
    " lat REAL GENERATED ALWAYS AS (doc ->> '$.location.lat') VIRTUAL,"
    " lon REAL GENERATED ALWAYS AS (doc ->> '$.location.lon') VIRTUAL)",
    # NULLs are distinct in a unique index: incidents created without a key never collide.
    "CREATE UNIQUE INDEX IF NOT EXISTS incidents_idem ON incidents (idem_key)",
    # Lists: newest report first, walked in index order (no sort) also when filtered by
    # township, status, status and grade, or category.
    "CREATE INDEX IF NOT EXISTS incidents_reported ON incidents (reported_at, id)",
    "CREATE INDEX IF NOT EXISTS incidents_township ON incidents (township_code, reported_at, id)",
    "CREATE INDEX IF NOT EXISTS incidents_status_list ON incidents (status, reported_at, id)",
    "CREATE INDEX IF NOT EXISTS incidents_category_list ON incidents (category, reported_at, id)",
    "CREATE INDEX IF NOT EXISTS incidents_status_grade_list"
    " ON incidents (status, grade, reported_at, id)",
    # Open incidents per grade (the gauge).
    "CREATE INDEX IF NOT EXISTS incidents_status ON incidents (status, grade, exercise)",
    # Duplicate lookups: open incidents of a category around an occurrence time, in the same
    # township (the usual case) or anywhere (then filtered by the coordinates' box).
    "CREATE INDEX IF NOT EXISTS incidents_duplicates"
    " ON incidents (category, status, exercise, occurred_at)",
    "CREATE INDEX IF NOT EXISTS incidents_duplicates_township"
    " ON incidents (category, status, exercise, township_code, occurred_at)",
    *SQLITE_OUTBOX_SCHEMA,
]
LEGACY_MARK = "migrated_from_document_store"


class SqliteIntakeRepository(SqliteRepository):
    """IncidentRepository on one SQLite file (shared by intake's processes on one host)."""

    SCHEMA = SCHEMA
    JOURNAL = True

    def incident_by_id(self, incident_id: str) -> dict[str, Any] | None:
        """One incident by primary key."""
        docs = self.db.documents("SELECT doc FROM incidents WHERE id = ?", (incident_id,))
        return docs[0] if docs else None

    def incidents_by_ids(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """Incidents by primary key."""
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        return self.db.documents(f"SELECT doc FROM incidents WHERE id IN ({marks})", list(ids))

    def incident_by_idempotency_key(self, scope: str) -> dict[str, Any] | None:
        """The incident stamped with this key (unique index)."""
        docs = self.db.documents("SELECT doc FROM incidents WHERE idem_key = ?", (scope,))
        return docs[0] if docs else None

    def record_incident_with_event(
        self, doc: Mapping[str, Any], scope: str, digest: str, events: Sequence[EventEnvelope]
    ) -> tuple[dict[str, Any], bool]:
        """One transaction: the incident row and its outbox rows; a key race returns the winner."""
        stamped = {**doc, IDEMPOTENCY: {"key": scope, "hash": digest}}
        # Encoded before the transaction: the file's writers queue on its lock, and JSON
        # encoding inside it (with the GIL passed between threads) would lengthen every turn.
        body, rows = dumps(stamped), outbox_rows(doc["_id"], events)
        try:
            with self.db.transaction() as conn:
                conn.execute("INSERT INTO incidents (id, doc) VALUES (?, ?)", (doc["_id"], body))
                append_rows(conn, rows)
        except sqlite3.IntegrityError:
            winner = self.incident_by_idempotency_key(scope)
            if winner is None:
                raise
            return winner, False
        return stamped, True

    def duplicate_candidates(
        self,
        category: str,
        earliest: datetime,
        latest: datetime,
        exercise: bool,
        near: Neighbourhood,
    ) -> list[DuplicateProbe]:
        """The township's incidents by index range; nearby ones by the window, then the box.
        Read from the generated columns: no candidate's document is decoded."""
        params: dict[str, Any] = {
            "category": category,
            "exercise": int(exercise),
            "township": near.township_code,
            "earliest": iso(earliest),
            "latest": iso(latest),
            "limit": DUPLICATE_SCAN_LIMIT,
        }
        probe = "SELECT id, category, township_code, occurred_at, exercise, lat, lon FROM incidents"
        branches = [
            f"{probe} WHERE category = :category AND status = 'open' AND exercise = :exercise"
            " AND township_code = :township AND occurred_at BETWEEN :earliest AND :latest"
        ]
        if near.box is not None:
            branches.append(
                f"{probe} WHERE category = :category AND status = 'open'"
                " AND exercise = :exercise AND occurred_at BETWEEN :earliest AND :latest"
                " AND lat BETWEEN :lat_min AND :lat_max AND lon BETWEEN :lon_min AND :lon_max"
            )
            params.update(zip(("lat_min", "lat_max", "lon_min", "lon_max"), near.box, strict=True))
        # Each branch stops at the limit in its index's order before the two are merged.
        merged = " UNION ".join(
            f"SELECT * FROM ({branch} ORDER BY occurred_at, id LIMIT :limit)" for branch in branches
        )
        rows = self.db.query(f"{merged} ORDER BY occurred_at, id LIMIT :limit", params)
        return [
            DuplicateProbe(
                incident_id=ident,
                category=kind,
                township_code=township,
                occurred_at=from_iso(occurred),
                exercise=bool(drill),
                lat=lat,
                lon=lon,
            )
            for ident, kind, township, occurred, drill, lat, lon in rows
        ]

    def incidents_page(
        self, filters: IncidentFilter, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Walks (reported_at, id) descending from the cursor, filtering as it goes."""
        if not 1 <= limit <= MAX_LIMIT:
            raise field_error("query.limit", f"须在 1 到 {MAX_LIMIT} 之间")
        where, params = _where(filters)
        if cursor:
            value, ident = decode_cursor(cursor)
            where.append("(reported_at < ? OR (reported_at = ? AND id < ?))")
            params += [_as_text(value), _as_text(value), ident]
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self.db.documents(
            f"SELECT doc FROM incidents {clause} ORDER BY reported_at DESC, id DESC LIMIT ?",
            [*params, limit + 1],
        )
        if len(rows) <= limit:
            return rows, None
        rows = rows[:limit]
        return rows, encode_cursor(rows[-1]["reported_at"], rows[-1]["_id"])

    def count_open_by_grade(self) -> dict[int, int]:
        """Counted on the (status, grade, exercise) index."""
        counts = dict(
            self.db.query(
                "SELECT grade, count(*) FROM incidents"
                " WHERE status = 'open' AND exercise = 0 GROUP BY grade"
            )
        )
        return {grade: counts.get(grade, 0) for grade in (1, 2, 3, 4)}

    def count_incidents(self) -> int:
        """Rows in the table."""
        return int(self.db.query("SELECT count(*) FROM incidents")[0][0])

    def close_incident(
        self,
        incident_id: str,
        version: int,
        fields: Mapping[str, Any],
        entry: Mapping[str, Any],
        event: EventEnvelope,
    ) -> bool:
        """Guard: still open, still at ``version``."""
        return self._step_open_incident(incident_id, version, fields, entry, event)

    def _step_open_incident(
        self,
        incident_id: str,
        version: int,
        fields: Mapping[str, Any],
        entry: Mapping[str, Any],
        event: EventEnvelope,
        extra_guard: str = "",
    ) -> bool:
        """One step of an open incident at ``version``: fields set, an entry in its history."""
        expr, params = patched(fields, {"history": [entry]})
        return self._change(
            incident_id,
            f"SET doc = json_set({expr}, '$.version', version + 1)"
            " WHERE id = ? AND version = ? AND status = 'open'" + extra_guard,
            [*params, incident_id, version],
            [event],
        )

    def claim_for_merge(
        self, primary_id: str, duplicate_id: str, entry: Mapping[str, Any], now: datetime
    ) -> bool:
        """Guard: the primary is open and its merged_ids lacks the duplicate (no event)."""
        expr, params = patched(
            {"updated_at": now}, {"merged_ids": [duplicate_id], "history": [entry]}
        )
        return self._change(
            primary_id,
            f"SET doc = json_set({expr}, '$.version', version + 1)"
            " WHERE id = ? AND status = 'open' AND NOT EXISTS"
            " (SELECT 1 FROM json_each(doc, '$.merged_ids') WHERE value = ?)",
            [*params, primary_id, duplicate_id],
            [],
        )

    def release_merge_claim(self, primary_id: str, duplicate_id: str) -> None:
        """Drop the duplicate from merged_ids and its merge entry from the history."""
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE incidents SET doc = json_set(doc,"
                " '$.merged_ids', (SELECT json_group_array(value) FROM"
                "   (SELECT value FROM json_each(doc, '$.merged_ids') WHERE value != :dup"
                "    ORDER BY key)),"
                " '$.history', (SELECT json_group_array(json(value)) FROM"
                "   (SELECT value FROM json_each(doc, '$.history')"
                "    WHERE NOT (value ->> '$.kind' = 'merged'"
                "               AND value ->> '$.duplicate_id' = :dup)"
                "    ORDER BY key)),"
                " '$.version', version + 1)"
                " WHERE id = :id",
                {"id": primary_id, "dup": duplicate_id},
            )

    def mark_merged(
        self,
        duplicate_id: str,
        version: int,
        fields: Mapping[str, Any],
        entry: Mapping[str, Any],
        event: EventEnvelope,
    ) -> bool:
        """Guard: open, at ``version``, and it absorbed no other incident."""
        return self._step_open_incident(
            duplicate_id,
            version,
            fields,
            entry,
            event,
            " AND coalesce(json_array_length(doc, '$.merged_ids'), 0) = 0",
        )

    def apply_report(
        self,
        incident_id: str,
        version: int,
        fields: Mapping[str, Any],
        entries: Sequence[Mapping[str, Any]],
        events: Sequence[EventEnvelope],
        event_id: str,
    ) -> bool:
        """Guard: at ``version`` and ``event_id`` not in the applied list (kept to its last 500)."""
        expr, params = patched(fields, {"history": list(entries)})
        applied = (
            f"CASE WHEN coalesce(json_array_length(doc, '$.{APPLIED}'), 0) >= {APPLIED_KEEP}"
            f" THEN json_remove(json_extract(doc, '$.{APPLIED}'), '$[0]')"
            f" ELSE coalesce(json_extract(doc, '$.{APPLIED}'), json('[]')) END"
        )
        return self._change(
            incident_id,
            f"SET doc = json_set({expr}, '$.version', version + 1,"
            f" '$.{APPLIED}', json_insert({applied}, '$[#]', ?))"
            " WHERE id = ? AND version = ? AND NOT EXISTS"
            f" (SELECT 1 FROM json_each(doc, '$.{APPLIED}') WHERE value = ?)",
            [*params, event_id, incident_id, version, event_id],
            events,
        )

    def _change(
        self, incident_id: str, update: str, params: list[Any], events: Sequence[EventEnvelope]
    ) -> bool:
        """One guarded ``UPDATE … RETURNING`` and, if it matched, its events: one transaction."""
        with self.db.transaction() as conn:
            row = conn.execute(f"UPDATE incidents {update} RETURNING id", params).fetchone()
            if row is not None and events:
                append_events(conn, incident_id, events)
        return row is not None

    def import_documents(self, docs: Iterable[Mapping[str, Any]]) -> int:
        """Copy documents of the previous store, pending events into the outbox; then mark done.

        Idempotent: a document already here is skipped, so an interrupted migration resumes.
        """
        copied = 0
        for doc in docs:
            pending = [EventEnvelope.model_validate(raw) for raw in doc.get(OUTBOX) or []]
            kept = {k: v for k, v in doc.items() if not k.startswith(OUTBOX)}
            with self.db.transaction() as conn:
                inserted = conn.execute(
                    "INSERT OR IGNORE INTO incidents (id, doc) VALUES (?, ?) RETURNING id",
                    (kept["_id"], dumps(kept)),
                ).fetchone()
                if inserted is not None:
                    append_events(conn, kept["_id"], pending)
                    copied += 1
        with self.db.transaction() as conn:
            self.db.set_meta(conn, LEGACY_MARK, "done")
        return copied

    def imported(self) -> bool:
        """True once documents of the previous store were imported (or found none to import)."""
        return self.db.get_meta(LEGACY_MARK) == "done"


def _as_text(value: Any) -> Any:
    return iso(value) if isinstance(value, datetime) else value


def _where(filters: IncidentFilter) -> tuple[list[str], list[Any]]:
    """Conditions on the indexed columns (column names equal the document's field names)."""
    where, params = [], []
    for name, value in filters.equalities().items():
        where.append(f"{name} = ?")
        params.append(int(value) if isinstance(value, bool) else value)
    if filters.reported_after is not None:
        where.append("reported_at >= ?")
        params.append(iso(filters.reported_after))
    if filters.reported_before is not None:
        where.append("reported_at < ?")
        params.append(iso(filters.reported_before))
    return where, params
