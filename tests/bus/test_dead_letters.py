"""A failing handler is retried, then dead-lettered (not dropped), never blocks the queue, and
can be replayed after a fix."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from libs.common import metrics
from libs.common.bus import (
    ConsumerWorker,
    Publisher,
    Subscription,
    list_dead_letters,
    queue_name,
    replay_dead_letters,
)
from libs.common.clock import SystemClock
from libs.common.events import EventEnvelope, make_event
from libs.common.settings import Settings
from tests.support import echo_service  # noqa: F401  (registers echo_recorded)

pytestmark = [pytest.mark.bus, pytest.mark.fault]


def _event(text: str) -> EventEnvelope:
    return make_event(SystemClock(), "echo", "echo_recorded", {"echo_id": text, "text": text})


def test_poison_message_is_retried_dead_lettered_and_replayable(
    amqp_url: str, cleanup_queues: list[str]
) -> None:
    handler_name = f"poison_{uuid.uuid4().hex[:8]}"
    queue = queue_name("echo", "echo_recorded", "dlqtest", handler_name)
    cleanup_queues.append(queue)
    settings = Settings(bus_url=amqp_url, handler_retries=2, handler_backoff_seconds=[0.05, 0.1])
    attempts: dict[str, int] = {}
    applied: list[str] = []
    fixed = threading.Event()

    def handle(envelope: EventEnvelope) -> None:
        text = envelope.payload["text"]
        attempts[text] = attempts.get(text, 0) + 1
        if text == "poison" and not fixed.is_set():
            raise ValueError("cannot digest poison")
        applied.append(text)

    worker = ConsumerWorker(
        settings, "dlqtest", [Subscription("echo", "echo_recorded", handle, handler_name)]
    )
    worker.start()
    assert worker.ready.wait(30)
    before = metrics.BUS_DEAD_LETTERED.labels("dlqtest", queue)._value.get()
    publisher = Publisher(settings, "echo")
    try:
        publisher.publish([_event("poison"), _event("after-1"), _event("after-2")])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(applied) < 2:
            time.sleep(0.05)
        assert applied == ["after-1", "after-2"], "the poison message blocked the queue"
        # Its retries wait in the retry queue while the queue keeps flowing.
        deadline = time.monotonic() + 30
        dead_lettered = metrics.BUS_DEAD_LETTERED.labels("dlqtest", queue)
        while time.monotonic() < deadline and dead_lettered._value.get() == before:
            time.sleep(0.05)
        assert attempts["poison"] == 3  # first try + 2 retries
        assert dead_lettered._value.get() == before + 1

        letters = list_dead_letters(settings, queue)
        assert len(letters) == 1
        assert letters[0].body["payload"]["text"] == "poison"
        assert "cannot digest poison" in letters[0].headers["x-yingji-dead-letter-reason"]
        assert len(list_dead_letters(settings, queue)) == 1, "listing must not consume"

        fixed.set()
        assert replay_dead_letters(settings, queue) == 1
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "poison" not in applied:
            time.sleep(0.05)
        assert "poison" in applied
        assert list_dead_letters(settings, queue) == []
    finally:
        publisher.close()
        worker.stop()
        worker.join(10)
