"""Shared fixtures: an in-process stack, and the broker requirement for bus tests."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.stack import Stack, running_stack

RABBIT_URL = os.environ.get("YINGJI_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """All four services in-process on a manual clock."""
    with running_stack(tmp_path) as running:
        yield running


def broker_reachable() -> bool:
    """True when something listens on the test broker's port."""
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def amqp_url() -> str:
    """The real RabbitMQ; missing it fails the test (in CI and locally), it never skips."""
    if not broker_reachable():
        pytest.fail(
            "RabbitMQ is not reachable on 127.0.0.1:5672 (start it: rabbitmq-server -detached)"
        )
    return RABBIT_URL
