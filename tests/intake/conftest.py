"""Intake test stacks: intake alone on the embedded store and memory bus, on a manual clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.intake.service import SPEC
from tests.support.stack import Stack, running_stack


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One intake stack for a module whose tests do not depend on each other's incidents."""
    with running_stack(tmp_path_factory.mktemp("intake"), specs=[SPEC]) as stack:
        yield stack


@pytest.fixture
def intake(tmp_path: Path) -> Iterator[Stack]:
    """A fresh intake stack for one test."""
    with running_stack(tmp_path, specs=[SPEC]) as stack:
        yield stack
