"""Fixtures of the duty office tests: the reporting service with a fake city platform."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.reporting.service import SPEC
from tests.duty.support import TOKEN, FakeCityServer, quiet_timers
from tests.support.stack import Stack, running_stack


@pytest.fixture
def city() -> Iterator[FakeCityServer]:
    """A fake city platform started for one test."""
    server = FakeCityServer()
    yield server
    server.stop()


@pytest.fixture
def upward_env(city: FakeCityServer, monkeypatch: pytest.MonkeyPatch) -> FakeCityServer:
    """Upward reporting pointed at the fake, with a short timeout for the slow case."""
    monkeypatch.setenv("YINGJI_UPSTREAM_URL", city.url)
    monkeypatch.setenv("YINGJI_UPSTREAM_TOKEN", TOKEN)
    monkeypatch.setenv("YINGJI_UPSTREAM_TIMEOUT_SECONDS", "0.3")
    return city


@pytest.fixture
def dstack(tmp_path: Path) -> Iterator[Stack]:
    """Reporting (with its duty office) alone; upward reporting off."""
    with running_stack(tmp_path, specs=[SPEC]) as running:
        yield quiet_timers(running)


@pytest.fixture
def ustack(tmp_path: Path, upward_env: FakeCityServer) -> Iterator[Stack]:
    """Reporting with upward reporting to the fake city."""
    with running_stack(tmp_path, specs=[SPEC]) as running:
        yield quiet_timers(running)
