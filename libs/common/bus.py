"""The event bus on kombu, speaking nameko's wire format.

One durable topic exchange per source service (``<service>.events``), the event type as the
routing key, a JSON body, and queues named ``evt-<source>-<event_type>--<consumer>.<handler>``:
a nameko service can subscribe with ``@event_handler("intake", "incident_reported")``.

Publishing uses publisher confirms, ``mandatory=True`` and persistent messages. Consumers run
in threads and ack only after the handler has committed. A failed delivery is never retried in
place (a sleeping consumer would hold up every other queue it serves): it is handed back for a
later attempt and acknowledged, and the consumer goes on with the next delivery. On RabbitMQ the
copy waits in ``<queue>.retry``, whose messages expire (per-attempt TTL) back into the work queue
by dead-lettering; on the memory transport, which ignores queue arguments and expiry, the
consumer thread keeps it on a timer and re-publishes it when due. After the last retry the
message goes to the queue's dead-letter queue. On RabbitMQ the work queues are quorum queues with
``x-delivery-limit`` and a dead-letter exchange, so a message whose consumer keeps dying is
dead-lettered by the broker too.

Trust: each service has a broker user of its own (deploy/rabbitmq/definitions.json) that may
write only to its own exchanges, ``<service>.events`` and ``<service>.redelivery``, and read only
its own queues. Retries and replays therefore go through the consumer's ``<service>.redelivery``
exchange, never through the default exchange (writing to that reaches every queue of the vhost),
and another service's exchange is only checked for, never declared. A consumer also refuses an
envelope whose source or type is not the one its queue is bound to, so a service cannot speak for
another through its own exchange.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from amqp.exceptions import NotFound
from kombu import Connection, Consumer, Exchange, Producer, Queue
from kombu.message import Message

from libs.common import metrics
from libs.common.dead_letters import KEPT_HEADER, KeptDeadLetters
from libs.common.errors import store_unavailable
from libs.common.events import EventEnvelope, envelope_from_wire
from libs.common.memory_bus import WakingMemoryTransport, announce
from libs.common.settings import Settings

DEAD_LETTER_EXCHANGE = "yingji.dlx"
PERSISTENT = 2
# How many times a delivery has been handed back for a later attempt (dropped on dead-lettering,
# so a replayed message gets its retries again).
RETRY_HEADER = "x-yingji-retry"

# Longest a memory-bus consumer sleeps with nothing to do (puts and stops wake it sooner; this
# bounds how long a stop that slips in just before the wait can go unnoticed).
MEMORY_IDLE_WAIT_SECONDS = 5.0
# How long an idle relay's check waits for the broker's frames (heartbeats, a close).
KEEP_ALIVE_READ_SECONDS = 0.01
# A handler returns False when it recognised a duplicate and changed nothing.
Handler = Callable[[EventEnvelope], bool | None]


_JSON_MADE = {"content_type": "application/json", "content_encoding": "utf-8"}


def event_exchange(source: str) -> Exchange:
    """The exchange a service publishes its events to; declared exactly as nameko does."""
    return Exchange(
        f"{source}.events",
        type="topic",
        durable=True,
        auto_delete=False,
        delivery_mode=PERSISTENT,
    )


def redelivery_exchange(consumer: str) -> Exchange:
    """A consuming service's own direct exchange for retries and replays of its queues.

    Bound: each work queue by its name, each ``<queue>.retry`` by its name. Only the service's
    broker user may write to it, so it reaches none but the service's own queues.
    """
    return Exchange(
        f"{consumer}.redelivery",
        type="direct",
        durable=True,
        auto_delete=False,
        delivery_mode=PERSISTENT,
    )


def consumer_of(queue: str) -> str:
    """The consuming service a queue belongs to (``evt-<source>-<type>--<consumer>.<handler>``)."""
    return queue.rpartition("--")[2].split(".", 1)[0]


def dead_letter_exchange() -> Exchange:
    """The direct exchange that routes dead letters to ``<queue>.dlq`` by queue name."""
    return Exchange(DEAD_LETTER_EXCHANGE, type="direct", durable=True, auto_delete=False)


def queue_name(source: str, event_type: str, consumer: str, handler: str) -> str:
    """nameko's name for a service-pool event handler queue."""
    return f"evt-{source}-{event_type}--{consumer}.{handler}"


def dead_letter_queue_name(queue: str) -> str:
    """The dead-letter queue that belongs to ``queue``."""
    return f"{queue}.dlq"


def retry_queue_name(queue: str) -> str:
    """The queue where a failed delivery of ``queue`` waits for its next attempt (RabbitMQ)."""
    return f"{queue}.retry"


def declare_retry_queue(channel: Any, queue: str) -> None:
    """A classic queue whose expired messages are dead-lettered back into ``queue``.

    Classic, not quorum: it holds nothing for long, and per-message TTL is what makes it a delay.
    The consumer's redelivery exchange routes the expired message to the work queue by its name
    (the default exchange would need a broker user allowed to write to every queue).
    """
    redelivery = redelivery_exchange(consumer_of(queue)).name
    channel.queue_declare(
        queue=retry_queue_name(queue),
        durable=True,
        auto_delete=False,
        arguments={"x-dead-letter-exchange": redelivery, "x-dead-letter-routing-key": queue},
    )
    channel.queue_bind(
        queue=retry_queue_name(queue), exchange=redelivery, routing_key=retry_queue_name(queue)
    )


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


def _is_memory(url: str) -> bool:
    return url.startswith("memory://")


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


def ensure_exchange(connection: Connection, exchange: Exchange) -> None:
    """Make sure an exchange exists, declaring it only when it does not.

    A service's broker user may configure only its own exchanges, so another service's exchange
    (and ``yingji.dlx``, which the broker definitions create) is checked with a passive declare,
    which needs no permission. Only a missing one is declared, which succeeds on an open broker
    (development, tests) and is refused to a service user (it then retries until the owner has
    declared it).
    """
    if not _is_amqp(str(connection.as_uri())):
        exchange(connection.default_channel).declare()
        return
    channel = connection.channel()
    try:
        exchange(channel).declare(passive=True)
    except NotFound:
        # The failed passive declare closed that channel.
        channel = connection.channel()
        exchange(channel).declare()
    finally:
        with contextlib.suppress(Exception):
            channel.close()


def declare_queue(queue: Queue) -> None:
    """Declare a bound queue and its bindings without declaring the exchanges it is bound to."""
    queue.queue_declare()
    queue.queue_bind()


def declare_dead_letter_queue(
    connection: Connection, channel: Any, settings: Settings, queue: str
) -> Queue:
    """Make sure ``yingji.dlx`` exists and declare ``<queue>.dlq`` bound to it; the bound queue."""
    ensure_exchange(connection, dead_letter_exchange())
    dlq = dead_letter_queue(settings, queue)(channel)
    declare_queue(dlq)
    return dlq


def open_connection(settings: Settings, *, confirms: bool = True) -> Connection:
    """A kombu connection; publisher confirms are switched on for AMQP."""
    options: dict[str, Any] = {}
    if confirms and _is_amqp(settings.bus_url):
        options["confirm_publish"] = True
    # The memory transport as kombu ships it polls every ``polling_interval``; ours sleeps until
    # a message is put (libs/common/memory_bus.py), so an idle process stays idle.
    transport = WakingMemoryTransport if _is_memory(settings.bus_url) else None
    return Connection(
        settings.bus_url,
        transport=transport,
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
        self._exchanges: dict[str, Exchange] = {}

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

    def publish(self, envelopes: Sequence[EventEnvelope], bodies: Sequence[str] = ()) -> None:
        """Publish in order; returns only when the broker has confirmed every one.

        ``bodies``, when given, are the envelopes' JSON already made (as the outbox stored
        them): sent as they are instead of encoding every envelope again.
        """
        try:
            producer = self._ensure()
            confirms = self._confirms
            if confirms is not None:
                confirms.failures.clear()
            made: Sequence[str | None] = bodies or [None] * len(envelopes)
            for envelope, body in zip(envelopes, made, strict=True):
                exchange = self._exchange(producer, envelope.source)
                producer.publish(
                    envelope.to_wire() if body is None else body,
                    exchange=exchange,
                    routing_key=envelope.event_type,
                    delivery_mode=PERSISTENT,
                    mandatory=True,
                    # A body made already goes as it is: with a content type kombu does not
                    # serialise again.
                    **_JSON_MADE if body is not None else {"serializer": "json"},
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

    def _exchange(self, producer: Producer, source: str) -> Exchange:
        """The source's exchange, declared once per connection."""
        exchange = self._exchanges.get(source)
        if exchange is None:
            exchange = self._exchanges[source] = event_exchange(source)
        if exchange.name not in self._declared:
            exchange(producer.channel).declare()
            self._declared.add(exchange.name)
        return exchange

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

    def check(self) -> None:
        """Connect now if not connected, and on AMQP read the broker's frames and heartbeats:
        an idle relay still tells whether it could publish (``yingji_bus_connected``)."""
        try:
            self._ensure()
            if _is_amqp(self.settings.bus_url):
                self._keep_alive()
        except Exception as exc:
            self.close()
            raise PublishError(f"{type(exc).__name__}: {exc}") from exc

    def _keep_alive(self) -> None:
        assert self._connection is not None
        # Reading is what notices a broker that went away, and what records its heartbeats.
        with contextlib.suppress(TimeoutError):
            self._connection.drain_events(timeout=KEEP_ALIVE_READ_SECONDS)
        self._connection.heartbeat_check()

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
    connection: Connection,
    channel: Any,
    settings: Settings,
    subscriptions: Iterable[Subscription],
    consumer: str,
) -> list[Queue]:
    """Declare the consumer's redelivery exchange, each queue with its dead-letter and retry
    queues, and check that the exchanges they are bound to exist; return the work queues."""
    redelivery = redelivery_exchange(consumer)
    redelivery(channel).declare()
    ensure_exchange(connection, dead_letter_exchange())
    queues = []
    checked: set[str] = set()
    for subscription in subscriptions:
        source = event_exchange(subscription.source)
        if source.name not in checked:
            ensure_exchange(connection, source)
            checked.add(source.name)
        queue = consumer_queue(settings, subscription, consumer)(channel)
        declare_queue(queue)
        queue.bind_to(redelivery, routing_key=queue.name)
        declare_dead_letter_queue(connection, channel, settings, queue.name)
        if _is_amqp(settings.bus_url):
            declare_retry_queue(channel, queue.name)
        queues.append(queue)
    return queues


@dataclass(order=True)
class _HeldRetry:
    """A failed delivery the memory transport's consumer keeps until its next attempt is due."""

    due: float
    seq: int
    queue: str = field(compare=False)
    body: Any = field(compare=False)
    content_type: str | None = field(compare=False)
    content_encoding: str | None = field(compare=False)
    headers: dict[str, Any] = field(compare=False)
    message_id: str | None = field(compare=False)


class ConsumerWorker(threading.Thread):
    """Consumes a service's queues in one thread and reconnects whenever the broker goes away.

    A handler runs once per delivery: a failure hands the message back for a later attempt
    (``<queue>.retry`` on RabbitMQ, a timer of this thread on the memory transport) and the
    thread goes straight on with the next delivery, so one event's back-off never holds up
    another's, nor the event it may be waiting for.
    """

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
        self._held: list[_HeldRetry] = []
        self._held_seq = itertools.count()
        self._side: Connection | None = None
        self.log = structlog.get_logger().bind(service=service, component="consumer")
        for subscription in self.subscriptions:
            # Every queue's counters exist from the start at 0.
            name = subscription.queue_name(service)
            for counter in (metrics.BUS_FAILED, metrics.BUS_RETRIED, metrics.BUS_DEAD_LETTERED):
                counter.labels(service, name)

    @property
    def held_retries(self) -> int:
        """Failed deliveries this thread keeps for a later attempt (memory transport only)."""
        return len(self._held)

    def declare(self) -> None:
        """Declare the topology once, synchronously (before anything is published)."""
        with open_connection(self.settings, confirms=False) as connection:
            connection.ensure_connection(max_retries=3)
            declare_consumer_topology(
                connection, connection.channel(), self.settings, self.subscriptions, self.service
            )

    def stop(self) -> None:
        """Ask the thread to finish the message in hand and exit."""
        self._stopping.set()
        if _is_memory(self.settings.bus_url):
            announce()  # a consumer waiting for a message would otherwise sleep out its wait

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
                self._close_side_connection()
                self.log.warning("bus_consumer_disconnected", error=str(exc), retry_in=backoff)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 10.0)
        self._close_side_connection()
        metrics.BUS_CONNECTED.labels(self.service, "consumer").set(0)

    def _consume_until_stopped(self) -> None:
        with open_connection(self.settings) as connection:
            connection.ensure_connection(max_retries=1)
            channel = connection.channel()
            queues = declare_consumer_topology(
                connection, channel, self.settings, self.subscriptions, self.service
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
                    # Declared above; re-declaring would declare other services' exchanges.
                    auto_declare=False,
                )
                consumer.consume()
                consumers.append(consumer)
            metrics.BUS_CONNECTED.labels(self.service, "consumer").set(1)
            self.ready.set()
            self.log.info("bus_consumer_ready", queues=len(queues))
            while not self._stopping.is_set():
                self._release_due_retries(channel)
                try:
                    connection.drain_events(timeout=self._next_wait())
                except TimeoutError:
                    if not self._held:
                        self.idle.set()
                    if _is_amqp(self.settings.bus_url):
                        connection.heartbeat_check()
            for consumer in consumers:
                consumer.cancel()

    def _next_wait(self) -> float:
        if _is_memory(self.settings.bus_url):
            return self._next_memory_wait()
        if not self._held:
            return 0.5
        return min(0.5, max(0.0, self._held[0].due - time.monotonic()))

    def _next_memory_wait(self) -> float:
        """How long to block for the next in-memory delivery.

        Right after a delivery, no wait: finding the queues empty is what marks the consumer
        idle (``quiesce`` waits for that). Once idle, block until a put or a stop wakes the
        thread, or a held retry falls due; there is no heartbeat to keep on the memory bus.
        """
        if self._held:
            return min(MEMORY_IDLE_WAIT_SECONDS, max(0.0, self._held[0].due - time.monotonic()))
        if not self.idle.is_set():
            return 0.0
        return MEMORY_IDLE_WAIT_SECONDS

    def _callback(
        self, channel: Any, queue: str, subscription: Subscription
    ) -> Callable[[Any, Message], None]:
        def on_message(body: Any, message: Message) -> None:
            self.idle.clear()
            self._handle(queue, subscription, body, message)

        return on_message

    def _handle(self, queue: str, subscription: Subscription, body: Any, message: Message) -> None:
        try:
            # The queue is bound to one exchange with one routing key: a bare payload is read as
            # that (a retried or replayed delivery arrives through another exchange).
            envelope = envelope_from_wire(
                body,
                exchange=event_exchange(subscription.source).name,
                routing_key=subscription.event_type,
                message_id=(message.properties or {}).get("message_id"),
            )
        except Exception as exc:
            self._dead_letter(queue, message, f"unreadable envelope: {exc}", attempts=1)
            return
        if (envelope.source, envelope.event_type) != (subscription.source, subscription.event_type):
            # Only the source's broker user can publish to its exchange; an envelope claiming
            # another source (or another type than its routing key) speaks for someone else.
            reason = (
                f"envelope says {envelope.source}/{envelope.event_type}, "
                f"the queue takes {subscription.source}/{subscription.event_type}"
            )
            metrics.BUS_FAILED.labels(self.service, queue).inc()
            self.log.error("bus_envelope_refused", queue=queue, reason=reason)
            self._dead_letter(queue, message, f"refused: {reason}", attempts=1)
            return
        log = self.log.bind(
            queue=queue,
            event_id=envelope.event_id,
            correlation_id=envelope.correlation_id,
            event_type=envelope.event_type,
        )
        attempts = _retries_of(message) + 1
        try:
            with structlog.contextvars.bound_contextvars(
                correlation_id=envelope.correlation_id, event_id=envelope.event_id
            ):
                result = subscription.handler(envelope)
        except Exception as exc:
            metrics.BUS_FAILED.labels(self.service, queue).inc()
            if self._stopping.is_set():
                # Not acknowledged: the broker redelivers it to whoever consumes next.
                log.warning("bus_handler_interrupted", attempts=attempts)
                message.requeue()
            elif attempts > self.settings.handler_retries and not store_unavailable(exc):
                log.error("bus_handler_gave_up", attempts=attempts, error=repr(exc))
                self._dead_letter(queue, message, repr(exc), attempts=attempts)
            else:
                # A store out of reach (a full disk, a lost MongoDB) is not poison: the delivery
                # waits, at the last back-off, as long as the outage lasts.
                delay = self._delay_after(attempts)
                log.warning(
                    "bus_handler_failed", attempts=attempts, error=repr(exc), retry_in=delay
                )
                self._retry_later(queue, message, attempts, delay)
            return
        message.ack()
        outcome = "duplicate" if result is False else "applied"
        metrics.BUS_CONSUMED.labels(self.service, queue, outcome).inc()

    def _delay_after(self, attempts: int) -> float:
        delays = list(self.settings.handler_backoff_seconds)
        return delays[min(attempts - 1, len(delays) - 1)] if delays else 0.0

    def _retry_later(self, queue: str, message: Message, attempts: int, delay: float) -> None:
        """Hand the delivery back for attempt ``attempts + 1`` in ``delay`` seconds; then ack."""
        headers = {**(message.headers or {}), RETRY_HEADER: attempts}
        message_id = (message.properties or {}).get("message_id")
        if _is_amqp(self.settings.bus_url):
            # Confirmed before the ack: a crash in between leaves a duplicate, never a loss.
            self._side_producer().publish(
                message.body,
                exchange=redelivery_exchange(consumer_of(queue)),
                routing_key=retry_queue_name(queue),
                delivery_mode=PERSISTENT,
                content_type=message.content_type,
                content_encoding=message.content_encoding,
                headers=headers,
                message_id=message_id,
                expiration=max(delay, 0.001),
                retry=False,
            )
        else:
            # The memory transport forgets everything when the process dies, held retries too;
            # the relay's start-up journal replay covers both alike.
            heapq.heappush(
                self._held,
                _HeldRetry(
                    time.monotonic() + delay,
                    next(self._held_seq),
                    queue,
                    message.body,
                    message.content_type,
                    message.content_encoding,
                    headers,
                    message_id,
                ),
            )
        message.ack()
        metrics.BUS_RETRIED.labels(self.service, queue).inc()

    def _release_due_retries(self, channel: Any) -> None:
        """Memory transport: put held deliveries whose time has come back on their queue."""
        if not self._held:
            return
        producer = Producer(channel)
        now = time.monotonic()
        while self._held and (self._held[0].due <= now or self._stopping.is_set()):
            held = heapq.heappop(self._held)
            producer.publish(
                held.body,
                exchange="",
                routing_key=held.queue,
                content_type=held.content_type,
                content_encoding=held.content_encoding,
                headers=held.headers,
                message_id=held.message_id,
                retry=False,
            )

    def _side_producer(self) -> Producer:
        """A confirming producer on a connection of its own.

        Waiting for a confirm on the consuming connection would dispatch the next deliveries
        re-entrantly, inside the callback that is publishing.
        """
        if self._side is None:
            self._side = open_connection(self.settings)
            self._side.ensure_connection(max_retries=1)
        return Producer(self._side.default_channel)

    def _close_side_connection(self) -> None:
        if self._side is not None:
            with contextlib.suppress(Exception):
                self._side.release()
            self._side = None

    def _dead_letter(self, queue: str, message: Message, reason: str, attempts: int) -> None:
        headers = {k: v for k, v in (message.headers or {}).items() if k != RETRY_HEADER}
        headers.update(
            {
                "x-yingji-dead-letter-reason": reason[:1000],
                "x-yingji-attempts": attempts,
                "x-yingji-original-queue": queue,
                "x-yingji-dead-lettered-at": time.time(),
            }
        )
        keeper = _KEPT.get("keeper")
        if keeper is not None and not _is_amqp(self.settings.bus_url):
            # The memory transport forgets its queues with the process: on disk first.
            headers[KEPT_HEADER] = keeper.keep(
                queue,
                message.body,
                message.content_type,
                message.content_encoding,
                headers,
                (message.properties or {}).get("message_id"),
            )
        try:
            self._side_producer().publish(
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
        except Exception:
            self._close_side_connection()
            raise
        message.ack()
        metrics.BUS_DEAD_LETTERED.labels(self.service, queue).inc()


def _retries_of(message: Message) -> int:
    """How many times this delivery was handed back already (0 for a first delivery)."""
    try:
        return max(0, int((message.headers or {}).get(RETRY_HEADER, 0)))
    except (TypeError, ValueError):
        return 0


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
        dlq = declare_dead_letter_queue(connection, channel, settings, queue)
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
    """Move messages from ``<queue>.dlq`` back to ``queue``; returns how many moved.

    They go through the consumer's redelivery exchange, which the consumer has bound ``queue`` to.
    """
    moved = 0
    redelivery = redelivery_exchange(consumer_of(queue))
    with open_connection(settings) as connection:
        channel = connection.channel()
        dlq = declare_dead_letter_queue(connection, channel, settings, queue)
        redelivery(channel).declare()
        producer = Producer(channel)
        while limit is None or moved < limit:
            message = dlq.get(no_ack=False)
            if message is None:
                break
            headers = {
                k: v for k, v in (message.headers or {}).items() if not k.startswith("x-death")
            }
            headers["x-yingji-replayed"] = int(headers.get("x-yingji-replayed", 0)) + 1
            kept = headers.pop(KEPT_HEADER, None)
            producer.publish(
                message.body,
                exchange=redelivery,
                routing_key=queue,
                delivery_mode=PERSISTENT,
                content_type=message.content_type,
                content_encoding=message.content_encoding,
                headers=headers,
                message_id=(message.properties or {}).get("message_id"),
                retry=False,
            )
            message.ack()
            keeper = _KEPT.get("keeper")
            if kept is not None and keeper is not None:
                keeper.release(int(kept))
            moved += 1
    return moved


# The memory bus's dead letters on disk (libs/common/dead_letters.py), for the one embedded
# platform of this process; the memory transport itself is one per process too.
_KEPT: dict[str, KeptDeadLetters] = {}


def keep_dead_letters(keeper: KeptDeadLetters | None) -> None:
    """Keep the memory bus's dead letters in ``keeper`` from now on (None: stop keeping)."""
    if keeper is None:
        _KEPT.pop("keeper", None)
    else:
        _KEPT["keeper"] = keeper


def restore_dead_letters(settings: Settings, keeper: KeptDeadLetters) -> int:
    """Put the kept dead letters back into their dead-letter queues on the memory bus (after a
    restart, before anything consumes); how many."""
    letters = keeper.waiting()
    if not letters:
        return 0
    with open_connection(settings, confirms=False) as connection:
        channel = connection.channel()
        producer = Producer(channel)
        for letter in letters:
            declare_dead_letter_queue(connection, channel, settings, letter.queue)
            producer.publish(
                letter.body,
                exchange=dead_letter_exchange(),
                routing_key=letter.queue,
                delivery_mode=PERSISTENT,
                content_type=letter.content_type,
                content_encoding=letter.content_encoding,
                headers={**letter.headers, KEPT_HEADER: letter.id},
                message_id=letter.message_id,
                retry=False,
            )
    return len(letters)


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds pass; for shutdown and tests."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
