"""The publisher pipelines its confirms on the real RabbitMQ and still fails a batch as a whole.

A batch is published in full and then every delivery tag must be acknowledged: an unroutable
message (``basic.return`` under ``mandatory``) or a nack fails the batch, and the outbox relay
keeps every event of a failed batch pending.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kombu import Connection, Queue

from libs.common.bus import Publisher, PublishError, event_exchange
from libs.common.clock import SystemClock
from libs.common.events import EventEnvelope
from libs.common.outbox import SQLITE_OUTBOX_SCHEMA, OutboxRelay, SqliteOutbox, append_events
from libs.common.settings import Settings
from libs.common.sqlite import SqliteDatabase

pytestmark = pytest.mark.bus


def _envelope(source: str, event_type: str, n: int) -> EventEnvelope:
    return EventEnvelope(
        event_id=str(uuid.uuid4()),
        event_type=event_type,
        schema_version=1,
        occurred_at=datetime.now(UTC),
        source=source,
        correlation_id=f"c{n}",
        payload={"n": n},
    )


def _bind(amqp_url: str, source: str, event_type: str, name: str, **arguments: object) -> None:
    with Connection(amqp_url) as connection:
        channel = connection.channel()
        event_exchange(source)(channel).declare()
        Queue(
            name,
            exchange=event_exchange(source),
            routing_key=event_type,
            durable=False,
            auto_delete=False,
            queue_arguments=arguments or None,
        )(channel).declare()


def _drain_queue(amqp_url: str, name: str) -> list[dict[str, object]]:
    bodies = []
    with Connection(amqp_url) as connection:
        queue = Queue(name)(connection.channel())
        while (message := queue.get(no_ack=True)) is not None:
            bodies.append(message.decode())
    return bodies


def _drop_exchange(amqp_url: str, source: str) -> None:
    with Connection(amqp_url) as connection:
        connection.channel().exchange_delete(f"{source}.events")


def test_a_pipelined_batch_arrives_whole_and_in_order(
    amqp_url: str, cleanup_queues: list[str]
) -> None:
    source = f"pipe{uuid.uuid4().hex[:8]}"
    name = f"{source}-q"
    cleanup_queues.append(name)
    _bind(amqp_url, source, "thing_happened", name)
    publisher = Publisher(Settings(bus_url=amqp_url), source)
    try:
        batch = [_envelope(source, "thing_happened", n) for n in range(300)]
        publisher.publish(batch)
        # The same connection carries on with the next batch (delivery tags keep counting).
        publisher.publish(batch[:5])
        bodies = _drain_queue(amqp_url, name)
    finally:
        publisher.close()
        _drop_exchange(amqp_url, source)
    assert [b["event_id"] for b in bodies] == [e.event_id for e in batch + batch[:5]]


def test_one_unroutable_message_fails_the_batch(amqp_url: str, cleanup_queues: list[str]) -> None:
    source = f"pipe{uuid.uuid4().hex[:8]}"
    name = f"{source}-q"
    cleanup_queues.append(name)
    _bind(amqp_url, source, "thing_happened", name)
    publisher = Publisher(Settings(bus_url=amqp_url), source)
    try:
        batch = [_envelope(source, "thing_happened", n) for n in range(50)]
        batch.insert(25, _envelope(source, "nobody_listens", 99))
        with pytest.raises(PublishError, match=r"NO_ROUTE|returned"):
            publisher.publish(batch)
        # The publisher reconnects and works again for a routable batch.
        publisher.publish([_envelope(source, "thing_happened", 100)])
    finally:
        publisher.close()
        _drop_exchange(amqp_url, source)


def test_a_nack_fails_the_batch(amqp_url: str, cleanup_queues: list[str]) -> None:
    source = f"pipe{uuid.uuid4().hex[:8]}"
    name = f"{source}-q"
    cleanup_queues.append(name)
    # A full queue that rejects publishes makes the broker nack them.
    _bind(
        amqp_url,
        source,
        "thing_happened",
        name,
        **{"x-max-length": 2, "x-overflow": "reject-publish"},
    )
    publisher = Publisher(Settings(bus_url=amqp_url), source)
    try:
        with pytest.raises(PublishError, match="nack"):
            publisher.publish([_envelope(source, "thing_happened", n) for n in range(5)])
    finally:
        publisher.close()
        _drop_exchange(amqp_url, source)


def test_the_relay_keeps_a_failed_batch_pending_and_sends_it_once_routable(
    tmp_path: Path, amqp_url: str, cleanup_queues: list[str]
) -> None:
    source = f"pipe{uuid.uuid4().hex[:8]}"
    routed, later = f"{source}-q", f"{source}-later"
    cleanup_queues.extend([routed, later])
    _bind(amqp_url, source, "thing_happened", routed)
    db = SqliteDatabase(tmp_path / "yingji_pipe.sqlite3")
    db.script(SQLITE_OUTBOX_SCHEMA)
    settings = Settings(bus_url=amqp_url, relay_batch_size=100)
    relay = OutboxRelay(settings, source, [SqliteOutbox(db)], SystemClock())
    try:
        for n in range(40):
            kind = "not_yet_routed" if n == 17 else "thing_happened"
            with db.transaction() as conn:
                append_events(conn, f"d{n}", [_envelope(source, kind, n)])
        with pytest.raises(PublishError):
            relay.drain()
        # Every row of the failed batch is still there, and no longer leased.
        pending = db.query("SELECT aggregate_id, lease_owner, lease_until FROM outbox")
        assert sorted(row[0] for row in pending) == sorted(f"d{n}" for n in range(40))
        assert all(owner is None and until is None for _, owner, until in pending)
        # Once a queue is bound, the same events go out, and only then leave the outbox.
        _bind(amqp_url, source, "not_yet_routed", later)
        assert relay.drain() == 40
        assert db.query("SELECT count(*) FROM outbox") == [(0,)]
        delivered = _drain_queue(amqp_url, routed) + _drain_queue(amqp_url, later)
        # The failed batch reached the broker too (the bound part): consumers are idempotent,
        # so what counts is that every event arrived at least once.
        assert {b["payload"]["n"] for b in delivered} == set(range(40))
    finally:
        relay.publisher.close()
        db.close()
        _drop_exchange(amqp_url, source)
