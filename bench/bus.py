"""The bus limit and the outbox relay on the real RabbitMQ, in one vhost of their own.

Baselines: kombu publishing with one confirm per message (``confirm_publish=True``, each publish
waits for its ack) to a quorum queue, and a kombu consumer draining that queue with manual acks.
Then the relay: N outbox rows in a SQLite file (the embedded outbox), published by ``OutboxRelay``
with pipelined confirms, checked for loss (every event id arrives in the queue).
"""

from __future__ import annotations

import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from kombu import Connection, Consumer, Exchange, Producer, Queue

from bench.common import record, vhost
from libs.common.bus import Publisher, event_exchange
from libs.common.clock import SystemClock
from libs.common.events import EventEnvelope
from libs.common.outbox import SQLITE_OUTBOX_SCHEMA, OutboxRelay, SqliteOutbox, append_events
from libs.common.settings import Settings
from libs.common.sqlite import SqliteDatabase

MESSAGES = 3000
SOURCE = "benchsrc"
EVENT = "thing_happened"


def _quorum(name: str) -> Queue:
    return Queue(
        name,
        exchange=event_exchange(SOURCE),
        routing_key=EVENT,
        durable=True,
        queue_arguments={"x-queue-type": "quorum"},
    )


def _envelope(n: int) -> EventEnvelope:
    return EventEnvelope(
        event_id=str(uuid.uuid4()),
        event_type=EVENT,
        schema_version=1,
        occurred_at=datetime.now(UTC),
        source=SOURCE,
        correlation_id=f"c{n}",
        payload={"n": n, "text": "x" * 400},
    )


def _count(url: str, name: str) -> int:
    with Connection(url) as connection:
        return int(_quorum(name)(connection.channel()).queue_declare(passive=True).message_count)


def baseline_publish(url: str, name: str) -> float:
    with Connection(url, transport_options={"confirm_publish": True}) as connection:
        channel = connection.channel()
        _quorum(name)(channel).declare()
        producer = Producer(channel, serializer="json")
        bodies = [_envelope(n).to_wire() for n in range(MESSAGES)]
        started = time.perf_counter()
        for body in bodies:
            producer.publish(
                body,
                exchange=event_exchange(SOURCE),
                routing_key=EVENT,
                delivery_mode=2,
                mandatory=True,
                retry=False,
            )
        return MESSAGES / (time.perf_counter() - started)


def baseline_consume(url: str, name: str) -> float:
    got = 0
    with Connection(url) as connection:
        channel = connection.channel()
        channel.basic_qos(0, 32, False)

        def on_message(body: object, message: object) -> None:
            nonlocal got
            got += 1
            message.ack()  # type: ignore[attr-defined]

        consumer = Consumer(
            channel, queues=[_quorum(name)], callbacks=[on_message], accept=["json"]
        )
        consumer.consume()
        started = time.perf_counter()
        deadline = started + 60
        while got < MESSAGES and time.perf_counter() < deadline:
            try:
                connection.drain_events(timeout=1)
            except TimeoutError:
                continue
        took = time.perf_counter() - started
        consumer.cancel()
    return got / took


def pipelined_publish(url: str, name: str, batch: int) -> float:
    publisher = Publisher(Settings(bus_url=url), SOURCE)
    envelopes = [_envelope(n) for n in range(MESSAGES)]
    started = time.perf_counter()
    for i in range(0, MESSAGES, batch):
        publisher.publish(envelopes[i : i + batch])
    rate = MESSAGES / (time.perf_counter() - started)
    publisher.close()
    return rate


def relay(url: str, name: str, batch: int) -> tuple[float, int, int]:
    with tempfile.TemporaryDirectory(prefix="yingji-bench-relay-") as tmp:
        db = SqliteDatabase(Path(tmp) / "yingji_bench.sqlite3")
        db.script(SQLITE_OUTBOX_SCHEMA)
        envelopes = [_envelope(n) for n in range(MESSAGES)]
        with db.transaction() as conn:
            for n, e in enumerate(envelopes):
                append_events(conn, f"d{n}", [e])
        settings = Settings(bus_url=url, relay_batch_size=batch)
        outbox = OutboxRelay(settings, SOURCE, [SqliteOutbox(db)], SystemClock())
        started = time.perf_counter()
        sent = outbox.drain()
        took = time.perf_counter() - started
        outbox.publisher.close()
        [(left,)] = db.query("SELECT count(*) FROM outbox")
        db.close()
    ids = set()
    with Connection(url) as connection:
        queue = _quorum(name)(connection.channel())
        while (message := queue.get(no_ack=True)) is not None:
            ids.add(message.decode()["event_id"])
    lost = len({e.event_id for e in envelopes} - ids)
    return sent / took, left, lost


def main() -> None:
    with vhost() as url:
        with Connection(url) as connection:
            Exchange(f"{SOURCE}.events", type="topic", durable=True)(connection.channel()).declare()
        name = "evt-benchsrc-thing_happened--bench.baseline"
        pub = baseline_publish(url, name)
        queued = _count(url, name)
        con = baseline_consume(url, name)
        record(
            "bus.baseline",
            messages=MESSAGES,
            publish_one_confirm_each_per_s=round(pub),
            consume_manual_ack_per_s=round(con),
            queued_ok=queued == MESSAGES,
        )
        piped = pipelined_publish(url, name, 100)
        with Connection(url) as connection:
            _quorum(name)(connection.channel()).purge()
        record("bus.publisher_pipelined", batch=100, publish_per_s=round(piped))
        rate, left, lost = relay(url, name, 100)
        record(
            "bus.outbox_relay",
            documents=MESSAGES,
            batch=100,
            events_per_s=round(rate),
            left_pending=left,
            lost=lost,
            ratio_vs_one_confirm_each=round(rate / pub, 2),
            goal=">= 2x, no loss",
        )


if __name__ == "__main__":
    main()
