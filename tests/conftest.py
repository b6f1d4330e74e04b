"""Shared fixtures: an in-process stack, the brokers for bus tests, and the CI rule that nothing
skips quietly.

Brokers: tests that only publish and consume use the shared broker at `YINGJI_TEST_AMQP_URL`
(default `amqp://guest:guest@127.0.0.1:5672//`); tests that stop, kill or cut a broker use
`own_rabbitmq`, a node of the session's own (tests/support/rabbitmq.py). Either missing fails
the test, it never skips."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

# Hooks of this conftest: under CI=true a skip fails; every run prints the skip summary line.
from tests.support.ci import pytest_runtest_makereport, pytest_terminal_summary  # noqa: F401
from tests.support.rabbitmq import Broker, OwnNode, own_node
from tests.support.stack import Stack, running_stack

RABBIT_URL = Broker.shared().url


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """All four services in-process on a manual clock."""
    with running_stack(tmp_path) as running:
        yield running


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Undo configure_logging after the test (it configures the whole process)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.reset_defaults()
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def broker_reachable() -> bool:
    """True when something listens on the shared test broker's port (`YINGJI_TEST_AMQP_URL`)."""
    return Broker.shared().reachable()


def shared_broker() -> Broker:
    """The shared test broker; missing it fails the test (in CI and locally), it never skips."""
    broker = Broker.shared()
    if not broker.reachable():
        host, port = broker.address
        pytest.fail(
            f"RabbitMQ is not reachable on {host}:{port} (YINGJI_TEST_AMQP_URL; "
            "start the local one with scripts/ensure-rabbitmq)"
        )
    return broker


@pytest.fixture
def amqp_url() -> str:
    """The shared broker's URL, for tests that only publish and consume."""
    return shared_broker().url


@pytest.fixture(scope="session")
def own_rabbitmq() -> Iterator[OwnNode]:
    """A RabbitMQ node of the session's own, for tests that stop or cut the broker. One per
    session: a node takes 5-20 s to start on two cores. The tests using it must leave its
    application running (`OwnNode.restored`)."""
    with own_node() as node:
        yield node
