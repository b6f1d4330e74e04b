"""The event bus on kombu, speaking nameko's wire format.

One durable topic exchange per source service (``<service>.events``), the event type as the
routing key, a JSON body, and queues named ``evt-<source>-<event_type>--<consumer>.<handler>``:
a nameko service can subscribe with ``@event_handler("intake", "incident_reported")``.

Publishing uses publisher confirms, ``mandatory=True`` and persistent messages. Consumers run
in threads, ack only after the handler has committed, retry with back-off and then move the
message to the queue's dead-letter queue. On RabbitMQ the queues are quorum queues with
``x-delivery-limit`` and a dead-letter exchange, so a message whose consumer keeps dying is
dead-lettered by the broker too; the memory transport ignores those arguments.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from kombu import Connection, Consumer, Exchange, Producer, Queue
from kombu.message import Message

from libs.common import metrics
from libs.common.events import EventEnvelope, envelope_from_wire
from libs.common.settings import Settings

DEAD_LETTER_EXCHANGE = "yingji.dlx"
PERSISTENT = 2

# A handler returns False when it recognised a duplicate and changed nothing.
Handler = Callable[[EventEnvelope], bool | None]


def event_exchange(source: str) -> Exchange:
    """The exchange a service publishes its events to; declared exactly as nameko does."""
    return Exchange(
        f"{source}.events",
        type="topic",
        durable=True,
        auto_delete=False,
        delivery_mode=PERSISTENT,
    )


def dead_letter_exchange() -> Exchange:
    """The direct exchange that routes dead letters to ``<queue>.dlq`` by queue name."""
    return Exchange(DEAD_LETTER_EXCHANGE, type="direct", durable=True, auto_delete=False)


def queue_name(source: str, event_type: str, consumer: str, handler: str) -> str:
    """nameko's name for a service-pool event handler queue."""
    return f"evt-{source}-{event_type}--{consumer}.{handler}"


def dead_letter_queue_name(queue: str) -> str:
    """The dead-letter queue that belongs to ``queue``."""
    return f"{queue}.dlq"


@dataclass(frozen=True)
class Subscription:
    """A handler for one event type from one source, inside a consuming service."""

    source: str
    event_type: str
    handler: Handler
    name: str

    def queue_name(self, consumer: str) -> str:
        """The queue this subscription consumes from."""
        return queue_name(self.source, self.event_type, consumer, self.name)


def _is_amqp(url: str) -> bool:
    return url.startswith(("amqp://", "amqps://", "pyamqp://"))


def consumer_queue(settings: Settings, subscription: Subscription, consumer: str) -> Queue:
    """Declare-ready queue for a subscription: quorum, delivery limit, dead-letter exchange."""
    name = subscription.queue_name(consumer)
    arguments: dict[str, Any] = {}
    if _is_amqp(settings.bus_url):
        arguments = {
            "x-queue-type": "quorum",
            "x-delivery-limit": settings.queue_delivery_limit,
            "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
            "x-dead-letter-routing-key": name,
        }
    return Queue(
        name,
        exchange=event_exchange(subscription.source),
        routing_key=subscription.event_type,
        durable=True,
        auto_delete=False,
        queue_arguments=arguments,
    )


def dead_letter_queue(settings: Settings, queue: str) -> Queue:
    """The durable queue that keeps what ``queue`` gave up on, for inspection and replay."""
    arguments = {"x-queue-type": "quorum"} if _is_amqp(settings.bus_url) else {}
    return Queue(
        dead_letter_queue_name(queue),
        exchange=dead_letter_exchange(),
        routing_key=queue,
        durable=True,
        auto_delete=False,
        queue_arguments=arguments,
    )


def open_connection(settings: Settings, *, confirms: bool = True) -> Connection:
    """A kombu connection; publisher confirms are switched on for AMQP."""
    options: dict[str, Any] = {}
    if confirms and _is_amqp(settings.bus_url):
        options["confirm_publish"] = True
    if not _is_amqp(settings.bus_url):
        # Virtual transports poll; the default second would add up to a second per hop.
        options["polling_interval"] = 0.01
    return Connection(
        settings.bus_url,
        transport_options=options,
        heartbeat=30 if _is_amqp(settings.bus_url) else 0,
        connect_timeout=5,
    )


class PublishError(RuntimeError):
    """The broker did not confirm an event (down, unroutable, or refused)."""


class _Confirms:
    """Publisher-confirm bookkeeping for one channel: which delivery tags are still out."""

    def __init__(self) -> None:
        self.next_tag = 1
        self.outstanding: set[int] = set()
        self.failures: list[str] = []

    def sent(self) -> None:
        self.outstanding.add(self.next_tag)
        self.next_tag += 1

    def _settle(self, tag: int, multiple: bool) -> None:
        if multiple:
            self.outstanding = {t for t in self.outstanding if t > tag}
        else:
            self.outstanding.discard(tag)

    def on_ack(self, tag: int, multiple: bool) -> None:
        self._settle(tag, multiple)

    def on_nack(self, tag: int, multiple: bool) -> None:
        self.failures.append(f"nacked by the broker (delivery tag {tag})")
        self._settle(tag, multiple)

    def on_return(self, exc: Exception, exchange: Any, routing_key: Any, message: Any) -> None:
        # RabbitMQ sends basic.return before the basic.ack of the same message, so a batch
        # whose every tag is acknowledged has had all its returns seen.
        self.failures.append(f"returned: {exc} ({exchange} {routing_key})")


class Publisher:
    """Publishes envelopes with confirms; one instance per thread (kombu is not thread-safe).

    On AMQP the confirms are pipelined: a batch is published in full, then the publisher waits
    until the broker has acknowledged every delivery tag of it. A nack, a ``basic.return`` (an
    unroutable message under ``mandatory``), a lost connection or the timeout fails the whole
    batch, so the caller keeps every event of it pending and publishes them again later.
    """

    def __init__(self, settings: Settings, service: str, *, confirm_timeout: float = 30.0) -> None:
        self.settings = settings
        self.service = service
        self.confirm_timeout = confirm_timeout
        self._connection: Connection | None = None
        self._producer: Producer | None = None
        self._confirms: _Confirms | None = None
        self._declared: set[str] = set()

    def _ensure(self) -> Producer:
        if self._producer is None:
            amqp = _is_amqp(self.settings.bus_url)
            # Confirms are switched on and tracked here (not by kombu, which waits per message).
            self._connection = open_connection(self.settings, confirms=False)
            self._connection.ensure_connection(max_retries=1)
            channel = self._connection.channel()
            confirms = _Confirms() if amqp else None
            if confirms is not None:
                channel.confirm_select()
                channel.events["basic_ack"].add(confirms.on_ack)
                channel.events["basic_nack"].add(confirms.on_nack)
            self._producer = Producer(
                channel,
                serializer="json",
                on_return=confirms.on_return if confirms is not None else None,
            )
            self._confirms = confirms
            self._declared.clear()
            metrics.BUS_CONNECTED.labels(self.service, "relay").set(1)
        return self._producer

    def publish(self, envelopes: Sequence[EventEnvelope]) -> None:
        """Publish in order; returns only when the broker has confirmed every one."""
        try:
            producer = self._ensure()
            confirms = self._confirms
            if confirms is not None:
                confirms.failures.clear()
            for envelope in envelopes:
                exchange = event_exchange(envelope.source)
                if exchange.name not in self._declared:
                    exchange(producer.channel).declare()
                    self._declared.add(exchange.name)
                producer.publish(
                    envelope.to_wire(),
                    exchange=exchange,
                    routing_key=envelope.event_type,
                    delivery_mode=PERSISTENT,
                    mandatory=True,
                    serializer="json",
                    message_id=envelope.event_id,
                    headers={
                        "x-yingji-schema-version": envelope.schema_version,
                        "x-yingji-correlation-id": envelope.correlation_id or "",
                    },
                    retry=False,
                )
                if confirms is not None:
                    confirms.sent()
            if confirms is not None:
                self._await_confirms(confirms)
            for envelope in envelopes:
                metrics.BUS_PUBLISHED.labels(self.service, envelope.event_type).inc()
        except Exception as exc:
            metrics.BUS_PUBLISH_FAILURES.labels(self.service).inc()
            self.close()
            if isinstance(exc, PublishError):
                raise
            raise PublishError(f"{type(exc).__name__}: {exc}") from exc

    def _await_confirms(self, confirms: _Confirms) -> None:
        assert self._connection is not None
        deadline = time.monotonic() + self.confirm_timeout
        while confirms.outstanding:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PublishError(
                    f"{len(confirms.outstanding)} publish(es) not confirmed "
                    f"within {self.confirm_timeout} s"
                )
            try:
                self._connection.drain_events(timeout=min(remaining, 1.0))
            except TimeoutError:
                continue
        if confirms.failures:
            raise PublishError("; ".join(confirms.failures[:3]))

    def close(self) -> None:
        """Drop the connection; the next publish reconnects."""
        metrics.BUS_CONNECTED.labels(self.service, "relay").set(0)
        if self._connection is not None:
            # Closing a broken connection may fail; it is gone either way.
            with contextlib.suppress(Exception):
                self._connection.release()
        self._connection = None
        self._producer = None
        self._confirms = None


def declare_consumer_topology(
    channel: Any, settings: Settings, subscriptions: Iterable[Subscription], consumer: str
) -> list[Queue]:
    """Declare the dead-letter exchange, each queue and its dead-letter queue; return the queues."""
    dead_letter_exchange()(channel).declare()
    queues = []
    for subscription in subscriptions:
        queue = consumer_queue(settings, subscription, consumer)(channel)
        queue.declare()
        dead_letter_queue(settings, queue.name)(channel).declare()
        queues.append(queue)
    return queues


class ConsumerWorker(threading.Thread):
    """Consumes a service's queues in one thread and reconnects whenever the broker goes away."""

    def __init__(
        self, settings: Settings, service: str, subscriptions: Sequence[Subscription]
    ) -> None:
        super().__init__(name=f"yingji-consumer-{service}", daemon=True)
        self.settings = settings
        self.service = service
        self.subscriptions = list(subscriptions)
        self.ready = threading.Event()
        self.idle = threading.Event()
        self.idle.set()
        self._stopping = threading.Event()
        self.log = structlog.get_logger().bind(service=service, component="consumer")

    def declare(self) -> None:
        """Declare the topology once, synchronously (before anything is published)."""
        with open_connection(self.settings, confirms=False) as connection:
            connection.ensure_connection(max_retries=3)
            declare_consumer_topology(
                connection.channel(), self.settings, self.subscriptions, self.service
            )

    def stop(self) -> None:
        """Ask the thread to finish the message in hand and exit."""
        self._stopping.set()

    def run(self) -> None:
        """Connect, consume, and reconnect with back-off until stopped."""
        backoff = 0.5
        while not self._stopping.is_set():
            try:
                self._consume_until_stopped()
                backoff = 0.5
            except Exception as exc:
                metrics.BUS_CONNECTED.labels(self.service, "consumer").set(0)
                self.ready.clear()
                self.log.warning("bus_consumer_disconnected", error=str(exc), retry_in=backoff)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 10.0)
        metrics.BUS_CONNECTED.labels(self.service, "consumer").set(0)

    def _consume_until_stopped(self) -> None:
        with open_connection(self.settings) as connection:
            connection.ensure_connection(max_retries=1)
            channel = connection.channel()
            queues = declare_consumer_topology(
                channel, self.settings, self.subscriptions, self.service
            )
            channel.basic_qos(0, self.settings.consumer_prefetch, False)
            consumers = []
            for queue, subscription in zip(queues, self.subscriptions, strict=True):
                consumer = Consumer(
                    channel,
                    queues=[queue],
                    callbacks=[self._callback(channel, queue.name, subscription)],
                    accept=["json"],
                    no_ack=False,
                )
                consumer.consume()
                consumers.append(consumer)
            metrics.BUS_CONNECTED.labels(self.service, "consumer").set(1)
            self.ready.set()
            self.log.info("bus_consumer_ready", queues=len(queues))
            while not self._stopping.is_set():
                try:
                    connection.drain_events(timeout=0.5)
                except TimeoutError:
                    self.idle.set()
                    if _is_amqp(self.settings.bus_url):
                        connection.heartbeat_check()
            for consumer in consumers:
                consumer.cancel()

    def _callback(
        self, channel: Any, queue: str, subscription: Subscription
    ) -> Callable[[Any, Message], None]:
        def on_message(body: Any, message: Message) -> None:
            self.idle.clear()
            self._handle(channel, queue, subscription, body, message)

        return on_message

    def _handle(
        self, channel: Any, queue: str, subscription: Subscription, body: Any, message: Message
    ) -> None:
        info = message.delivery_info or {}
        try:
            envelope = envelope_from_wire(
                body,
                exchange=info.get("exchange"),
                routing_key=info.get("routing_key"),
                message_id=(message.properties or {}).get("message_id"),
            )
        except Exception as exc:
            self._dead_letter(channel, queue, message, f"unreadable envelope: {exc}", attempts=0)
            return
        log = self.log.bind(
            queue=queue,
            event_id=envelope.event_id,
            correlation_id=envelope.correlation_id,
            event_type=envelope.event_type,
        )
        attempts = 0
        delays = list(self.settings.handler_backoff_seconds)
        while True:
            attempts += 1
            try:
                with structlog.contextvars.bound_contextvars(
                    correlation_id=envelope.correlation_id, event_id=envelope.event_id
                ):
                    result = subscription.handler(envelope)
            except Exception as exc:
                metrics.BUS_FAILED.labels(self.service, queue).inc()
                if attempts > self.settings.handler_retries or self._stopping.is_set():
                    if self._stopping.is_set():
                        # Not acknowledged: the broker redelivers it to whoever consumes next.
                        log.warning("bus_handler_interrupted", attempts=attempts)
                        message.requeue()
                        return
                    log.error("bus_handler_gave_up", attempts=attempts, error=repr(exc))
                    self._dead_letter(channel, queue, message, repr(exc), attempts=attempts)
                    return
                delay = delays[min(attempts - 1, len(delays) - 1)] if delays else 0
                log.warning(
                    "bus_handler_failed", attempts=attempts, error=repr(exc), retry_in=delay
                )
                self._stopping.wait(delay)
                continue
            message.ack()
            outcome = "duplicate" if result is False else "applied"
            metrics.BUS_CONSUMED.labels(self.service, queue, outcome).inc()
            return

    def _dead_letter(
        self, channel: Any, queue: str, message: Message, reason: str, attempts: int
    ) -> None:
        headers = dict(message.headers or {})
        headers.update(
            {
                "x-yingji-dead-letter-reason": reason[:1000],
                "x-yingji-attempts": attempts,
                "x-yingji-original-queue": queue,
                "x-yingji-dead-lettered-at": time.time(),
            }
        )
        # A connection of its own: waiting for the confirm on the consuming connection would
        # dispatch the next deliveries re-entrantly, inside this callback.
        with open_connection(self.settings) as connection:
            producer = Producer(connection.channel())
            producer.publish(
                message.body,
                exchange=dead_letter_exchange(),
                routing_key=queue,
                delivery_mode=PERSISTENT,
                content_type=message.content_type,
                content_encoding=message.content_encoding,
                headers=headers,
                message_id=(message.properties or {}).get("message_id"),
                retry=False,
            )
        message.ack()
        metrics.BUS_DEAD_LETTERED.labels(self.service, queue).inc()


@dataclass
class DeadLetter:
    """A message sitting in a dead-letter queue."""

    queue: str
    body: Any
    headers: dict[str, Any]
    message_id: str | None


def list_dead_letters(settings: Settings, queue: str, limit: int = 100) -> list[DeadLetter]:
    """Read up to ``limit`` messages of ``<queue>.dlq`` without removing them."""
    letters: list[DeadLetter] = []
    with open_connection(settings, confirms=False) as connection:
        channel = connection.channel()
        dlq = dead_letter_queue(settings, queue)(channel)
        dlq.declare()
        held = []
        try:
            while len(letters) < limit:
                message = dlq.get(no_ack=False)
                if message is None:
                    break
                held.append(message)
                letters.append(
                    DeadLetter(
                        queue,
                        message.decode() if message.body else None,
                        dict(message.headers or {}),
                        (message.properties or {}).get("message_id"),
                    )
                )
        finally:
            for message in held:
                message.requeue()
    return letters


def replay_dead_letters(settings: Settings, queue: str, limit: int | None = None) -> int:
    """Move messages from ``<queue>.dlq`` back to ``queue``; returns how many moved."""
    moved = 0
    with open_connection(settings) as connection:
        channel = connection.channel()
        dlq = dead_letter_queue(settings, queue)(channel)
        dlq.declare()
        producer = Producer(channel)
        while limit is None or moved < limit:
            message = dlq.get(no_ack=False)
            if message is None:
                break
            headers = {
                k: v for k, v in (message.headers or {}).items() if not k.startswith("x-death")
            }
            headers["x-yingji-replayed"] = int(headers.get("x-yingji-replayed", 0)) + 1
            # The default exchange routes straight to the queue by its name.
            producer.publish(
                message.body,
                exchange="",
                routing_key=queue,
                delivery_mode=PERSISTENT,
                content_type=message.content_type,
                content_encoding=message.content_encoding,
                headers=headers,
                message_id=(message.properties or {}).get("message_id"),
                retry=False,
            )
            message.ack()
            moved += 1
    return moved


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds pass; for shutdown and tests."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
