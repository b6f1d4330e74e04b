"""The whole platform in-process, on the memory transport or on the real RabbitMQ (a vhost of
its own), with a way to deliver hand-made events one at a time, in a chosen order."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from libs.common import metrics
from libs.common.bus import Publisher
from libs.common.events import EventEnvelope
from tests.support.stack import Stack, running_stack
from tests.support.vhost import fresh_vhost


def _counter_total(counter: object, service: str, queue: str, outcomes: tuple[str, ...]) -> float:
    total = 0.0
    for family in counter.collect():  # type: ignore[attr-defined]
        for sample in family.samples:
            labels = sample.labels
            if not sample.name.endswith("_total"):
                continue
            if labels.get("service") != service or labels.get("queue") != queue:
                continue
            if "outcome" in labels and labels["outcome"] not in outcomes:
                continue
            total += sample.value
    return total


@dataclass
class Delivery:
    """Publishes events as their source service would and waits until every consumer is done."""

    stack: Stack
    publishers: dict[str, Publisher]

    def queues_for(self, envelope: EventEnvelope) -> list[tuple[str, str]]:
        """(service, queue) of every subscription to the envelope's source and type."""
        return [
            (service, sub.queue_name(service))
            for service, worker in self.stack.runtime.consumers.items()
            for sub in worker.subscriptions
            if sub.source == envelope.source and sub.event_type == envelope.event_type
        ]

    def handled(self, service: str, queue: str) -> float:
        """Deliveries of a queue that are finished: applied, duplicate or dead-lettered."""
        return _counter_total(
            metrics.BUS_CONSUMED, service, queue, ("applied", "duplicate")
        ) + _counter_total(metrics.BUS_DEAD_LETTERED, service, queue, ())

    def dead_letters(self) -> float:
        """Everything any consumer of the stack dead-lettered so far."""
        return sum(
            _counter_total(metrics.BUS_DEAD_LETTERED, service, sub.queue_name(service), ())
            for service, worker in self.stack.runtime.consumers.items()
            for sub in worker.subscriptions
        )

    def deliver(self, envelope: EventEnvelope, timeout: float = 60) -> None:
        """Publish one event and wait until each of its queues has finished with it."""
        queues = self.queues_for(envelope)
        before = {q: self.handled(*q) for q in queues}
        publisher = self.publishers.setdefault(
            envelope.source, Publisher(self.stack.runtime.settings, envelope.source)
        )
        publisher.publish([envelope])
        deadline = time.monotonic() + timeout
        while any(self.handled(*q) <= before[q] for q in queues):
            assert time.monotonic() < deadline, f"{envelope.event_type} was not handled"
            time.sleep(0.01)

    def settle(self, timeout: float = 60) -> None:
        """Wait until the events the services raised in reaction have been handled too."""
        deadline = time.monotonic() + timeout
        stable = 0
        last: float | None = None
        while stable < 3:
            assert time.monotonic() < deadline, "the stack did not settle"
            self.stack.runtime.quiesce(max(0.5, deadline - time.monotonic()))
            total = sum(
                self.handled(service, sub.queue_name(service))
                for service, worker in self.stack.runtime.consumers.items()
                for sub in worker.subscriptions
            )
            held = sum(w.held_retries for w in self.stack.runtime.consumers.values())
            stable = stable + 1 if total == last and held == 0 else 0
            last = total
            time.sleep(0.2)


@pytest.fixture(params=["memory", pytest.param("rabbitmq", marks=pytest.mark.bus)])
def delivery(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Delivery]:
    """All four services in-process, on the memory transport or on RabbitMQ."""
    if request.param == "memory":
        with running_stack(tmp_path) as stack:
            yield from _delivery(stack)
        return
    with (
        fresh_vhost(request.getfixturevalue("amqp_url")) as url,
        running_stack(tmp_path, bus_url=url) as stack,
    ):
        yield from _delivery(stack)


def _delivery(stack: Stack) -> Iterator[Delivery]:
    made = Delivery(stack, {})
    try:
        yield made
    finally:
        for publisher in made.publishers.values():
            publisher.close()
