"""Key records on SQLite: the record as JSON, the fields that are filtered or sorted on as
generated columns, the revocation as one guarded ``UPDATE … RETURNING``."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from libs.common.keys import KeyExistsError
from libs.common.sqlite import SqliteDatabase, dumps, patched

LEGACY_MARKER = "legacy_keys_imported"

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS api_keys ("
    " id TEXT PRIMARY KEY,"
    " doc TEXT NOT NULL CHECK (json_valid(doc)),"
    " role TEXT GENERATED ALWAYS AS (doc ->> '$.role') VIRTUAL,"
    # JSON null and a missing field both read as NULL: an active key either way.
    " revoked_at TEXT GENERATED ALWAYS AS (doc ->> '$.revoked_at.\"$date\"') VIRTUAL,"
    " created_at TEXT GENERATED ALWAYS AS (doc ->> '$.created_at.\"$date\"') VIRTUAL)",
    "CREATE INDEX IF NOT EXISTS api_keys_role ON api_keys (role, revoked_at)",
    "CREATE INDEX IF NOT EXISTS api_keys_created ON api_keys (created_at)",
]


class SqliteKeyRepository:
    """The key records in the platform's SQLite file."""

    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db

    def ensure_schema(self) -> None:
        """Create the table and its indexes."""
        self.db.script(SCHEMA)

    def add_key(self, record: Mapping[str, Any]) -> None:
        """Insert a record; KeyExistsError when the id is taken."""
        try:
            with self.db.transaction() as conn:
                conn.execute(
                    "INSERT INTO api_keys (id, doc) VALUES (?, ?)", (record["_id"], dumps(record))
                )
        except sqlite3.IntegrityError as exc:
            raise KeyExistsError(record["_id"]) from exc

    def key_by_id(self, key_id: str) -> dict[str, Any] | None:
        """The record with this id."""
        found = self.db.documents("SELECT doc FROM api_keys WHERE id = ?", (key_id,))
        return found[0] if found else None

    def keys_by_creation(self) -> list[dict[str, Any]]:
        """Every record without its hash, oldest first, ties in insertion order."""
        return self.db.documents(
            "SELECT json_remove(doc, '$.hash') FROM api_keys ORDER BY created_at, rowid"
        )

    def active_admin_exists(self) -> bool:
        """Some admin key is not revoked."""
        return bool(
            self.db.query(
                "SELECT 1 FROM api_keys WHERE role = 'admin' AND revoked_at IS NULL LIMIT 1"
            )
        )

    def revoke_key(self, key_id: str, at: datetime) -> bool:
        """Set ``revoked_at`` on an active key, in one guarded statement."""
        expression, params = patched({"revoked_at": at})
        with self.db.transaction() as conn:
            rows = conn.execute(
                f"UPDATE api_keys SET doc = {expression}"
                " WHERE id = ? AND revoked_at IS NULL RETURNING id",
                (*params, key_id),
            ).fetchall()
        return bool(rows)

    def revoke_key_keeping_an_admin(self, key_id: str, at: datetime) -> str:
        """Revoke a key unless it is the last active admin key; the check and the write are one
        transaction (the write lock is held), so two admins revoking each other leave one."""
        expression, params = patched({"revoked_at": at})
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT role FROM api_keys WHERE id = ? AND revoked_at IS NULL", (key_id,)
            ).fetchone()
            if row is None:
                return "missing"
            if (
                row[0] == "admin"
                and not conn.execute(
                    "SELECT 1 FROM api_keys WHERE role = 'admin' AND revoked_at IS NULL"
                    " AND id != ? LIMIT 1",
                    (key_id,),
                ).fetchone()
            ):
                return "last_admin"
            conn.execute(
                f"UPDATE api_keys SET doc = {expression} WHERE id = ? AND revoked_at IS NULL",
                (*params, key_id),
            )
        return "revoked"

    def put_key(self, record: Mapping[str, Any]) -> None:
        """Insert or replace the record with this id, in one statement."""
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO api_keys (id, doc) VALUES (?, ?)"
                " ON CONFLICT (id) DO UPDATE SET doc = excluded.doc",
                (record["_id"], dumps(record)),
            )

    def import_legacy_keys(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Copy the previous engine's records once, in their stored order (ids already here are
        kept as they are), and mark the file so that it never happens again."""
        if self.db.get_meta(LEGACY_MARKER) is not None:
            return 0
        added = 0
        with self.db.transaction() as conn:
            for record in records:
                cursor = conn.execute(
                    "INSERT INTO api_keys (id, doc) VALUES (?, ?) ON CONFLICT (id) DO NOTHING",
                    (record["_id"], dumps(record)),
                )
                added += cursor.rowcount
            self.db.set_meta(conn, LEGACY_MARKER, str(added))
        return added

    def ping(self) -> None:
        """Touch the file."""
        self.db.ping()

    def close(self) -> None:
        """Close the file's connections."""
        self.db.close()
