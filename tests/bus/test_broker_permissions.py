"""The broker is the trust boundary: each service's RabbitMQ user, as
deploy/rabbitmq/definitions.json defines it, can do everything the service's bus code needs and
cannot publish for another service.

The test imports a copy of the definitions file into a virtual host of its own on the shared
broker (the vhost and the users renamed so nothing else on the broker is touched; the same
users, permission patterns, exchanges and policy), sets passwords the way the compose broker's
healthcheck does, and runs the real consumer, publisher, retry and dead-letter code of each
service with that service's user and its real subscriptions. It removes its users and vhost
afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import amqp
import pytest
from amqp.exceptions import AccessRefused
from kombu import Connection

from libs.common.bus import (
    ConsumerWorker,
    Publisher,
    PublishError,
    Subscription,
    list_dead_letters,
    replay_dead_letters,
)
from libs.common.clock import SystemClock
from libs.common.events import EventEnvelope
from libs.common.settings import Settings
from tests.conftest import shared_broker
from tests.support.rabbitmq import Broker

pytestmark = pytest.mark.bus

ROOT = Path(__file__).resolve().parents[2]
DEFINITIONS = ROOT / "deploy" / "rabbitmq" / "definitions.json"
SERVICES = ("intake", "warning", "dispatch", "reporting")
DEPLOYED_VHOST = "yingji"


@dataclass
class Boundary:
    """The test's vhost with the definitions imported: an AMQP URL per service user."""

    broker: Broker
    vhost: str
    admin_url: str
    urls: dict[str, str]

    def settings(self, service: str, **extra: Any) -> Settings:
        """Settings of a process of ``service`` that connects as its own broker user."""
        return Settings(
            bus_url=self.urls[service],
            handler_retries=1,
            handler_backoff_seconds=[0.05],
            **extra,
        )


def renamed_definitions(vhost: str, user_of: Callable[[str], str]) -> dict[str, Any]:
    """The definitions file with its vhost and service users renamed for the test."""
    definitions = json.loads(DEFINITIONS.read_text(encoding="utf-8"))
    service_users = {f"yingji-{s}" for s in SERVICES}
    assert {u["name"] for u in definitions["users"]} == service_users
    for user in definitions["users"]:
        user["name"] = user_of(user["name"])
    definitions["permissions"] = [
        {**p, "user": user_of(p["user"])}
        for p in definitions["permissions"]
        if p["user"] in service_users
    ]
    for section in ("permissions", "exchanges", "policies"):
        for item in definitions[section]:
            assert item["vhost"] == DEPLOYED_VHOST
            item["vhost"] = vhost
    (deployed,) = definitions["vhosts"]
    definitions["vhosts"] = [{**deployed, "name": vhost}]
    return definitions


def import_definitions(broker: Broker, definitions: dict[str, Any]) -> None:
    """`rabbitmqctl import_definitions` of a file the broker's user can read."""
    fd, path = tempfile.mkstemp(prefix="yingji-perm-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(definitions, handle)
        os.chmod(path, 0o644)
        broker.ctl("import_definitions", path)
    finally:
        os.unlink(path)


def url_for(base: str, vhost: str, user: str, password: str) -> str:
    """An AMQP URL of the broker for ``vhost`` as ``user``."""
    parts = urlsplit(base)
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{parts.hostname}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, "/" + quote(vhost, safe=""), "", ""))


@pytest.fixture(scope="module")
def boundary() -> Iterator[Boundary]:
    """A vhost of the test's own with the deployed users, permissions and exchanges."""
    broker = shared_broker()
    prefix = f"yjperm-{secrets.token_hex(3)}"

    def user_of(name: str) -> str:
        return f"{prefix}-{name}"

    users = [user_of(f"yingji-{s}") for s in SERVICES]
    with broker.vhost("yingji-perm") as vhost:
        try:
            import_definitions(broker, renamed_definitions(vhost, user_of))
            urls = {}
            for service, user in zip(SERVICES, users, strict=True):
                password = secrets.token_hex(16)
                # As the compose broker does after importing: the file holds no password.
                broker.ctl("change_password", user, password)
                urls[service] = url_for(broker.url, vhost, user, password)
            yield Boundary(broker, vhost, broker.vhost_url(vhost), urls)
        finally:
            for user in users:
                with contextlib.suppress(subprocess.SubprocessError):
                    broker.ctl("delete_user", user)


@pytest.fixture(scope="module")
def subscriptions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Subscription]]:
    """Each service's real subscriptions (source, event type, handler name)."""
    from libs.common.app import Runtime
    from yingji.platform import load_specs

    settings = Settings(bus_url="memory://", data_dir=tmp_path_factory.mktemp("subs"))
    runtime = Runtime(settings, load_specs())
    runtime.prepare()
    try:
        # Reporting subscribes to every registered event type; test modules register some of
        # their own (tests/support/echo_service.py) that no deployed service publishes.
        found = {
            name: [s for s in worker.subscriptions if s.source in SERVICES]
            for name, worker in runtime.consumers.items()
        }
    finally:
        runtime.stop()
    assert set(found) == set(SERVICES), "every service consumes something"
    return found


def envelope(source: str, event_type: str, **payload: Any) -> EventEnvelope:
    """A well-formed envelope (the payload is not the point here)."""
    return EventEnvelope(
        event_id=str(uuid.uuid4()),
        event_type=event_type,
        schema_version=1,
        occurred_at=SystemClock().now(),
        source=source,
        payload=payload,
    )


def wait_for(predicate: Callable[[], bool], timeout: float = 30) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def raw_publish(url: str, exchange: str, routing_key: str, body: Any) -> None:
    """Publish one message the way any AMQP client can (no declare), waiting for the confirm."""
    message = amqp.Message(
        json.dumps(body, default=str), content_type="application/json", content_encoding="utf-8"
    )
    with Connection(url, connect_timeout=5) as connection:
        channel = connection.channel()
        channel.basic_publish_confirm(message, exchange=exchange, routing_key=routing_key)


class Recorder:
    """Handlers that fail a chosen number of times per event, then record it as applied."""

    def __init__(self, failures: dict[str, int]) -> None:
        self.failures = failures
        self.attempts: dict[str, int] = {}
        self.applied: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def handler(self, queue: str) -> Callable[[EventEnvelope], None]:
        def handle(event: EventEnvelope) -> None:
            with self.lock:
                seen = self.attempts.get(event.event_id, 0) + 1
                self.attempts[event.event_id] = seen
                if seen <= self.failures.get(event.event_id, 0):
                    raise RuntimeError(f"failure {seen} of {event.event_id}")
                self.applied.append((queue, event.event_id))

        return handle


@contextlib.contextmanager
def consumer(settings: Settings, service: str, subs: list[Subscription]) -> Iterator[None]:
    """The service's consumer thread, running until the block ends."""
    worker = ConsumerWorker(settings, service, subs)
    worker.start()
    try:
        assert worker.ready.wait(20), f"{service}'s consumer did not get its queues declared"
        yield
    finally:
        worker.stop()
        worker.join(10)


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_consumes_retries_and_dead_letters_with_its_own_user(
    boundary: Boundary, subscriptions: dict[str, list[Subscription]], service: str
) -> None:
    real = subscriptions[service]
    first = real[0]
    queue = first.queue_name(service)
    retried = envelope(first.source, first.event_type)
    poisoned = envelope(first.source, first.event_type)
    # Retried once then applied; dead-lettered after two failures, applied after a replay.
    recorder = Recorder({retried.event_id: 1, poisoned.event_id: 2})
    subs = [
        Subscription(s.source, s.event_type, recorder.handler(s.queue_name(service)), s.name)
        for s in real
    ]
    settings = boundary.settings(service)
    with consumer(settings, service, subs):
        # The source service publishes with its own user to its own exchange.
        Publisher(boundary.settings(first.source), first.source).publish([retried, poisoned])
        assert wait_for(lambda: (queue, retried.event_id) in recorder.applied)
        assert wait_for(lambda: len(list_dead_letters(settings, queue)) == 1)
        (letter,) = list_dead_letters(settings, queue)
        assert letter.message_id == poisoned.event_id
        assert replay_dead_letters(settings, queue) == 1
        assert wait_for(lambda: (queue, poisoned.event_id) in recorder.applied)
    assert recorder.attempts == {retried.event_id: 2, poisoned.event_id: 3}


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_publishes_its_own_events(boundary: Boundary, service: str) -> None:
    with Connection(boundary.admin_url) as connection:
        channel = connection.channel()
        name = f"perm-watch-{service}-{uuid.uuid4().hex[:6]}"
        channel.queue_declare(queue=name, auto_delete=True, arguments={"x-queue-type": "classic"})
        channel.queue_bind(queue=name, exchange=f"{service}.events", routing_key="#")
        Publisher(boundary.settings(service), service).publish([envelope(service, "anything")])
        assert wait_for(lambda: channel.basic_get(name, no_ack=True) is not None, timeout=10)


@pytest.mark.parametrize("speaker", SERVICES)
def test_no_service_user_can_publish_for_another_service(
    boundary: Boundary, subscriptions: dict[str, list[Subscription]], speaker: str
) -> None:
    """The issue's case: a bare `intake/incident_reported` from a client with another service's
    credentials. Each other service's exchange, redelivery exchange and the default exchange
    (which reaches any queue by name) refuse the speaker; no queue receives anything."""
    url = boundary.urls[speaker]
    targets = [s for s in SERVICES if s != speaker]
    for target in targets:
        sub = subscriptions[target][0]
        victim_queue = sub.queue_name(target)
        attempts = [
            (f"{sub.source}.events", sub.event_type) if sub.source != speaker else None,
            (f"{target}.events", "anything"),
            (f"{target}.redelivery", victim_queue),
            ("", victim_queue),
        ]
        for attempt in filter(None, attempts):
            exchange, routing_key = attempt
            with pytest.raises(AccessRefused):
                raw_publish(url, exchange, routing_key, {"incident_id": "forged"})
    bare = {"incident_id": "INC-forged", "township_code": "x", "title": "伪造"}
    if speaker != "intake":
        with pytest.raises(AccessRefused):
            raw_publish(url, "intake.events", "incident_reported", bare)
    # The real publisher is refused as well, and says so.
    other = targets[0]
    with pytest.raises(PublishError, match="ACCESS_REFUSED"):
        Publisher(boundary.settings(speaker), speaker).publish([envelope(other, "anything")])


@pytest.mark.parametrize("speaker", SERVICES)
def test_no_service_user_can_touch_another_services_queues(
    boundary: Boundary, subscriptions: dict[str, list[Subscription]], speaker: str
) -> None:
    url = boundary.urls[speaker]
    for target in (s for s in SERVICES if s != speaker):
        queue = subscriptions[target][0].queue_name(target)
        for name in (queue, f"{queue}.retry", f"{queue}.dlq"):
            with Connection(url) as connection, pytest.raises(AccessRefused):
                connection.channel().queue_declare(queue=name, durable=True)
        with Connection(url) as connection, pytest.raises(AccessRefused):
            connection.channel().exchange_declare(f"{target}.events", "topic", durable=True)


def test_a_consumer_refuses_an_envelope_that_speaks_for_another_source(
    boundary: Boundary, subscriptions: dict[str, list[Subscription]]
) -> None:
    """Intake's user may write to intake.events, but not make dispatch apply a warning event
    (or a different intake event than the routing key says): such a delivery is dead-lettered
    without reaching the handler."""
    sub = next(s for s in subscriptions["dispatch"] if s.event_type == "incident_reported")
    queue = sub.queue_name("dispatch")
    recorder = Recorder({})
    subs = [Subscription(sub.source, sub.event_type, recorder.handler(queue), sub.name)]
    settings = boundary.settings("dispatch")
    as_warning = envelope("warning", "incident_reported", incident_id="INC-1")
    wrong_type = envelope("intake", "incident_closed", incident_id="INC-1")
    genuine = envelope("intake", "incident_reported", incident_id="INC-2")
    with consumer(settings, "dispatch", subs):
        for forged in (as_warning, wrong_type, genuine):
            raw_publish(
                boundary.urls["intake"],
                "intake.events",
                "incident_reported",
                forged.to_wire(),
            )
        assert wait_for(lambda: (queue, genuine.event_id) in recorder.applied)
        assert wait_for(lambda: len(list_dead_letters(settings, queue)) == 2)
    assert recorder.applied == [(queue, genuine.event_id)]
    reasons = {
        letter.body["event_id"]: letter.headers["x-yingji-dead-letter-reason"]
        for letter in list_dead_letters(settings, queue)
    }
    assert set(reasons) == {as_warning.event_id, wrong_type.event_id}
    assert all(reason.startswith("refused:") for reason in reasons.values())
