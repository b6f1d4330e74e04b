"""Dispatch on SQLite: each document as JSON with generated columns indexed for every field a
query filters or sorts on; a team or a stock line changes by one ``UPDATE … WHERE <guard> …
RETURNING``; an order and everything it takes (teams, stock, ledger entries, its event) is one
transaction, so nothing is ever half reserved; events go to the outbox table in the transaction
of their change."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from libs.common.errors import field_error
from libs.common.events import EventEnvelope
from libs.common.idempotency import (
    APPLIED,
    APPLIED_KEEP,
    IDEMPOTENCY,
    MERGE_ATTEMPTS,
    REVISION,
    ConcurrentMergeError,
)
from libs.common.outbox import (
    OUTBOX,
    SQLITE_OUTBOX_SCHEMA,
    append_events,
)
from libs.common.pagination import MAX_LIMIT, decode_cursor, encode_cursor
from libs.common.repository_tails import SqliteRepository
from libs.common.sqlite import dumps, iso, patched
from services.dispatch import domain
from services.dispatch.repository import (
    AssignmentFilter,
    DuplicateKeyTaken,
    LedgerFilter,
    Merge,
    OrderFilter,
    Page,
    Placement,
    PlanFilter,
    Shortfall,
    StockFilter,
    StockMove,
    TeamFilter,
    line_id,
)

RELEASE_PENDING = "_release_pending"
LEGACY_MARK = "migrated_from_document_store"


def _text(name: str, path: str | None = None) -> str:
    return f" {name} TEXT GENERATED ALWAYS AS (doc ->> '$.{path or name}') VIRTUAL"


def _time(name: str) -> str:
    return f" {name} TEXT GENERATED ALWAYS AS (doc ->> '$.{name}.\"$date\"') VIRTUAL"


def _number(name: str, kind: str = "INTEGER") -> str:
    return f" {name} {kind} GENERATED ALWAYS AS (doc ->> '$.{name}') VIRTUAL"


def _table(name: str, *columns: str) -> str:
    body = ",".join(
        [" id TEXT PRIMARY KEY", " doc TEXT NOT NULL CHECK (json_valid(doc))", *columns]
    )
    return f"CREATE TABLE IF NOT EXISTS {name} ({body})"


IDEM = _text("idem_key", "_idem.key")
SCHEMA = [
    _table("incident_views"),
    _table("warning_views"),
    _table(
        "teams",
        IDEM,
        _text("status"),
        _text("kind"),
        _text("township_code"),
        _text("dispatch_id"),
        _text("standby_plan_id"),
    ),
    "CREATE UNIQUE INDEX IF NOT EXISTS teams_idem ON teams (idem_key)",
    "CREATE INDEX IF NOT EXISTS teams_status ON teams (status, id)",
    "CREATE INDEX IF NOT EXISTS teams_township ON teams (township_code, id)",
    "CREATE INDEX IF NOT EXISTS teams_dispatch ON teams (dispatch_id)",
    "CREATE INDEX IF NOT EXISTS teams_standby ON teams (standby_plan_id, status)",
    _table("warehouses"),
    _table(
        "stock",
        _text("warehouse_id"),
        _text("item_code"),
        _number("quantity", "REAL"),
        _number("min_level", "REAL"),
        _number("low_alerted"),
    ),
    "CREATE INDEX IF NOT EXISTS stock_warehouse ON stock (warehouse_id, item_code)",
    "CREATE INDEX IF NOT EXISTS stock_item ON stock (item_code)",
    _table(
        "stock_ledger",
        _text("warehouse_id"),
        _text("item_code"),
        _text("dispatch_id"),
        _text("kind"),
        _time("at"),
    ),
    "CREATE INDEX IF NOT EXISTS ledger_at ON stock_ledger (at, id)",
    "CREATE INDEX IF NOT EXISTS ledger_line ON stock_ledger (warehouse_id, item_code, at, id)",
    "CREATE INDEX IF NOT EXISTS ledger_dispatch ON stock_ledger (dispatch_id)",
    _table(
        "dispatches",
        IDEM,
        _text("incident_id"),
        _text("status"),
        _text("township_code"),
        _number("exercise"),
        f" release_pending INTEGER GENERATED ALWAYS AS (doc ->> '$.{RELEASE_PENDING}') VIRTUAL",
        _time("created_at"),
        _time("reserve_deadline"),
    ),
    "CREATE UNIQUE INDEX IF NOT EXISTS dispatches_idem ON dispatches (idem_key)",
    "CREATE INDEX IF NOT EXISTS dispatches_created ON dispatches (created_at, id)",
    "CREATE INDEX IF NOT EXISTS dispatches_incident ON dispatches (incident_id, created_at, id)",
    "CREATE INDEX IF NOT EXISTS dispatches_status ON dispatches (status, reserve_deadline)",
    "CREATE INDEX IF NOT EXISTS dispatches_releasing ON dispatches (release_pending)",
    _table(
        "plans",
        IDEM,
        _text("status"),
        _text("trigger_kind"),
        _text("incident_id"),
        _text("warning_id"),
        _text("scope"),
        _number("level"),
        _number("exercise"),
        _time("activated_at"),
    ),
    "CREATE UNIQUE INDEX IF NOT EXISTS plans_idem ON plans (idem_key)",
    "CREATE INDEX IF NOT EXISTS plans_activated ON plans (activated_at, id)",
    "CREATE INDEX IF NOT EXISTS plans_status ON plans (status, activated_at, id)",
    _table(
        "assignments",
        IDEM,
        _text("status"),
        _text("incident_id"),
        _text("level"),
        _text("township_code"),
        _text("open_incident"),
        _number("overdue"),
        _number("exercise"),
        _number("version"),
        _time("created_at"),
        _time("due_at"),
    ),
    "CREATE UNIQUE INDEX IF NOT EXISTS assignments_idem ON assignments (idem_key)",
    # One open assignment per dispute (一个口子入、一个口子出); NULLs (closed ones) never collide.
    "CREATE UNIQUE INDEX IF NOT EXISTS assignments_open ON assignments (open_incident)",
    "CREATE INDEX IF NOT EXISTS assignments_created ON assignments (created_at, id)",
    "CREATE INDEX IF NOT EXISTS assignments_due ON assignments (status, due_at)",
    "CREATE INDEX IF NOT EXISTS assignments_incident ON assignments (incident_id)",
    _table("joint_meetings"),
    # A meeting may be about several disputes: one link row per assignment, in meeting order.
    "CREATE TABLE IF NOT EXISTS joint_meeting_links ("
    " assignment_id TEXT NOT NULL, held_on TEXT NOT NULL, meeting_id TEXT NOT NULL,"
    " PRIMARY KEY (assignment_id, held_on, meeting_id))",
    *SQLITE_OUTBOX_SCHEMA,
]
# Tables of the previous store's collections, by collection name.
TABLES = {
    "incidents": "incident_views",
    "warning_views": "warning_views",
    "teams": "teams",
    "warehouses": "warehouses",
    "stock": "stock",
    "stock_ledger": "stock_ledger",
    "dispatches": "dispatches",
    "plans": "plans",
    "assignments": "assignments",
}
OPEN_ASSIGNMENTS = "status IN ('pending_approval', 'active')"
NOT_DRILL = "coalesce(exercise, 0) = 0"


class _Refused(Exception):  # noqa: N818 (a signal, not an error)
    """Rolls an order's transaction back: something it names cannot be taken."""

    def __init__(self, shortfall: Shortfall) -> None:
        super().__init__(shortfall.kind)
        self.shortfall = shortfall


class SqliteDispatchRepository(SqliteRepository):
    """DispatchRepository on one SQLite file (shared by dispatch's processes on one host)."""

    SCHEMA = SCHEMA
    JOURNAL = True

    # Plain reads and writes --------------------------------------------------------------------

    def _one(self, table: str, ident: str) -> dict[str, Any] | None:
        docs = self.db.documents(f"SELECT doc FROM {table} WHERE id = ?", (ident,))
        return docs[0] if docs else None

    def _by_key(self, table: str, scope: str) -> dict[str, Any] | None:
        docs = self.db.documents(f"SELECT doc FROM {table} WHERE idem_key = ?", (scope,))
        return docs[0] if docs else None

    def _insert_once(self, table: str, doc: Mapping[str, Any]) -> bool:
        with self.db.transaction() as conn:
            row = conn.execute(
                f"INSERT OR IGNORE INTO {table} (id, doc) VALUES (?, ?) RETURNING id",
                (doc["_id"], dumps(doc)),
            ).fetchone()
        return row is not None

    def _insert_keyed(
        self,
        table: str,
        doc: Mapping[str, Any],
        scope: str,
        digest: str,
        events: Sequence[EventEnvelope],
    ) -> tuple[dict[str, Any], bool]:
        """Insert stamped with its key, events in the outbox; a key race returns the winner.

        Another unique key taken (the id, an open assignment) raises ``DuplicateKeyTaken``.
        """
        stamped = {**doc, IDEMPOTENCY: {"key": scope, "hash": digest}}
        try:
            with self.db.transaction() as conn:
                conn.execute(
                    f"INSERT INTO {table} (id, doc) VALUES (?, ?)", (doc["_id"], dumps(stamped))
                )
                append_events(conn, doc["_id"], events)
        except sqlite3.IntegrityError as exc:
            winner = self._by_key(table, scope)
            if winner is None:
                raise DuplicateKeyTaken(doc["_id"]) from exc
            return winner, False
        return stamped, True

    def _update(
        self,
        table: str,
        ident: str,
        expr: str,
        params: Sequence[Any],
        guard: str = "",
        guard_params: Sequence[Any] = (),
        events: Sequence[EventEnvelope] = (),
    ) -> dict[str, Any] | None:
        """One guarded ``UPDATE … RETURNING doc`` and, if it matched, its events."""
        with self.db.transaction() as conn:
            row = conn.execute(
                f"UPDATE {table} SET doc = {expr} WHERE id = ? {guard} RETURNING doc",
                [*params, ident, *guard_params],
            ).fetchone()
            if row is not None and events:
                append_events(conn, ident, events)
        return _loads(row[0]) if row is not None else None

    def _page(
        self,
        table: str,
        where: list[str],
        params: list[Any],
        sort: str,
        descending: bool,
        limit: int,
        cursor: str | None,
    ) -> Page:
        """Walk (sort column, id) from the cursor; the sort column has the field's name."""
        if not 1 <= limit <= MAX_LIMIT:
            raise field_error("query.limit", f"须在 1 到 {MAX_LIMIT} 之间")
        op, order = ("<", "DESC") if descending else (">", "ASC")
        if cursor:
            value, ident = decode_cursor(cursor)
            value = iso(value) if isinstance(value, datetime) else value
            if sort == "id":
                where = [*where, f"id {op} ?"]
                params = [*params, ident]
            else:
                where = [*where, f"({sort} {op} ? OR ({sort} = ? AND id {op} ?))"]
                params = [*params, value, value, ident]
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        order_by = "id" if sort == "id" else f"{sort} {order}, id"
        rows = self.db.documents(
            f"SELECT doc FROM {table} {clause} ORDER BY {order_by} {order} LIMIT ?",
            [*params, limit + 1],
        )
        if len(rows) <= limit:
            return rows, None
        rows = rows[:limit]
        field = "_id" if sort == "id" else sort
        return rows, encode_cursor(rows[-1][field], rows[-1]["_id"])

    def _merge(self, table: str, ident: str, event_id: str, merge: Merge) -> bool:
        """Read, fold, write back guarded by the revision read (compare and swap)."""
        for _ in range(MERGE_ATTEMPTS):
            current = self._one(table, ident)
            if current is not None and event_id in (current.get(APPLIED) or []):
                return False
            merged = merge(dict(current) if current is not None else None)
            fields = {k: v for k, v in merged.items() if k not in ("_id", APPLIED, REVISION)}
            if current is None:
                doc = {"_id": ident, **fields, APPLIED: [event_id], REVISION: 1}
                if self._insert_once(table, doc):
                    return True
                continue
            revision = int(current.get(REVISION) or 0)
            applied = [*(current.get(APPLIED) or []), event_id][-APPLIED_KEEP:]
            doc = {**current, **fields, APPLIED: applied, REVISION: revision + 1}
            guard = f"AND coalesce(doc ->> '$.{REVISION}', 0) = ?"
            if self._update(table, ident, "json(?)", [dumps(doc)], guard, [revision]) is not None:
                return True
        raise ConcurrentMergeError(f"{ident} changed {MERGE_ATTEMPTS} times during a merge")

    # Local views -------------------------------------------------------------------------------

    def incident_view(self, incident_id: str) -> dict[str, Any] | None:
        """By primary key."""
        return self._one("incident_views", incident_id)

    def merge_incident_event(self, incident_id: str, event_id: str, merge: Merge) -> bool:
        """Revision-guarded merge."""
        return self._merge("incident_views", incident_id, event_id, merge)

    def warning_view(self, warning_id: str) -> dict[str, Any] | None:
        """By primary key."""
        return self._one("warning_views", warning_id)

    def merge_warning_event(self, warning_id: str, event_id: str, merge: Merge) -> bool:
        """Revision-guarded merge."""
        return self._merge("warning_views", warning_id, event_id, merge)

    # Teams -------------------------------------------------------------------------------------

    def team(self, team_id: str) -> dict[str, Any] | None:
        """By primary key."""
        return self._one("teams", team_id)

    def teams_by_ids(self, team_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Primary keys in the list."""
        if not team_ids:
            return []
        marks = ",".join("?" * len(team_ids))
        return self.db.documents(f"SELECT doc FROM teams WHERE id IN ({marks})", list(team_ids))

    def team_by_idempotency_scope(self, scope: str) -> dict[str, Any] | None:
        """Unique index on the key."""
        return self._by_key("teams", scope)

    def teams_page(self, filters: TeamFilter, limit: int, cursor: str | None) -> Page:
        """Ascending id; a capability is array membership."""
        where, params = _equalities(
            status=filters.status, kind=filters.kind, township_code=filters.township_code
        )
        if filters.capability is not None:
            where.append("EXISTS (SELECT 1 FROM json_each(doc, '$.capabilities') WHERE value = ?)")
            params.append(filters.capability)
        return self._page("teams", where, params, "id", False, limit, cursor)

    def dispatchable_teams(self) -> list[dict[str, Any]]:
        """Status index."""
        return self.db.documents(
            "SELECT doc FROM teams WHERE status IN ('available', 'standby') ORDER BY id"
        )

    def available_teams_with_any(self, capabilities: Sequence[str]) -> list[dict[str, Any]]:
        """Available, one capability in the list."""
        if not capabilities:
            return []
        marks = ",".join("?" * len(capabilities))
        return self.db.documents(
            "SELECT doc FROM teams WHERE status = 'available' AND EXISTS"
            f" (SELECT 1 FROM json_each(doc, '$.capabilities') WHERE value IN ({marks}))"
            " ORDER BY id",
            list(capabilities),
        )

    def add_team_once(self, doc: Mapping[str, Any]) -> bool:
        """INSERT OR IGNORE."""
        return self._insert_once("teams", doc)

    def add_team(
        self, doc: Mapping[str, Any], scope: str, digest: str
    ) -> tuple[dict[str, Any], bool]:
        """Stamped insert; the id taken by another key is ``DuplicateKeyTaken``."""
        return self._insert_keyed("teams", doc, scope, digest, [])

    def change_team_if_status(
        self, team_id: str, status: str, fields: Mapping[str, Any], removed: Sequence[str]
    ) -> dict[str, Any] | None:
        """Guard: the status read."""
        expr, params = patched(fields)
        return self._update(
            "teams", team_id, _removing(expr, removed), params, "AND status = ?", [status]
        )

    def take_team(self, team_id: str, order_id: str, now: datetime) -> bool:
        """Guard: available or standby; the held-from status recorded in the same statement."""
        with self.db.transaction() as conn:
            return _take_team(conn, team_id, order_id, now)

    def give_back_team(self, team_id: str, order_id: str, now: datetime) -> None:
        """Guard: the order holds it; standby keeps its plan, anything else drops it."""
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE teams SET doc = json_remove(json_set(doc,"
                "  '$.status', coalesce(doc ->> '$.held_from', 'available'),"
                "  '$.status_changed_at', json(?)),"
                " '$.dispatch_id', '$.held_from',"
                " CASE WHEN coalesce(doc ->> '$.held_from', 'available') = 'standby'"
                "  THEN '$.held_from' ELSE '$.standby_plan_id' END)"
                " WHERE id = ? AND dispatch_id = ?",
                (dumps(now), team_id, order_id),
            )

    def release_order_teams(self, order_id: str, now: datetime) -> list[str]:
        """Every team naming the order, in one statement."""
        with self.db.transaction() as conn:
            rows = conn.execute(
                "UPDATE teams SET doc = json_remove(json_set(doc, '$.status', 'available',"
                " '$.status_changed_at', json(?)), '$.dispatch_id', '$.held_from',"
                " '$.standby_plan_id') WHERE dispatch_id = ? RETURNING id",
                (dumps(now), order_id),
            ).fetchall()
        return sorted(row[0] for row in rows)

    def put_on_standby(self, team_id: str, plan_id: str, now: datetime) -> bool:
        """Guard: available."""
        fields = {"status": "standby", "standby_plan_id": plan_id, "status_changed_at": now}
        expr, params = patched(fields)
        return self._update("teams", team_id, expr, params, "AND status = 'available'") is not None

    def standby_teams_of(self, plan_id: str) -> list[str]:
        """Standby index."""
        rows = self.db.query(
            "SELECT id FROM teams WHERE standby_plan_id = ? AND status = 'standby' ORDER BY id",
            (plan_id,),
        )
        return [row[0] for row in rows]

    def release_standby(self, plan_id: str, now: datetime) -> int:
        """One statement over the plan's standby teams."""
        with self.db.transaction() as conn:
            rows = conn.execute(
                "UPDATE teams SET doc = json_remove(json_set(doc, '$.status', 'available',"
                " '$.status_changed_at', json(?)), '$.standby_plan_id')"
                " WHERE standby_plan_id = ? AND status = 'standby' RETURNING id",
                (dumps(now), plan_id),
            ).fetchall()
        return len(rows)

    def standby_plan_ids(self) -> list[str]:
        """Distinct plans of standby teams."""
        rows = self.db.query(
            "SELECT DISTINCT standby_plan_id FROM teams"
            " WHERE status = 'standby' AND standby_plan_id IS NOT NULL"
        )
        return [row[0] for row in rows]

    # Warehouses and stock ----------------------------------------------------------------------

    def warehouse(self, warehouse_id: str) -> dict[str, Any] | None:
        """By primary key."""
        return self._one("warehouses", warehouse_id)

    def add_warehouse_once(self, doc: Mapping[str, Any]) -> bool:
        """INSERT OR IGNORE."""
        return self._insert_once("warehouses", doc)

    def warehouses_with_line_counts(self, limit: int) -> list[tuple[dict[str, Any], int]]:
        """One grouped query."""
        rows = self.db.query(
            "SELECT w.doc, (SELECT count(*) FROM stock AS s WHERE s.warehouse_id = w.id)"
            " FROM warehouses AS w ORDER BY w.id LIMIT ?",
            (limit,),
        )
        return [(_loads(doc), int(count)) for doc, count in rows]

    def stock_line(self, ident: str) -> dict[str, Any] | None:
        """By primary key."""
        return self._one("stock", ident)

    def add_stock_line_once(self, doc: Mapping[str, Any]) -> bool:
        """INSERT OR IGNORE."""
        return self._insert_once("stock", doc)

    def set_stock_line_fields(self, ident: str, fields: Mapping[str, Any]) -> None:
        """json_set of the fields."""
        expr, params = patched(fields)
        self._update("stock", ident, expr, params)

    def stock_page(self, filters: StockFilter, limit: int, cursor: str | None) -> Page:
        """Ascending id; below the minimum compares two generated columns."""
        where, params = _equalities(warehouse_id=filters.warehouse_id, item_code=filters.item_code)
        if filters.below_min is not None:
            where.append("quantity < min_level" if filters.below_min else "quantity >= min_level")
        return self._page("stock", where, params, "id", False, limit, cursor)

    def take_stock(self, ident: str, quantity: float, entry: Mapping[str, Any]) -> StockMove:
        """Guard: the line holds at least ``quantity``."""
        return self._move(ident, -quantity, entry)

    def release_stock(self, ident: str, quantity: float, entry: Mapping[str, Any]) -> StockMove:
        """No guard but the entry's id."""
        return self._move(ident, quantity, entry)

    def adjust_stock(self, ident: str, delta: float, entry: Mapping[str, Any]) -> StockMove:
        """Guard: never below zero."""
        return self._move(ident, delta, entry)

    def _move(self, ident: str, delta: float, entry: Mapping[str, Any]) -> StockMove:
        """The quantity and its ledger row in one transaction; the row's id makes it once."""
        with self.db.transaction() as conn:
            line = _move_stock(conn, ident, delta, entry)
        if line is not None:
            return StockMove("applied", line)
        current = self.stock_line(ident)
        if current is None:
            return StockMove("missing", None)
        if self.stock_entry_recorded(ident, entry["_id"]):
            return StockMove("duplicate", current)
        return StockMove("short", current)

    def stock_entry_recorded(self, ident: str, entry_id: str) -> bool:
        """The ledger row exists (it is written with the change)."""
        return bool(self.db.query("SELECT 1 FROM stock_ledger WHERE id = ?", (entry_id,)))

    def ledger_entry(self, entry_id: str) -> dict[str, Any] | None:
        """By primary key."""
        return self._one("stock_ledger", entry_id)

    def ledger_page(self, filters: LedgerFilter, limit: int, cursor: str | None) -> Page:
        """Newest first."""
        where, params = _equalities(
            warehouse_id=filters.warehouse_id,
            item_code=filters.item_code,
            dispatch_id=filters.dispatch_id,
            kind=filters.kind,
        )
        return self._page("stock_ledger", where, params, "at", True, limit, cursor)

    def finish_ledger_copies(self) -> int:
        """Nothing to finish: ledger rows are written in the change's transaction."""
        return 0

    def mark_stock_low(self, ident: str, now: datetime, event: EventEnvelope) -> bool:
        """Guard: below the minimum and not alerted."""
        expr, params = patched({"low_alerted": True, "low_since": now})
        guard = "AND coalesce(low_alerted, 0) = 0 AND quantity < min_level"
        return self._update("stock", ident, expr, params, guard, (), [event]) is not None

    def clear_stock_low(self, ident: str) -> None:
        """Guard: alerted and recovered."""
        expr = "json_remove(json_set(doc, '$.low_alerted', json('false')), '$.low_since')"
        self._update("stock", ident, expr, [], "AND low_alerted = 1 AND quantity >= min_level")

    def lines_low_unalerted(self) -> list[str]:
        """Generated columns compared."""
        rows = self.db.query(
            "SELECT id FROM stock WHERE coalesce(low_alerted, 0) = 0 AND quantity < min_level"
        )
        return [row[0] for row in rows]

    # Orders ------------------------------------------------------------------------------------

    def order(self, order_id: str) -> dict[str, Any] | None:
        """By primary key."""
        return self._one("dispatches", order_id)

    def order_by_idempotency_scope(self, scope: str) -> dict[str, Any] | None:
        """Unique index on the key."""
        return self._by_key("dispatches", scope)

    def orders_page(self, filters: OrderFilter, limit: int, cursor: str | None) -> Page:
        """Newest first; rejected ones only when asked for."""
        where, params = _equalities(
            incident_id=filters.incident_id, township_code=filters.township_code
        )
        where.extend(_drills(filters.exercise))
        if filters.status:
            where.append("status = ?")
            params.append(filters.status)
        else:
            where.append("status != 'rejected'")
        return self._page("dispatches", where, params, "created_at", True, limit, cursor)

    def record_order(
        self, doc: Mapping[str, Any], scope: str, digest: str, events: Sequence[EventEnvelope]
    ) -> tuple[dict[str, Any], bool]:
        """Stamped insert with its outbox rows."""
        return self._insert_keyed("dispatches", doc, scope, digest, events)

    def place_order(
        self,
        order: Mapping[str, Any],
        scope: str,
        digest: str,
        takes: Sequence[Mapping[str, Any]],
        ordered: Mapping[str, Any],
        event: EventEnvelope,
    ) -> Placement:
        """One transaction: the order as ordered, each team, each line and its ledger row, the
        event; the first shortfall rolls all of it back."""
        history = [*order.get("history", []), *ordered.get("history", [])]
        doc = {**order, **ordered, "history": history, IDEMPOTENCY: {"key": scope, "hash": digest}}
        try:
            with self.db.transaction() as conn:
                conn.execute(
                    "INSERT INTO dispatches (id, doc) VALUES (?, ?)", (doc["_id"], dumps(doc))
                )
                _take_all(conn, order, takes)
                append_events(conn, doc["_id"], [event])
        except _Refused as refused:
            return Placement(dict(order), True, refused.shortfall)
        except sqlite3.IntegrityError:
            winner = self.order_by_idempotency_scope(scope)
            if winner is None:
                raise
            return Placement(winner, False)
        return Placement(doc, True)

    def reject_order(
        self, order: Mapping[str, Any], rejection: Mapping[str, Any], now: datetime
    ) -> None:
        """The refused order kept without its key (a reserving one is turned, none is added)."""
        fields = {"status": "rejected", "rejection": dict(rejection), "rejected_at": now}
        doc = {k: v for k, v in order.items() if k != IDEMPOTENCY} | fields
        expr, params = patched(fields)
        with self.db.transaction() as conn:
            conn.execute(
                f"UPDATE dispatches SET doc = json_remove({expr}, '$.{IDEMPOTENCY}')"
                " WHERE id = ? AND status = 'reserving'",
                [*params, order["_id"]],
            )
            conn.execute(
                "INSERT OR IGNORE INTO dispatches (id, doc) VALUES (?, ?)",
                (order["_id"], dumps(doc)),
            )

    def step_order(
        self,
        order_id: str,
        status: str,
        fields: Mapping[str, Any],
        entry: Mapping[str, Any],
        event: EventEnvelope,
    ) -> bool:
        """Guard: the status read."""
        expr, params = patched(fields, {"history": [entry]})
        done = self._update(
            "dispatches", order_id, expr, params, "AND status = ?", [status], [event]
        )
        return done is not None

    def clear_release_pending(self, order_id: str) -> None:
        """json_remove of the flag."""
        self._update("dispatches", order_id, f"json_remove(doc, '$.{RELEASE_PENDING}')", [])

    def orders_left_reserving(self, before: datetime) -> list[dict[str, Any]]:
        """Reserving past the deadline (only an order recorded outside a transaction)."""
        return self.db.documents(
            "SELECT doc FROM dispatches WHERE status = 'reserving' AND reserve_deadline < ?",
            (iso(before),),
        )

    def orders_releasing(self) -> list[str]:
        """Flagged orders."""
        return [r[0] for r in self.db.query("SELECT id FROM dispatches WHERE release_pending = 1")]

    # Plans -------------------------------------------------------------------------------------

    def plan(self, plan_id: str) -> dict[str, Any] | None:
        """By primary key."""
        return self._one("plans", plan_id)

    def plan_by_idempotency_scope(self, scope: str) -> dict[str, Any] | None:
        """Unique index on the key."""
        return self._by_key("plans", scope)

    def plans_page(self, filters: PlanFilter, limit: int, cursor: str | None) -> Page:
        """Latest activation first; a township sees county-wide plans and plans naming it."""
        where, params = _equalities(
            status=filters.status,
            trigger_kind=filters.trigger_kind,
            incident_id=filters.incident_id,
            warning_id=filters.warning_id,
        )
        where.extend(_drills(filters.exercise))
        if filters.township is not None:
            where.append(
                "(scope = 'county' OR EXISTS"
                " (SELECT 1 FROM json_each(doc, '$.township_codes') WHERE value = ?))"
            )
            params.append(filters.township)
        return self._page("plans", where, params, "activated_at", True, limit, cursor)

    def record_plan(
        self,
        doc: Mapping[str, Any],
        events: Sequence[EventEnvelope],
        scope_key: tuple[str, str] | None,
    ) -> tuple[dict[str, Any], bool]:
        """Insert once per id (or per key), with the events."""
        if scope_key is not None:
            return self._insert_keyed("plans", doc, *scope_key, events)
        with self.db.transaction() as conn:
            row = conn.execute(
                "INSERT OR IGNORE INTO plans (id, doc) VALUES (?, ?) RETURNING id",
                (doc["_id"], dumps(doc)),
            ).fetchone()
            if row is not None:
                append_events(conn, doc["_id"], events)
        if row is not None:
            return dict(doc), True
        return self.plan(doc["_id"]) or dict(doc), False

    def change_plan_level(
        self,
        plan_id: str,
        old_level: int,
        fields: Mapping[str, Any],
        entry: Mapping[str, Any],
        event: EventEnvelope,
        applied_id: str,
    ) -> bool:
        """Guard: active, at the old level, ``applied_id`` not applied."""
        return self._apply_plan(
            plan_id, "AND level = ?", [old_level], fields, entry, event, applied_id
        )

    def end_plan(
        self,
        plan_id: str,
        fields: Mapping[str, Any],
        entry: Mapping[str, Any],
        event: EventEnvelope,
        applied_id: str,
    ) -> bool:
        """Guard: active, ``applied_id`` not applied."""
        return self._apply_plan(plan_id, "", [], fields, entry, event, applied_id)

    def _apply_plan(
        self,
        plan_id: str,
        guard: str,
        guard_params: list[Any],
        fields: Mapping[str, Any],
        entry: Mapping[str, Any],
        event: EventEnvelope,
        applied_id: str,
    ) -> bool:
        """A plan step applied once per id (the id kept in the applied list, its last 500)."""
        expr, params = patched(fields, {"history": [entry]})
        done = self._update(
            "plans",
            plan_id,
            f"json_set({expr}, '$.{APPLIED}', json_insert({_applied_kept()}, '$[#]', ?))",
            [*params, applied_id],
            f"AND status = 'active' {guard} AND NOT EXISTS"
            f" (SELECT 1 FROM json_each(doc, '$.{APPLIED}') WHERE value = ?)",
            [*guard_params, applied_id],
            [event],
        )
        return done is not None

    # Assignments -------------------------------------------------------------------------------

    def assignment(self, assignment_id: str) -> dict[str, Any] | None:
        """By primary key."""
        return self._one("assignments", assignment_id)

    def assignment_by_idempotency_scope(self, scope: str) -> dict[str, Any] | None:
        """Unique index on the key."""
        return self._by_key("assignments", scope)

    def assignments_page(self, filters: AssignmentFilter, limit: int, cursor: str | None) -> Page:
        """Newest first."""
        where, params = _equalities(
            status=filters.status,
            incident_id=filters.incident_id,
            level=filters.level,
            township_code=filters.township_code,
        )
        if filters.overdue is not None:
            where.append("overdue = ?")
            params.append(int(filters.overdue))
        where.extend(_drills(filters.exercise))
        return self._page("assignments", where, params, "created_at", True, limit, cursor)

    def record_assignment(
        self, doc: Mapping[str, Any], scope: str, digest: str, events: Sequence[EventEnvelope]
    ) -> tuple[dict[str, Any], bool]:
        """Stamped insert; the unique ``open_incident`` refuses a second open one."""
        return self._insert_keyed("assignments", doc, scope, digest, events)

    def change_assignment(
        self,
        assignment_id: str,
        version: int,
        fields: Mapping[str, Any],
        appends: Mapping[str, Sequence[Any]],
        removed: Sequence[str],
        events: Sequence[EventEnvelope],
    ) -> dict[str, Any] | None:
        """Guard: the version read; it goes up by one in the same statement."""
        expr, params = patched(fields, appends)
        expr = f"json_set({_removing(expr, removed)}, '$.version', version + 1)"
        return self._update(
            "assignments", assignment_id, expr, params, "AND version = ?", [version], events
        )

    def close_assignments_of_incident(self, incident_id: str, closed_at: datetime) -> int:
        """One statement over the incident's open ones."""
        with self.db.transaction() as conn:
            rows = conn.execute(
                "UPDATE assignments SET doc = json_remove(json_set(doc, '$.status', 'closed',"
                " '$.closed_at', json(?)), '$.open_incident')"
                f" WHERE incident_id = ? AND {OPEN_ASSIGNMENTS} RETURNING id",
                (dumps(closed_at), incident_id),
            ).fetchall()
        return len(rows)

    def assignments_past_due(self, now: datetime) -> list[dict[str, Any]]:
        """Open, due, not flagged."""
        return self.db.documents(
            f"SELECT doc FROM assignments WHERE {OPEN_ASSIGNMENTS} AND due_at <= ? AND overdue = 0",
            (iso(now),),
        )

    def mark_assignment_overdue(
        self, assignment_id: str, now: datetime, event: EventEnvelope
    ) -> bool:
        """Guard: not flagged."""
        expr, params = patched({"overdue": True, "overdue_at": now})
        return (
            self._update("assignments", assignment_id, expr, params, "AND overdue = 0", (), [event])
            is not None
        )

    # Figures, migration and relay --------------------------------------------------------------

    def current_figures(self) -> dict[str, Any]:
        """A handful of indexed counts."""
        teams = dict(self.db.query("SELECT status, count(*) FROM teams GROUP BY status"))
        active = "','".join(domain.ACTIVE_ORDER_STATUSES)

        def count(sql: str) -> int:
            return int(self.db.query(sql)[0][0])

        return {
            "teams": {s: int(teams.get(s, 0)) for s in domain.TEAM_STATUSES},
            "stock_below_min": count("SELECT count(*) FROM stock WHERE quantity < min_level"),
            "orders_active": count(
                f"SELECT count(*) FROM dispatches WHERE status IN ('{active}') AND {NOT_DRILL}"
            ),
            "plans_active": count(
                f"SELECT count(*) FROM plans WHERE status = 'active' AND {NOT_DRILL}"
            ),
            "assignments_open": count(
                f"SELECT count(*) FROM assignments WHERE {OPEN_ASSIGNMENTS} AND {NOT_DRILL}"
            ),
            "assignments_overdue": count(
                "SELECT count(*) FROM assignments"
                f" WHERE {OPEN_ASSIGNMENTS} AND {NOT_DRILL} AND overdue = 1"
            ),
        }

    def import_documents(self, collection: str, docs: Iterable[Mapping[str, Any]]) -> int:
        """Copy documents of the previous store's ``collection``, pending events into the
        outbox and a stock line's unfinished ledger copies into the ledger; idempotent (a row
        already here is skipped, so an interrupted migration resumes)."""
        table = TABLES[collection]
        copied = 0
        for doc in docs:
            pending = [EventEnvelope.model_validate(raw) for raw in doc.get(OUTBOX) or []]
            ledger = list(doc.get("_ledger_pending") or [])
            kept = {
                k: v
                for k, v in doc.items()
                if not k.startswith(OUTBOX) and k not in ("_ledger_pending", "_ledger_flag")
            }
            with self.db.transaction() as conn:
                inserted = conn.execute(
                    f"INSERT OR IGNORE INTO {table} (id, doc) VALUES (?, ?) RETURNING id",
                    (kept["_id"], dumps(kept)),
                ).fetchone()
                if inserted is None:
                    continue
                append_events(conn, kept["_id"], pending)
                for entry in ledger:
                    row = {"quantity_after": None, "seq": None, **entry}
                    conn.execute(
                        "INSERT OR IGNORE INTO stock_ledger (id, doc) VALUES (?, ?)",
                        (row["_id"], dumps(row)),
                    )
                copied += 1
        return copied

    def mark_imported(self) -> None:
        """Record that the previous store's documents came over."""
        with self.db.transaction() as conn:
            self.db.set_meta(conn, LEGACY_MARK, "done")

    def imported(self) -> bool:
        """True once documents of the previous store were imported (or found none to import)."""
        return self.db.get_meta(LEGACY_MARK) == "done"

    def joint_meeting(self, meeting_id: str) -> dict[str, Any] | None:
        """By primary key."""
        return self._one("joint_meetings", meeting_id)

    def record_joint_meeting(
        self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]
    ) -> tuple[dict[str, Any], bool]:
        """The meeting, its link rows and its outbox rows in one transaction."""
        with self.db.transaction() as conn:
            row = conn.execute(
                "INSERT OR IGNORE INTO joint_meetings (id, doc) VALUES (?, ?) RETURNING id",
                (doc["_id"], dumps(doc)),
            ).fetchone()
            if row is not None:
                conn.executemany(
                    "INSERT INTO joint_meeting_links (assignment_id, held_on, meeting_id)"
                    " VALUES (?, ?, ?)",
                    [(a, doc["held_on"], doc["_id"]) for a in doc["assignment_ids"]],
                )
                append_events(conn, doc["_id"], events)
        if row is None:
            return self.joint_meeting(doc["_id"]) or dict(doc), False
        return dict(doc), True

    def meetings_of_assignment(self, assignment_id: str) -> list[dict[str, Any]]:
        """A range of the link table's primary key."""
        return self.db.documents(
            "SELECT m.doc FROM joint_meeting_links l JOIN joint_meetings m ON m.id = l.meeting_id"
            " WHERE l.assignment_id = ? ORDER BY l.held_on, l.meeting_id",
            (assignment_id,),
        )


def _loads(text: str) -> dict[str, Any]:
    from libs.common.sqlite import loads

    doc: dict[str, Any] = loads(text)
    return doc


def _equalities(**fields: Any) -> tuple[list[str], list[Any]]:
    """``column = ?`` for each field given (column names equal the document's field names)."""
    where, params = [], []
    for name, value in fields.items():
        if value is not None:
            where.append(f"{name} = ?")
            params.append(value)
    return where, params


def _drills(exercise: bool | None) -> list[str]:
    """Drills only, or none (a missing or null ``exercise`` is a real operation)."""
    if exercise is None:
        return []
    return ["exercise = 1"] if exercise else [NOT_DRILL]


def _removing(expr: str, removed: Sequence[str]) -> str:
    if not removed:
        return expr
    paths = ", ".join(f"'$.{name}'" for name in removed if name.replace("_", "").isalnum())
    return f"json_remove({expr}, {paths})"


def _applied_kept() -> str:
    """The applied list, its oldest id dropped once it holds ``APPLIED_KEEP``."""
    return (
        f"CASE WHEN coalesce(json_array_length(doc, '$.{APPLIED}'), 0) >= {APPLIED_KEEP}"
        f" THEN json_remove(json_extract(doc, '$.{APPLIED}'), '$[0]')"
        f" ELSE coalesce(json_extract(doc, '$.{APPLIED}'), json('[]')) END"
    )


def _take_team(conn: sqlite3.Connection, team_id: str, order_id: str, now: datetime) -> bool:
    row = conn.execute(
        "UPDATE teams SET doc = json_set(doc, '$.status', 'deployed', '$.dispatch_id', ?,"
        " '$.held_from', status, '$.status_changed_at', json(?))"
        " WHERE id = ? AND status IN ('available', 'standby') RETURNING id",
        (order_id, dumps(now), team_id),
    ).fetchone()
    return row is not None


def _move_stock(
    conn: sqlite3.Connection, ident: str, delta: float, entry: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Inside the caller's transaction: the guarded change and its ledger row; None when the
    line is missing, short, or the entry was applied before (nothing written)."""
    if conn.execute("SELECT 1 FROM stock_ledger WHERE id = ?", (entry["_id"],)).fetchone():
        return None
    guard = " AND quantity >= ?" if delta < 0 else ""
    params: list[Any] = [delta, dumps(entry["at"]), ident] + ([-delta] if delta < 0 else [])
    row = conn.execute(
        "UPDATE stock SET doc = json_set(doc, '$.quantity', quantity + ?,"
        " '$.seq', coalesce(doc ->> '$.seq', 0) + 1, '$.updated_at', json(?))"
        f" WHERE id = ?{guard} RETURNING doc",
        params,
    ).fetchone()
    if row is None:
        return None
    line = _loads(row[0])
    ledger = {**entry, "delta": delta, "quantity_after": line["quantity"], "seq": line["seq"]}
    conn.execute("INSERT INTO stock_ledger (id, doc) VALUES (?, ?)", (entry["_id"], dumps(ledger)))
    return line


def _take_all(
    conn: sqlite3.Connection, order: Mapping[str, Any], takes: Sequence[Mapping[str, Any]]
) -> None:
    """Take an order's teams and lines inside its transaction; ``_Refused`` at the first gap."""
    for index, team_id in enumerate(order["team_ids"]):
        if not _take_team(conn, team_id, order["_id"], order["created_at"]):
            found = conn.execute("SELECT status FROM teams WHERE id = ?", (team_id,)).fetchone()
            raise _Refused(Shortfall("team", index, team_status=found[0] if found else "unknown"))
    for index, (line, entry) in enumerate(zip(order["resources"], takes, strict=True)):
        ident = line_id(line["warehouse_id"], line["item_code"])
        if _move_stock(conn, ident, -float(line["quantity"]), entry) is None:
            found = conn.execute("SELECT quantity FROM stock WHERE id = ?", (ident,)).fetchone()
            raise _Refused(Shortfall("line", index, on_hand=float(found[0]) if found else 0.0))
