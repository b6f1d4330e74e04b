"""Times with no UTC equivalent (year 9999 at −23:59, year 1 at +23:59) are a 422 naming the
field on every service that takes times, never a 500."""

from __future__ import annotations

import pytest

from tests.support.stack import Stack

EXTREMES = ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"]


@pytest.mark.parametrize("moment", EXTREMES)
def test_warning_times(stack: Stack, moment: str) -> None:
    body = {
        "hazard": "flood",
        "level": 3,
        "headline": "h",
        "description": "d",
        "instruction": "i",
        "areas": ["349901001"],
        "expires": moment,
    }
    response = stack.call("POST", "/v1/warnings", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["fields"][0]["path"] == "expires"


@pytest.mark.parametrize("moment", EXTREMES)
def test_assignment_deadlines(stack: Stack, moment: str) -> None:
    body = {
        "incident_id": "x",
        "responsible_leader": "王",
        "responsible_unit": "司法所",
        "due_at": moment,
        "stability_contact": {"name": "王", "phone": "13800000001", "unit": "司法所"},
    }
    response = stack.call("POST", "/v1/assignments", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["fields"][0]["path"] == "due_at"


@pytest.mark.parametrize("moment", EXTREMES)
def test_incident_times(stack: Stack, moment: str) -> None:
    response = stack.call(
        "POST",
        "/v1/incidents",
        who="township_a",
        json={"occurred_at": moment, "discovered_at": moment},
    )
    assert response.status_code == 422
    paths = {f["path"] for f in response.json()["error"]["fields"]}
    assert {"occurred_at", "discovered_at"} & paths
