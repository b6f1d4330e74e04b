"""Fixtures for the console tests: one stack (with the console router) and one server per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.reporting.console import HEARTBEAT_SECONDS
from tests.console.support import LiveServer, ManualTicker, console_specs, live_server
from tests.support.stack import Stack, running_stack


@pytest.fixture(scope="module")
def ticker() -> ManualTicker:
    """The clock the module's streams measure their heartbeat interval on."""
    return ManualTicker()


@pytest.fixture(scope="module")
def console_stack(
    tmp_path_factory: pytest.TempPathFactory, ticker: ManualTicker
) -> Iterator[Stack]:
    """All four services plus the console router; heartbeats when the test moves ``ticker``."""
    specs = console_specs(heartbeat_seconds=HEARTBEAT_SECONDS, ticker=ticker)
    with running_stack(tmp_path_factory.mktemp("console"), specs=specs) as stack:
        yield stack


@pytest.fixture(scope="module")
def server(console_stack: Stack) -> Iterator[LiveServer]:
    """The stack's app served by uvicorn on a free port."""
    with live_server(console_stack.client.app) as running:
        yield running
