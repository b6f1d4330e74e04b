"""The embedded platform driven in-process, without HTTP, threads or a broker: for loading history.

``Replay`` assembles the four services exactly as ``yingji up`` does (``Runtime.prepare``: the
same repositories, use cases, subscriptions and timers) but starts none of its threads. A
command calls a service's use case directly (the one an HTTP route would call, with the body
validated by the route's own request model); ``settle`` then runs every service's own outbox
relay, whose publisher hands each event, round-tripped through its wire form, straight to the
subscribed handlers in this thread, until no outbox holds anything. ``tick`` runs every
service's timer jobs once, as the timer threads would. What lands in the files is what the
live system writes: each document by the service that owns it, through its own code; only the
socket, the broker and the waiting are gone.

``batch()`` wraps a stretch of commands in one SQLite transaction per service file (each
repository transaction becomes a savepoint inside it), so a thousand incidents cost a handful
of commits instead of tens of thousands.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

from libs.common.app import Runtime
from libs.common.auth import Principal, Role
from libs.common.bus import event_exchange
from libs.common.clock import Clock
from libs.common.events import EventEnvelope, envelope_from_wire
from libs.common.settings import Settings
from libs.common.sqlite import SqliteDatabase
from yingji.platform import load_specs

Handler = Callable[[EventEnvelope], Any]


class _DirectPublisher:
    """Stands in for a relay's broker publisher: every event goes to its handlers at once."""

    def __init__(self, handlers: dict[tuple[str, str], list[Handler]]) -> None:
        self.handlers = handlers
        self.delivered = 0

    def publish(self, envelopes: Sequence[EventEnvelope], bodies: Sequence[str] = ()) -> None:
        """Deliver in order, each through its wire form (as a consumer would read it): the JSON
        the outbox stored when the relay passes it, as the broker would carry it."""
        made: Sequence[str | None] = bodies or [None] * len(envelopes)
        for envelope, body in zip(envelopes, made, strict=True):
            received = envelope_from_wire(
                envelope.to_wire() if body is None else json.loads(body),
                exchange=event_exchange(envelope.source).name,
                routing_key=envelope.event_type,
                message_id=envelope.event_id,
            )
            for handler in self.handlers.get((envelope.source, envelope.event_type), []):
                handler(received)
                self.delivered += 1

    def close(self) -> None:
        """Nothing to release."""


class Replay:
    """The four services assembled without threads; commands, event delivery and timers by hand."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.runtime = Runtime(settings, load_specs(), clock=clock)
        self.runtime.prepare()
        handlers: dict[tuple[str, str], list[Handler]] = defaultdict(list)
        for worker in self.runtime.consumers.values():
            for sub in worker.subscriptions:
                handlers[(sub.source, sub.event_type)].append(sub.handler)
        self.publisher = _DirectPublisher(handlers)
        for relay in self.runtime.relays.values():
            relay.publisher.close()
            relay.publisher = self.publisher  # type: ignore[assignment]
        self.timers = [
            timer for thread in self.runtime.timer_threads.values() for timer in thread.timers
        ]

    def usecases(self, service: str) -> Any:
        """A service's use cases (what its routes and handlers call)."""
        return self.runtime.contexts[service].resources["usecases"]

    def principal(self, role: Role, name: str, key_id: str | None = None) -> Principal:
        """A caller with a real API key of ``role`` (made and verified by the key store)."""
        _, secret = self.runtime.keys.create(role, name, key_id=key_id)
        principal = self.runtime.keys.verify(secret, fresh=True)
        assert principal is not None
        return principal

    def settle(self) -> int:
        """Relay every pending event to its handlers until every outbox is empty."""
        total = 0
        while moved := sum(relay.drain() for relay in self.runtime.relays.values()):
            total += moved
        return total

    def tick(self) -> None:
        """Every timer job once (deadline scans, summaries, ...), then what they emitted."""
        for timer in self.timers:
            timer.run()
        self.settle()

    def _databases(self) -> list[SqliteDatabase]:
        """Every SQLite file the services (and their sub-features) write."""
        found: dict[int, SqliteDatabase] = {}
        for ctx in self.runtime.contexts.values():
            for value in _walk(ctx.resources):
                if isinstance(value, SqliteDatabase):
                    found[id(value)] = value
        return list(found.values())

    @contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction per service file around everything done inside (this thread only)."""
        with ExitStack() as stack:
            for db in self._databases():
                stack.enter_context(db.outer_transaction())
            yield

    def close(self) -> None:
        """Settle, forget the sent journals, close the stores.

        As ``Runtime.stop`` does after a settled stop: every event sent was handled, so the next
        start must not replay the journal's window (with a loader, that is most of the history).
        """
        self.settle()
        settled_at = time.time()
        for relay in self.runtime.relays.values():
            relay.forget_journal(settled_at)
        self.runtime.stop()


def _walk(value: Any, depth: int = 0) -> Iterator[Any]:
    """``value`` and the attributes reachable from it, a few levels down (to find databases)."""
    yield value
    if depth >= 4 or isinstance(value, (str, bytes, int, float, sqlite3.Connection)):
        return
    if isinstance(value, dict):
        children = list(value.values())
    elif isinstance(value, (list, tuple)):
        children = list(value)
    else:
        children = list(getattr(value, "__dict__", {}).values())
    for child in children:
        yield from _walk(child, depth + 1)
