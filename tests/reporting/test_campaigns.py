"""Special campaigns (专项行动, 篇1) over HTTP on the reporting service: the county starts one with
stages and participants, its rhythm becomes deadlines in the deadline list (a report every 3
days, one within 2 days after each stage), the scan turns them overdue and escalates them, a
report meets its deadline, ending drops the later ones, and drills stay out of the counts."""

from __future__ import annotations

from typing import Any

import pytest

from services.reporting.campaigns import metrics as campaign_metrics
from tests.reporting.support import events_of, local
from tests.support.errors import refusal
from tests.support.stack import TOWNSHIP_A, TOWNSHIP_B, Stack

pytestmark = pytest.mark.e2e


def campaign_body(**extra: Any) -> dict[str, Any]:
    """A 10-day campaign with two stages, two townships and a department."""
    return {
        "name": "社会矛盾纠纷大排查",
        "starts_on": "2026-07-06",
        "ends_on": "2026-07-15",
        "stages": [
            {"name": "组织动员", "ends_on": "2026-07-08"},
            {"name": "全面排查", "ends_on": "2026-07-15"},
        ],
        "participants": [TOWNSHIP_A, TOWNSHIP_B, "water"],
        **extra,
    }


def start(stack: Stack, **extra: Any) -> dict[str, Any]:
    response = stack.call("POST", "/v1/campaigns", json=campaign_body(**extra))
    assert response.status_code == 201, response.text
    return dict(response.json())


def deadlines(stack: Stack, **params: Any) -> list[dict[str, Any]]:
    response = stack.call("GET", "/v1/deadlines", params={"limit": 200, **params})
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def scan(stack: Stack) -> None:
    stack.ctx("reporting").resources["usecases"].scan_deadlines()
    stack.settle()


def test_a_campaign_plans_its_rhythm_as_deadlines(rstack: Stack) -> None:
    rstack.clock.set(local(2026, 7, 6, 9))
    campaign = start(rstack)
    periodic = deadlines(rstack, kind="campaign_report", township_code=TOWNSHIP_A)
    # Every 3 days from the 6th: the 9th, 12th and 15th at 17:00 local.
    assert [d["due_at"][:16] for d in periodic] == [
        local(2026, 7, day, 17).isoformat()[:16] for day in (9, 12, 15)
    ]
    assert {d["kind_label"] for d in periodic} == {"专项行动定期报告"}
    stage = deadlines(rstack, kind="campaign_stage", township_code=TOWNSHIP_A)
    assert [d["stage"] for d in stage] == [1, 2]
    assert stage[0]["due_at"][:16] == local(2026, 7, 10, 17).isoformat()[:16]
    assert stage[0]["campaign_name"] == "社会矛盾纠纷大排查"
    # The department takes part too, under its own id.
    assert len(campaign["deadlines"]) == 3 * (3 + 2)
    assert {d["participant_name"] for d in campaign["deadlines"]} >= {"县水利局"}


def test_reports_meet_deadlines_and_the_scan_escalates_the_missed(rstack: Stack) -> None:
    rstack.clock.set(local(2026, 7, 6, 9))
    campaign = start(rstack)
    rstack.clock.set(local(2026, 7, 9, 10))
    report = {"participant": TOWNSHIP_A, "kind": "campaign_report", "content": "排查纠纷12起"}
    path = f"/v1/campaigns/{campaign['id']}/reports"
    filed = rstack.call("POST", path, who="township_a", json=report)
    assert filed.status_code == 201, filed.text
    assert filed.json()["late"] is False
    rstack.clock.set(local(2026, 7, 9, 20))
    scan(rstack)
    rstack.clock.set(local(2026, 7, 9, 23))
    scan(rstack)
    first = {
        d["township_code"]: d
        for d in deadlines(rstack, kind="campaign_report")
        if d["id"].endswith(":1")
    }
    assert first[TOWNSHIP_A]["status"] == "met"
    assert first[TOWNSHIP_A]["met_by"] == filed.json()["id"]
    assert first[TOWNSHIP_B]["status"] == "overdue" and first[TOWNSHIP_B]["escalation"] == 2
    overdue = [e["summary"] for e in events_of(rstack, "report_overdue")]
    assert "专项行动定期报告逾期未报（第2次催报）" in overdue
    # A late report meets the overdue deadline and says so.
    late = rstack.call("POST", path, who="township_b", json={**report, "participant": TOWNSHIP_B})
    assert late.json()["late"] is True
    again = {d["id"]: d for d in deadlines(rstack, kind="campaign_report")}
    assert again[first[TOWNSHIP_B]["id"]]["status"] == "met"


def test_a_township_files_only_its_own_and_a_stage_report_names_its_stage(rstack: Stack) -> None:
    rstack.clock.set(local(2026, 7, 6, 9))
    campaign = start(rstack)
    path = f"/v1/campaigns/{campaign['id']}/reports"
    other = {"participant": TOWNSHIP_B, "kind": "campaign_report", "content": "排查纠纷3起"}
    assert rstack.call("POST", path, who="township_a", json=other).status_code == 403
    stageless = {"participant": TOWNSHIP_A, "kind": "campaign_stage", "content": "动员完成"}
    assert "stage" in refusal(rstack.call("POST", path, json=stageless))[2]
    rstack.clock.set(local(2026, 7, 9, 9))
    staged = rstack.call("POST", path, json={**stageless, "stage": 1})
    assert staged.status_code == 201, staged.text
    assert staged.json()["deadline_id"].endswith(f":campaign_stage:{TOWNSHIP_A}:1")


def test_a_township_reads_only_the_campaigns_it_takes_part_in_and_its_own_part(
    rstack: Stack,
) -> None:
    rstack.clock.set(local(2026, 7, 6, 9))
    both = start(rstack)
    only_b = start(rstack, name="防汛隐患排查", participants=[TOWNSHIP_B])
    path = f"/v1/campaigns/{both['id']}/reports"
    for who, code in (("township_a", TOWNSHIP_A), ("township_b", TOWNSHIP_B)):
        body = {"participant": code, "kind": "campaign_report", "content": f"{code}排查纠纷"}
        assert rstack.call("POST", path, who=who, json=body).status_code == 201
    listed = rstack.call("GET", "/v1/campaigns", who="township_a")
    assert listed.status_code == 200, listed.text
    assert [c["id"] for c in listed.json()["items"]] == [both["id"]]
    mine = rstack.call("GET", f"/v1/campaigns/{both['id']}", who="township_a").json()
    assert {d["participant"] for d in mine["deadlines"]} == {TOWNSHIP_A}
    assert [r["participant"] for r in mine["reports"]] == [TOWNSHIP_A]
    assert TOWNSHIP_B not in {d["participant"] for d in mine["deadlines"]}
    hidden = rstack.call("GET", f"/v1/campaigns/{only_b['id']}", who="township_a")
    assert refusal(hidden)[:2] == (404, "not_found")
    # The county office reads every campaign and every participant's part.
    county = rstack.call("GET", f"/v1/campaigns/{both['id']}").json()
    assert {r["participant"] for r in county["reports"]} == {TOWNSHIP_A, TOWNSHIP_B}
    assert len(rstack.call("GET", "/v1/campaigns").json()["items"]) == 2


def test_wrong_dates_and_participants_are_refused(rstack: Stack) -> None:
    rstack.clock.set(local(2026, 7, 6, 9))
    backwards = campaign_body(ends_on="2026-07-01")
    assert "ends_on" in refusal(rstack.call("POST", "/v1/campaigns", json=backwards))[2]
    stray = campaign_body(participants=["999999999"])
    assert "participants.0" in refusal(rstack.call("POST", "/v1/campaigns", json=stray))[2]
    late_stage = campaign_body(stages=[{"name": "总结", "ends_on": "2026-08-01"}])
    assert "stages.0.ends_on" in refusal(rstack.call("POST", "/v1/campaigns", json=late_stage))[2]
    refused = rstack.call("POST", "/v1/campaigns", who="township_a", json=campaign_body())
    assert refused.status_code == 403


def test_a_campaign_registered_after_it_began_owes_only_what_falls_due_later(
    rstack: Stack,
) -> None:
    """Begun on 6-29 and registered on 7-06 at 09:00: the reports of 7-02 and 7-05 could not
    have been filed here, so the first one owed is 7-08's, and nothing is overdue at once."""
    rstack.clock.set(local(2026, 7, 6, 9))
    start(rstack, starts_on="2026-06-29", stages=[{"name": "排查", "ends_on": "2026-07-03"}])
    scan(rstack)
    owed = deadlines(rstack, township_code=TOWNSHIP_A)
    assert [d["due_at"][:16] for d in owed] == [
        local(2026, 7, day, 17).isoformat()[:16] for day in (8, 11, 14)
    ]
    assert deadlines(rstack, status="overdue") == []
    ended = campaign_body(starts_on="2026-06-20", ends_on="2026-07-05", stages=[])
    assert "ends_on" in refusal(rstack.call("POST", "/v1/campaigns", json=ended))[2]


def test_ending_drops_the_later_deadlines(rstack: Stack) -> None:
    rstack.clock.set(local(2026, 7, 6, 9))
    campaign = start(rstack)
    rstack.clock.set(local(2026, 7, 10, 9))
    ended = rstack.call("POST", f"/v1/campaigns/{campaign['id']}/end", json={"reason": "提前完成"})
    assert ended.status_code == 200, ended.text
    assert ended.json()["status"] == "ended" and ended.json()["status_label"] == "已结束"
    rows = {d["id"]: d for d in ended.json()["deadlines"]}
    later = [d for d in rows.values() if d["due_at"] > local(2026, 7, 10, 9).isoformat()[:19]]
    assert later and all(d["status"] == "cancelled" for d in later)
    earlier = [d for d in rows.values() if d not in later]
    assert earlier and all(d["status"] == "pending" for d in earlier)
    assert rstack.call("POST", f"/v1/campaigns/{campaign['id']}/end").status_code == 409
    rstack.settle()
    assert [e["correlation_id"] for e in events_of(rstack, "campaign_ended")] == [
        f"campaign:{campaign['id']}"
    ]


def test_a_retry_with_the_same_key_returns_the_first_campaign(rstack: Stack) -> None:
    rstack.clock.set(local(2026, 7, 6, 9))
    headers = {"Idempotency-Key": "campaign-1"}
    first = rstack.call("POST", "/v1/campaigns", json=campaign_body(), headers=headers)
    second = rstack.call("POST", "/v1/campaigns", json=campaign_body(), headers=headers)
    assert first.json()["id"] == second.json()["id"]
    other = rstack.call(
        "POST", "/v1/campaigns", json=campaign_body(name="另一行动"), headers=headers
    )
    assert other.status_code == 409


def test_a_drill_campaign_is_never_counted(rstack: Stack) -> None:
    rstack.clock.set(local(2026, 7, 6, 9))
    gauge = campaign_metrics.CAMPAIGNS_ACTIVE.labels("reporting")
    before = gauge._value.get()
    drill = start(rstack, exercise=True)
    assert gauge._value.get() == before
    assert all(d["exercise"] for d in deadlines(rstack, exercise=True))
    assert deadlines(rstack, exercise=False) == []
    listed = rstack.call("GET", "/v1/campaigns", params={"exercise": "true"}).json()["items"]
    assert [c["id"] for c in listed] == [drill["id"]]
    real = start(rstack)
    assert gauge._value.get() == before + 1
    assert real["exercise"] is False


def test_the_daily_summary_names_an_overdue_campaign_report(rstack: Stack) -> None:
    rstack.clock.set(local(2026, 7, 6, 9))
    start(rstack, starts_on="2026-06-29", stages=[])
    rstack.clock.set(local(2026, 7, 9, 9))
    scan(rstack)
    summary = rstack.call("GET", "/v1/summaries/daily", params={"date": "2026-07-09"})
    assert summary.status_code == 200, summary.text
    overdue = [
        d for d in summary.json()["reporting"]["overdue_items"] if d["kind"] == "campaign_report"
    ]
    assert {d["township_name"] for d in overdue} >= {"县水利局"}
    assert {d["incident_title"] for d in overdue} == {"专项行动「社会矛盾纠纷大排查」"}
    assert {d["kind_label"] for d in overdue} == {"专项行动定期报告"}


def test_a_department_files_only_for_its_own_department(rstack: Stack) -> None:
    """The water bureau's key files for ``water``; the weather bureau's key may not."""
    rstack.clock.set(local(2026, 7, 6, 9))
    campaign = start(rstack)
    path = f"/v1/campaigns/{campaign['id']}/reports"
    report = {"participant": "water", "kind": "campaign_report", "content": "排查河道隐患3处"}
    refused = rstack.call("POST", path, who="department", json=report)
    assert refusal(refused) == (403, "forbidden_unit", ["participant"])
    filed = rstack.call("POST", path, who="water_department", json=report)
    assert filed.status_code == 201, filed.text
    town = {"participant": TOWNSHIP_A, "kind": "campaign_report", "content": "排查纠纷3起"}
    refused = rstack.call("POST", path, who="water_department", json=town)
    assert refusal(refused)[:2] == (403, "forbidden_unit")
