"""Where each service's data lives: SQLite files (embedded and one-host mode) or MongoDB.

``mongodb://`` URLs go to pymongo: ``database(service)`` is that service's ``Database``. Any
other setting means SQLite: every service keeps its data in its own file through its
repository (``sqlite_file``), and ``database(service)`` is only a read-only reader of what the
previous embedded engine (litemongo, under ``<data_dir>/store``) left, for the one-time import
(``legacy_documents``). The reader opens litemongo's SQLite files with ``sqlite3`` and decodes
their BSON documents itself; litemongo is not imported (nor installed).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC
from pathlib import Path
from typing import Any

import bson
import pymongo
from bson.codec_options import CodecOptions
from pymongo.database import Database

from libs.common.settings import Settings

__all__ = [
    "LegacyCollection",
    "LegacyDatabase",
    "StoreFactory",
    "ensure_indexes",
    "legacy_documents",
    "sqlite_file",
]

_CODEC: CodecOptions[Any] = CodecOptions(tz_aware=True, tzinfo=UTC)
# Files SQLite keeps beside a database file; litemongo keeps one file per collection.
_SIDECARS = ("-wal", "-shm", "-journal", "-writer")


class LegacyCollection:
    """One collection file of the previous engine, read-only: its documents in stored order.

    litemongo keeps a collection as an SQLite file with a ``documents(_id, doc)`` table, the
    document a BSON blob, rows in insertion order (an update replaces a row's blob in place).
    """

    def __init__(self, path: Path, name: str) -> None:
        self.path = path
        self.name = name

    def _connect(self) -> sqlite3.Connection | None:
        if not self.path.is_file():
            return None
        return sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)

    def _has_table(self, conn: sqlite3.Connection, table: str) -> bool:
        found = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchone()
        return found is not None

    def exists(self) -> bool:
        """True when the previous engine counted this collection as created (documents, indexes
        or an explicit creation), as its ``list_collection_names`` did."""
        conn = self._connect()
        if conn is None:
            return False
        try:
            for table in ("documents", "indexes"):
                if (
                    self._has_table(conn, table)
                    and conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone()
                ):
                    return True
            return self._has_table(conn, "info") and bool(
                conn.execute("SELECT 1 FROM info WHERE key = 'force_created' AND value").fetchone()
            )
        finally:
            conn.close()

    def documents(self, batch: int = 500) -> Iterator[dict[str, Any]]:
        """Every document in stored order, read ``batch`` rows at a time."""
        conn = self._connect()
        if conn is None:
            return
        try:
            if not self._has_table(conn, "documents"):
                return
            last = 0
            while True:
                rows = conn.execute(
                    "SELECT rowid, doc FROM documents WHERE rowid > ? ORDER BY rowid LIMIT ?",
                    (last, batch),
                ).fetchall()
                if not rows:
                    return
                for _, blob in rows:
                    yield bson.decode(blob, codec_options=_CODEC)
                last = rows[-1][0]
        finally:
            conn.close()

    def count_documents(self, selector: Mapping[str, Any]) -> int:
        """How many documents there are (only the empty selector is understood)."""
        if selector:
            raise NotImplementedError("the legacy reader counts whole collections only")
        return sum(1 for _ in self.documents())


class LegacyDatabase:
    """A database directory of the previous engine, read-only (what the imports need)."""

    def __init__(self, path: Path, name: str) -> None:
        self.path = path
        self.name = name

    def __getitem__(self, collection: str) -> LegacyCollection:
        return LegacyCollection(self.path / collection, collection)

    def get_collection(self, collection: str) -> LegacyCollection:
        """Same as item access."""
        return self[collection]

    def list_collection_names(self) -> list[str]:
        """The collections the previous engine had created in this database."""
        if not self.path.is_dir():
            return []
        names = sorted(
            p.name for p in self.path.iterdir() if p.is_file() and not p.name.endswith(_SIDECARS)
        )
        return [name for name in names if self[name].exists()]

    def command(self, name: str) -> dict[str, Any]:
        """``ping`` answers ok: there is nothing live behind a reader."""
        if name != "ping":
            raise NotImplementedError(f"the legacy reader does not run command {name!r}")
        return {"ok": 1.0}


class StoreFactory:
    """Hands each service its MongoDB database, or (SQLite) the reader of its legacy data."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: pymongo.MongoClient[Any] | None = None
        self._lock = threading.Lock()

    @property
    def embedded(self) -> bool:
        """True when services keep their data in SQLite files (no MongoDB URL)."""
        return self.settings.embedded_store

    def name_of(self, service: str) -> str:
        """``yingji_<service>`` by default."""
        return f"{self.settings.database_prefix}_{service}"

    def database(self, service: str) -> Any:
        """MongoDB: the service's ``Database``. SQLite: a read-only ``LegacyDatabase`` of what
        the previous embedded engine left for it (empty when it never ran here)."""
        if self.embedded:
            return self.legacy_database(service)
        with self._lock:
            if self._client is None:
                self._client = pymongo.MongoClient(
                    self.settings.mongo_url,
                    tz_aware=True,
                    tzinfo=UTC,
                    serverSelectionTimeoutMS=5000,
                    appname="yingji",
                )
            db: Database[Any] = self._client.get_database(
                self.name_of(service), codec_options=_CODEC
            )
            return db

    def legacy_database(self, service: str) -> LegacyDatabase:
        """The previous engine's directory of ``service``, read-only."""
        name = self.name_of(service)
        return LegacyDatabase(Path(self.settings.data_dir) / "store" / name, name)

    def close(self) -> None:
        """Release the MongoDB client."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def ensure_indexes(collection: Any, specs: Iterable[Mapping[str, Any]]) -> None:
    """Create indexes described as ``{"keys": [(field, 1)], "unique": True, ...}``."""
    for spec in specs:
        options = {k: v for k, v in spec.items() if k != "keys"}
        collection.create_index(list(spec["keys"]), **options)


def sqlite_file(settings: Settings, service: str) -> Path | None:
    """The SQLite file of ``service``, or None when its database URL is ``mongodb://``.

    Embedded mode and one-host distributed mode use SQLite: one file per service in the data
    directory, shared by that service's processes. A MongoDB URL selects the cluster engine.
    """
    if settings.mongo_url.startswith(("mongodb://", "mongodb+srv://")):
        return None
    return Path(settings.data_dir) / f"{settings.database_prefix}_{service}.sqlite3"


def legacy_documents(collection: LegacyCollection, batch: int = 500) -> Iterable[dict[str, Any]]:
    """Every document of a collection of the previous engine a batch at a time (migrations), in
    the order it stored them (insertion order, which is also how it broke ties when sorting, so
    importers keep that order)."""
    yield from collection.documents(batch)
