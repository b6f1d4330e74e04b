"""The single-document outbox and its relay.

A command writes its aggregate and the events it raises in one single-document update (atomic
on every MongoDB deployment and on the embedded engine). The relay publishes pending events with
publisher confirms and removes them only after the broker confirmed them, so an accepted request
is never lost while the broker is down. Replicas claim documents with a lease, so two replicas do
not publish the same event in normal operation (after a crash, a lease expires and the events are
published again: consumers are idempotent).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import structlog

from libs.common import metrics
from libs.common.bus import Publisher, PublishError
from libs.common.clock import Clock, as_utc
from libs.common.events import EventEnvelope
from libs.common.settings import Settings

OUTBOX = "_outbox"
PENDING = "_outbox_pending"
LEASE = "_outbox_lease"
JOURNAL_COLLECTION = "_sent_journal"

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


class OutboxRelay(threading.Thread):
    """Publishes a service's pending events, in order per document, until stopped."""

    def __init__(
        self,
        settings: Settings,
        service: str,
        collections: Iterable[Any],
        clock: Clock,
        journal: Any | None = None,
        journal_window: timedelta = timedelta(minutes=10),
    ) -> None:
        super().__init__(name=f"yingji-relay-{service}", daemon=True)
        self.settings = settings
        self.service = service
        self.collections = list(collections)
        self.clock = clock
        self.journal = journal
        self.journal_window = journal_window
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.publisher = Publisher(settings, service)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._last_gauge = 0.0
        self._last_purge = 0.0
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
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                self.drain()
                backoff = 0.0
            except PublishError as exc:
                backoff = min(max(backoff * 2, 0.5), 10.0)
                self.log.warning("outbox_publish_failed", error=str(exc), retry_in=backoff)
            except Exception as exc:
                backoff = min(max(backoff * 2, 0.5), 10.0)
                self.log.error("outbox_relay_error", error=repr(exc), retry_in=backoff)
            self._update_gauges()
            self._wake.wait(backoff or self.settings.relay_interval_seconds)
        self.publisher.close()

    def drain(self) -> int:
        """Publish everything pending now; returns how many events were confirmed."""
        total = 0
        for collection in self.collections:
            while not self._stopping.is_set():
                sent = self._drain_pending(collection)
                total += sent
                if sent == 0:
                    break
        if self.journal is not None:
            self._purge_journal()
        return total

    def _lease_free(self, now: float) -> dict[str, Any]:
        return {"$or": [{LEASE: None}, {f"{LEASE}.until": {"$lt": now}}]}

    def _drain_pending(self, collection: Any) -> int:
        # One look for many batches: the embedded engine computes a whole result before its
        # limit, so asking per batch would read the entire backlog once per batch.
        candidates = collection.find(
            {PENDING: True, **self._lease_free(time.time())},
            projection={OUTBOX: 1},
            limit=self.settings.relay_batch_size * 50,
        )
        sent = 0
        size = self.settings.relay_batch_size
        for start in range(0, len(candidates), size):
            if self._stopping.is_set():
                break
            sent += self._drain_batch(collection, candidates[start : start + size])
        return sent

    def _drain_batch(self, collection: Any, seen: list[dict[str, Any]]) -> int:
        now = time.time()
        token = f"{self.owner}:{uuid.uuid4().hex[:8]}"
        ids = [doc["_id"] for doc in seen]
        result = collection.update_many(
            {"_id": {"$in": ids}, **self._lease_free(now)},
            {"$set": {LEASE: {"owner": token, "until": now + self.settings.outbox_lease_seconds}}},
        )
        if result.matched_count == 0:
            return 0
        # Read again under our lease: what we saw before the claim may have been sent and
        # released by another relay, and new events pushed since. Only a lease holder removes
        # events, so from here on the outbox can only grow (the release relies on that).
        claimed = collection.find(
            {"_id": {"$in": ids}, f"{LEASE}.owner": token}, projection={OUTBOX: 1}
        )
        if not claimed:
            return 0
        # One batch for every claimed document, in order per document: the publisher pipelines
        # the confirms and fails the whole batch on any nack or return, so either every event
        # of the batch is confirmed and released, or none is.
        events = [
            EventEnvelope.model_validate(raw)
            for document in claimed
            for raw in document.get(OUTBOX) or []
        ]
        try:
            if events:
                self.publisher.publish(events)
        except PublishError:
            # Give the documents back at once so the retry need not wait for the lease to end.
            collection.update_many(
                {"_id": {"$in": [d["_id"] for d in claimed]}, f"{LEASE}.owner": token},
                {"$unset": {LEASE: ""}},
            )
            raise
        if events and self.journal is not None:
            self._journal(events)
        self._release(collection, claimed, token, [e.event_id for e in events])
        return len(events)

    def _release(
        self, collection: Any, claimed: list[dict[str, Any]], token: str, event_ids: list[str]
    ) -> None:
        """Drop the confirmed events from the documents and end the lease.

        Usual case, one write per batch: a document we still lease whose outbox still holds
        exactly the events we read (only relays remove events, and only under their lease) is
        emptied. Otherwise (new events pushed meanwhile, or our lease ran out) the confirmed
        events are pulled by id and the pending flag cleared where nothing is left.
        """
        by_size: dict[int, list[Any]] = {}
        for document in claimed:
            by_size.setdefault(len(document.get(OUTBOX) or []), []).append(document["_id"])
        for size, doc_ids in by_size.items():
            done = collection.update_many(
                {"_id": {"$in": doc_ids}, f"{LEASE}.owner": token, OUTBOX: {"$size": size}},
                {"$set": {OUTBOX: []}, "$unset": {PENDING: "", LEASE: ""}},
            )
            if done.matched_count == len(doc_ids):
                continue
            pull = {"$pull": {OUTBOX: {"event_id": {"$in": event_ids}}}}
            collection.update_many(
                {"_id": {"$in": doc_ids}, f"{LEASE}.owner": token}, {**pull, "$unset": {LEASE: ""}}
            )
            # A lease may have run out and another relay taken a document: still drop what we
            # sent (pulling by id is harmless where it is already gone).
            collection.update_many({"_id": {"$in": doc_ids}}, pull)
            collection.update_many(
                {"_id": {"$in": doc_ids}, OUTBOX: {"$size": 0}}, {"$unset": {PENDING: ""}}
            )

    def _journal(self, events: Sequence[EventEnvelope]) -> None:
        from pymongo.errors import DuplicateKeyError

        assert self.journal is not None
        for event in events:
            try:
                self.journal.insert_one(
                    {"_id": event.event_id, "event": event.to_wire(), "sent_at": time.time()}
                )
            except DuplicateKeyError:
                continue

    def _purge_journal(self) -> None:
        now = time.time()
        if now - self._last_purge < 30:
            return
        self._last_purge = now
        assert self.journal is not None
        self.journal.delete_many({"sent_at": {"$lt": now - self.journal_window.total_seconds()}})

    def replay_journal(self) -> int:
        """Publish again what was sent within the window (embedded bus lost it on a crash)."""
        if self.journal is None:
            return 0
        since = time.time() - self.journal_window.total_seconds()
        rows = self.journal.find({"sent_at": {"$gte": since}}, sort=[("sent_at", 1)])
        events = [EventEnvelope.model_validate(row["event"]) for row in rows]
        if events:
            self.publisher.publish(events)
            self.log.info("outbox_journal_replayed", events=len(events))
        return len(events)

    def pending(self) -> tuple[int, float]:
        """Number of pending events and the age in seconds of the oldest one."""
        count = 0
        oldest: float | None = None
        now = self.clock.now()
        for collection in self.collections:
            for document in collection.find({PENDING: True}, projection={OUTBOX: 1}):
                for raw in document.get(OUTBOX) or []:
                    count += 1
                    occurred = EventEnvelope.model_validate(raw).occurred_at
                    age = (as_utc(now) - as_utc(occurred)).total_seconds()
                    oldest = age if oldest is None else max(oldest, age)
        return count, max(oldest or 0.0, 0.0)

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
