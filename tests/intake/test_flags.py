"""Grades, 迟报 and escalation flags over HTTP, on one intake stack shared by the module."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from tests.intake.helpers import affected, casualties, created, iso, report
from tests.support.stack import TOWNSHIP_A, Stack

# --- grading and flags over HTTP --------------------------------------------------------------


@pytest.mark.parametrize(
    ("category", "body_changes", "grade"),
    [
        ("flood", {"casualties": casualties(deaths=2)}, 4),
        ("flood", {"casualties": casualties(deaths=3)}, 3),
        ("flood", {"casualties": casualties(deaths=9)}, 3),
        ("flood", {"casualties": casualties(deaths=10)}, 2),
        ("flood", {"casualties": casualties(deaths=29)}, 2),
        ("flood", {"casualties": casualties(deaths=30)}, 1),
        ("production_accident", {"casualties": casualties(injured=49)}, 3),
        ("production_accident", {"casualties": casualties(injured=50)}, 2),
        ("production_accident", {"casualties": casualties(missing=6, trapped=4)}, 2),
        ("production_accident", {"affected": affected(direct_loss_cny=99_999_999)}, 2),
        ("production_accident", {"affected": affected(direct_loss_cny=100_000_000)}, 1),
        ("geological", {"affected": affected(people_evacuated=499)}, 3),
        ("geological", {"affected": affected(people_evacuated=500)}, 2),
        ("flood", {"affected": affected(people_evacuated=999)}, 4),
        ("flood", {"affected": affected(people_evacuated=1000)}, 3),
    ],
)
def test_grade_edges_over_http(
    shared: Stack, category: str, body_changes: dict[str, Any], grade: int
) -> None:
    body = report(shared.clock.now(), category=category, **body_changes)
    if "affected" not in body_changes:
        body["affected"] = affected()
    result = created(shared, body)
    assert result["grade"] == grade
    assert result["initial_grade"] == grade
    assert result["grade_label"] == {1: "特别重大", 2: "重大", 3: "较大", 4: "一般"}[grade]
    if grade < 4:
        assert result["grade_basis"] and result["grade_basis"][0]["source"]
    else:
        assert result["grade_basis"] == []


@pytest.mark.parametrize(
    ("grade_deaths", "limit", "minutes", "late"),
    [
        (0, 120, 120, False),  # IV: 120 min, exactly on the limit is in time
        (0, 120, 121, True),
        (3, 60, 60, False),  # III: 60 min
        (3, 60, 61, True),
        (10, 30, 30, False),  # II: 30 min
        (10, 30, 31, True),
        (30, 30, 31, True),  # I: 30 min
    ],
)
def test_late_flag_against_the_grade_limit(
    shared: Stack, grade_deaths: int, limit: int, minutes: int, late: bool
) -> None:
    now = shared.clock.now()
    body = report(
        now,
        casualties=casualties(deaths=grade_deaths),
        affected=affected(),
        occurred_at=iso(now - timedelta(minutes=minutes + 5)),
        discovered_at=iso(now - timedelta(minutes=minutes)),
    )
    before = REGISTRY.get_sample_value(
        "yingji_intake_late_reports_total",
        {"category": "flood", "grade": "4", "township": TOWNSHIP_A},
    )
    result = created(shared, body)
    assert result["late"] is late
    assert result["late_limit_minutes"] == limit
    assert result["report_delay_minutes"] == minutes
    if result["grade"] == 4:
        after = REGISTRY.get_sample_value(
            "yingji_intake_late_reports_total",
            {"category": "flood", "grade": "4", "township": TOWNSHIP_A},
        )
        assert (after or 0) - (before or 0) == (1 if late else 0)


@pytest.mark.parametrize(("people", "escalated"), [(9, False), (10, True)])
def test_ten_people_involved_escalates(shared: Stack, people: int, escalated: bool) -> None:
    body = report(shared.clock.now(), category="enterprise_risk", people_involved=people)
    result = created(shared, body)
    assert result["escalated"] is escalated
    assert ("people_involved" in result["escalation_reasons"]) is escalated
    if escalated:
        assert "篇3" in result["escalation_details"][0]["text"]


def test_major_grade_escalates(shared: Stack) -> None:
    result = created(shared, report(shared.clock.now(), casualties=casualties(deaths=10)))
    assert result["escalation_reasons"] == ["major_grade"]
    quiet = created(shared, report(shared.clock.now(), casualties=casualties(deaths=9)))
    assert (quiet["escalated"], quiet["escalation_reasons"]) == (False, [])


@pytest.mark.parametrize(
    ("marker", "reason"),
    [
        ({"petition_or_lawsuit": True}, "petition_or_lawsuit"),
        ({"repeated_petitions": True}, "repeated_petitions"),
        ({"key_persons": True}, "key_persons"),
        ({"stability_impact": "high"}, "high_stability_impact"),
        ({"escalation_risk": "high"}, "high_escalation_risk"),
    ],
)
def test_dispute_markers_escalate(shared: Stack, marker: dict[str, Any], reason: str) -> None:
    dispute = {"nature": "labour_wages", "stability_impact": "low", "escalation_risk": "low"}
    dispute.update(marker)
    body = report(shared.clock.now(), category="dispute", people_involved=4, dispute=dispute)
    result = created(shared, body)
    assert result["escalation_reasons"] == [reason]
    assert result["dispute"]["nature"] == "labour_wages"


def test_grading_rules_are_published(shared: Stack) -> None:
    rules = shared.call("GET", "/v1/incidents/grading-rules", who="township_a").json()
    assert rules["default"]["deaths"]["thresholds"] == [30, 10, 3]
    assert "493" in rules["default"]["deaths"]["source"]
    assert rules["categories"]["geological"]["people_evacuated"]["thresholds"] == [1000, 500, 100]
    assert rules["escalation"]["people_involved"] == 10
    assert rules["deadline_profile"]["initial_minutes"] == {"1": 30, "2": 30, "3": 60, "4": 120}
