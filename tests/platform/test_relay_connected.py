"""`yingji_bus_connected{role="relay"}` tells whether a relay could publish, not whether it has
published: an idle relay on a reachable bus reads 1, one that cannot reach its broker reads 0."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from libs.common.bus import wait_until
from libs.common.clock import SystemClock
from libs.common.outbox import SQLITE_OUTBOX_SCHEMA, OutboxRelay, SqliteOutbox
from libs.common.settings import Settings
from libs.common.sqlite import SqliteDatabase


def relay_connected(service: str) -> float | None:
    """The relay's gauge for ``service``; None while the series does not exist."""
    labels = {"service": service, "role": "relay"}
    return REGISTRY.get_sample_value("yingji_bus_connected", labels)


@contextmanager
def idle_relay(tmp_path: Path, bus_url: str) -> Iterator[str]:
    """A started relay over an empty outbox (it never publishes); the service name it uses."""
    service = f"idle-{uuid.uuid4().hex[:8]}"
    db = SqliteDatabase(tmp_path / f"{service}.sqlite3")
    db.script(SQLITE_OUTBOX_SCHEMA)
    settings = Settings(bus_url=bus_url, data_dir=tmp_path)
    relay = OutboxRelay(settings, service, [SqliteOutbox(db)], SystemClock())
    relay.start()
    try:
        yield service
    finally:
        relay.stop()
        relay.join(10)
        db.close()


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_idle_relay_on_the_memory_bus_reads_connected(tmp_path: Path) -> None:
    with idle_relay(tmp_path, "memory://") as service:
        assert wait_until(lambda: relay_connected(service) == 1.0, timeout=10)


def test_a_relay_that_cannot_reach_its_broker_reads_disconnected(tmp_path: Path) -> None:
    url = f"amqp://guest:guest@127.0.0.1:{closed_port()}//"
    with idle_relay(tmp_path, url) as service:
        # The series appears once the relay has tried (at its start, with nothing to publish).
        assert wait_until(lambda: relay_connected(service) is not None, timeout=20)
        assert relay_connected(service) == 0.0


@pytest.mark.bus
def test_an_idle_relay_on_rabbitmq_reads_connected(tmp_path: Path, amqp_url: str) -> None:
    with idle_relay(tmp_path, amqp_url) as service:
        assert wait_until(lambda: relay_connected(service) == 1.0, timeout=20)
