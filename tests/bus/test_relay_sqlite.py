"""The SQLite outbox through relays to the real RabbitMQ: every event arrives, in order per
aggregate, even with two relays (as two processes of a service would run) on one file; a failed
batch stays pending and goes out once it can."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from libs.common.bus import PublishError
from libs.common.clock import SystemClock
from libs.common.events import EventEnvelope
from libs.common.outbox import SQLITE_OUTBOX_SCHEMA, OutboxRelay, SqliteOutbox, append_events
from libs.common.settings import Settings
from libs.common.sqlite import SqliteDatabase
from tests.bus.test_publisher_pipeline import _bind, _drain_queue, _drop_exchange

pytestmark = pytest.mark.bus


def _envelope(source: str, event_type: str, aggregate: str, n: int) -> EventEnvelope:
    return EventEnvelope(
        event_id=str(uuid.uuid4()),
        event_type=event_type,
        schema_version=1,
        occurred_at=datetime.now(UTC),
        source=source,
        correlation_id=aggregate,
        payload={"aggregate": aggregate, "n": n},
    )


def _outbox(tmp_path: Path) -> SqliteDatabase:
    db = SqliteDatabase(tmp_path / "service.sqlite3")
    db.script(SQLITE_OUTBOX_SCHEMA)
    return db


def _write(db: SqliteDatabase, source: str, aggregates: int, per_aggregate: int) -> None:
    """Events written the way a repository writes them: interleaved across aggregates."""
    for n in range(per_aggregate):
        for a in range(aggregates):
            with db.transaction() as conn:
                append_events(conn, f"a{a}", [_envelope(source, "thing_happened", f"a{a}", n)])


def test_two_relays_on_one_file_deliver_everything_in_order_per_aggregate(
    tmp_path: Path, amqp_url: str, cleanup_queues: list[str]
) -> None:
    source = f"sq{uuid.uuid4().hex[:8]}"
    queue = f"{source}-q"
    cleanup_queues.append(queue)
    _bind(amqp_url, source, "thing_happened", queue)
    db = _outbox(tmp_path)
    settings = Settings(bus_url=amqp_url, relay_batch_size=7)
    relays = [OutboxRelay(settings, source, [SqliteOutbox(db)], SystemClock()) for _ in range(2)]
    try:
        _write(db, source, aggregates=25, per_aggregate=6)
        sent = [0, 0]

        def run(i: int) -> None:
            sent[i] = relays[i].drain()

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sum(sent) == 150
        assert relays[0].pending()[0] == 0
        delivered = _drain_queue(amqp_url, queue)
        by_aggregate: dict[str, list[int]] = {}
        for body in delivered:
            payload = body["payload"]
            assert isinstance(payload, dict)
            by_aggregate.setdefault(payload["aggregate"], []).append(payload["n"])
        assert len(by_aggregate) == 25
        assert all(ns == list(range(6)) for ns in by_aggregate.values()), by_aggregate
    finally:
        for relay in relays:
            relay.publisher.close()
        db.close()
        _drop_exchange(amqp_url, source)


def test_a_failed_batch_stays_pending_and_goes_out_once_routable(
    tmp_path: Path, amqp_url: str, cleanup_queues: list[str]
) -> None:
    source = f"sq{uuid.uuid4().hex[:8]}"
    routed, later = f"{source}-q", f"{source}-later"
    cleanup_queues.extend([routed, later])
    _bind(amqp_url, source, "thing_happened", routed)
    db = _outbox(tmp_path)
    relay = OutboxRelay(Settings(bus_url=amqp_url), source, [SqliteOutbox(db)], SystemClock())
    try:
        with db.transaction() as conn:
            append_events(conn, "a", [_envelope(source, "thing_happened", "a", 0)])
            append_events(conn, "a", [_envelope(source, "not_yet_routed", "a", 1)])
        with pytest.raises(PublishError):
            relay.drain()
        assert relay.pending()[0] == 2
        assert db.query("SELECT count(*) FROM outbox WHERE lease_owner IS NOT NULL") == [(0,)]
        _bind(amqp_url, source, "not_yet_routed", later)
        assert relay.drain() == 2
        assert relay.pending()[0] == 0
        delivered = _drain_queue(amqp_url, routed) + _drain_queue(amqp_url, later)
        assert {b["payload"]["n"] for b in delivered} == {0, 1}  # type: ignore[index]
    finally:
        relay.publisher.close()
        db.close()
        _drop_exchange(amqp_url, source)
