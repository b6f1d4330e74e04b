"""The CI rule for tests that need a tool from the machine: under CI=true a missing tool fails
the test; elsewhere it skips, and the run's summary line says so (tests/conftest.py)."""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    """True when the run is CI's (CI=true)."""
    return os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str, hint: str) -> None:
    """Fail under CI=true, skip elsewhere; ``hint`` says how to install what is missing."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: this test must run; {hint})")
    pytest.skip(f"{reason}; {hint}")
