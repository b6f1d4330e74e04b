"""The previous embedded engine (litemongo), kept only for services not yet on a repository.

TRANSITIONAL: delete this module, with litemongo, once every service has a repository
(see libs/common/store.py). litemongo is imported only when an engine is opened, so a process
whose services all have repositories never loads it.

litemongo is mongomock's query engine over SQLite files, written through on every operation. Its
SQLite connections are bound to the thread that opened them, so every call is handed to one
owner thread; cursors are materialised there, which is why store code calls
``find(filter, sort=..., limit=...)`` with keyword arguments and never chains cursor methods.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class EmbeddedEngine:
    """Owns the litemongo client and runs every operation on one dedicated thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="yingji-store")
        self._owner: int | None = None
        self._client = self._executor.submit(self._open).result()
        self._closed = False

    def _open(self) -> Any:
        import litemongo

        self._owner = threading.get_ident()
        self.path.mkdir(parents=True, exist_ok=True)
        return litemongo.connect(str(self.path), tz_aware=True, tzinfo=UTC)

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the owner thread and return its result (exceptions propagate)."""
        if self._closed:
            raise RuntimeError("embedded store is closed")
        if threading.get_ident() == self._owner:
            return fn()
        return self._executor.submit(fn).result()

    def database(self, name: str) -> EmbeddedDatabase:
        """A database proxy whose collections route through the owner thread."""
        return EmbeddedDatabase(self, name)

    def raw_database(self, name: str) -> Any:
        """The litemongo database object; only to be touched on the owner thread."""
        return self._client[name]

    def close(self) -> None:
        """Close the SQLite files and stop the owner thread."""
        if self._closed:
            return
        self._executor.submit(self._client.close).result()
        self._closed = True
        self._executor.shutdown(wait=True)


class EmbeddedDatabase:
    """The subset of ``pymongo.database.Database`` that store code uses."""

    def __init__(self, engine: EmbeddedEngine, name: str) -> None:
        self._engine = engine
        self.name = name

    def __getitem__(self, collection: str) -> EmbeddedCollection:
        return EmbeddedCollection(self._engine, self.name, collection)

    def get_collection(self, collection: str) -> EmbeddedCollection:
        """Same as item access, as in pymongo."""
        return self[collection]

    def list_collection_names(self) -> list[str]:
        """Names of the collections that exist in this database."""
        return self._engine.call(
            lambda: self._engine.raw_database(self.name).list_collection_names()
        )

    def command(self, name: str) -> dict[str, Any]:
        """Answers ``ping`` by touching the engine, so readiness exercises the owner thread."""
        if name != "ping":
            raise NotImplementedError(f"embedded store does not run command {name!r}")
        self._engine.call(lambda: self._engine.raw_database(self.name).list_collection_names())
        return {"ok": 1.0}


class EmbeddedCollection:
    """A collection proxy: every pymongo call runs on the engine's owner thread."""

    _MATERIALISED = frozenset({"find", "aggregate"})
    _PASSTHROUGH = frozenset(
        {
            "insert_one",
            "insert_many",
            "find_one",
            "find_one_and_update",
            "find_one_and_replace",
            "find_one_and_delete",
            "update_one",
            "update_many",
            "replace_one",
            "delete_one",
            "delete_many",
            "count_documents",
            "estimated_document_count",
            "distinct",
            "create_index",
            "drop_index",
            "index_information",
            "drop",
            "bulk_write",
        }
    )

    def __init__(self, engine: EmbeddedEngine, database: str, name: str) -> None:
        self._engine = engine
        self._database = database
        self.name = name

    def _real(self) -> Any:
        return self._engine.raw_database(self._database)[self.name]

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method in self._MATERIALISED:

            def materialised(*args: Any, **kwargs: Any) -> list[Any]:
                return self._engine.call(
                    lambda: list(getattr(self._real(), method)(*args, **kwargs))
                )

            return materialised
        if method in self._PASSTHROUGH:

            def passthrough(*args: Any, **kwargs: Any) -> Any:
                return self._engine.call(lambda: getattr(self._real(), method)(*args, **kwargs))

            return passthrough
        raise AttributeError(f"embedded collection does not support {method!r}")
