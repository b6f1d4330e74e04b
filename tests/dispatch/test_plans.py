"""Response plans (预案启动) from warnings, incidents and operators; every event delivered twice."""

from __future__ import annotations

from typing import Any

from services.dispatch import events
from services.dispatch.service import repair
from tests.dispatch.conftest import (
    QINGSHI,
    TOWN,
    deliver_twice,
    envelope,
    incident_payload,
    report_incident,
    sent_events,
    team,
    usecases_of,
    warning_payload,
)
from tests.support.stack import Stack


def _plan(stack: Stack, plan_id: str, who: str = "operator") -> Any:
    return stack.call("GET", f"/v1/plans/{plan_id}", who=who)


def _published(stack: Stack, event_type: str) -> list[dict[str, Any]]:
    """Events of a type the dispatch service has written (outbox or sent journal)."""
    return [e for e in sent_events(stack) if e["event_type"] == event_type]


def test_orange_warning_activates_then_steps_down_then_ends(dstack: Stack) -> None:
    payload = warning_payload(dstack, level=2, hazard="flood", areas=[QINGSHI, "349901102"])
    issued = envelope(dstack, "warning", "warning_issued", payload)
    assert deliver_twice(dstack, issued) == (True, False)
    plan_id = f"warning-{payload['warning_id']}"
    plan = _plan(dstack, plan_id).json()
    assert plan["status"] == "active" and plan["level"] == 2 and plan["scope"] == "township"
    # Flood teams based in 青石镇 (T04) and 柳湾镇 (T09) go on standby, nobody else.
    assert plan["teams_on_standby"] == ["T04", "T09"]
    assert team(dstack, "T04")["status"] == "standby"
    assert team(dstack, "T01")["status"] == "available"

    adjusted = envelope(
        dstack,
        "warning",
        "warning_adjusted",
        {
            **payload,
            "version": 2,
            "level": 3,
            "color": "yellow",
            "old_level": 2,
            "reason": "雨势减弱",
        },
    )
    assert deliver_twice(dstack, adjusted) == (True, False)
    plan = _plan(dstack, plan_id).json()
    assert plan["level"] == 3 and plan["status"] == "active"
    assert [h["action"] for h in plan["history"]] == ["activated", "changed"]
    assert plan["reason_label"] == "预警级别为Ⅱ级"
    assert plan["history"][1]["reason_label"] == "预警由Ⅱ级调整为Ⅲ级：雨势减弱"
    assert team(dstack, "T04")["status"] == "standby"  # stepping down keeps the alert

    # A standby team sent out meanwhile must not be touched when the plan ends.
    incident = report_incident(dstack, township=QINGSHI)
    order = dstack.call(
        "POST", "/v1/dispatches", json={"incident_id": incident, "team_ids": ["T09"]}
    )
    assert order.status_code == 201

    lifted = envelope(
        dstack, "warning", "warning_lifted", {**payload, "version": 3, "level": 3, "reason": "解除"}
    )
    assert deliver_twice(dstack, lifted) == (True, False)
    plan = _plan(dstack, plan_id).json()
    assert plan["status"] == "ended" and plan["teams_released"] == ["T04"]
    assert plan["end_reason_label"] == "预警已解除：解除"
    assert team(dstack, "T04")["status"] == "available"
    assert team(dstack, "T09")["status"] == "deployed"

    types = [e["payload"]["plan_id"] for e in _published(dstack, "plan_activated")]
    assert types == [plan_id]
    assert len(_published(dstack, "plan_changed")) == 1
    ended = _published(dstack, "plan_ended")
    assert len(ended) == 1 and ended[0]["payload"]["teams_released"] == ["T04"]
    assert ended[0]["payload"]["reason_label"] == "预警已解除：解除"
    assert ended[0]["causation_id"] == lifted.event_id


def test_red_warning_is_county_level(dstack: Stack) -> None:
    payload = warning_payload(dstack, level=1, hazard="rainstorm", areas=[QINGSHI])
    deliver_twice(dstack, envelope(dstack, "warning", "warning_issued", payload))
    plan = _plan(dstack, f"warning-{payload['warning_id']}").json()
    assert plan["scope"] == "county" and plan["level_label"] == "Ⅰ级响应"
    # rainstorm → flood, evacuation, power: every matching team in the county.
    assert plan["teams_on_standby"] == [
        "T01",
        "T03",
        "T04",
        "T08",
        "T09",
        "T10",
        "T12",
        "T13",
        "T14",
    ]
    expired = envelope(dstack, "warning", "warning_expired", {**payload, "version": 1})
    assert deliver_twice(dstack, expired) == (True, False)
    assert _plan(dstack, f"warning-{payload['warning_id']}").json()["status"] == "ended"
    assert team(dstack, "T12")["status"] == "available"


def test_low_warnings_and_drills_do_not_activate(dstack: Stack) -> None:
    yellow = warning_payload(dstack, level=3)
    # Recorded in the warning view (the first time only), but no plan.
    assert deliver_twice(dstack, envelope(dstack, "warning", "warning_issued", yellow)) == (
        True,
        False,
    )
    drill = warning_payload(dstack, level=1, exercise=True)
    deliver_twice(dstack, envelope(dstack, "warning", "warning_issued", drill))
    assert dstack.call("GET", "/v1/plans").json()["items"] == []
    # Raised to orange later: now the plan starts.
    raised = {
        **yellow,
        "version": 2,
        "level": 2,
        "color": "orange",
        "old_level": 3,
        "reason": "加强",
    }
    assert deliver_twice(dstack, envelope(dstack, "warning", "warning_adjusted", raised)) == (
        True,
        False,
    )
    assert _plan(dstack, f"warning-{yellow['warning_id']}").json()["level"] == 2


def test_incident_grades_drive_the_plan(dstack: Stack) -> None:
    payload = incident_payload(dstack, category="geological", grade=3, township="349901104")
    incident = payload["incident_id"]
    deliver_twice(dstack, envelope(dstack, "intake", "incident_reported", payload))
    assert dstack.call("GET", "/v1/plans").json()["items"] == []
    regraded = {
        "incident_id": incident,
        "township_code": "349901104",
        "category": "geological",
        "old_grade": 3,
        "new_grade": 2,
        "reason": "followup",
    }
    assert deliver_twice(dstack, envelope(dstack, "intake", "incident_regraded", regraded)) == (
        True,
        False,
    )
    plan = _plan(dstack, f"incident-{incident}").json()
    assert plan["level"] == 2 and plan["teams_on_standby"] == ["T05"]
    up = {**regraded, "old_grade": 2, "new_grade": 1}
    deliver_twice(dstack, envelope(dstack, "intake", "incident_regraded", up))
    assert _plan(dstack, f"incident-{incident}").json()["level"] == 1
    closed = {
        "incident_id": incident,
        "township_code": "349901104",
        "closed_by": "leader",
        "reason": "final report",
    }
    assert deliver_twice(dstack, envelope(dstack, "intake", "incident_closed", closed)) == (
        True,
        False,
    )
    plan = _plan(dstack, f"incident-{incident}").json()
    assert plan["status"] == "ended" and plan["end_reason"].startswith("incident closed")
    assert plan["end_reason_label"] == "事件已办结：final report"
    assert [h["reason_label"] for h in plan["history"][:2]] == [
        "事件定为Ⅱ级，启动Ⅱ级响应",
        "事件调整为Ⅰ级",
    ]
    assert team(dstack, "T05")["status"] == "available"


def test_escalated_incident_starts_a_plan_whatever_its_grade(dstack: Stack) -> None:
    """篇3: 10 or more people involved → the response plan is started."""
    incident = report_incident(
        dstack,
        category="enterprise_risk",
        grade=4,
        escalated=True,
        escalation_reasons=["people_involved"],
        people_involved=12,
    )
    plan = _plan(dstack, f"incident-{incident}").json()
    assert plan["level"] == 4 and "篇3" in plan["reason"]
    assert plan["reason_label"] == "涉及10人以上（接报时已上报），启动预案"
    assert plan["teams_on_standby"] == ["T10", "T11", "T15"]


def test_a_small_escalated_dispute_starts_no_plan(dstack: Stack) -> None:
    """A 4-person petition dispute is escalated for its markers, not for 篇3's ≥ 10 people:
    the people rule must not start a plan for it."""
    incident = report_incident(
        dstack,
        category="dispute",
        grade=4,
        escalated=True,
        escalation_reasons=["petition_or_lawsuit"],
        people_involved=4,
    )
    assert _plan(dstack, f"incident-{incident}").status_code == 404


def test_operator_activates_on_a_township_request(dstack: Stack) -> None:
    body = {
        "level": 2,
        "hazard": "forest_fire",
        "township_codes": ["349901104", "349901105"],
        "requested_by": "龙潭镇人民政府",
        "requesting_township": "349901104",
        "reason": "山火蔓延，请求县级支援",
    }
    created = dstack.call("POST", "/v1/plans", json=body, headers={"Idempotency-Key": "fire-1"})
    assert created.status_code == 201, created.text
    plan = created.json()
    again = dstack.call("POST", "/v1/plans", json=body, headers={"Idempotency-Key": "fire-1"})
    assert again.json()["id"] == plan["id"]
    assert plan["trigger_kind"] == "operator" and plan["activated_by"] == "operator"
    assert plan["requested_by"] == "龙潭镇人民政府" and plan["teams_on_standby"] == ["T05"]
    assert dstack.call("GET", f"/v1/plans/{plan['id']}", who="township_a").status_code == 404
    visible = dstack.call("GET", "/v1/plans", who="township_b").json()["items"]
    assert visible == []

    bad = dstack.call("POST", "/v1/plans", json={**body, "township_codes": ["349901999"]})
    assert bad.status_code == 422 and bad.json()["error"]["fields"][0]["path"] == "township_codes.0"
    assert dstack.call("POST", "/v1/plans", who="township_a", json=body).status_code == 403

    level = dstack.call(
        "POST", f"/v1/plans/{plan['id']}/level", json={"level": 3, "reason": "火势受控"}
    )
    assert level.status_code == 200 and level.json()["level"] == 3
    ended = dstack.call("POST", f"/v1/plans/{plan['id']}/end", json={"reason": "明火扑灭"})
    assert ended.json()["end_reason_label"] == "明火扑灭"
    assert ended.status_code == 200 and ended.json()["teams_released"] == ["T05"]
    assert (
        dstack.call("POST", f"/v1/plans/{plan['id']}/end", json={"reason": "x"}).status_code == 409
    )
    assert [p["id"] for p in dstack.call("GET", "/v1/plans?status=ended").json()["items"]] == [
        plan["id"]
    ]
    assert dstack.call("GET", "/v1/plans?status=active").json()["items"] == []


def test_standby_stranded_by_a_crash_is_released(dstack: Stack) -> None:
    store = usecases_of(dstack)
    payload = warning_payload(dstack, level=2, areas=[TOWN])
    deliver_twice(dstack, envelope(dstack, "warning", "warning_issued", payload))
    plan_id = f"warning-{payload['warning_id']}"
    # The plan ended but the process died before its teams were released.
    plan = store.repo.plan(plan_id)
    assert plan is not None
    ended = events.plan_ended(dstack.clock, plan, "预警解除", [], causation_id="crash")
    assert store.repo.end_plan(plan_id, {"status": "ended"}, {"action": "ended"}, ended, "crash")
    assert team(dstack, "T03")["status"] == "standby"
    assert repair(store)["standby_released"] >= 1
    assert team(dstack, "T03")["status"] == "available"
