"""Reporting on SQLite: a table per kind of document (the document as JSON), generated columns
indexed for every field a query filters or sorts on, insert-once as ``INSERT … ON CONFLICT DO
NOTHING``, guarded changes as one ``UPDATE … WHERE <guard> … RETURNING``, and events in the
outbox table, written in the same transaction as the document."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from libs.common.clock import as_utc
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
from services.reporting.repository import (
    COLLECTIONS,
    DISPATCHES_UNDER_WAY,
    EXERCISE_ZERO_REPORTS,
    OVERDUE_FIELDS,
    SCAN_BATCH,
    TIMELINE,
    ZERO_REPORTS,
    AuditFilter,
    ChainSlotTakenError,
    DeadlineFilter,
    DeadlineTally,
    FirstFollowup,
    Page,
    PlanMerge,
    ReportedIncident,
)


def _text(name: str, path: str | None = None) -> str:
    return f" {name} TEXT GENERATED ALWAYS AS (doc ->> '$.{path or name}') VIRTUAL"


def _time(name: str) -> str:
    # Datetimes are stored tagged; the column holds the fixed-width UTC text (sorts in time order).
    return f" {name} TEXT GENERATED ALWAYS AS (doc ->> '$.{name}.\"$date\"') VIRTUAL"


def _flag(name: str) -> str:
    # Missing, null and false are all "not set" (a drill flag that was never written is real).
    return f" {name} INTEGER GENERATED ALWAYS AS (coalesce(doc ->> '$.{name}', 0)) VIRTUAL"


def _table(name: str, *columns: str) -> str:
    body = ",".join(
        [" id TEXT PRIMARY KEY", " doc TEXT NOT NULL CHECK (json_valid(doc))", *columns]
    )
    return f"CREATE TABLE IF NOT EXISTS {name} ({body})"


# A merged duplicate is no event of its own: what was filed about it stays out of a period's
# figures. NOT EXISTS (not NOT IN) keeps rows without an incident, such as a campaign's.
_NOT_MERGED = (
    " AND NOT EXISTS (SELECT 1 FROM incidents AS merged"
    " WHERE merged.id = {table}.incident_id AND merged.status = 'merged')"
)

SCHEMA = [
    _table(
        "incidents",
        _text("township_code"),
        _text("status"),
        _flag("exercise"),
        " grade INTEGER GENERATED ALWAYS AS (doc ->> '$.grade') VIRTUAL",
        _flag("late"),
        _time("reported_at"),
        _time("occurred_at"),
    ),
    # Day ranges of real incidents (summaries, packs), per township too (zero reports, scores).
    "CREATE INDEX IF NOT EXISTS incidents_reported ON incidents (exercise, reported_at, id)",
    "CREATE INDEX IF NOT EXISTS incidents_township_reported"
    " ON incidents (township_code, exercise, reported_at, id)",
    "CREATE INDEX IF NOT EXISTS incidents_township_occurred"
    " ON incidents (township_code, exercise, occurred_at, id)",
    # The open set, in the daily report's order.
    "CREATE INDEX IF NOT EXISTS incidents_open"
    " ON incidents (status, exercise, grade, reported_at, id)",
    _table(
        "reports",
        _text("idem_key", f"{IDEMPOTENCY}.key"),
        _text("chain_key"),
        _text("incident_id"),
        " seq INTEGER GENERATED ALWAYS AS (doc ->> '$.seq') VIRTUAL",
        _text("event_id"),
        _text("township_code"),
        _text("kind"),
        _flag("exercise"),
        _time("filed_at"),
    ),
    # NULLs are distinct in a unique index: reports filed without a key never collide.
    "CREATE UNIQUE INDEX IF NOT EXISTS reports_idem ON reports (idem_key)",
    "CREATE UNIQUE INDEX IF NOT EXISTS reports_chain_key ON reports (chain_key)",
    "CREATE UNIQUE INDEX IF NOT EXISTS reports_chain_seq ON reports (incident_id, seq)",
    "CREATE INDEX IF NOT EXISTS reports_event ON reports (event_id)",
    "CREATE INDEX IF NOT EXISTS reports_filed ON reports (exercise, filed_at)",
    _table(
        "deadlines",
        _text("incident_id"),
        _text("township_code"),
        _text("kind"),
        _text("status"),
        _flag("exercise"),
        _flag("armed"),
        _flag("late"),
        _time("due_at"),
        _time("met_at"),
        _time("next_check_at"),
        _time("window_start"),
    ),
    # The scan reads only armed deadlines: met, cancelled and fully escalated ones drop the flag.
    "CREATE INDEX IF NOT EXISTS deadlines_scan ON deadlines (armed, next_check_at, id)",
    "CREATE INDEX IF NOT EXISTS deadlines_incident ON deadlines (incident_id, kind, status)",
    # Lists by due time, walked in index order when filtered by status, township or incident.
    "CREATE INDEX IF NOT EXISTS deadlines_due ON deadlines (due_at, id)",
    "CREATE INDEX IF NOT EXISTS deadlines_status_due ON deadlines (status, due_at, id)",
    "CREATE INDEX IF NOT EXISTS deadlines_township_due ON deadlines (township_code, due_at, id)",
    "CREATE INDEX IF NOT EXISTS deadlines_township_status_due"
    " ON deadlines (township_code, status, due_at, id)",
    "CREATE INDEX IF NOT EXISTS deadlines_incident_due ON deadlines (incident_id, due_at, id)",
    "CREATE INDEX IF NOT EXISTS deadlines_met ON deadlines (late, met_at, id)",
    "CREATE INDEX IF NOT EXISTS deadlines_overdue ON deadlines (status, exercise, township_code)",
    *(
        statement
        for table in (ZERO_REPORTS, EXERCISE_ZERO_REPORTS)
        for statement in (
            _table(table, _text("day", "date"), _text("township_code")),
            f"CREATE INDEX IF NOT EXISTS {table}_day ON {table} (day, township_code)",
        )
    ),
    _table("zero_missed", _text("day", "date")),
    "CREATE INDEX IF NOT EXISTS zero_missed_day ON zero_missed (day)",
    _table("zero_conflicts", _text("day", "date"), _text("township_code"), _time("attempted_at")),
    "CREATE INDEX IF NOT EXISTS zero_conflicts_day ON zero_conflicts (day, attempted_at, id)",
    "CREATE INDEX IF NOT EXISTS zero_conflicts_attempted ON zero_conflicts (attempted_at, id)",
    _table("state"),
    _table(
        "timeline",
        _text("order_key"),
        _text("event_type"),
        _text("source"),
        _text("township_code"),
        _time("occurred_at"),
    ),
    # An event may be about several incidents: one row per (incident, entry), in arrival order.
    "CREATE TABLE IF NOT EXISTS timeline_incidents ("
    " incident_id TEXT NOT NULL, order_key TEXT NOT NULL, entry_id TEXT NOT NULL,"
    " PRIMARY KEY (incident_id, order_key, entry_id)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS timeline_order ON timeline (order_key, id)",
    "CREATE INDEX IF NOT EXISTS timeline_occurred ON timeline (occurred_at, id)",
    "CREATE INDEX IF NOT EXISTS timeline_type ON timeline (event_type, order_key, id)",
    "CREATE INDEX IF NOT EXISTS timeline_source ON timeline (source, order_key, id)",
    "CREATE INDEX IF NOT EXISTS timeline_township ON timeline (township_code, order_key, id)",
    _table(
        "warnings",
        " version INTEGER GENERATED ALWAYS AS (doc ->> '$.version') VIRTUAL",
        _flag("exercise"),
        _time("issued_at"),
        _time("ended_at"),
    ),
    "CREATE INDEX IF NOT EXISTS warnings_active ON warnings (ended_at, issued_at)",
    _table(
        "warning_approvals",
        _text("decision"),
        _flag("exercise"),
        _time("requested_at"),
    ),
    # The open set: requested, not decided; real and drill apart.
    "CREATE INDEX IF NOT EXISTS warning_approvals_open"
    " ON warning_approvals (decision, exercise, requested_at, id)",
    _table("dispatches", _flag("exercise"), _time("ordered_at")),
    "CREATE INDEX IF NOT EXISTS dispatches_ordered ON dispatches (ordered_at, id)",
    # The dispatches under way (the duty office's handover), by their status in the document.
    "CREATE INDEX IF NOT EXISTS dispatches_status"
    " ON dispatches ((doc ->> '$.status'), exercise, ordered_at)",
    _table("stock_alerts", _time("at")),
    "CREATE INDEX IF NOT EXISTS stock_alerts_at ON stock_alerts (at, id)",
    _table("plans", _flag("exercise"), _time("activated_at"), _time("ended_at")),
    "CREATE INDEX IF NOT EXISTS plans_active ON plans (ended_at, activated_at)",
    _table("parked_events", _text("incident_id"), _time("occurred_at")),
    "CREATE INDEX IF NOT EXISTS parked_incident ON parked_events (incident_id, occurred_at, id)",
    _table("summaries", _text("kind"), _time("published_at")),
    _table("enterprise_names"),
    *SQLITE_OUTBOX_SCHEMA,
]
LEGACY_MARK = "migrated_from_document_store"
_DISARM = {"armed": None, "next_check_at": None}
# The applied-event list after recording one more id (kept to its last APPLIED_KEEP).
_APPLIED_PLUS_ONE = (
    f"json_insert(CASE WHEN coalesce(json_array_length(doc, '$.{APPLIED}'), 0) >= {APPLIED_KEEP}"
    f" THEN json_remove(json_extract(doc, '$.{APPLIED}'), '$[0]')"
    f" ELSE coalesce(json_extract(doc, '$.{APPLIED}'), json('[]')) END, '$[#]', ?)"
)
_NOT_APPLIED = f" AND NOT EXISTS (SELECT 1 FROM json_each(doc, '$.{APPLIED}') WHERE value = ?)"


def _t(moment: datetime) -> str:
    return iso(moment)


def _encoded(doc: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """The document without its outbox marks, and its JSON text."""
    kept = {k: v for k, v in doc.items() if not k.startswith(OUTBOX)}
    return kept, dumps(kept)


class SqliteReportingRepository(SqliteRepository):
    """ReportingRepository on one SQLite file (shared by reporting's processes on one host)."""

    SCHEMA = SCHEMA
    JOURNAL = True

    # ------------------------------------------------------------ plumbing of this engine

    def _one(self, table: str, ident: str) -> dict[str, Any] | None:
        docs = self.db.documents(f"SELECT doc FROM {table} WHERE id = ?", (ident,))
        return docs[0] if docs else None

    def _insert_once(
        self,
        table: str,
        doc: Mapping[str, Any],
        events: Sequence[EventEnvelope] = (),
        conn: sqlite3.Connection | None = None,
    ) -> bool:
        """``INSERT … ON CONFLICT DO NOTHING``; the events only with a row that was new."""
        return self._insert_encoded(table, _encoded(doc), events, conn)

    def _insert_encoded(
        self,
        table: str,
        encoded: tuple[dict[str, Any], str],
        events: Sequence[EventEnvelope] = (),
        conn: sqlite3.Connection | None = None,
    ) -> bool:
        if conn is None:
            with self.db.transaction() as own:
                return self._insert_encoded(table, encoded, events, own)
        kept, body = encoded
        row = conn.execute(
            f"INSERT INTO {table} (id, doc) VALUES (?, ?) ON CONFLICT DO NOTHING RETURNING id",
            (kept["_id"], body),
        ).fetchone()
        if row is None:
            return False
        if table == TIMELINE:
            conn.executemany(
                "INSERT OR IGNORE INTO timeline_incidents (incident_id, order_key, entry_id)"
                " VALUES (?, ?, ?)",
                [(i, kept["order_key"], kept["_id"]) for i in kept.get("incident_ids") or []],
            )
        append_events(conn, kept["_id"], events)
        return True

    def _change(
        self,
        table: str,
        ident: str,
        expr: str,
        guard: str,
        params: Sequence[Any],
        events: Sequence[EventEnvelope] = (),
    ) -> bool:
        """One ``UPDATE … SET doc = <expr> WHERE id = ? <guard> RETURNING`` and, if it matched,
        its events: one transaction. ``params`` are the expression's, then the guard's."""
        with self.db.transaction() as conn:
            marks = expr.count("?")
            row = conn.execute(
                f"UPDATE {table} SET doc = {expr} WHERE id = ?{guard} RETURNING id",
                [*params[:marks], ident, *params[marks:]],
            ).fetchone()
            if row is not None:
                append_events(conn, ident, events)
        return row is not None

    def _apply_once(
        self,
        table: str,
        ident: str,
        expr: str,
        params: Sequence[Any],
        event_id: str,
        guard: str = "",
        guard_params: Sequence[Any] = (),
    ) -> bool:
        """A change recorded with its event id in the same write: a redelivery matches nothing."""
        return self._change(
            table,
            ident,
            f"json_set({expr}, '$.{APPLIED}', {_APPLIED_PLUS_ONE})",
            guard + _NOT_APPLIED,
            [*params, event_id, *guard_params, event_id],
        )

    def _many(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[Any]:
        return self.db.documents(sql, params)

    # ------------------------------------------------------------ incidents

    def incident_view(self, incident_id: str) -> dict[str, Any] | None:
        """One incident by primary key."""
        return self._one("incidents", incident_id)

    def incident_titles(self, incident_ids: Sequence[str]) -> dict[str, str | None]:
        """Primary-key lookups of the ids given as one JSON array; the title alone is read."""
        if not incident_ids:
            return {}
        return dict(
            self.db.query(
                "SELECT id, doc ->> '$.title' FROM incidents"
                " WHERE id IN (SELECT value FROM json_each(?))",
                (dumps(sorted(set(incident_ids))),),
            )
        )

    def record_incident_if_new(self, doc: Mapping[str, Any]) -> bool:
        """Insert once by id."""
        return self._insert_once("incidents", doc)

    def record_reported_incident(
        self,
        incident: Mapping[str, Any],
        initial: Mapping[str, Any],
        first_followup: FirstFollowup,
        timeline: Mapping[str, Any],
    ) -> ReportedIncident:
        """One transaction: four inserts that do nothing on a known id, and two reads of the
        incident as stored (a redelivery after a re-grade or a close plans from what is)."""
        # Encoded before the transaction: the write lock is not held while Python makes JSON.
        view, met_doc, entry_doc = _encoded(incident), _encoded(initial), _encoded(timeline)
        with self.db.transaction() as conn:
            created = self._insert_encoded("incidents", view, conn=conn)
            met = self._insert_encoded("deadlines", met_doc, conn=conn)
            followup = False
            current = view[0] if created else self._stored_incident(conn, incident["_id"])
            if (
                current["status"] == "open"
                and not conn.execute(
                    "SELECT 1 FROM deadlines WHERE incident_id = ? AND kind = 'followup' LIMIT 1",
                    (incident["_id"],),
                ).fetchone()
            ):
                slot = first_followup(current)
                followup = slot is not None and self._insert_once("deadlines", slot, conn=conn)
            entry = self._insert_encoded(TIMELINE, entry_doc, conn=conn)
        return ReportedIncident(created, met, followup, entry)

    @staticmethod
    def _stored_incident(conn: sqlite3.Connection, incident_id: str) -> dict[str, Any]:
        row = conn.execute("SELECT doc FROM incidents WHERE id = ?", (incident_id,)).fetchone()
        return dict(loads(row[0]))

    def set_grade_if_later(self, incident_id: str, grade: int, at: datetime) -> bool:
        """Guard: no grade time, or one not after ``at``."""
        expr, params = patched({"grade": grade, "grade_at": at})
        return self._change(
            "incidents",
            incident_id,
            expr,
            " AND (doc ->> '$.grade_at.\"$date\"' IS NULL OR doc ->> '$.grade_at.\"$date\"' <= ?)",
            [*params, _t(at)],
        )

    def add_regrade_once(self, incident_id: str, entry: Mapping[str, Any], event_id: str) -> bool:
        """Append to ``regrades`` with the event id recorded."""
        expr, params = patched({}, {"regrades": [dict(entry)]})
        return self._apply_once("incidents", incident_id, expr, params, event_id, "")

    def set_incident_once(self, incident_id: str, fields: Mapping[str, Any], event_id: str) -> bool:
        """Set fields with the event id recorded."""
        expr, params = patched(fields)
        return self._apply_once("incidents", incident_id, expr, params, event_id, "")

    def take_report_figures(
        self,
        incident_id: str,
        seq: int,
        current: Mapping[str, Any],
        number: int,
        finalised_at: datetime | None,
    ) -> bool:
        """Guard: the incident's report_seq is below ``seq``; followup_count only grows."""
        fields: dict[str, Any] = {"current": dict(current), "report_seq": seq}
        if finalised_at is not None:
            fields.update(finalised=True, finalised_at=finalised_at)
        expr, params = patched(fields)
        return self._change(
            "incidents",
            incident_id,
            f"json_set({expr}, '$.followup_count',"
            " max(coalesce(doc ->> '$.followup_count', 0), ?))",
            " AND coalesce(doc ->> '$.report_seq', 0) < ?",
            [*params, number, seq],
        )

    def incidents_reported_between(
        self, start: datetime, end: datetime, *, late_only: bool = False
    ) -> list[dict[str, Any]]:
        """A range on (exercise, reported_at); merged duplicates filtered out of the range."""
        late = " AND late = 1" if late_only else ""
        return self._many(
            "SELECT doc FROM incidents WHERE exercise = 0 AND reported_at >= ? AND reported_at < ?"
            f" AND status <> 'merged'{late} ORDER BY reported_at, id",
            (_t(start), _t(end)),
        )

    def township_incidents_between(
        self, township_code: str, field: str, start: datetime, end: datetime
    ) -> list[str]:
        """A range on (township_code, exercise, reported_at or occurred_at)."""
        column = {"reported_at": "reported_at", "occurred_at": "occurred_at"}[field]
        rows = self.db.query(
            f"SELECT id FROM incidents WHERE township_code = ? AND exercise = 0"
            f" AND {column} >= ? AND {column} < ? ORDER BY {column}, id",
            (township_code, _t(start), _t(end)),
        )
        return [row[0] for row in rows]

    def open_incidents_reported_before(self, end: datetime) -> list[dict[str, Any]]:
        """The open set on (status, exercise, grade, reported_at), named: a range on report time
        alone would read every real incident reported before ``end``."""
        return self._many(
            "SELECT doc FROM incidents INDEXED BY incidents_open"
            " WHERE status = 'open' AND exercise = 0 AND reported_at < ?"
            " ORDER BY grade, reported_at, id",
            (_t(end),),
        )

    def incidents_reported_per_township(self, start: datetime, end: datetime) -> dict[str, int]:
        """GROUP BY on the (exercise, reported_at) range."""
        return dict(
            self.db.query(
                "SELECT township_code, count(*) FROM incidents WHERE exercise = 0"
                " AND reported_at >= ? AND reported_at < ? GROUP BY township_code",
                (_t(start), _t(end)),
            )
        )

    # ------------------------------------------------------------ reports

    def report_by_id(self, report_id: str) -> dict[str, Any] | None:
        """One report by primary key."""
        return self._one("reports", report_id)

    def report_by_idempotency_scope(self, scope: str) -> dict[str, Any] | None:
        """The report stamped with this key (unique index)."""
        docs = self._many("SELECT doc FROM reports WHERE idem_key = ?", (scope,))
        return docs[0] if docs else None

    def report_by_event_id(self, event_id: str) -> dict[str, Any] | None:
        """By the event_id index."""
        docs = self._many("SELECT doc FROM reports WHERE event_id = ? LIMIT 1", (event_id,))
        return docs[0] if docs else None

    def final_report_filed(self, incident_id: str) -> bool:
        """The unique chain key of the final report."""
        rows = self.db.query("SELECT 1 FROM reports WHERE chain_key = ?", (f"{incident_id}:final",))
        return bool(rows)

    def last_report(self, incident_id: str) -> dict[str, Any] | None:
        """Highest seq on (incident_id, seq)."""
        docs = self._many(
            "SELECT doc FROM reports WHERE incident_id = ? ORDER BY seq DESC LIMIT 1",
            (incident_id,),
        )
        return docs[0] if docs else None

    def chain_of(self, incident_id: str) -> list[dict[str, Any]]:
        """In seq order on (incident_id, seq)."""
        return self._many(
            "SELECT doc FROM reports WHERE incident_id = ? ORDER BY seq", (incident_id,)
        )

    def record_report(
        self,
        doc: Mapping[str, Any],
        scope: str,
        digest: str,
        events: Sequence[EventEnvelope],
    ) -> tuple[dict[str, Any], bool]:
        """One transaction: the report row and its outbox rows."""
        stamped = {**doc, IDEMPOTENCY: {"key": scope, "hash": digest}}
        try:
            with self.db.transaction() as conn:
                conn.execute(
                    "INSERT INTO reports (id, doc) VALUES (?, ?)", (doc["_id"], dumps(stamped))
                )
                append_events(conn, doc["_id"], events)
        except sqlite3.IntegrityError:
            winner = self.report_by_idempotency_scope(scope)
            if winner is None:
                raise ChainSlotTakenError(doc["chain_key"]) from None
            return winner, False
        return stamped, True

    def claim_deadline_for_report(self, report_id: str, deadline_id: str) -> str | None:
        """Guard: the report has no ``meets`` yet; either way the one it meets now."""
        self._change(
            "reports",
            report_id,
            "json_set(doc, '$.meets', ?)",
            " AND doc ->> '$.meets' IS NULL",
            [deadline_id],
        )
        rows = self.db.query("SELECT doc ->> '$.meets' FROM reports WHERE id = ?", (report_id,))
        return rows[0][0] if rows and rows[0][0] else None

    def note_report_meets(self, report_id: str, deadline_id: str, late: bool) -> bool | None:
        """Guard: no ``late`` yet; then the stored one read back."""
        expr, params = patched(
            {"deadline_id": deadline_id, "deadline_ids": [deadline_id], "late": late}
        )
        self._change("reports", report_id, expr, " AND doc ->> '$.late' IS NULL", params)
        rows = self.db.query("SELECT doc ->> '$.late' FROM reports WHERE id = ?", (report_id,))
        return bool(rows[0][0]) if rows and rows[0][0] is not None else None

    def reports_filed_per_kind(self, start: datetime, end: datetime) -> dict[str, int]:
        """GROUP BY on the (exercise, filed_at) range; each row's incident by primary key."""
        return dict(
            self.db.query(
                "SELECT kind, count(*) FROM reports WHERE exercise = 0"
                f" AND filed_at >= ? AND filed_at < ?{_NOT_MERGED.format(table='reports')}"
                " GROUP BY kind",
                (_t(start), _t(end)),
            )
        )

    def reports_filed_per_township(self, start: datetime, end: datetime) -> dict[str, int]:
        """GROUP BY on the (exercise, filed_at) range."""
        return dict(
            self.db.query(
                "SELECT township_code, count(*) FROM reports WHERE exercise = 0"
                " AND filed_at >= ? AND filed_at < ? GROUP BY township_code",
                (_t(start), _t(end)),
            )
        )

    # ------------------------------------------------------------ deadlines

    def record_deadline_if_new(self, doc: Mapping[str, Any]) -> bool:
        """Insert once by id."""
        return self._insert_once("deadlines", doc)

    def deadline_by_id(self, deadline_id: str) -> dict[str, Any] | None:
        """One deadline by primary key."""
        return self._one("deadlines", deadline_id)

    def has_followup_deadline(self, incident_id: str, status: str | None = None) -> bool:
        """On (incident_id, kind, status)."""
        sql = "SELECT 1 FROM deadlines WHERE incident_id = ? AND kind = 'followup'"
        params: list[Any] = [incident_id]
        if status is not None:
            sql += " AND status = ?"
            params.append(status)
        return bool(self.db.query(sql + " LIMIT 1", params))

    def open_deadlines(self, incident_id: str) -> list[dict[str, Any]]:
        """On (incident_id, due_at)."""
        return self._many(
            "SELECT doc FROM deadlines WHERE incident_id = ? AND status IN ('pending', 'overdue')"
            " ORDER BY due_at, id",
            (incident_id,),
        )

    def pending_followups(self, incident_id: str) -> list[dict[str, Any]]:
        """On (incident_id, kind, status)."""
        return self._many(
            "SELECT doc FROM deadlines WHERE incident_id = ? AND kind = 'followup'"
            " AND status = 'pending'",
            (incident_id,),
        )

    def met_followup_dues(self, incident_id: str) -> set[datetime]:
        """On (incident_id, kind, status), the due times from their column."""
        rows = self.db.query(
            "SELECT due_at FROM deadlines WHERE incident_id = ? AND kind = 'followup'"
            " AND status = 'met'",
            (incident_id,),
        )
        return {from_iso(row[0]) for row in rows}

    def _end_where(
        self, conn: sqlite3.Connection, where: str, params: Sequence[Any], fields: dict[str, Any]
    ) -> int:
        expr, set_params = patched({**fields, **_DISARM})
        rows = conn.execute(
            f"UPDATE deadlines SET doc = {expr} WHERE {where} RETURNING id",
            [*set_params, *params],
        ).fetchall()
        return len(rows)

    def end_deadlines(
        self, incident_id: str, kinds: Sequence[str], statuses: Mapping[str, str], reason: str
    ) -> int:
        """One UPDATE per status, all in one transaction."""
        marks = ",".join("?" * len(kinds))
        changed = 0
        with self.db.transaction() as conn:
            for old, new in statuses.items():
                changed += self._end_where(
                    conn,
                    f"incident_id = ? AND status = ? AND kind IN ({marks})",
                    [incident_id, old, *kinds],
                    {"status": new, "cancel_reason": reason},
                )
        return changed

    def cancel_superseded_escalations(self, incident_id: str, before: datetime, reason: str) -> int:
        """Guard: pending escalations whose window began before ``before``."""
        with self.db.transaction() as conn:
            return self._end_where(
                conn,
                "incident_id = ? AND kind = 'escalation' AND status = 'pending'"
                " AND window_start < ?",
                [incident_id, _t(before)],
                {"status": "cancelled", "cancel_reason": reason},
            )

    def cancel_pending_deadline(self, deadline_id: str, reason: str) -> bool:
        """Guard: still pending."""
        expr, params = patched({"status": "cancelled", "cancel_reason": reason, **_DISARM})
        return self._change("deadlines", deadline_id, expr, " AND status = 'pending'", params)

    def reset_final_deadline(self, deadline_id: str, grade: int, due_at: datetime) -> bool:
        """Guard: still pending."""
        expr, params = patched({"grade": grade, "due_at": due_at, "next_check_at": due_at})
        return self._change("deadlines", deadline_id, expr, " AND status = 'pending'", params)

    def meet_deadline(self, deadline_id: str, met_at: datetime, report_id: str, late: bool) -> bool:
        """Guard: still pending or overdue."""
        expr, params = patched(
            {"status": "met", "met_at": met_at, "met_by": report_id, "late": late, **_DISARM}
        )
        return self._change(
            "deadlines", deadline_id, expr, " AND status IN ('pending', 'overdue')", params
        )

    def deadlines_due(self, now: datetime, limit: int = SCAN_BATCH) -> list[dict[str, Any]]:
        """A range on the (armed, next_check_at) scan index."""
        return self._many(
            "SELECT doc FROM deadlines WHERE armed = 1 AND next_check_at <= ?"
            " ORDER BY next_check_at, id LIMIT ?",
            (_t(now), limit),
        )

    def mark_overdue(
        self, deadline_id: str, now: datetime, next_check_at: datetime, event: EventEnvelope
    ) -> bool:
        """Guard: still pending; the event in the same transaction."""
        expr, params = patched(
            {
                "status": "overdue",
                "escalation": 1,
                "overdue_at": now,
                "next_check_at": next_check_at,
            }
        )
        return self._change(
            "deadlines", deadline_id, expr, " AND status = 'pending'", params, [event]
        )

    def mark_long_overdue(self, deadline_id: str, now: datetime, event: EventEnvelope) -> bool:
        """Guard: overdue at escalation 1; the event in the same transaction."""
        expr, params = patched({"escalation": 2, "long_overdue_at": now, **_DISARM})
        return self._change(
            "deadlines",
            deadline_id,
            expr,
            " AND status = 'overdue' AND doc ->> '$.escalation' = 1",
            params,
            [event],
        )

    def disarm_deadline(self, deadline_id: str) -> None:
        """Plain set by id."""
        expr, params = patched(dict(_DISARM))
        self._change("deadlines", deadline_id, expr, "", params)

    def overdue_per_township(self) -> dict[str, int]:
        """GROUP BY on (status, exercise, township_code)."""
        return dict(
            self.db.query(
                "SELECT township_code, count(*) FROM deadlines"
                " WHERE status = 'overdue' AND exercise = 0 GROUP BY township_code"
            )
        )

    def deadlines_page(self, filters: DeadlineFilter, limit: int, cursor: str | None) -> Page:
        """Walks (due_at, id) ascending from the cursor, filtering as it goes."""
        where, params = [], list[Any]()
        for name in ("status", "township_code", "incident_id", "kind"):
            value = getattr(filters, name)
            if value is not None:
                where.append(f"{name} = ?")
                params.append(value)
        if filters.exercise is not None:
            where.append("exercise = ?")
            params.append(int(filters.exercise))
        return self._page("deadlines", "due_at", where, params, limit, cursor)

    def _page(
        self,
        table: str,
        column: str,
        where: list[str],
        params: list[Any],
        limit: int,
        cursor: str | None,
        source: str | None = None,
    ) -> Page:
        """Ascending by (column, id), one more row than asked to know if a next page exists."""
        if not 1 <= limit <= MAX_LIMIT:
            raise field_error("query.limit", f"须在 1 到 {MAX_LIMIT} 之间")
        if cursor:
            value, ident = decode_cursor(cursor)
            value = _t(value) if isinstance(value, datetime) else value
            where = [*where, f"({column} > ? OR ({column} = ? AND id > ?))"]
            params = [*params, value, value, ident]
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._many(
            f"SELECT doc FROM {source or table} {clause} ORDER BY {column}, id LIMIT ?",
            [*params, limit + 1],
        )
        if len(rows) <= limit:
            return rows, None
        rows = rows[:limit]
        return rows, encode_cursor(rows[-1][column], rows[-1]["_id"])

    def late_deadlines_met_between(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """A range on (late, met_at), named: ``status = 'met'`` would read every met deadline."""
        return self._many(
            "SELECT doc FROM deadlines INDEXED BY deadlines_met"
            " WHERE late = 1 AND met_at >= ? AND met_at < ? AND status = 'met'"
            f" AND kind != 'initial' AND exercise = 0{_NOT_MERGED.format(table='deadlines')}"
            " ORDER BY met_at, id",
            (_t(start), _t(end)),
        )

    def overdue_deadlines_due_before(self, end: datetime) -> list[dict[str, Any]]:
        """The overdue set on (status, due_at), projected in SQL: the whole documents (applied
        event ids, escalation times) are neither decoded nor copied."""
        # json_each leaves a missing field missing (not null), as Mongo's projection does; its
        # value of a JSON true/false is SQL 1/0, so the two are put back as JSON.
        names = ", ".join(f"'{name}'" for name in OVERDUE_FIELDS)
        value = (
            "CASE type WHEN 'true' THEN json('true') WHEN 'false' THEN json('false') ELSE value END"
        )
        return self._many(
            f"SELECT (SELECT json_group_object(key, {value}) FROM json_each(doc)"
            f" WHERE key IN ({names})) FROM deadlines"
            " WHERE status = 'overdue' AND due_at < ? AND exercise = 0"
            " ORDER BY due_at, id",
            (_t(end),),
        )

    def deadline_tallies(self, start: datetime, end: datetime) -> dict[str, DeadlineTally]:
        """GROUP BY township on the due_at range."""
        rows = self.db.query(
            "SELECT township_code, count(*),"
            " sum(status = 'met' AND coalesce(doc ->> '$.late', 0) = 0),"
            " sum(status = 'met' AND coalesce(doc ->> '$.late', 0) != 0),"
            " sum(kind != 'initial'), sum(kind != 'initial' AND status = 'met')"
            " FROM deadlines WHERE due_at >= ? AND due_at < ? AND status != 'cancelled'"
            " AND exercise = 0 GROUP BY township_code",
            (_t(start), _t(end)),
        )
        return {code: DeadlineTally(*counts) for code, *counts in rows}

    # ------------------------------------------------------------ zero reports

    def record_zero_report(
        self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]
    ) -> tuple[dict[str, Any], bool]:
        """Insert once into the real or the drill table; the stored one when it existed."""
        table = EXERCISE_ZERO_REPORTS if doc.get("exercise") else ZERO_REPORTS
        if self._insert_once(table, doc, events):
            return dict(doc), True
        return self._one(table, doc["_id"]) or dict(doc), False

    def zero_reports_of_day(self, day: date, *, exercise: bool = False) -> list[dict[str, Any]]:
        """On (day, township_code)."""
        table = EXERCISE_ZERO_REPORTS if exercise else ZERO_REPORTS
        return self._many(
            f"SELECT doc FROM {table} WHERE day = ? ORDER BY township_code", (day.isoformat(),)
        )

    def zero_reports_between(self, first: date, last: date) -> list[dict[str, Any]]:
        """A range on (day, township_code)."""
        return self._many(
            "SELECT doc FROM zero_reports WHERE day >= ? AND day <= ? ORDER BY day, township_code",
            (first.isoformat(), last.isoformat()),
        )

    def record_missed_zero_report(
        self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]
    ) -> bool:
        """Insert once with the alert event."""
        return self._insert_once("zero_missed", doc, events)

    def missed_zero_reports_of_day(self, day: date) -> list[dict[str, Any]]:
        """On day."""
        return self._many("SELECT doc FROM zero_missed WHERE day = ?", (day.isoformat(),))

    def record_contradiction(self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]) -> bool:
        """Insert once with its event."""
        return self._insert_once("zero_conflicts", doc, events)

    def contradictions_of_days(
        self, first: date, last: date, township_code: str | None = None, newest_first: bool = False
    ) -> list[dict[str, Any]]:
        """One day in (day, attempted_at) order; several days (at most a quarter) sorted."""
        days = "day = ?" if first == last else "day >= ? AND day <= ?"
        params = [first.isoformat()] if first == last else [first.isoformat(), last.isoformat()]
        township = " AND township_code = ?" if township_code else ""
        order = "DESC" if newest_first else ""
        return self._many(
            f"SELECT doc FROM zero_conflicts WHERE {days}{township}"
            f" ORDER BY attempted_at {order}, id {order}",
            [*params, *([township_code] if township_code else [])],
        )

    def contradictions_attempted_between(
        self, start: datetime, end: datetime
    ) -> list[dict[str, Any]]:
        """A range on attempted_at."""
        return self._many(
            "SELECT doc FROM zero_conflicts WHERE attempted_at >= ? AND attempted_at < ?"
            " ORDER BY attempted_at, id",
            (_t(start), _t(end)),
        )

    # ------------------------------------------------------------ bookkeeping

    def state(self, key: str) -> dict[str, Any] | None:
        """By primary key."""
        return self._one("state", key)

    def record_state_if_new(self, key: str, fields: Mapping[str, Any]) -> bool:
        """Insert once."""
        return self._insert_once("state", {"_id": key, **fields})

    def advance_cursor(self, key: str, field: str, value: str) -> bool:
        """Upsert; an existing cursor only moves forward."""
        with self.db.transaction() as conn:
            row = conn.execute(
                f"INSERT INTO state (id, doc) VALUES (?, json_object('_id', ?, '{field}', ?))"
                f" ON CONFLICT (id) DO UPDATE SET doc = json_set(doc, '$.{field}', ?)"
                f" WHERE coalesce(doc ->> '$.{field}', '') < ? RETURNING id",
                (key, key, value, value, value),
            ).fetchone()
        return row is not None

    # ------------------------------------------------------------ timeline

    def record_timeline_entry(self, doc: Mapping[str, Any]) -> bool:
        """Insert once, with a membership row per incident it is about."""
        return self._insert_once(TIMELINE, doc)

    def has_timeline_entry(self, event_id: str) -> bool:
        """By primary key."""
        return bool(self.db.query("SELECT 1 FROM timeline WHERE id = ?", (event_id,)))

    def timeline_page(self, incident_id: str, limit: int, cursor: str | None) -> Page:
        """Walks the (incident_id, order_key, entry) membership index."""
        if not 1 <= limit <= MAX_LIMIT:
            raise field_error("query.limit", f"须在 1 到 {MAX_LIMIT} 之间")
        where, params = "m.incident_id = ?", [incident_id]
        if cursor:
            value, ident = decode_cursor(cursor)
            where += " AND (m.order_key > ? OR (m.order_key = ? AND m.entry_id > ?))"
            params += [value, value, ident]
        rows = self._many(
            "SELECT t.doc FROM timeline_incidents m JOIN timeline t ON t.id = m.entry_id"
            f" WHERE {where} ORDER BY m.order_key, m.entry_id LIMIT ?",
            [*params, limit + 1],
        )
        if len(rows) <= limit:
            return rows, None
        rows = rows[:limit]
        return rows, encode_cursor(rows[-1]["order_key"], rows[-1]["_id"])

    def audit_page(self, filters: AuditFilter, limit: int, cursor: str | None) -> Page:
        """Walks (order_key, id); a time range is also a range of order_key (it starts with the
        occurrence time), so it narrows the walk."""
        if filters.incident_id is not None:
            where = ["id IN (SELECT entry_id FROM timeline_incidents WHERE incident_id = ?)"]
            params: list[Any] = [filters.incident_id]
        else:
            where, params = [], []
        for name in ("event_type", "source", "township_code"):
            value = getattr(filters, name)
            if value is not None:
                where.append(f"{name} = ?")
                params.append(value)
        if filters.occurred_from is not None:
            where += ["occurred_at >= ?", "order_key >= ?"]
            params += [_t(filters.occurred_from), _order_prefix(filters.occurred_from)]
        if filters.occurred_before is not None:
            where += ["occurred_at < ?", "order_key < ?"]
            params += [_t(filters.occurred_before), _order_prefix(filters.occurred_before)]
        return self._page("timeline", "order_key", where, params, limit, cursor)

    def timeline_since(
        self, low: datetime, after: tuple[datetime, str] | None, limit: int
    ) -> list[dict[str, Any]]:
        """A range on (occurred_at, id)."""
        if after is None:
            return self._many(
                "SELECT doc FROM timeline WHERE occurred_at >= ? ORDER BY occurred_at, id LIMIT ?",
                (_t(low), limit),
            )
        at = _t(after[0])
        return self._many(
            "SELECT doc FROM timeline WHERE occurred_at > ? OR (occurred_at = ? AND id > ?)"
            " ORDER BY occurred_at, id LIMIT ?",
            (at, at, after[1], limit),
        )

    # ------------------------------------------------------------ read models

    def warning_view(self, warning_id: str) -> dict[str, Any] | None:
        """By primary key."""
        return self._one("warnings", warning_id)

    def keep_enterprise_name(
        self, enterprise_id: str, revision: int, name: str, exercise: bool = False
    ) -> bool:
        """An upsert that only a higher revision overwrites, so any order converges."""
        kept = {"_id": enterprise_id, "revision": revision, "name": name, "exercise": exercise}
        doc = dumps(kept)
        with self.db.transaction() as conn:
            row = conn.execute(
                "INSERT INTO enterprise_names (id, doc) VALUES (?, ?) ON CONFLICT (id) DO UPDATE"
                " SET doc = excluded.doc WHERE enterprise_names.doc ->> '$.revision'"
                " < excluded.doc ->> '$.revision' RETURNING id",
                (enterprise_id, doc),
            ).fetchone()
        return row is not None

    def enterprise_entry(self, enterprise_id: str) -> dict[str, Any] | None:
        """By primary key; a name kept before the flag was is a real enterprise's."""
        found = self._one("enterprise_names", enterprise_id)
        return None if found is None else {**found, "exercise": bool(found.get("exercise"))}

    def apply_warning_version(
        self, warning_id: str, version: int, fields: Mapping[str, Any], event_id: str
    ) -> bool:
        """A stub first (once); then guard: version not beyond ``version``, event not applied."""
        self._insert_once(
            "warnings",
            {
                "_id": warning_id,
                "version": 0,
                "status": "unknown",
                "issued_at": None,
                "ended_at": None,
            },
        )
        expr, params = patched(fields)
        return self._apply_once(
            "warnings", warning_id, expr, params, event_id, " AND version <= ?", [version]
        )

    def set_warning_issued_at_if_earlier(self, warning_id: str, at: datetime) -> None:
        """Guard: no issue time yet, or a later one."""
        expr, params = patched({"issued_at": at})
        self._change(
            "warnings",
            warning_id,
            expr,
            " AND (issued_at IS NULL OR issued_at > ?)",
            [*params, _t(at)],
        )

    def warnings_active_at(self, end: datetime) -> list[dict[str, Any]]:
        """Two ranges on (ended_at, issued_at): still running, or ended after ``end``."""
        return self._many(
            "SELECT doc FROM warnings WHERE ended_at IS NULL AND issued_at < :end AND exercise = 0"
            " UNION ALL SELECT doc FROM warnings WHERE ended_at > :end AND issued_at < :end"
            " AND exercise = 0",
            {"end": _t(end)},
        )

    def warning_approval(self, approval_id: str) -> dict[str, Any] | None:
        """By primary key."""
        return self._one("warning_approvals", approval_id)

    def _fill_once(self, stub: Mapping[str, Any], fields: Mapping[str, Any], unset: str) -> bool:
        """The stub inserted once, then ``fields`` set while column ``unset`` is still NULL:
        one transaction."""
        expr, params = patched(fields)
        with self.db.transaction() as conn:
            self._insert_once("warning_approvals", stub, (), conn)
            row = conn.execute(
                f"UPDATE warning_approvals SET doc = {expr} WHERE id = ? AND {unset} IS NULL"
                " RETURNING id",
                [*params, stub["_id"]],
            ).fetchone()
        return row is not None

    def record_approval_request(self, stub: Mapping[str, Any], fields: Mapping[str, Any]) -> bool:
        """Guard: no request time yet."""
        return self._fill_once(stub, fields, "requested_at")

    def record_approval_decision(self, stub: Mapping[str, Any], fields: Mapping[str, Any]) -> bool:
        """Guard: no decision yet."""
        return self._fill_once(stub, fields, "decision")

    def open_warning_approvals(self, exercise: bool) -> list[dict[str, Any]]:
        """A range on the (decision, exercise, requested_at) index."""
        return self._many(
            "SELECT doc FROM warning_approvals WHERE decision IS NULL AND exercise = ?"
            " AND requested_at IS NOT NULL ORDER BY requested_at, id",
            (int(exercise),),
        )

    def dispatch_view(self, dispatch_id: str) -> dict[str, Any] | None:
        """By primary key."""
        return self._one("dispatches", dispatch_id)

    def record_dispatch_if_new(self, doc: Mapping[str, Any]) -> bool:
        """Insert once."""
        return self._insert_once("dispatches", doc)

    def fill_dispatch_stub(self, dispatch_id: str, facts: Mapping[str, Any]) -> bool:
        """Guard: the order's time is not set yet."""
        expr, params = patched(facts)
        return self._change("dispatches", dispatch_id, expr, " AND ordered_at IS NULL", params)

    def advance_dispatch(
        self, dispatch_id: str, earlier: Sequence[str], status: str, at: datetime, event_id: str
    ) -> bool:
        """Guard: in one of the earlier statuses, event not applied."""
        marks = ",".join("?" * len(earlier))
        expr = "json_set(doc, '$.status', ?, '$.status_at.' || ?, json(?))"
        return self._apply_once(
            "dispatches",
            dispatch_id,
            expr,
            [status, status, dumps(at)],
            event_id,
            f" AND doc ->> '$.status' IN ({marks})",
            list(earlier),
        )

    def dispatches_ordered_between(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """A range on ordered_at."""
        return self._many(
            "SELECT doc FROM dispatches WHERE ordered_at >= ? AND ordered_at < ? AND exercise = 0"
            " ORDER BY ordered_at, id",
            (_t(start), _t(end)),
        )

    def dispatches_under_way(self) -> list[dict[str, Any]]:
        """On (status, exercise, ordered_at)."""
        marks = ", ".join("?" * len(DISPATCHES_UNDER_WAY))
        return self._many(
            f"SELECT doc FROM dispatches WHERE doc ->> '$.status' IN ({marks}) AND exercise = 0"
            " ORDER BY ordered_at, id",
            DISPATCHES_UNDER_WAY,
        )

    def record_stock_alert_if_new(self, doc: Mapping[str, Any]) -> bool:
        """Insert once."""
        return self._insert_once("stock_alerts", doc)

    def stock_alerts_between(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """A range on at."""
        return self._many(
            "SELECT doc FROM stock_alerts WHERE at >= ? AND at < ? ORDER BY at, id",
            (_t(start), _t(end)),
        )

    def plan_view(self, plan_id: str) -> dict[str, Any] | None:
        """By primary key."""
        return self._one("plans", plan_id)

    def merge_plan_event(self, plan_id: str, event_id: str, merge: PlanMerge) -> bool:
        """Read, fold and write inside one write transaction: no other writer comes between."""
        with self.db.transaction() as conn:
            row = conn.execute("SELECT doc FROM plans WHERE id = ?", (plan_id,)).fetchone()
            current = loads(row[0]) if row else None
            if current is not None and event_id in (current.get(APPLIED) or []):
                return False
            merged = merge(dict(current) if current is not None else None)
            applied = [*(current or {}).get(APPLIED, []), event_id][-APPLIED_KEEP:]
            doc = {
                **(current or {}),
                **{k: v for k, v in merged.items() if k not in ("_id", APPLIED, REVISION)},
                "_id": plan_id,
                APPLIED: applied,
                REVISION: int((current or {}).get(REVISION) or 0) + 1,
            }
            conn.execute(
                "INSERT INTO plans (id, doc) VALUES (?, ?)"
                " ON CONFLICT (id) DO UPDATE SET doc = excluded.doc",
                (plan_id, dumps(doc)),
            )
        return True

    def plans_active_at(self, end: datetime) -> list[dict[str, Any]]:
        """Two ranges on (ended_at, activated_at)."""
        return self._many(
            "SELECT doc FROM plans WHERE ended_at IS NULL AND activated_at < :end AND exercise = 0"
            " UNION ALL SELECT doc FROM plans WHERE ended_at > :end AND activated_at < :end"
            " AND exercise = 0",
            {"end": _t(end)},
        )

    # ------------------------------------------------------------ early events

    def park_event_once(self, doc: Mapping[str, Any]) -> bool:
        """Insert once by event id."""
        return self._insert_once("parked_events", doc)

    def parked_events_of(self, incident_id: str) -> list[dict[str, Any]]:
        """On (incident_id, occurred_at)."""
        return self._many(
            "SELECT doc FROM parked_events WHERE incident_id = ? ORDER BY occurred_at, id",
            (incident_id,),
        )

    def unpark(self, event_id: str) -> None:
        """Delete by primary key."""
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM parked_events WHERE id = ?", (event_id,))

    # ------------------------------------------------------------ summaries

    def summary_by_id(self, ident: str) -> dict[str, Any] | None:
        """By primary key."""
        return self._one("summaries", ident)

    def record_summary_once(self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]) -> bool:
        """Insert once with its event."""
        return self._insert_once("summaries", doc, events)

    # ------------------------------------------------------------ migration and plumbing

    def import_documents(self, collection: str, docs: Iterable[Mapping[str, Any]]) -> int:
        """Copy documents of the previous store into ``collection``'s table, pending events into
        the outbox. Idempotent: a document already here is skipped, so a run resumes."""
        if collection not in COLLECTIONS:
            raise ValueError(f"not a reporting collection: {collection}")
        copied = 0
        for doc in docs:
            pending = [EventEnvelope.model_validate(raw) for raw in doc.get(OUTBOX) or []]
            with self.db.transaction() as conn:
                copied += self._insert_once(collection, doc, pending, conn)
        return copied

    def mark_imported(self) -> None:
        """Record that the previous store's documents are all here."""
        with self.db.transaction() as conn:
            self.db.set_meta(conn, LEGACY_MARK, "done")

    def imported(self) -> bool:
        """True once documents of the previous store were imported (or found none to import)."""
        return self.db.get_meta(LEGACY_MARK) == "done"


def _order_prefix(moment: datetime) -> str:
    """The start of the timeline's order_key for an occurrence time (UTC, microseconds)."""
    return as_utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%f")
