"""End to end on the embedded stack (all four services): two townships report, we read back."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.intake.helpers import (
    affected,
    casualties,
    deliver,
    iso,
    post,
    report,
    reporting_event,
    sent_events,
)
from tests.support.stack import TOWNSHIP_A, TOWNSHIP_B, Stack

pytestmark = pytest.mark.e2e


def accepted(stack: Stack, body: dict[str, Any], who: str, key: str) -> dict[str, Any]:
    response = post(stack, body, who, headers={"Idempotency-Key": key})
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def test_two_townships_report_and_read_back_grades_and_flags(stack: Stack) -> None:
    now = stack.clock.now()
    flood = report(
        now,
        township_code=TOWNSHIP_A,
        casualties=casualties(deaths=12, injured=4),
        affected=affected(people_affected=900, people_evacuated=300),
    )
    wages = report(
        now,
        township_code=TOWNSHIP_B,
        category="enterprise_risk",
        title="企业欠薪职工聚集",
        description="某厂资金链断裂，拖欠工资，职工15人在厂门口聚集。",
        location={"address": "青石镇工业园", "lat": 31.61, "lon": 116.39},
        casualties=casualties(),
        affected=affected(),
        people_involved=15,
        occurred_at=iso(now - timedelta(hours=3)),
        discovered_at=iso(now - timedelta(minutes=150)),
        dispute={
            "nature": "labour_wages",
            "stability_impact": "medium",
            "escalation_risk": "medium",
            "petition_or_lawsuit": True,
        },
    )
    a = accepted(stack, flood, "township_a", "a-1")
    b = accepted(stack, wages, "township_b", "b-1")
    # A township on a bad network retries: same incident, not a second one.
    assert accepted(stack, wages, "township_b", "b-1")["id"] == b["id"]
    assert post(stack, dict(flood, township_code=TOWNSHIP_B), "township_a").status_code == 403

    assert (a["grade"], a["late"], a["escalated"]) == (2, False, True)
    assert a["escalation_reasons"] == ["major_grade"]
    assert (b["grade"], b["late"], b["late_limit_minutes"]) == (4, True, 120)
    assert b["escalation_reasons"] == ["people_involved", "petition_or_lawsuit"]

    operator_view = stack.call("GET", "/v1/incidents").json()["items"]
    by_id = {item["id"]: item for item in operator_view}
    assert set(by_id) == {a["id"], b["id"]}
    assert (by_id[a["id"]]["grade"], by_id[a["id"]]["township_name"]) == (2, "城关镇")
    assert (by_id[b["id"]]["late"], by_id[b["id"]]["escalated"]) == (True, True)
    seen_by_a = stack.call("GET", "/v1/incidents", who="township_a").json()["items"]
    assert [item["id"] for item in seen_by_a] == [a["id"]]
    seen_by_b = stack.call("GET", "/v1/incidents", who="township_b").json()["items"]
    assert [item["id"] for item in seen_by_b] == [b["id"]]
    assert stack.call("GET", f"/v1/incidents/{b['id']}", who="township_a").status_code == 404

    # Every accepted report went out on the bus exactly once.
    reported = {e["payload"]["incident_id"] for e in sent_events(stack, "incident_reported")}
    assert reported == {a["id"], b["id"]}

    # Reporting's follow-up raises township B's figures: the incident is re-graded (越级).
    followup = reporting_event(
        stack,
        "followup_filed",
        {
            "report_id": "e2e-followup-1",
            "incident_id": b["id"],
            "township_code": TOWNSHIP_B,
            "number": 1,
            "casualties": casualties(injured=12),
            "affected": affected(),
            "people_involved": 40,
        },
    )
    deliver(stack, followup, followup)
    current = stack.call("GET", f"/v1/incidents/{b['id']}", who="township_b").json()
    assert (current["grade"], current["initial_grade"], current["people_involved"]) == (3, 4, 40)
    assert current["late"] is True
    [regraded] = sent_events(stack, "incident_regraded", b["id"])
    assert (regraded["payload"]["old_grade"], regraded["payload"]["new_grade"]) == (4, 3)
