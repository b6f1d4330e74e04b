"""Upward reporting to the city against a fake city started by each test: receipts, failures
with back-off, a slow city, duplicate receipts, a restart with pushes waiting, pushes held for
their incident, 迟报 upward, the CAP document of a warning, and the city's instructions."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from services.reporting.duty.usecases import DutyUseCases
from services.reporting.service import SPEC
from tests.duty.support import TOKEN, FakeCityServer, quiet_timers
from tests.reporting.support import emit, events_of, incident_reported, publish
from tests.support.stack import TOWNSHIP_A, Stack, running_stack

pytestmark = pytest.mark.fault

CAP = "{urn:oasis:names:tc:emergency:cap:1.2}"


def duty(stack: Stack) -> DutyUseCases:
    """The stack's duty office use cases (the timers call the same)."""
    found: DutyUseCases = stack.ctx("reporting").resources["duty_usecases"]
    return found


def deliver(stack: Stack) -> dict[str, int]:
    """One run of the delivery timer, then let its events go out."""
    outcome = duty(stack).deliver_due()
    stack.settle()
    return outcome


def pushes(stack: Stack, **params: str) -> list[dict[str, Any]]:
    """Pushes as the console reads them."""
    response = stack.call("GET", "/v1/duty/upward", params=params)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def timeline(stack: Stack, incident_id: str) -> list[str]:
    """The incident's timeline sentences."""
    response = stack.call("GET", f"/v1/timeline/{incident_id}")
    assert response.status_code == 200, response.text
    return [item["summary"] for item in response.json()["items"]]


def test_grade_three_goes_up_once_with_its_receipt_and_grade_four_stays(
    ustack: Stack, upward_env: FakeCityServer
) -> None:
    serious = incident_reported(ustack, grade=3).payload["incident_id"]
    incident_reported(ustack, grade=4)
    assert [p["incident_id"] for p in pushes(ustack)] == [serious]
    assert deliver(ustack) == {"delivered": 1, "failed": 0}
    (doc,) = upward_env.city.documents("initial")
    assert doc["sitrep"]["incidentID"] == serious
    assert doc["信息专报"]["事件级别"] == 3
    assert upward_env.city.tokens == [f"Bearer {TOKEN}"]
    (push,) = pushes(ustack)
    assert push["status"] == "delivered" and push["receipt"].startswith("R-")
    assert push["late"] is False
    assert any(s.startswith("已上报市：首报") for s in timeline(ustack, serious))
    assert deliver(ustack) == {"delivered": 0, "failed": 0}


def test_a_failing_city_is_retried_with_back_off_until_it_gives_a_receipt(
    ustack: Stack, upward_env: FakeCityServer
) -> None:
    upward_env.city.mode = "fail"
    incident_id = incident_reported(ustack, grade=2).payload["incident_id"]
    assert deliver(ustack) == {"delivered": 0, "failed": 1}
    (push,) = pushes(ustack)
    assert push["status"] == "pending" and push["last_error"] == "上级平台返回 HTTP 503"
    assert "上报失败：首报，上级平台返回 HTTP 503（第1次）" in timeline(ustack, incident_id)
    # Not due again before its back-off has passed, however often the timer runs.
    assert deliver(ustack) == {"delivered": 0, "failed": 0}
    upward_env.city.mode = "ok"
    ustack.clock.advance(timedelta(seconds=31))
    assert deliver(ustack) == {"delivered": 1, "failed": 0}
    assert pushes(ustack)[0]["attempts"] == 2
    assert any(s.startswith("已上报市") for s in timeline(ustack, incident_id))


def test_a_slow_city_times_out_and_the_retry_is_taken_as_a_duplicate(
    ustack: Stack, upward_env: FakeCityServer
) -> None:
    upward_env.city.mode = "slow"
    incident_reported(ustack, grade=1)
    outcome = deliver(ustack)
    assert outcome == {"delivered": 0, "failed": 1}
    assert pushes(ustack)[0]["last_error"] == "上级平台响应超时"
    upward_env.city.mode = "ok"
    ustack.clock.advance(timedelta(minutes=1))
    assert deliver(ustack) == {"delivered": 1, "failed": 0}
    # The slow answer may have stored the document too: the message id keeps it one.
    assert len(upward_env.city.documents()) == 1
    assert len(upward_env.city.deliveries) == 2


def test_the_same_decision_twice_is_one_push_and_one_message(
    ustack: Stack, upward_env: FakeCityServer
) -> None:
    envelope = incident_reported(ustack, grade=3)
    publish(ustack, envelope)  # redelivered
    assert len(pushes(ustack)) == 1
    deliver(ustack)
    upward_env.city.mode = "ok"
    again = duty(ustack).send(pushes(ustack)[0]["message_id"], pushes(ustack)[0]["document"])
    assert again.duplicate is True
    assert len(upward_env.city.documents()) == 1


def test_pending_pushes_survive_a_restart(tmp_path: Path, upward_env: FakeCityServer) -> None:
    data = tmp_path / "data"
    upward_env.city.mode = "fail"
    with running_stack(tmp_path, specs=[SPEC], data_dir=data) as first:
        quiet_timers(first)
        incident_id = incident_reported(first, grade=2).payload["incident_id"]
        deliver(first)
        assert pushes(first)[0]["status"] == "pending"
        later = first.clock.now() + timedelta(minutes=5)
    upward_env.city.mode = "ok"
    with running_stack(tmp_path, specs=[SPEC], data_dir=data, start=later) as second:
        # The restarted timer's first pass may deliver it before the test's own run does.
        quiet_timers(second)
        deliver(second)
        (push,) = pushes(second)
        assert push["incident_id"] == incident_id and push["status"] == "delivered"
        assert len(upward_env.city.documents("initial")) == 1


def test_a_follow_up_before_its_incident_waits_then_goes_after_it(
    ustack: Stack, upward_env: FakeCityServer
) -> None:
    incident_id = "inc-early-followup"
    emit(
        ustack,
        "reporting",
        "followup_filed",
        {
            "report_id": "rep-1",
            "incident_id": incident_id,
            "township_code": TOWNSHIP_A,
            "number": 1,
            "casualties": {"deaths": 1, "injured": 0, "missing": 0, "trapped": 0},
            "affected": {},
        },
    )
    assert [p["status"] for p in pushes(ustack)] == ["held"]
    assert deliver(ustack) == {"delivered": 0, "failed": 0}
    incident_reported(ustack, incident_id=incident_id, grade=2)
    assert deliver(ustack) == {"delivered": 2, "failed": 0}
    assert {d["kind"] for d in upward_env.city.documents()} == {"initial", "followup"}


def test_a_push_after_the_national_limit_is_flagged_late(
    ustack: Stack, upward_env: FakeCityServer
) -> None:
    discovered = ustack.clock.now() - timedelta(hours=4)  # national: 60 + 120 minutes
    incident_id = incident_reported(ustack, grade=3, discovered_at=discovered).payload[
        "incident_id"
    ]
    deliver(ustack)
    assert pushes(ustack)[0]["late"] is True
    (sent,) = events_of(ustack, "upward_report_sent")
    assert sent["payload"]["late"] is True
    assert any(s.endswith("，迟报") for s in timeline(ustack, incident_id))


def test_a_warning_goes_up_with_its_cap_document(ustack: Stack, upward_env: FakeCityServer) -> None:
    now = ustack.clock.now()
    emit(
        ustack,
        "warning",
        "warning_issued",
        {
            "warning_id": "w-1",
            "version": 1,
            "level": 2,
            "color": "orange",
            "hazard": "rainstorm",
            "areas": [TOWNSHIP_A],
            "headline": "暴雨橙色预警",
            "effective": now,
            "expires": now + timedelta(hours=6),
        },
    )
    deliver(ustack)
    (doc,) = upward_env.city.documents("warning")
    alert = ET.fromstring(doc["cap"].encode())
    assert alert.findtext(f"{CAP}msgType") == "Alert"
    assert alert.findtext(f"{CAP}info/{CAP}severity") == "Severe"
    assert alert.findtext(f"{CAP}info/{CAP}headline") == "暴雨橙色预警"
    assert alert.findtext(f"{CAP}identifier") == doc["messageId"]


def test_the_daily_report_goes_up(ustack: Stack, upward_env: FakeCityServer) -> None:
    now = ustack.clock.now()
    payload = {
        "summary_id": "daily-2026-07-06",
        "kind": "daily",
        "period_start": now - timedelta(days=1),
        "period_end": now,
    }
    emit(ustack, "reporting", "summary_published", payload)
    deliver(ustack)
    (doc,) = upward_env.city.documents("daily")
    assert doc["sitrep"]["summaryID"] == "daily-2026-07-06"


def test_the_citys_instruction_is_recorded_and_owed_by_the_township(
    ustack: Stack, upward_env: FakeCityServer
) -> None:
    incident_id = incident_reported(ustack, grade=2).payload["incident_id"]
    deliver(ustack)
    body = {
        "request_id": "city-req-1",
        "incident_id": incident_id,
        "kind": "more_info",
        "text": "请于两小时内续报人员搜救进展",
    }
    path = "/v1/duty/upstream/requests"
    # The city calls back with the leader key the county issued to it; no other role may.
    for refused in ("operator", "township_a", "department"):
        assert ustack.call("POST", path, who=refused, json=body).status_code == 403
    assert ustack.client.post(path, json=body).status_code == 401
    first = ustack.call("POST", path, who="leader", json=body)
    assert first.status_code == 201, first.text
    assert first.json()["received_via"] == "leader"
    again = ustack.call("POST", path, who="leader", json={**body, "text": "改过的内容"})
    assert again.status_code == 200 and again.json()["text"] == body["text"]
    unknown = ustack.call("POST", path, who="leader", json={**body, "incident_id": "nobody"})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["fields"][0]["path"] == "incident_id"
    ustack.settle()
    (event,) = events_of(ustack, "upstream_request_received")
    assert event["payload"]["township_code"] == TOWNSHIP_A
    due = first.json()["due_at"]
    assert event["payload"]["due_at"] == due
    # Reporting's deadline engine takes it up: the township owes it like any other report.
    owed = ustack.call("GET", "/v1/deadlines", params={"kind": "upstream_request"}).json()
    (deadline,) = owed["items"]
    assert deadline["incident_id"] == incident_id and deadline["township_code"] == TOWNSHIP_A
    assert deadline["status"] == "pending" and deadline["due_at"] == due
    assert any(s.startswith("市级续报要求") for s in timeline(ustack, incident_id))
    view = ustack.call("GET", f"/v1/duty/incidents/{incident_id}/upward").json()
    assert [r["id"] for r in view["requests"]] == ["city-req-1"]


def test_upward_reporting_is_off_without_a_city_url(dstack: Stack) -> None:
    incident_reported(dstack, grade=1)
    answer = dstack.call("GET", "/v1/duty/upward").json()
    assert answer["enabled"] is False and answer["items"] == []
    assert duty(dstack).deliver_due() == {"delivered": 0, "failed": 0}
    # Nothing went up, so the city has nothing to answer about.
    refused = dstack.call(
        "POST",
        "/v1/duty/upstream/requests",
        who="leader",
        json={"request_id": "x", "incident_id": "y", "kind": "instruction", "text": "批示"},
    )
    assert refused.status_code == 404


def test_a_drill_incident_goes_up_marked_as_an_exercise_and_counts_for_nothing(
    ustack: Stack, upward_env: FakeCityServer
) -> None:
    discovered = ustack.clock.now() - timedelta(hours=5)
    incident_reported(ustack, grade=2, discovered_at=discovered, exercise=True)
    deliver(ustack)
    (doc,) = upward_env.city.documents("initial")
    assert doc["status"] == "Exercise"
    (push,) = pushes(ustack)
    assert push["exercise"] is True and push["late"] is True
    assert duty(ustack).upward_status()["counts"] == {"pending": 0, "held": 0, "delivered": 0}
    month = ustack.call("GET", "/v1/duty/monthly", params={"month": "2026-07"}).json()
    assert month["tally"]["late_pushes"] == 0
    (sent,) = events_of(ustack, "upward_report_sent")
    assert sent["payload"]["exercise"] is True


def test_a_closed_incident_raised_to_grade_three_by_its_final_report_goes_up(
    ustack: Stack, upward_env: FakeCityServer
) -> None:
    """The final report after a leader's close can show a 较大 event: it still goes upward."""
    incident_id = incident_reported(ustack, grade=4, deaths=2).payload["incident_id"]
    assert pushes(ustack) == []
    emit(
        ustack,
        "intake",
        "incident_closed",
        {
            "incident_id": incident_id,
            "township_code": TOWNSHIP_A,
            "closed_by": "leader",
            "reason": "应急响应结束",
            "exercise": False,
        },
        correlation_id=incident_id,
    )
    emit(
        ustack,
        "intake",
        "incident_regraded",
        {
            "incident_id": incident_id,
            "township_code": TOWNSHIP_A,
            "category": "flood",
            "old_grade": 4,
            "new_grade": 3,
            "reason": "终报：死亡3人（Ⅲ级标准3人及以上）",
            "skipped_grades": False,
            "exercise": False,
            "escalated": False,
            "escalation_reasons": [],
            "casualties": {"deaths": 3, "injured": 0, "missing": 0, "trapped": 0},
            "affected": {},
            "people_involved": None,
        },
        correlation_id=incident_id,
    )
    (push,) = pushes(ustack)
    assert (push["incident_id"], push["kind"]) == (incident_id, "initial")
    assert deliver(ustack) == {"delivered": 1, "failed": 0}
    (doc,) = upward_env.city.documents("initial")
    assert doc["信息专报"]["事件级别"] == 3
