"""The outbox and its relay.

A command writes its aggregate and the events it raises atomically: on MongoDB in one
single-document update; on SQLite as rows of the ``outbox`` table written
in the same transaction as the document. The relay publishes pending events with
publisher confirms and removes them only after the broker confirmed them, so an accepted request
is never lost while the broker is down. Replicas claim documents with a lease, so two replicas do
not publish the same event in normal operation (after a crash, a lease expires and the events are
published again: consumers are idempotent).
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog

from libs.common import metrics
from libs.common.bus import Publisher, PublishError
from libs.common.clock import Clock, as_utc
from libs.common.events import EventEnvelope
from libs.common.settings import Settings
from libs.common.sqlite import SqliteDatabase, iso

OUTBOX = "_outbox"
PENDING = "_outbox_pending"
LEASE = "_outbox_lease"
JOURNAL_COLLECTION = "_sent_journal"
WAKE_GATHER_SECONDS = 0.005
# How often a relay looks at its broker connection at most (an idle relay wakes at least every
# ``relay_idle_seconds``, so that bounds how stale ``yingji_bus_connected`` gets).
CHECK_SECONDS = 1.0

OUTBOX_INDEXES: list[dict[str, Any]] = [{"keys": [(PENDING, 1)]}]


def merge_updates(*updates: Mapping[str, Any]) -> dict[str, Any]:
    """Merge MongoDB update documents operator by operator (later fields win)."""
    merged: dict[str, Any] = {}
    for update in updates:
        for operator, fields in update.items():
            merged.setdefault(operator, {}).update(fields)
    return merged


def with_events(update: Mapping[str, Any], events: Sequence[EventEnvelope]) -> dict[str, Any]:
    """Add ``events`` to an update so they are written atomically with it."""
    if not events:
        return dict(update)
    return merge_updates(
        update,
        {
            "$push": {OUTBOX: {"$each": [event.to_wire() for event in events]}},
            "$set": {PENDING: True},
        },
    )


def new_document(document: Mapping[str, Any], events: Sequence[EventEnvelope]) -> dict[str, Any]:
    """A document to insert, carrying its first events."""
    created = dict(document)
    if events:
        created[OUTBOX] = [event.to_wire() for event in events]
        created[PENDING] = True
    return created


def strip_internal(document: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Remove outbox and bookkeeping fields before a document leaves the service."""
    if document is None:
        return None
    return {k: v for k, v in document.items() if not k.startswith("_") or k == "_id"}


@dataclass
class Batch:
    """Events a relay claimed from one source, with what the source needs to settle them."""

    events: list[EventEnvelope]
    token: str
    held: list[Any] = field(default_factory=list)
    # The events' JSON as the source stored it, when it keeps them as text (the journal keeps
    # the same text instead of encoding every event again).
    bodies: list[str] = field(default_factory=list)


class OutboxSource(Protocol):
    """Where a service's pending events wait: claimed in batches, removed once confirmed."""

    def claim(self, size: int, lease_seconds: float, owner: str) -> Batch | None:
        """Lease the next events (in order per aggregate); None when nothing is free."""

    def confirm(self, batch: Batch, journal: Journal | None = None) -> None:
        """The broker confirmed every event of the batch: remove them and end the lease, and
        remember them in ``journal`` (in the same write where the source can)."""

    def give_back(self, batch: Batch) -> None:
        """Publishing failed: end the lease at once so the retry need not wait for it."""

    def pending(self) -> tuple[int, datetime | None]:
        """How many events wait, and when the oldest occurred."""


class DocumentOutbox:
    """Events kept inside the documents of a collection (MongoDB and the document store).

    One look serves many batches: the embedded document engine computes a whole result before its
    limit, so asking per batch would read the entire backlog once per batch.
    """

    def __init__(self, collection: Any) -> None:
        self.collection = collection
        self._seen: list[dict[str, Any]] = []

    def _lease_free(self, now: float) -> dict[str, Any]:
        return {"$or": [{LEASE: None}, {f"{LEASE}.until": {"$lt": now}}]}

    def claim(self, size: int, lease_seconds: float, owner: str) -> Batch | None:
        """Lease the next documents with pending events and read their outboxes under the lease."""
        if not self._seen:
            self._seen = list(
                self.collection.find(
                    {PENDING: True, **self._lease_free(time.time())},
                    projection={OUTBOX: 1},
                    limit=size * 50,
                )
            )
        while self._seen:
            chunk, self._seen = self._seen[:size], self._seen[size:]
            batch = self._claim_chunk(chunk, lease_seconds, owner)
            if batch is not None:
                return batch
        return None

    def _claim_chunk(
        self, chunk: list[dict[str, Any]], lease_seconds: float, owner: str
    ) -> Batch | None:
        now = time.time()
        token = f"{owner}:{uuid.uuid4().hex[:8]}"
        ids = [doc["_id"] for doc in chunk]
        result = self.collection.update_many(
            {"_id": {"$in": ids}, **self._lease_free(now)},
            {"$set": {LEASE: {"owner": token, "until": now + lease_seconds}}},
        )
        if result.matched_count == 0:
            return None
        # Read again under our lease: what we saw before the claim may have been sent and
        # released by another relay, and new events pushed since. Only a lease holder removes
        # events, so from here on the outbox can only grow (the release relies on that).
        claimed = list(
            self.collection.find(
                {"_id": {"$in": ids}, f"{LEASE}.owner": token}, projection={OUTBOX: 1}
            )
        )
        if not claimed:
            return None
        events = [
            EventEnvelope.model_validate(raw)
            for document in claimed
            for raw in document.get(OUTBOX) or []
        ]
        return Batch(events=events, token=token, held=claimed)

    def give_back(self, batch: Batch) -> None:
        """End the lease without touching the events."""
        self.collection.update_many(
            {"_id": {"$in": [d["_id"] for d in batch.held]}, f"{LEASE}.owner": batch.token},
            {"$unset": {LEASE: ""}},
        )

    def confirm(self, batch: Batch, journal: Journal | None = None) -> None:
        """Drop the confirmed events from the documents and end the lease (journal first).

        Usual case, one write per batch: a document we still lease whose outbox still holds
        exactly the events we read (only relays remove events, and only under their lease) is
        emptied. Otherwise (new events pushed meanwhile, or our lease ran out) the confirmed
        events are pulled by id and the pending flag cleared where nothing is left.
        """
        if journal is not None and batch.events:
            journal.record(batch.events)
        event_ids = [e.event_id for e in batch.events]
        by_size: dict[int, list[Any]] = {}
        for document in batch.held:
            by_size.setdefault(len(document.get(OUTBOX) or []), []).append(document["_id"])
        for size, doc_ids in by_size.items():
            done = self.collection.update_many(
                {"_id": {"$in": doc_ids}, f"{LEASE}.owner": batch.token, OUTBOX: {"$size": size}},
                {"$set": {OUTBOX: []}, "$unset": {PENDING: "", LEASE: ""}},
            )
            if done.matched_count == len(doc_ids):
                continue
            pull = {"$pull": {OUTBOX: {"event_id": {"$in": event_ids}}}}
            self.collection.update_many(
                {"_id": {"$in": doc_ids}, f"{LEASE}.owner": batch.token},
                {**pull, "$unset": {LEASE: ""}},
            )
            # A lease may have run out and another relay taken a document: still drop what we
            # sent (pulling by id is harmless where it is already gone).
            self.collection.update_many({"_id": {"$in": doc_ids}}, pull)
            self.collection.update_many(
                {"_id": {"$in": doc_ids}, OUTBOX: {"$size": 0}}, {"$unset": {PENDING: ""}}
            )

    def pending(self) -> tuple[int, datetime | None]:
        """Pending events across the collection and the oldest occurrence time."""
        count = 0
        oldest: datetime | None = None
        for document in self.collection.find({PENDING: True}, projection={OUTBOX: 1}):
            for raw in document.get(OUTBOX) or []:
                count += 1
                occurred = as_utc(EventEnvelope.model_validate(raw).occurred_at)
                oldest = occurred if oldest is None else min(oldest, occurred)
        return count, oldest


SQLITE_OUTBOX_SCHEMA = [
    # One row per event, in the order the service wrote them (seq); rows of one aggregate are
    # published in seq order. The table holds only what is still pending, so it stays small.
    "CREATE TABLE IF NOT EXISTS outbox ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " event_id TEXT NOT NULL UNIQUE,"
    " aggregate_id TEXT NOT NULL,"
    " occurred_at TEXT NOT NULL,"
    " body TEXT NOT NULL,"
    " lease_owner TEXT,"
    " lease_until REAL)",
    "CREATE INDEX IF NOT EXISTS outbox_aggregate ON outbox (aggregate_id, seq)",
    "CREATE TABLE IF NOT EXISTS sent_journal ("
    " event_id TEXT PRIMARY KEY, event_type TEXT NOT NULL, sent_at REAL NOT NULL, body TEXT)",
    "CREATE INDEX IF NOT EXISTS sent_journal_at ON sent_journal (sent_at)",
]


OutboxRow = tuple[str, str, str, str]


def outbox_rows(aggregate_id: str, events: Sequence[EventEnvelope]) -> list[OutboxRow]:
    """The outbox rows of ``events``, serialised before a transaction so that the file's write
    lock is not held while Python encodes JSON."""
    return [
        (e.event_id, aggregate_id, iso(as_utc(e.occurred_at)), e.model_dump_json()) for e in events
    ]


def append_rows(conn: sqlite3.Connection, rows: Sequence[OutboxRow]) -> None:
    """Write prepared outbox rows inside the caller's transaction (with the document)."""
    conn.executemany(
        "INSERT INTO outbox (event_id, aggregate_id, occurred_at, body) VALUES (?, ?, ?, ?)", rows
    )


def append_events(
    conn: sqlite3.Connection, aggregate_id: str, events: Sequence[EventEnvelope]
) -> None:
    """Write events to the SQLite outbox inside the caller's transaction (with the document)."""
    append_rows(conn, outbox_rows(aggregate_id, events))


class SqliteOutbox:
    """The outbox table of a service's SQLite file (rows written with their document)."""

    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db

    def claim(self, size: int, lease_seconds: float, owner: str) -> Batch | None:
        """Lease whole aggregates whose rows no other live relay holds, oldest first.

        Leasing every free row of an aggregate, and skipping aggregates another relay is
        publishing, keeps each aggregate's events in order across relay processes.
        """
        if not self.db.query("SELECT 1 FROM outbox LIMIT 1"):
            return None  # nothing pending: no need to take the write lock
        now = time.time()
        token = f"{owner}:{uuid.uuid4().hex[:8]}"
        with self.db.transaction() as conn:
            aggregates = [
                row[0]
                for row in conn.execute(
                    "SELECT aggregate_id FROM outbox AS o"
                    " WHERE (lease_until IS NULL OR lease_until < :now)"
                    " AND NOT EXISTS (SELECT 1 FROM outbox AS b"
                    "   WHERE b.aggregate_id = o.aggregate_id AND b.lease_until >= :now)"
                    " GROUP BY aggregate_id ORDER BY min(seq) LIMIT :size",
                    {"now": now, "size": size},
                )
            ]
            if not aggregates:
                return None
            marks = ",".join("?" * len(aggregates))
            rows = conn.execute(
                "UPDATE outbox SET lease_owner = ?, lease_until = ?"
                f" WHERE aggregate_id IN ({marks})"
                " AND (lease_until IS NULL OR lease_until < ?) RETURNING seq, body",
                [token, now + lease_seconds, *aggregates, now],
            ).fetchall()
        if not rows:
            return None
        rows.sort()
        bodies = [body for _, body in rows]
        events = [EventEnvelope.model_validate_json(body) for body in bodies]
        return Batch(events=events, token=token, held=[seq for seq, _ in rows], bodies=bodies)

    def confirm(self, batch: Batch, journal: Journal | None = None) -> None:
        """Delete the confirmed rows (even if our lease ran out: they were sent); the journal
        of the same file is written in the same transaction (one commit settles a batch)."""
        own_journal = isinstance(journal, SqliteJournal) and journal.db is self.db
        if journal is not None and not own_journal and batch.events:
            journal.record(batch.events)
        with self.db.transaction() as conn:
            if own_journal and batch.events:
                assert isinstance(journal, SqliteJournal)
                journal.record_in(conn, batch)
            conn.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in batch.held])

    def give_back(self, batch: Batch) -> None:
        """End our lease on the rows."""
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE outbox SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?",
                (batch.token,),
            )

    def pending(self) -> tuple[int, datetime | None]:
        """Rows waiting and the oldest event's occurrence time."""
        [(count, oldest)] = self.db.query("SELECT count(*), min(occurred_at) FROM outbox")
        return count, datetime.fromisoformat(oldest) if oldest else None


class Journal(Protocol):
    """What the relay sent recently (the memory bus loses undelivered messages on a crash)."""

    def record(self, events: Sequence[EventEnvelope]) -> None:
        """Remember sent events (a repeat of an event id is ignored)."""

    def purge(self, before: float) -> None:
        """Forget what was sent before ``before`` (epoch seconds)."""

    def since(self, after: float) -> list[EventEnvelope]:
        """What was sent at or after ``after``, in sending order."""


class DocumentJournal:
    """The journal as a collection of the document store."""

    def __init__(self, collection: Any) -> None:
        self.collection = collection

    def record(self, events: Sequence[EventEnvelope]) -> None:
        """One document per event, keyed by its id."""
        from pymongo.errors import DuplicateKeyError

        for event in events:
            try:
                self.collection.insert_one(
                    {"_id": event.event_id, "event": event.to_wire(), "sent_at": time.time()}
                )
            except DuplicateKeyError:
                continue

    def purge(self, before: float) -> None:
        """Delete old entries."""
        self.collection.delete_many({"sent_at": {"$lt": before}})

    def since(self, after: float) -> list[EventEnvelope]:
        """Entries sent at or after ``after``."""
        rows = self.collection.find({"sent_at": {"$gte": after}}, sort=[("sent_at", 1)])
        return [EventEnvelope.model_validate(row["event"]) for row in rows]


class SqliteJournal:
    """The journal as a table of the service's SQLite file."""

    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db

    def record(self, events: Sequence[EventEnvelope]) -> None:
        """One row per event (a repeat is ignored)."""
        with self.db.transaction() as conn:
            self.record_in(conn, Batch(events=list(events), token=""))

    def record_in(self, conn: sqlite3.Connection, batch: Batch) -> None:
        """The batch's rows inside the caller's transaction (its stored JSON when it has it)."""
        now = time.time()
        bodies = batch.bodies or [e.model_dump_json() for e in batch.events]
        conn.executemany(
            "INSERT OR IGNORE INTO sent_journal (event_id, event_type, sent_at, body)"
            " VALUES (?, ?, ?, ?)",
            [(e.event_id, e.event_type, now, b) for e, b in zip(batch.events, bodies, strict=True)],
        )

    def purge(self, before: float) -> None:
        """Delete old rows."""
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM sent_journal WHERE sent_at < ?", (before,))

    def since(self, after: float) -> list[EventEnvelope]:
        """Rows sent at or after ``after``."""
        rows = self.db.query(
            "SELECT body FROM sent_journal WHERE sent_at >= ? ORDER BY sent_at, rowid", (after,)
        )
        return [EventEnvelope.model_validate_json(body) for (body,) in rows]


class OutboxRelay(threading.Thread):
    """Publishes a service's pending events, in order per aggregate, until stopped."""

    def __init__(
        self,
        settings: Settings,
        service: str,
        sources: Iterable[OutboxSource],
        clock: Clock,
        journal: Journal | None = None,
        journal_window: timedelta = timedelta(minutes=10),
    ) -> None:
        super().__init__(name=f"yingji-relay-{service}", daemon=True)
        self.settings = settings
        self.service = service
        self.sources: list[OutboxSource] = list(sources)
        self.clock = clock
        self.journal = journal
        self.journal_window = journal_window
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.publisher = Publisher(settings, service)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._last_gauge = 0.0
        self._last_purge = 0.0
        self._last_check = -CHECK_SECONDS
        self.log = structlog.get_logger().bind(service=service, component="relay")

    def wake(self) -> None:
        """Nudge the relay after a write, so events go out without waiting for the poll."""
        self._wake.set()

    def stop(self) -> None:
        """Stop after the current batch."""
        self._stopping.set()
        self._wake.set()

    def run(self) -> None:
        """Drain, then sleep until woken or the poll interval passes; back off while down."""
        backoff = 0.0
        idle_wait = self.settings.relay_interval_seconds
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                self._check_connection()
                published = self.drain()
                backoff = 0.0
                idle_wait = self._next_idle_wait(idle_wait, published)
            except PublishError as exc:
                backoff = min(max(backoff * 2, 0.5), 10.0)
                self.log.warning("outbox_publish_failed", error=str(exc), retry_in=backoff)
            except Exception as exc:
                backoff = min(max(backoff * 2, 0.5), 10.0)
                self.log.error("outbox_relay_error", error=repr(exc), retry_in=backoff)
            self._update_gauges()
            if self._wake.wait(backoff or idle_wait):
                idle_wait = self.settings.relay_interval_seconds
                # Writers wake the relay on every commit: a moment's pause lets the writes of
                # concurrent requests gather into one batch (one claim, one confirm) instead
                # of a round of transactions per event competing with the requests.
                self._stopping.wait(WAKE_GATHER_SECONDS)
        self.publisher.close()

    def _check_connection(self) -> None:
        """Connect at start and look at the connection at least every ``CHECK_SECONDS``, so
        ``yingji_bus_connected{role="relay"}`` is 1 for a healthy idle relay and 0 for one that
        cannot reach the broker, whether or not it has anything to publish."""
        now = time.monotonic()
        if now - self._last_check < CHECK_SECONDS:
            return
        self._last_check = now
        self.publisher.check()

    def _next_idle_wait(self, current: float, published: int) -> float:
        """The poll interval after a round: reset by work, doubled by an empty round.

        Writers wake the relay, so the poll only catches what nobody announced (another
        process's expired lease); an idle process therefore looks less and less often, up to
        ``relay_idle_seconds``, instead of querying every store twice a second.
        """
        base = self.settings.relay_interval_seconds
        if published:
            return base
        return min(max(current * 2, base), max(base, self.settings.relay_idle_seconds))

    def drain(self) -> int:
        """Publish everything pending now; returns how many events were confirmed."""
        total = 0
        for source in self.sources:
            while not self._stopping.is_set():
                batch = source.claim(
                    self.settings.relay_batch_size, self.settings.outbox_lease_seconds, self.owner
                )
                if batch is None:
                    break
                total += self._publish(source, batch)
        if self.journal is not None:
            self._purge_journal()
        return total

    def _publish(self, source: OutboxSource, batch: Batch) -> int:
        # One batch, in order per aggregate: the publisher pipelines the confirms and fails the
        # whole batch on any nack or return, so either every event of the batch is confirmed
        # and released, or none is.
        try:
            if batch.events:
                self.publisher.publish(batch.events, batch.bodies)
        except PublishError:
            source.give_back(batch)
            raise
        source.confirm(batch, self.journal)
        return len(batch.events)

    def _purge_journal(self) -> None:
        now = time.time()
        if now - self._last_purge < 30:
            return
        self._last_purge = now
        assert self.journal is not None
        self.journal.purge(now - self.journal_window.total_seconds())

    def forget_journal(self, before: float) -> None:
        """Forget what was sent before ``before``: after a settled stop every event was taken
        and handled, and replaying it at the next start would only redo the work (all of the
        last window's events, however many, competing with the first requests)."""
        if self.journal is not None:
            self.journal.purge(before)

    def replay_journal(self) -> int:
        """Publish again what was sent within the window (embedded bus lost it on a crash)."""
        if self.journal is None:
            return 0
        events = self.journal.since(time.time() - self.journal_window.total_seconds())
        if events:
            self.publisher.publish(events)
            self.log.info("outbox_journal_replayed", events=len(events))
        return len(events)

    def pending(self) -> tuple[int, float]:
        """Number of pending events and the age in seconds of the oldest one."""
        count = 0
        oldest: datetime | None = None
        for source in self.sources:
            waiting, first = source.pending()
            count += waiting
            if first is not None:
                oldest = first if oldest is None else min(oldest, first)
        if oldest is None:
            return count, 0.0
        return count, max((as_utc(self.clock.now()) - oldest).total_seconds(), 0.0)

    def _update_gauges(self) -> None:
        now = time.monotonic()
        if now - self._last_gauge < 2:
            return
        self._last_gauge = now
        try:
            count, age = self.pending()
        except Exception as exc:
            self.log.warning("outbox_gauge_failed", error=repr(exc))
            return
        metrics.OUTBOX_PENDING.labels(self.service).set(count)
        metrics.OUTBOX_OLDEST_AGE.labels(self.service).set(age)

    def flush(self, timeout: float) -> bool:
        """Publish synchronously until nothing is pending or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.drain()
            except PublishError:
                time.sleep(0.2)
                continue
            if self.pending()[0] == 0:
                return True
        return False
