"""What a township key may learn, and what drills may touch, on reporting's routes.

- Another township's incident is as if unknown (404, the same answer as an id nobody knows)
  on the timeline, the report chain and filing a report: no answer tells that it exists.
- Of warnings, an incident's timeline shows a township only issued versions: never a draft
  awaiting approval, its approval or rejection, or a suggestion (the duty office sees all).
- Drill zero and epidemic reports are refused for days before the county's start, as real
  ones are, with nothing written.
- A drill enterprise is named only for a drill incident.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import pytest

from libs.common.events import registered_event_types
from services.reporting import domain
from services.reporting.epidemic import service as epidemic_service
from tests.reporting.support import emit, incident_reported, local, report_body, zero_body
from tests.support.errors import refusal
from tests.support.stack import TOWNSHIP_A, TOWNSHIP_B, Stack

pytestmark = pytest.mark.e2e


def _error(response: Any, incident_id: str) -> dict[str, Any]:
    """The error body with the incident id asked for taken out, to compare two answers."""
    text = response.text.replace(incident_id, "<id>")
    return {"status": response.status_code, "body": text}


# ------------------------------------------------------------ another township's incident


def test_another_townships_incident_is_as_if_unknown(rstack: Stack) -> None:
    """Timeline, JSON report chain and filing a report: 404 exactly as for an unknown id."""
    iid = incident_reported(rstack, township_code=TOWNSHIP_A).payload["incident_id"]
    unknown = f"inc-{uuid.uuid4().hex[:10]}"
    probes = {
        "timeline": lambda i: rstack.call("GET", f"/v1/timeline/{i}", who="township_b"),
        "chain": lambda i: rstack.call(
            "GET", "/v1/reports", who="township_b", params={"incident_id": i}
        ),
        "file": lambda i: rstack.call("POST", "/v1/reports", who="township_b", json=report_body(i)),
    }
    for name, probe in probes.items():
        other, nobody = probe(iid), probe(unknown)
        assert other.status_code == 404, (name, other.text)
        assert "349901" not in other.json()["error"]["message"], name
        assert _error(other, iid) == _error(nobody, unknown), name
    # Nothing was filed by the refused POST; the owner still reads and files.
    chain = rstack.call("GET", "/v1/reports", who="township_a", params={"incident_id": iid})
    assert chain.status_code == 200 and len(chain.json()["items"]) == 1
    own = rstack.call("POST", "/v1/reports", who="township_a", json=report_body(iid))
    assert own.status_code == 201, own.text
    assert rstack.call("GET", f"/v1/timeline/{iid}", who="township_a").status_code == 200
    # The county's roles are not townships: they read any incident.
    assert rstack.call("GET", f"/v1/timeline/{iid}", who="operator").status_code == 200


def test_an_information_item_cannot_probe_another_townships_incident(rstack: Stack) -> None:
    """Linking an item to another township's incident is refused as for an unknown one."""
    iid = incident_reported(rstack, township_code=TOWNSHIP_A).payload["incident_id"]
    item = {
        "unit_kind": "township",
        "unit_code": TOWNSHIP_B,
        "kind": "info",
        "title": "雨情简报",
        "body": "受上游来水影响，城关镇河段水位较昨日上涨0.8米，已安排专人巡查。",
    }
    other = rstack.call(
        "POST", "/v1/information/items", who="township_b", json={**item, "incident_id": iid}
    )
    nobody = rstack.call(
        "POST", "/v1/information/items", who="township_b", json={**item, "incident_id": "inc-x"}
    )
    assert refusal(other) == refusal(nobody) == (422, "invalid", ["incident_id"])
    assert other.json()["error"]["fields"] == nobody.json()["error"]["fields"]


# ------------------------------------------------------------ warning drafts on the timeline

DRAFT_HEADLINE = "草稿：城关镇暴雨橙色预警"


def _version(warning_id: str, incident_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "warning_id": warning_id,
        "version": 1,
        "level": 2,
        "color": "orange",
        "hazard": "rainstorm",
        "areas": [TOWNSHIP_A],
        "exercise": False,
        "incident_ids": [incident_id],
        **extra,
    }


def test_a_townships_timeline_shows_issued_warnings_only(rstack: Stack) -> None:
    """A draft linked to the township's own incident waits for a leader, is rejected, is
    drafted again and issued: the township sees the issued version only, the duty office all."""
    now = rstack.clock.now()
    iid = incident_reported(rstack, township_code=TOWNSHIP_A).payload["incident_id"]
    draft = _version("W-draft", iid, msg_type="Alert", headline=DRAFT_HEADLINE, requested_at=now)
    emit(rstack, "warning", "warning_approval_requested", draft, correlation_id=iid)
    decided = {
        "warning_id": "W-draft",
        "version": 1,
        "decision": "rejected",
        "decided_by": "王县长",
        "decided_at": now,
        "note": "范围有误",
        "incident_ids": [iid],
        "exercise": False,
    }
    emit(rstack, "warning", "warning_approval_decided", decided, correlation_id=iid)
    suggestion = {
        "suggestion_id": "S-1",
        "incident_id": iid,
        "hazard": "rainstorm",
        "level": 2,
        "areas": [TOWNSHIP_A],
        "exercise": False,
    }
    emit(rstack, "warning", "warning_suggested", suggestion, correlation_id=iid)
    issued = _version(
        "W-issued",
        iid,
        headline="城关镇暴雨橙色预警",
        effective=now,
        expires=local(2026, 7, 7, 12),
        issued_by="气象局",
        approved_by="王县长",
    )
    emit(rstack, "warning", "warning_issued", issued, correlation_id=iid)

    def kinds(who: str) -> list[str]:
        response = rstack.call("GET", f"/v1/timeline/{iid}", who=who)
        assert response.status_code == 200, response.text
        assert who != "township_a" or DRAFT_HEADLINE not in response.text
        return [i["event_type"] for i in response.json()["items"]]

    assert kinds("township_a") == ["incident_reported", "warning_issued"]
    assert sorted(kinds("operator")) == sorted(
        [
            "incident_reported",
            "warning_approval_requested",
            "warning_approval_decided",
            "warning_suggested",
            "warning_issued",
        ]
    )


@pytest.mark.unit
def test_every_warning_event_type_is_classified_for_townships() -> None:
    """Of the warning service's events (services/warning/events.py), a township sees what
    follows an issued version; the drafting and approval stay with the county."""
    warning_types = {t for _, t in registered_event_types("warning")}
    hidden = {t for t in warning_types if not domain.township_may_see_event({"event_type": t})}
    assert hidden == {
        "warning_suggested",
        "warning_approval_requested",
        "warning_approval_decided",
    }
    assert warning_types >= domain.TOWNSHIP_WARNING_EVENTS
    assert domain.township_may_see_event({"event_type": "incident_reported", "source": "intake"})
    # A warning event type added later is county-only until it is named.
    assert not domain.township_may_see_event({"event_type": "warning_new", "source": "warning"})


# ------------------------------------------------------------ drills before the start

ANCIENT = "0777-07-07"


def test_a_drill_zero_report_may_rehearse_a_day_before_the_start(rstack: Stack) -> None:
    """The stack first started on 2026-07-06: a drill for 07-05 is kept apart (a drill on a
    county's first day files for the day before), a real one is refused, and a day in the year
    777 is refused by its field for both, with nothing written."""
    drill = zero_body(TOWNSHIP_A, date(2026, 7, 5), exercise=True)
    assert rstack.call("POST", "/v1/zero-reports", who="township_a", json=drill).status_code == 201
    real = zero_body(TOWNSHIP_A, date(2026, 7, 5))
    refused = rstack.call("POST", "/v1/zero-reports", who="township_a", json=real)
    assert refusal(refused) == (422, "invalid_zero_report", ["date"]), refused.text
    assert "2026-07-06" in refused.json()["error"]["fields"][0]["reason"]
    status = rstack.call("GET", "/v1/zero-reports", params={"date": "2026-07-05"}).json()
    assert [r["township_code"] for r in status["exercise_filed"]] == [TOWNSHIP_A]
    assert status["filed"] == []
    for exercise in (True, False):
        ancient = {**zero_body(TOWNSHIP_A, date(2026, 7, 5), exercise=exercise), "date": ANCIENT}
        answer = rstack.call("POST", "/v1/zero-reports", who="township_a", json=ancient)
        assert refusal(answer) == (422, "validation_failed", ["date"]), answer.text
        assert "1900 至 2999" in answer.json()["error"]["fields"][0]["reason"]


def test_a_drill_epidemic_report_may_rehearse_a_day_before_the_start(rstack: Stack) -> None:
    """A drill for the day before the start is filed; the year 777 is refused by its field
    before any of the unit's ten reports is written."""
    repo = epidemic_service.use_cases(rstack.ctx("reporting")).repo
    body = {
        "unit_id": "H02",
        "date": "2026-07-05",
        "zero_for_rest": True,
        "exercise": True,
        "reporter": {"name": "钱玉兰", "phone": "13900001002"},
    }
    ok = rstack.call("POST", "/v1/epidemic/reports", json=body)
    assert ok.status_code == 200 and ok.json()["created"] == 10, ok.text
    real = rstack.call("POST", "/v1/epidemic/reports", json={**body, "exercise": False})
    assert refusal(real) == (422, "invalid_epidemic_report", ["date"]), real.text
    ancient = rstack.call("POST", "/v1/epidemic/reports", json={**body, "date": ANCIENT})
    assert refusal(ancient) == (422, "validation_failed", ["date"]), ancient.text
    assert repo.reports_of_day(ANCIENT, True) == []


def test_the_epidemic_conflict_is_told_in_chinese(rstack: Stack) -> None:
    body = {
        "unit_id": "H02",
        "date": "2026-07-06",
        "entries": [{"disease_code": "hfmd", "cases": 1, "case_report": "东街幼儿园1例"}],
        "zero_for_rest": True,
        "reporter": {"name": "钱玉兰", "phone": "13900001002"},
    }
    assert rstack.call("POST", "/v1/epidemic/reports", json=body).status_code == 200
    body["entries"][0]["cases"] = 2
    refused = rstack.call("POST", "/v1/epidemic/reports", json=body)
    assert refusal(refused) == (409, "epidemic_report_exists", ["entries.0"])
    message = refused.json()["error"]["message"]
    assert "传染病日报" in message and "already" not in message and "filed" not in message


# ------------------------------------------------------------ a drill enterprise


def _enterprise(stack: Stack, enterprise_id: str, name: str, exercise: bool) -> None:
    emit(
        stack,
        "dispatch",
        "enterprise_registered",
        {
            "enterprise_id": enterprise_id,
            "revision": 1,
            "name": name,
            "township_code": TOWNSHIP_A,
            "risk_level": "major",
            "responsible": {"name": "赵厂长", "phone": "13800000001"},
            "safety_officer": {"name": "钱安全", "phone": "13800000002"},
            "exercise": exercise,
        },
        correlation_id=enterprise_id,
    )


def _named(stack: Stack, incident_id: str) -> Any:
    chain = stack.call("GET", "/v1/reports", params={"incident_id": incident_id})
    assert chain.status_code == 200, chain.text
    return chain.json()["enterprise"]


def test_a_drill_enterprise_is_named_only_for_a_drill_incident(rstack: Stack) -> None:
    _enterprise(rstack, "E-drill", "演练：城关化工", exercise=True)
    _enterprise(rstack, "E-real", "城关化工有限公司", exercise=False)
    real = incident_reported(rstack, enterprise_id="E-drill").payload["incident_id"]
    drill = incident_reported(rstack, enterprise_id="E-drill", exercise=True)
    real_named = incident_reported(rstack, enterprise_id="E-real").payload["incident_id"]
    drill_real = incident_reported(rstack, enterprise_id="E-real", exercise=True)
    assert _named(rstack, real) == {"id": "E-drill", "name": None}
    assert _named(rstack, drill.payload["incident_id"]) == {
        "id": "E-drill",
        "name": "演练：城关化工",
    }
    assert _named(rstack, real_named) == {"id": "E-real", "name": "城关化工有限公司"}
    assert _named(rstack, drill_real.payload["incident_id"])["name"] == "城关化工有限公司"
