"""Writes data directories in the previous embedded engine's file format, for migration tests.

The previous engine (litemongo, no longer a dependency) kept each collection as an SQLite file
``<data_dir>/store/<database>/<collection>`` with a ``documents(_id, doc)`` table, the document a
BSON blob, rows in insertion order (libs.common.store.LegacyCollection reads exactly that). Tests
write their documents through a service's MongoDB repository on mongomock, which gives them the
shape the previous engine stored (it ran the same single-document code), then copy them here.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import bson

from libs.common.store import LegacyDatabase


def mongomock_database(name: str) -> Any:
    """A fresh mongomock database (tz-aware, as the previous engine was opened)."""
    import mongomock

    client: Any = mongomock.MongoClient(tz_aware=True)
    return client.get_database(name)


def write_previous_engine(data_dir: Path, database: Any) -> Path:
    """Every collection of ``database`` (documents in insertion order) as the previous engine's
    files under ``<data_dir>/store/<database name>``; returns that directory."""
    directory = data_dir / "store" / database.name
    directory.mkdir(parents=True, exist_ok=True)
    for name in database.list_collection_names():
        collection = database[name]
        indexes = [
            {"_id": index, **info}
            for index, info in collection.index_information().items()
            if index != "_id_"
        ]
        _write_collection(directory / name, list(collection.find({})), indexes)
    return directory


def previous_engine_reader(data_dir: Path, database: Any) -> LegacyDatabase:
    """``database`` written as the previous engine's files (replacing earlier ones), and the
    read-only reader the platform opens on them."""
    return LegacyDatabase(write_previous_engine(data_dir, database), database.name)


def _write_collection(path: Path, documents: list[dict[str, Any]], indexes: list[Any]) -> None:
    path.unlink(missing_ok=True)
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE info(key PRIMARY KEY, value)")
        conn.execute("CREATE TABLE documents(_id PRIMARY KEY,doc)")
        conn.execute("CREATE TABLE indexes(_id PRIMARY KEY,doc)")
        conn.execute("INSERT INTO info VALUES ('key_format', 2)")
        conn.executemany(
            "INSERT INTO documents VALUES (?, ?)",
            [(f"s:{doc['_id']}", bson.encode(doc)) for doc in documents],
        )
        conn.executemany(
            "INSERT INTO indexes VALUES (?, ?)",
            [(str(index["_id"]), bson.encode(_plain(index))) for index in indexes],
        )


def _plain(index: dict[str, Any]) -> dict[str, Any]:
    """Index information with its key list as BSON can hold it."""
    return {**index, "key": [list(pair) for pair in index.get("key", [])]}
