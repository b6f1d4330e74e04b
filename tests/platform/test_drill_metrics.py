"""Counters that count drills (演练) as well carry exercise="true": the reporting timeline's
count of an incident reported as a drill leaves the real series where it was."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from tests.support.bodies import incident_body
from tests.support.stack import running_stack

pytestmark = pytest.mark.e2e


def timeline_events(source: str, exercise: str) -> float | None:
    """The reporting timeline's count of ``source``'s events; None when the series is missing."""
    labels = {"service": "reporting", "source": source, "exercise": exercise}
    return REGISTRY.get_sample_value("yingji_reporting_timeline_events_total", labels)


def test_a_drill_incident_is_counted_in_the_timeline_as_exercise(tmp_path: Path) -> None:
    with running_stack(tmp_path) as stack:
        real, drill = timeline_events("intake", "false"), timeline_events("intake", "true")
        assert real is not None and drill is not None, "both series exist from the start"
        body = incident_body(stack.clock.now(), exercise=True)
        created = stack.call("POST", "/v1/incidents", json=body)
        assert created.status_code == 201, created.text
        stack.settle()
        assert timeline_events("intake", "true") == drill + 1
        assert timeline_events("intake", "false") == real
