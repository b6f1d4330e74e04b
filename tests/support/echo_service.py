"""A tiny service used to test the platform plumbing on its own (not shipped).

It has the shape of a real service at its smallest: a repository with a SQLite engine (its
own file, the outbox rows written in the same transaction) and a MongoDB engine (the shared
single-document helpers of libs.common.idempotency and libs.common.outbox).
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from fastapi import APIRouter, Header
from pydantic import BaseModel, ConfigDict, Field

from libs.common.auth import Principal, Role
from libs.common.events import EventEnvelope, EventPayload, event_model, make_event
from libs.common.idempotency import (
    IDEMPOTENCY,
    IDEMPOTENCY_INDEXES,
    apply_once,
    check_replay,
    fingerprint,
    idempotency_scope,
    insert_idempotent,
    validate_key,
)
from libs.common.outbox import (
    JOURNAL_COLLECTION,
    OUTBOX_INDEXES,
    SQLITE_OUTBOX_SCHEMA,
    DocumentJournal,
    DocumentOutbox,
    SqliteJournal,
    SqliteOutbox,
    append_events,
    new_document,
    strip_internal,
)
from libs.common.service import RelayParts, ServiceContext, ServiceSpec, subscribe
from libs.common.sqlite import SqliteDatabase, dumps
from libs.common.store import ensure_indexes, sqlite_file

NAME = "echo"


@event_model("echo", "echo_recorded")
class EchoRecorded(EventPayload):
    """Test event."""

    echo_id: str
    text: str


class EchoIn(BaseModel):
    """Test body."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=100)
    township_code: str | None = None


class EchoRepository(Protocol):
    """Where echoes live."""

    def by_idempotency_key(self, scope: str) -> dict[str, Any] | None:
        """The echo created under this key."""

    def record(
        self, doc: Mapping[str, Any], scope: str, digest: str, events: Sequence[EventEnvelope]
    ) -> dict[str, Any]:
        """Store a new echo with its events; a key race returns the winner."""

    def by_id(self, echo_id: str) -> dict[str, Any] | None:
        """One echo."""

    def count(self) -> int:
        """How many echoes there are."""

    def count_handled(self, echo_id: str, event_id: str) -> bool:
        """Add one to ``handled`` unless this event was already counted."""

    def relay_parts(self) -> RelayParts:
        """The outbox and the journal."""

    def ping(self) -> None:
        """A trivial read (readiness)."""

    def close(self) -> None:
        """Release the engine."""


SQLITE_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS echoes (id TEXT PRIMARY KEY, doc TEXT NOT NULL,"
    " idem_key TEXT GENERATED ALWAYS AS (doc ->> '$._idem.key') VIRTUAL)",
    "CREATE UNIQUE INDEX IF NOT EXISTS echoes_idem ON echoes (idem_key)",
    "CREATE TABLE IF NOT EXISTS echo_applied (event_id TEXT PRIMARY KEY)",
    *SQLITE_OUTBOX_SCHEMA,
]


class SqliteEchoRepository:
    """Echoes in the service's SQLite file."""

    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db
        db.script(SQLITE_SCHEMA)

    def by_idempotency_key(self, scope: str) -> dict[str, Any] | None:
        """By the unique generated column."""
        docs = self.db.documents("SELECT doc FROM echoes WHERE idem_key = ?", (scope,))
        return docs[0] if docs else None

    def record(
        self, doc: Mapping[str, Any], scope: str, digest: str, events: Sequence[EventEnvelope]
    ) -> dict[str, Any]:
        """The row and its outbox rows in one transaction."""
        stamped = {**doc, IDEMPOTENCY: {"key": scope, "hash": digest}}
        try:
            with self.db.transaction() as conn:
                conn.execute(
                    "INSERT INTO echoes (id, doc) VALUES (?, ?)", (doc["_id"], dumps(stamped))
                )
                append_events(conn, doc["_id"], events)
        except sqlite3.IntegrityError:
            winner = self.by_idempotency_key(scope)
            if winner is None:
                raise
            return winner
        return stamped

    def by_id(self, echo_id: str) -> dict[str, Any] | None:
        """By primary key."""
        docs = self.db.documents("SELECT doc FROM echoes WHERE id = ?", (echo_id,))
        return docs[0] if docs else None

    def count(self) -> int:
        """count(*)."""
        [(count,)] = self.db.query("SELECT count(*) FROM echoes")
        return int(count)

    def count_handled(self, echo_id: str, event_id: str) -> bool:
        """The event's mark and the increment in one transaction."""
        with self.db.transaction() as conn:
            marked = conn.execute(
                "INSERT OR IGNORE INTO echo_applied (event_id) VALUES (?)", (event_id,)
            ).rowcount
            if not marked:
                return False
            conn.execute(
                "UPDATE echoes SET doc = json_set(doc, '$.handled', (doc ->> '$.handled') + 1)"
                " WHERE id = ?",
                (echo_id,),
            )
        return True

    def relay_parts(self) -> RelayParts:
        """The outbox table and the journal table."""
        return RelayParts(sources=[SqliteOutbox(self.db)], journal=SqliteJournal(self.db))

    def ping(self) -> None:
        """A trivial read."""
        self.db.ping()

    def close(self) -> None:
        """Close the connections."""
        self.db.close()


class MongoEchoRepository:
    """Echoes in the service's MongoDB database (outbox inside the document)."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.echoes = db["echoes"]
        ensure_indexes(self.echoes, [*OUTBOX_INDEXES, *IDEMPOTENCY_INDEXES])
        db[JOURNAL_COLLECTION].create_index([("sent_at", 1)])

    def by_idempotency_key(self, scope: str) -> dict[str, Any] | None:
        """By the unique sparse index."""
        found: dict[str, Any] | None = self.echoes.find_one({f"{IDEMPOTENCY}.key": scope})
        return found

    def record(
        self, doc: Mapping[str, Any], scope: str, digest: str, events: Sequence[EventEnvelope]
    ) -> dict[str, Any]:
        """One insert carrying its events."""
        winner, _ = insert_idempotent(self.echoes, new_document(doc, events), scope, digest)
        return winner

    def by_id(self, echo_id: str) -> dict[str, Any] | None:
        """By ``_id``."""
        found: dict[str, Any] | None = self.echoes.find_one({"_id": echo_id})
        return found

    def count(self) -> int:
        """count_documents."""
        return int(self.echoes.count_documents({}))

    def count_handled(self, echo_id: str, event_id: str) -> bool:
        """apply_once."""
        return apply_once(self.echoes, {"_id": echo_id}, {"$inc": {"handled": 1}}, event_id)

    def relay_parts(self) -> RelayParts:
        """The document outbox and the journal collection."""
        return RelayParts(
            sources=[DocumentOutbox(self.echoes)],
            journal=DocumentJournal(self.db[JOURNAL_COLLECTION]),
        )

    def ping(self) -> None:
        """The runtime pings the database itself."""
        self.db.command("ping")

    def close(self) -> None:
        """The client belongs to the runtime."""


def open_repository(ctx: ServiceContext) -> EchoRepository:
    """SQLite unless the database URL is ``mongodb://``; opened once per context."""
    repo: EchoRepository | None = ctx.resources.get("repository")
    if repo is None:
        path = sqlite_file(ctx.settings, NAME)
        repo = (
            MongoEchoRepository(ctx.db)
            if path is None
            else SqliteEchoRepository(SqliteDatabase(path))
        )
        ctx.resources["repository"] = repo
        ctx.closers.append(repo.close)
    return repo


def build_router(ctx: ServiceContext) -> APIRouter:
    """POST creates an echo and its event; GET reads it back."""
    router = APIRouter()
    repo = open_repository(ctx)

    @router.post("/v1/echoes", status_code=201)
    def create(
        body: EchoIn,
        principal: Principal = ctx.allow(*Role),
        idempotency_key: str | None = Header(default=None),
    ) -> dict[str, Any]:
        if body.township_code:
            principal.ensure_township(body.township_code)
        key = validate_key(idempotency_key)
        echo_id = uuid.uuid4().hex
        scope = idempotency_scope(principal.key_id, key, echo_id)
        digest = fingerprint(body.model_dump())
        replay = check_replay(repo.by_idempotency_key(scope), digest) if key else None
        if replay is None:
            event = make_event(
                ctx.clock,
                "echo",
                "echo_recorded",
                {"echo_id": echo_id, "text": body.text},
                correlation_id=echo_id,
            )
            doc = {"_id": echo_id, "text": body.text, "handled": 0}
            replay = repo.record(doc, scope, digest, [event])
            ctx.wake_relay()
        return {"id": replay["_id"], "text": replay["text"]}

    @router.get("/v1/echoes/{echo_id}")
    def read(echo_id: str, principal: Principal = ctx.allow(*Role)) -> dict[str, Any]:
        return strip_internal(repo.by_id(echo_id)) or {}

    return router


def on_recorded(ctx: ServiceContext) -> Any:
    """Counts deliveries idempotently; raises for poison text."""

    def handle(envelope: EventEnvelope) -> bool:
        payload = envelope.payload
        if payload["text"] == "poison":
            raise ValueError("poison message")
        if payload["text"] == "crash-once" and not os.environ.get("ECHO_CRASHED"):
            os.environ["ECHO_CRASHED"] = "1"
            raise RuntimeError("transient failure")
        return open_repository(ctx).count_handled(payload["echo_id"], envelope.event_id)

    return handle


SPEC = ServiceSpec(
    name=NAME,
    build_router=build_router,
    relay_parts=lambda ctx: open_repository(ctx).relay_parts(),
    subscriptions=lambda ctx: [subscribe("echo", "echo_recorded", "count", on_recorded(ctx))],
)
