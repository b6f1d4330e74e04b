"""The incident and warning bodies README.md shows are accepted as they stand, and the values it
lists for `category` and `hazard` are exactly the platform's."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest

from libs.common.hazards import HAZARDS
from services.intake.domain import CATEGORIES
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def example(name: str) -> tuple[str, str]:
    """The path and the JSON body (shell variables left in) of a README example."""
    block = README.split(f"<!-- example: {name} -->", 1)[1].split("```bash", 1)[1]
    block = block.split("```", 1)[0]
    path = re.search(r"localhost:8000(/v1/[a-z-]+)", block)
    body = block.split("<<EOF", 1)[1].split("\nEOF", 1)[0]
    assert path is not None
    return path.group(1), body


def listed(field: str) -> list[str]:
    """The values README lists after "`field` is one of"."""
    text = README.split(f"`{field}` is one of", 1)[1].split(" (", 1)[0].split(". ", 1)[0]
    return re.findall(r"`([a-z_]+)`", text)


def test_the_incident_and_warning_examples_are_accepted(stack: Stack) -> None:
    now = stack.clock.now()
    values = {
        "$NOW": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "$LATER": (now + timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    for name, who in (("incident", "township_a"), ("warning", "operator")):
        path, text = example(name)
        for variable, value in values.items():
            text = text.replace(variable, value)
        created = stack.call("POST", path, who=who, json=json.loads(text))
        assert created.status_code == 201, (name, created.text)


def test_the_listed_values_are_the_platforms() -> None:
    assert listed("category") == list(CATEGORIES)
    assert listed("hazard") == list(HAZARDS)
