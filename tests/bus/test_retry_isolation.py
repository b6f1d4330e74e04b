"""A failing delivery's back-off never holds up other queues: while one event waits for its next
attempt, the consumer goes on with the others (on RabbitMQ through ``<queue>.retry``, on the
memory transport through the consumer's own timer) and nothing is dead-lettered."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from libs.common import metrics
from libs.common.bus import (
    ConsumerWorker,
    Publisher,
    Subscription,
    list_dead_letters,
    queue_name,
)
from libs.common.clock import SystemClock
from libs.common.events import EventEnvelope, make_event
from libs.common.settings import Settings
from tests.support import echo_service  # noqa: F401  (registers echo_recorded)
from tests.support.stack import reset_memory_bus
from tests.support.vhost import fresh_vhost


@pytest.fixture(params=["memory", pytest.param("rabbitmq", marks=pytest.mark.bus)])
def bus_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The embedded memory transport, or the real RabbitMQ in a vhost of its own."""
    if request.param == "memory":
        reset_memory_bus()
        yield "memory://"
        reset_memory_bus()
        return
    with fresh_vhost(request.getfixturevalue("amqp_url")) as url:
        yield url


def _event(text: str) -> EventEnvelope:
    return make_event(SystemClock(), "echo", "echo_recorded", {"echo_id": text, "text": text})


def _wait(predicate: object, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_an_event_waiting_for_its_predecessor_does_not_block_the_predecessor(
    bus_url: str,
) -> None:
    # Back-offs long enough that a consumer sleeping through them would let the dependent
    # event give up before its predecessor (on the other queue) could be handled.
    settings = Settings(bus_url=bus_url, handler_retries=3, handler_backoff_seconds=[0.3, 0.6, 1])
    applied: list[tuple[str, str]] = []
    attempts: dict[str, int] = {}
    lock = threading.Lock()

    def dependent(envelope: EventEnvelope) -> None:
        text = envelope.payload["text"]
        with lock:
            attempts[text] = attempts.get(text, 0) + 1
            if text == "first" and ("predecessor", "second") not in applied:
                raise LookupError("the event it builds on has not arrived yet")
            applied.append(("dependent", text))

    def predecessor(envelope: EventEnvelope) -> None:
        with lock:
            applied.append(("predecessor", envelope.payload["text"]))

    suffix = uuid.uuid4().hex[:6]
    subscriptions = [
        Subscription("echo", "echo_recorded", dependent, f"dependent_{suffix}"),
        Subscription("echo", "echo_recorded", predecessor, f"predecessor_{suffix}"),
    ]
    dependent_queue = subscriptions[0].queue_name("retrytest")
    worker = ConsumerWorker(settings, "retrytest", subscriptions)
    worker.declare()
    worker.start()
    assert worker.ready.wait(30)
    before = metrics.BUS_DEAD_LETTERED.labels("retrytest", dependent_queue)._value.get()
    publisher = Publisher(settings, "echo")
    try:
        # Each event reaches both queues. The dependent handler fails on "first" until the
        # other queue's handler has seen "second", which is published only after that failure:
        # it can be handled only if the consumer thread is not sleeping through the back-off.
        publisher.publish([_event("first")])
        assert _wait(lambda: attempts.get("first", 0) >= 1)
        publisher.publish([_event("second")])
        assert _wait(lambda: ("dependent", "first") in applied), (applied, attempts)
        assert attempts["first"] >= 2, "the dependent event was retried"
        assert metrics.BUS_DEAD_LETTERED.labels("retrytest", dependent_queue)._value.get() == before
        assert list_dead_letters(settings, dependent_queue) == []
    finally:
        publisher.close()
        worker.stop()
        worker.join(10)


def test_a_store_out_of_reach_is_waited_out_and_poison_still_dead_lettered(
    bus_url: str,
) -> None:
    """A full disk is not poison: its delivery is retried past the retry limit until the disk
    has room, while a handler that fails on the data itself is dead-lettered at the limit."""
    import sqlite3

    settings = Settings(bus_url=bus_url, handler_retries=1, handler_backoff_seconds=[0.05])
    handler_name = f"outage_{uuid.uuid4().hex[:8]}"
    attempts: dict[str, int] = {}
    applied: list[str] = []

    def handle(envelope: EventEnvelope) -> None:
        text = envelope.payload["text"]
        attempts[text] = attempts.get(text, 0) + 1
        if text == "full" and attempts[text] <= 5:
            raise sqlite3.OperationalError("database or disk is full")
        if text == "poison":
            raise sqlite3.OperationalError("no such column: nope")
        applied.append(text)

    worker = ConsumerWorker(
        settings, "outage", [Subscription("echo", "echo_recorded", handle, handler_name)]
    )
    worker.start()
    assert worker.ready.wait(30)
    queue = queue_name("echo", "echo_recorded", "outage", handler_name)
    publisher = Publisher(settings, "echo")
    try:
        publisher.publish([_event("full"), _event("poison")])
        assert _wait(lambda: "full" in applied)
        assert attempts["full"] == 6  # five failures against a retry limit of one
        assert _wait(lambda: attempts.get("poison") == 2)
        assert _wait(lambda: len(list_dead_letters(settings, queue)) == 1)
        [letter] = list_dead_letters(settings, queue)
        assert letter.body["payload"]["text"] == "poison"
    finally:
        publisher.close()
        worker.stop()
        worker.join(10)
