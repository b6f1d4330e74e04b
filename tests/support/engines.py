"""The engines a repository contract suite runs on: SQLite always, mongomock always (the test
stand-in for the MongoDB implementation), and a real MongoDB when ``YINGJI_TEST_MONGO_URL`` is
set (or testcontainers finds a Docker engine)."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC
from pathlib import Path
from typing import Any

from tests.support.mongo import docker_engine_reachable, mongo_url_for_tests


def engine_names() -> list[str]:
    """``sqlite`` and ``mongomock``, plus ``mongodb`` when a server is configured."""
    names = ["sqlite", "mongomock"]
    if os.environ.get("YINGJI_TEST_MONGO_URL") or docker_engine_reachable():
        names.append("mongodb")
    return names


class AtomicCollection:
    """A mongomock collection whose every operation runs alone, as each runs atomically on a
    MongoDB server (mongomock's own objects are not safe to share between threads)."""

    def __init__(self, collection: Any, lock: threading.RLock) -> None:
        self._collection = collection
        self._lock = lock

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._collection, name)
        if not callable(method):
            return method

        def atomic(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                result = method(*args, **kwargs)
                # Cursors are read inside the lock too.
                return list(result) if type(result).__name__ == "Cursor" else result

        return atomic


class AtomicDatabase:
    """A mongomock database handing out ``AtomicCollection``s that share one lock."""

    def __init__(self, database: Any) -> None:
        self._database = database
        self._lock = threading.RLock()

    def __getitem__(self, name: str) -> AtomicCollection:
        return AtomicCollection(self._database[name], self._lock)

    def command(self, name: str) -> Any:
        """Database commands (ping)."""
        with self._lock:
            return self._database.command(name)


@contextmanager
def sqlite_database(tmp_path: Path) -> Iterator[Any]:
    """A fresh SQLite file."""
    from libs.common.sqlite import SqliteDatabase

    db = SqliteDatabase(tmp_path / f"contract-{uuid.uuid4().hex[:6]}.sqlite3")
    try:
        yield db
    finally:
        db.close()


@contextmanager
def mongo_database(engine: str) -> Iterator[Any]:
    """A fresh database on mongomock or on the configured MongoDB (dropped afterwards)."""
    from bson.codec_options import CodecOptions

    codec: CodecOptions[Any] = CodecOptions(tz_aware=True, tzinfo=UTC)
    name = f"contract{uuid.uuid4().hex[:10]}"
    if engine == "mongomock":
        import mongomock

        mock: Any = mongomock.MongoClient(tz_aware=True)
        yield AtomicDatabase(mock.get_database(name))
        return
    import pymongo

    url = mongo_url_for_tests()
    assert url, "mongodb engine selected without a server"
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(url, serverSelectionTimeoutMS=5000)
    try:
        yield client.get_database(name, codec_options=codec)
    finally:
        client.drop_database(name)
        client.close()


@contextmanager
def repository_on(
    engine: str,
    tmp_path: Path,
    on_sqlite: Callable[[Any], Any],
    on_mongo: Callable[[Any], Any],
) -> Iterator[Any]:
    """A repository on ``engine`` over a fresh database, its schema in place: ``on_sqlite`` or
    ``on_mongo`` builds it from the SQLite database or the MongoDB (mongomock) database."""
    if engine == "sqlite":
        with sqlite_database(tmp_path) as db:
            repo = on_sqlite(db)
            repo.ensure_schema()
            yield repo
        return
    with mongo_database(engine) as mdb:
        repo = on_mongo(mdb)
        repo.ensure_schema()
        yield repo


def drain(repo: Any, owner: str = "test") -> list[Any]:
    """Everything pending in a repository's outboxes, confirmed as sent: the events."""
    sent: list[Any] = []
    for source in repo.relay_parts().sources:
        while (batch := source.claim(100, 30.0, owner)) is not None:
            sent.extend(batch.events)
            source.confirm(batch)
    return sent


def in_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in ``count`` threads released together; their results."""
    start = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        start.wait()
        results[i] = work(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
