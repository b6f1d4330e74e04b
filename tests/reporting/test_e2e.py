"""End to end on the embedded stack: an incident reported late through intake's API, followed
up, a follow-up missed on the manual clock, finalised; chain, deadlines and timeline read back."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.reporting import service as reporting_service
from tests.reporting.support import local, report_body
from tests.support import bodies
from tests.support.stack import TOWNSHIP_A, Stack

pytestmark = pytest.mark.e2e


def incident_body(stack: Stack) -> dict[str, object]:
    """A report discovered three hours ago: late under every profile's initial limit."""
    return bodies.incident_body(
        stack.clock.now(),
        TOWNSHIP_A,
        occurred_ago=timedelta(hours=3, minutes=10),
        discovered_ago=timedelta(hours=3),
        casualties={"deaths": 0, "injured": 1, "missing": 0, "trapped": 0},
    )


def test_incident_reported_late_followed_up_and_finalised(stack: Stack) -> None:
    stack.clock.set(local(2026, 7, 6, 10))
    created = stack.call("POST", "/v1/incidents", who="township_a", json=incident_body(stack))
    assert created.status_code == 201, created.text
    assert created.json()["grade"] == 4  # one injured: Ⅳ 一般
    iid = created.json()["id"]
    stack.settle()

    chain = stack.call("GET", "/v1/reports", params={"incident_id": iid}).json()
    assert chain["items"][0]["kind"] == "initial" and chain["items"][0]["late"] is True
    initial = stack.call("GET", "/v1/deadlines", params={"incident_id": iid, "kind": "initial"})
    assert initial.json()["items"][0]["late"] is True

    # A follow-up with higher figures: intake re-grades from it.
    stack.clock.set(local(2026, 7, 6, 15))
    followup = stack.call(
        "POST",
        "/v1/reports",
        who="township_a",
        json=report_body(
            iid,
            casualties={"deaths": 3, "injured": 4, "missing": 0, "trapped": 0},
            affected={
                "people_affected": 300,
                "people_evacuated": 120,
                "houses_damaged": 10,
                "houses_collapsed": 1,
                "direct_loss_cny": 400000,
            },
        ),
    )
    assert followup.status_code == 201 and followup.json()["number"] == 1
    stack.settle()
    # Three deaths reach the Ⅲ threshold (3–9 deaths): re-graded from Ⅳ to Ⅲ, one step.
    incident = stack.call("GET", f"/v1/incidents/{iid}").json()
    assert incident["grade"] == 3
    regraded = incident["history"][-1]
    assert (regraded["kind"], regraded["old_grade"], regraded["new_grade"]) == ("regraded", 4, 3)
    assert regraded["skipped_grades"] is False
    chain = stack.call("GET", "/v1/reports", params={"incident_id": iid}).json()
    assert chain["grade"] == 3
    # The new grade's clocks: an escalation report (met by this follow-up) and follow-ups
    # before 08:00 as well as 17:00; the Ⅳ slot of tomorrow 17:00 is cancelled.
    clocks = stack.call("GET", "/v1/deadlines", params={"incident_id": iid}).json()["items"]
    [escalation] = [d for d in clocks if d["kind"] == "escalation"]
    assert (escalation["grade"], escalation["status"]) == (3, "met")
    assert escalation["met_by"] == followup.json()["id"]
    planned = [(d["grade"], d["due_at"]) for d in clocks if d["status"] == "pending"]
    assert planned == [(3, local(2026, 7, 7, 8).isoformat().replace("+00:00", "Z"))]
    cancelled = [d for d in clocks if d["status"] == "cancelled"]
    assert [(d["grade"], d["cancel_reason"]) for d in cancelled] == [
        (4, "事件由Ⅳ级调整为Ⅲ级，原时限作废")
    ]

    # The next follow-up slot passes unfiled: overdue on the manual clock.
    pending = stack.call(
        "GET", "/v1/deadlines", params={"incident_id": iid, "status": "pending"}
    ).json()["items"]
    assert pending, "a follow-up slot is planned while the incident is open"
    stack.clock.set(local(2026, 7, 7, 8, 5))
    reporting_service.scan_deadlines(stack.ctx("reporting"))
    stack.settle()
    overdue = stack.call(
        "GET", "/v1/deadlines", params={"incident_id": iid, "status": "overdue"}
    ).json()["items"]
    assert [d["kind"] for d in overdue] == ["followup"]

    # The final report closes the chain, and intake closes the incident.
    stack.clock.set(local(2026, 7, 7, 9))
    final = stack.call(
        "POST",
        "/v1/reports",
        who="township_a",
        json=report_body(
            iid,
            "final",
            casualties={"deaths": 3, "injured": 4, "missing": 0, "trapped": 0},
            affected={
                "people_affected": 300,
                "people_evacuated": 120,
                "houses_damaged": 10,
                "houses_collapsed": 1,
                "direct_loss_cny": 400000,
            },
        ),
    )
    assert final.status_code == 201, final.text
    stack.settle()
    assert stack.call("GET", f"/v1/incidents/{iid}").json()["status"] == "closed"
    chain = stack.call("GET", "/v1/reports", params={"incident_id": iid}).json()
    assert [i["kind"] for i in chain["items"]] == ["initial", "followup", "final"]
    assert chain["status"] == "closed" and chain["finalised"] is True
    everything = stack.call("GET", "/v1/deadlines", params={"incident_id": iid}).json()["items"]
    assert not [d for d in everything if d["status"] in ("pending", "overdue")]
    assert not [d for d in everything if d["kind"] == "final"]  # filed before any was due

    timeline = stack.call("GET", f"/v1/timeline/{iid}").json()["items"]
    types = [i["event_type"] for i in timeline]
    assert types[0] == "incident_reported"
    for expected in ("followup_filed", "report_overdue", "final_report_filed", "incident_closed"):
        assert expected in types
    assert {"intake", "reporting"} <= {i["source"] for i in timeline}
    [regrade] = [i for i in timeline if i["event_type"] == "incident_regraded"]
    assert (regrade["payload"]["old_grade"], regrade["payload"]["new_grade"]) == (4, 3)
    assert types.index("final_report_filed") < types.index("incident_closed")

    html = stack.call("GET", "/v1/summaries/daily", params={"date": "2026-07-06", "format": "html"})
    assert html.status_code == 200 and "突发事件信息日报" in html.text and "<svg" in html.text


def test_a_final_report_after_the_leaders_close_raises_the_grade_without_new_clocks(
    stack: Stack,
) -> None:
    """A leader ends the response; the final report then owed brings three deaths: the
    incident and its chain become Ⅲ, and a closed incident gets no escalation or follow-up."""
    stack.clock.set(local(2026, 7, 6, 10))
    body = bodies.incident_body(
        stack.clock.now(),
        TOWNSHIP_A,
        casualties={"deaths": 2, "injured": 0, "missing": 0, "trapped": 0},
    )
    iid = stack.call("POST", "/v1/incidents", who="township_a", json=body).json()["id"]
    stack.settle()
    closed = stack.call(
        "POST", f"/v1/incidents/{iid}/close", who="leader", json={"reason": "应急响应结束"}
    )
    assert closed.status_code == 200, closed.text
    stack.settle()
    stack.clock.set(local(2026, 7, 8, 9))
    deaths = {"deaths": 3, "injured": 0, "missing": 0, "trapped": 0}
    final_body = report_body(iid, "final", casualties=deaths, affected=body["affected"])
    final = stack.call("POST", "/v1/reports", who="township_a", json=final_body)
    assert final.status_code == 201, final.text
    stack.settle()
    incident = stack.call("GET", f"/v1/incidents/{iid}").json()
    assert (incident["status"], incident["closed_by"]) == ("closed", "leader")
    assert (incident["grade"], incident["casualties"]["deaths"]) == (3, 3)
    chain = stack.call("GET", "/v1/reports", params={"incident_id": iid}).json()
    assert (chain["grade"], chain["finalised"]) == (3, True)
    clocks = stack.call("GET", "/v1/deadlines", params={"incident_id": iid}).json()["items"]
    assert not [d for d in clocks if d["status"] in ("pending", "overdue")]
    assert not [d for d in clocks if d["kind"] == "escalation"]
    assert [d["status"] for d in clocks if d["kind"] == "final"] == ["met"]
    timeline = stack.call("GET", f"/v1/timeline/{iid}").json()["items"]
    types = [i["event_type"] for i in timeline]
    assert types.index("incident_closed") < types.index("incident_regraded")
