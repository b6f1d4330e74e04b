"""Dispute supervision (督办, 篇4) over HTTP: each assignment names its stability-control person
(稳控责任人; older ones read 未指定), supervisions are recorded in the seed's forms and must grow
stronger each time the 三三制 steps are exhausted (发函 → 会议 → 现场 → 通报), and joint meetings
(联席会议) are recorded with attendees and decisions and listed on every linked assignment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.dispatch.conftest import report_incident, sent_events, usecases_of
from tests.support.errors import refusal
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

STABILITY = {"name": "王稳控", "phone": "13800000001", "unit": "乡派出所"}


def assign(stack: Stack, incident: str, **extra: Any) -> dict[str, Any]:
    body = {
        "incident_id": incident,
        "responsible_leader": "李副乡长",
        "responsible_unit": "乡综治办",
        "due_at": (stack.clock.now() + timedelta(days=2)).isoformat(),
        "stability_contact": STABILITY,
        **extra,
    }
    response = stack.call("POST", "/v1/assignments", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def supervise(stack: Stack, aid: str, form: str, **kw: Any) -> Any:
    body = {"form": form, "on": stack.clock.now().date().isoformat(), "by": "县综治办"}
    return stack.call("POST", f"/v1/assignments/{aid}/supervisions", json=body, **kw)


def exhaust(stack: Stack, aid: str, level: str) -> None:
    for _ in range(3):
        attempt = {"level": level, "outcome": "unresolved", "note": "调解未果"}
        made = stack.call("POST", f"/v1/assignments/{aid}/attempts", json=attempt)
        assert made.status_code == 201, made.text


def test_a_new_assignment_names_its_stability_control_person(dstack: Stack) -> None:
    incident = report_incident(dstack, category="dispute")
    missing = {
        "incident_id": incident,
        "responsible_leader": "李副乡长",
        "responsible_unit": "乡综治办",
        "due_at": (dstack.clock.now() + timedelta(days=2)).isoformat(),
    }
    status, _, paths = refusal(dstack.call("POST", "/v1/assignments", json=missing))
    assert status == 422 and "stability_contact" in paths
    created = assign(dstack, incident)
    assert created["stability_contact"] == STABILITY
    assert created["stability_contact_text"] == "王稳控（乡派出所，13800000001）"


def test_an_older_assignment_reads_as_unnamed(dstack: Stack) -> None:
    incident = report_incident(dstack, category="dispute")
    aid = assign(dstack, incident)["id"]
    repo = usecases_of(dstack).repo
    doc = repo.assignment(aid)
    assert doc is not None
    # An assignment written before the field existed.
    repo.change_assignment(aid, doc["version"], {"stability_contact": None}, {}, [], [])
    view = dstack.call("GET", f"/v1/assignments/{aid}").json()
    assert view["stability_contact"] is None and view["stability_contact_text"] == "未指定"


def test_the_form_grows_stronger_as_the_steps_are_exhausted(dstack: Stack) -> None:
    incident = report_incident(dstack, category="dispute")
    aid = assign(dstack, incident)["id"]
    first = supervise(dstack, aid, "letter")
    assert first.status_code == 201, first.text
    assert first.json()["supervision_required_form"] == "letter"
    exhaust(dstack, aid, "group")
    view = dstack.call("GET", f"/v1/assignments/{aid}").json()
    assert view["supervision_required_form"] == "meeting"
    assert view["supervision_required_form_label"] == "会议"
    weak = supervise(dstack, aid, "letter")
    assert refusal(weak) == (409, "supervision_form_too_weak", ["form"])
    assert "会议" in weak.json()["error"]["message"]
    assert supervise(dstack, aid, "meeting").status_code == 201
    moved = dstack.call("POST", f"/v1/assignments/{aid}/escalate", json={"reason": "三次未果"})
    assert moved.json()["supervision_required_form"] == "meeting"
    exhaust(dstack, aid, "village")
    assert supervise(dstack, aid, "meeting").status_code == 409
    onsite = supervise(dstack, aid, "onsite")
    assert onsite.status_code == 201
    forms = [(s["form"], s["form_label"]) for s in onsite.json()["supervisions"]]
    assert forms == [("letter", "发函"), ("meeting", "会议"), ("onsite", "现场")]
    # A stronger form than required is always allowed.
    assert supervise(dstack, aid, "notice").status_code == 201


def test_a_supervision_is_recorded_once_per_key_with_its_event(dstack: Stack) -> None:
    incident = report_incident(dstack, category="dispute")
    aid = assign(dstack, incident)["id"]
    headers = {"Idempotency-Key": "sup-1"}
    supervise(dstack, aid, "letter", headers=headers)
    again = supervise(dstack, aid, "letter", headers=headers)
    assert len(again.json()["supervisions"]) == 1
    dstack.settle()
    types = [e["event_type"] for e in sent_events(dstack)]
    assert types.count("assignment_supervised") == 1
    assert refusal(supervise(dstack, aid, "fax")) == (422, "validation_failed", ["form"])


def test_joint_meetings_are_listed_on_each_linked_assignment(dstack: Stack) -> None:
    first = assign(dstack, report_incident(dstack, category="dispute"))["id"]
    second = assign(dstack, report_incident(dstack, category="dispute"))["id"]
    body = {
        "held_on": dstack.clock.now().date().isoformat(),
        "convener": "县矛盾纠纷大调解协调中心",
        "attendees": ["县司法局", "县公安局", "乡综治办"],
        "decisions": ["由司法所牵头调解", "派出所落实稳控"],
        "assignment_ids": [first, second],
    }
    held = dstack.call("POST", "/v1/joint-meetings", json=body)
    assert held.status_code == 201, held.text
    assert held.json()["linked_assignments"] == 2
    for aid in (first, second):
        meetings = dstack.call("GET", f"/v1/assignments/{aid}").json()["joint_meetings"]
        assert [m["id"] for m in meetings] == [held.json()["id"]]
        assert meetings[0]["decisions"] == body["decisions"]
    unknown = dstack.call("POST", "/v1/joint-meetings", json={**body, "assignment_ids": ["nope"]})
    assert unknown.status_code == 404
    future = (dstack.clock.now() + timedelta(days=3)).date().isoformat()
    status, _, paths = refusal(
        dstack.call("POST", "/v1/joint-meetings", json={**body, "held_on": future})
    )
    assert status == 422 and paths == ["held_on"]
    dstack.settle()
    assert [e["event_type"] for e in sent_events(dstack)].count("joint_meeting_held") == 1


def test_a_joint_meeting_is_recorded_once_per_key(dstack: Stack) -> None:
    aid = assign(dstack, report_incident(dstack, category="dispute"))["id"]
    body = {
        "held_on": dstack.clock.now().date().isoformat(),
        "convener": "乡综治办",
        "attendees": ["乡司法所"],
        "decisions": ["继续调解"],
        "assignment_ids": [aid],
    }
    headers = {"Idempotency-Key": "meeting-1"}
    first = dstack.call("POST", "/v1/joint-meetings", json=body, headers=headers)
    again = dstack.call("POST", "/v1/joint-meetings", json=body, headers=headers)
    assert first.status_code == 201 and again.json()["id"] == first.json()["id"]
    other = {**body, "decisions": ["另议"]}
    refused = dstack.call("POST", "/v1/joint-meetings", json=other, headers=headers)
    assert refusal(refused)[:2] == (409, "idempotency_conflict")
    meetings = dstack.call("GET", f"/v1/assignments/{aid}").json()["joint_meetings"]
    assert len(meetings) == 1


def test_a_supervision_key_with_another_body_is_refused(dstack: Stack) -> None:
    aid = assign(dstack, report_incident(dstack, category="dispute"))["id"]
    headers = {"Idempotency-Key": "sup-2"}
    first = supervise(dstack, aid, "letter", headers=headers)
    assert first.status_code == 201 and "request_hash" not in first.json()["supervisions"][0]
    refused = supervise(dstack, aid, "meeting", headers=headers)
    assert refusal(refused)[:2] == (409, "idempotency_conflict")
    view = dstack.call("GET", f"/v1/assignments/{aid}").json()
    assert [s["form"] for s in view["supervisions"]] == ["letter"]


# 01:30 on 7 July in the county (Asia/Shanghai) is still 6 July in UTC.
LOCAL_NIGHT = datetime(2026, 7, 6, 17, 30, tzinfo=UTC)


def meeting_on(stack: Stack, aid: str, held_on: str) -> Any:
    body = {
        "held_on": held_on,
        "convener": "县综治中心",
        "attendees": ["县司法局"],
        "decisions": ["继续调解"],
        "assignment_ids": [aid],
    }
    return stack.call("POST", "/v1/joint-meetings", json=body)


def supervise_on(stack: Stack, aid: str, on: str) -> Any:
    body = {"form": "letter", "on": on, "by": "县综治中心"}
    return stack.call("POST", f"/v1/assignments/{aid}/supervisions", json=body)


def test_a_joint_meeting_is_dated_by_the_county_day_not_utc(dstack: Stack) -> None:
    dstack.clock.set(LOCAL_NIGHT)
    aid = assign(dstack, report_incident(dstack, category="dispute"))["id"]
    held = meeting_on(dstack, aid, "2026-07-07")
    assert held.status_code == 201, held.text
    status, _, paths = refusal(meeting_on(dstack, aid, "2026-07-08"))
    assert status == 422 and paths == ["held_on"]


def test_a_supervision_is_dated_between_the_assignment_and_today(dstack: Stack) -> None:
    dstack.clock.set(LOCAL_NIGHT)
    aid = assign(dstack, report_incident(dstack, category="dispute"))["id"]
    for misdated in ("2027-07-07", "1990-01-01", "2026-07-06"):
        refused = supervise_on(dstack, aid, misdated)
        assert refusal(refused) == (422, "invalid", ["on"]), misdated
        assert "督办日期" in refused.json()["error"]["fields"][0]["reason"]
    recorded = supervise_on(dstack, aid, "2026-07-07")
    assert recorded.status_code == 201, recorded.text
    assert [s["on"] for s in recorded.json()["supervisions"]] == ["2026-07-07"]
