"""Fixtures for the reporting tests: the reporting service alone on a manual clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.reporting.service import SPEC
from tests.support.stack import Stack, running_stack


@pytest.fixture
def rstack(tmp_path: Path) -> Iterator[Stack]:
    """The reporting service in-process (intake's events are fed on the bus by the tests)."""
    with running_stack(tmp_path, specs=[SPEC]) as running:
        yield running
