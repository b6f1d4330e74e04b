"""Helpers for tests against the shared RabbitMQ (`YINGJI_TEST_AMQP_URL`); tests that stop or
cut a broker use their own node instead (`own_rabbitmq`, tests/conftest.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from kombu import Connection

pytestmark = pytest.mark.bus


def wait_for_broker(url: str, timeout: float = 60) -> None:
    """Block until the broker accepts connections again."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with Connection(url, connect_timeout=2) as connection:
                connection.ensure_connection(max_retries=1)
                return
        except Exception:
            time.sleep(0.5)
    raise AssertionError("broker did not come back")


@pytest.fixture
def cleanup_queues(amqp_url: str) -> Iterator[list[str]]:
    """Queues a test declares; deleted afterwards so the broker does not fill up."""
    names: list[str] = []
    yield names
    wait_for_broker(amqp_url)
    with Connection(amqp_url) as connection:
        channel = connection.channel()
        for name in names:
            for queue in (name, f"{name}.dlq", f"{name}.retry"):
                try:
                    channel.queue_delete(queue)
                except Exception:
                    channel = connection.channel()
