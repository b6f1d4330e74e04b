"""A suggestion accepted with another hazard, level or areas gets texts that speak of them: the
draft headline and description are written again, and what the operator wrote stays."""

from __future__ import annotations

import pytest

from tests.warning.conftest import TOWNSHIP_A, TOWNSHIP_B, WarningStack

pytestmark = pytest.mark.e2e


def pending_suggestion(wstack: WarningStack, incident_id: str) -> dict[str, object]:
    wstack.report_incident(incident_id, category="flood", grade=3)
    rows = wstack.call("GET", f"/v1/warnings/suggestions?incident_id={incident_id}").json()
    return dict(rows["items"][0])


def test_another_hazard_rewrites_the_draft_texts(wstack: WarningStack) -> None:
    suggestion = pending_suggestion(wstack, "inc-geo")
    assert "洪水" in str(suggestion["headline"])
    accepted = wstack.call(
        "POST",
        f"/v1/warnings/suggestions/{suggestion['id']}/accept",
        json={"hazard": "geological", "level": 4, "areas": [TOWNSHIP_B]},
    )
    assert accepted.status_code == 201, accepted.text
    warning = accepted.json()
    assert "地质灾害" in warning["headline"] and "洪水" not in warning["headline"]
    assert "地质灾害" in warning["description"] and "洪水" not in warning["description"]
    assert "蓝色" in warning["headline"] or "四级" in warning["headline"]
    assert "青石镇" in warning["headline"] and "城关镇" not in warning["headline"]


def test_texts_the_operator_wrote_are_kept(wstack: WarningStack) -> None:
    suggestion = pending_suggestion(wstack, "inc-own")
    accepted = wstack.call(
        "POST",
        f"/v1/warnings/suggestions/{suggestion['id']}/accept",
        json={"hazard": "geological", "headline": "城关镇地质灾害预警", "areas": [TOWNSHIP_A]},
    )
    assert accepted.status_code == 201, accepted.text
    warning = accepted.json()
    assert warning["headline"] == "城关镇地质灾害预警"
    assert "地质灾害" in warning["description"] and "洪水" not in warning["description"]


def test_accepted_as_suggested_the_texts_are_the_suggestions(wstack: WarningStack) -> None:
    suggestion = pending_suggestion(wstack, "inc-same")
    accepted = wstack.call("POST", f"/v1/warnings/suggestions/{suggestion['id']}/accept", json={})
    assert accepted.status_code == 201, accepted.text
    warning = accepted.json()
    assert (warning["headline"], warning["description"]) == (
        suggestion["headline"],
        suggestion["description"],
    )
