"""What every repository does the same way on its engine, written once: keep the engine's handle,
put the schema in place, hand the relay its parts, answer readiness and close; and, for the parts
that remember where a scan got to, a small state of text values that only moves forward.

A repository subclasses the base of its engine, declares its schema (SQLite) or its indexes and
the collections that carry events (MongoDB), and writes only its own queries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pymongo.errors import DuplicateKeyError

from libs.common.outbox import (
    JOURNAL_COLLECTION,
    DocumentJournal,
    DocumentOutbox,
    SqliteJournal,
    SqliteOutbox,
)
from libs.common.service import RelayParts
from libs.common.sqlite import SqliteDatabase
from libs.common.store import ensure_indexes


class SqliteRepository:
    """A repository on one SQLite file: its ``SCHEMA`` (tables, indexes and the outbox's
    statements) and, with ``JOURNAL``, the sent-events journal handed to the relay."""

    SCHEMA: ClassVar[Sequence[str]] = ()
    JOURNAL: ClassVar[bool] = False

    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db
        self.outbox = SqliteOutbox(db)

    def ensure_schema(self) -> None:
        """Create the tables, their indexes, the outbox and the journal."""
        self.db.script(self.SCHEMA)

    def relay_parts(self) -> RelayParts:
        """The outbox table of this file, and its journal when the repository keeps one."""
        journal = SqliteJournal(self.db) if self.JOURNAL else None
        return RelayParts(sources=[self.outbox], journal=journal)

    def ping(self) -> None:
        """A trivial read."""
        self.db.ping()

    def close(self) -> None:
        """Close every thread's connection."""
        self.db.close()


class SqliteRepositoryWithState(SqliteRepository):
    """A SQLite repository that also keeps state values (such as the last day scanned) in the
    file's meta table."""

    def state(self, key: str) -> str | None:
        """From the file's meta table."""
        return self.db.get_meta(key)

    def init_state(self, key: str, value: str) -> bool:
        """Insert unless present."""
        return self.db.init_meta(key, value)

    def advance_state(self, key: str, value: str) -> None:
        """Only forward: ISO dates and months compare as text."""
        self.db.advance_meta(key, value)


class MongoRepository:
    """A repository on a MongoDB database (or mongomock's, in tests): ``INDEXES`` per collection
    name, the ``EVENT_COLLECTIONS`` whose documents carry events, and, with ``JOURNAL``, the
    sent-events journal collection."""

    INDEXES: ClassVar[Mapping[str, Sequence[Mapping[str, Any]]]] = {}
    EVENT_COLLECTIONS: ClassVar[Sequence[str]] = ()
    JOURNAL: ClassVar[bool] = False

    def __init__(self, db: Any) -> None:
        self.db = db

    def ensure_schema(self) -> None:
        """Create the indexes the queries rely on."""
        for name, specs in self.INDEXES.items():
            ensure_indexes(self.db[name], specs)
        if self.JOURNAL:
            self.db[JOURNAL_COLLECTION].create_index([("sent_at", 1)])

    def relay_parts(self) -> RelayParts:
        """Events inside the documents of the event collections; the journal as a collection."""
        sources = [DocumentOutbox(self.db[name]) for name in self.EVENT_COLLECTIONS]
        journal = DocumentJournal(self.db[JOURNAL_COLLECTION]) if self.JOURNAL else None
        return RelayParts(sources=sources, journal=journal)

    def ping(self) -> None:
        """The server's ping command."""
        self.db.command("ping")

    def close(self) -> None:
        """The client belongs to the process's store factory, which closes it."""


class MongoRepositoryWithState(MongoRepository):
    """A MongoDB repository that also keeps state values (such as the last day scanned) in the
    collection ``STATE``, one document per key."""

    STATE: ClassVar[str]

    def state(self, key: str) -> str | None:
        """A value of the state collection."""
        row = self.db[self.STATE].find_one({"_id": key})
        return None if row is None else str(row["value"])

    def init_state(self, key: str, value: str) -> bool:
        """Insert unless present."""
        try:
            self.db[self.STATE].insert_one({"_id": key, "value": value})
        except DuplicateKeyError:
            return False
        return True

    def advance_state(self, key: str, value: str) -> None:
        """Only forward: ISO dates and months compare as strings."""
        self.db[self.STATE].update_one(
            {"_id": key, "value": {"$lt": value}}, {"$set": {"value": value}}
        )
