"""Every consumer reaches the same state whatever order the events about one incident, plan,
warning or dispatch order arrive in, with duplicates in between, and dead-letters nothing.

Each scenario is a few events of one aggregate, in the order they occurred. It is delivered in
every permutation (so every pair of event types in both orders), each event handled by all its
consumers before the next is published, with earlier events delivered again in between. The
state each service keeps of the aggregate must equal the state after the natural order.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from libs.common.clock import ManualClock, as_utc
from libs.common.events import EventEnvelope, make_event
from services.dispatch.repository import DispatchRepository
from services.dispatch.service import open_repository as dispatch_repository
from services.reporting.repository import AuditFilter
from services.reporting.service import open_repository as reporting_repository
from services.warning.service import open_repository as warning_repository
from tests.ordering.conftest import Delivery
from tests.support.bodies import incident_body
from tests.support.stack import TOWNSHIP_A

Scenario = Callable[[Delivery, dict[str, str]], list[EventEnvelope]]
Projection = Callable[[Delivery, dict[str, str]], dict[str, Any]]


def _at(delivery: Delivery, minutes: int) -> ManualClock:
    return ManualClock(delivery.stack.clock.now() + timedelta(minutes=minutes))


def _interleaved(events: Sequence[EventEnvelope]) -> list[EventEnvelope]:
    """The events with each earlier one delivered again after its successor (duplicates)."""
    order: list[EventEnvelope] = []
    for index, event in enumerate(events):
        order.append(event)
        if index:
            order.append(events[index - 1])
    return order


def _run(delivery: Delivery, scenario: Scenario, project: Projection, names: Sequence[str]) -> None:
    """Deliver the scenario in every order (three events each) and compare the end states."""
    for worker in delivery.stack.runtime.consumers.values():
        assert worker.ready.wait(30), "a consumer did not connect"
    dead_before = delivery.dead_letters()
    states: dict[tuple[int, ...], dict[str, Any]] = {}
    size = 3
    for order in itertools.permutations(range(size)):
        ids = _ids(names)
        events = scenario(delivery, ids)
        assert len(events) == size
        for event in _interleaved([events[i] for i in order]):
            delivery.deliver(event)
        delivery.settle()
        states[order] = project(delivery, ids)
    natural = states[tuple(range(size))]
    for order, state in states.items():
        assert state == natural, f"order {order} ended in {state}, natural order in {natural}"
    assert delivery.dead_letters() == dead_before, "an event was dead-lettered"


def _ids(names: Sequence[str]) -> dict[str, str]:
    return {name: uuid.uuid4().hex[:16] for name in names}


# ------------------------------------------------------------------------- incidents


def _incident_events(delivery: Delivery, ids: dict[str, str], ending: str) -> list[EventEnvelope]:
    incident_id = ids["incident"]
    base = delivery.stack.clock.now()
    reported = make_event(
        _at(delivery, 0),
        "intake",
        "incident_reported",
        {
            "incident_id": incident_id,
            "township_code": TOWNSHIP_A,
            "category": "flood",
            "title": "河口村河堤漫溢",
            "grade": 3,
            "occurred_at": (base - timedelta(minutes=30)).isoformat(),
            "discovered_at": (base - timedelta(minutes=20)).isoformat(),
            "reported_at": base.isoformat(),
            "affected": {"people_affected": 120},
        },
        correlation_id=incident_id,
    )
    regraded = make_event(
        _at(delivery, 10),
        "intake",
        "incident_regraded",
        {
            "incident_id": incident_id,
            "township_code": TOWNSHIP_A,
            "category": "flood",
            "old_grade": 3,
            "new_grade": 2,
            "reason": "续报数字达到较大事件标准",
        },
        correlation_id=incident_id,
    )
    if ending == "incident_closed":
        body: dict[str, Any] = {"closed_by": "leader", "reason": "处置完毕"}
    else:
        body = {"primary_id": ids["primary"], "merged_by": "operator", "reason": "重复报告"}
    ended = make_event(
        _at(delivery, 30),
        "intake",
        ending,
        {"incident_id": incident_id, "township_code": TOWNSHIP_A, **body},
        correlation_id=incident_id,
    )
    return [reported, regraded, ended]


def _active_level(plan: dict[str, Any] | None) -> int | None:
    return int(plan["level"]) if plan and plan.get("status") == "active" else None


def _stranded_standby(dispatch: DispatchRepository, plan_id: str) -> int:
    """Teams left on standby for a plan that is not active (how many teams an active plan holds
    depends on what earlier scenarios left available, so it is not compared)."""
    if _active_level(dispatch.plan(plan_id)) is not None:
        return 0
    return len(dispatch.standby_teams_of(plan_id))


def _incident_state(delivery: Delivery, ids: dict[str, str]) -> dict[str, Any]:
    incident_id = ids["incident"]
    reporting = reporting_repository(delivery.stack.ctx("reporting"))
    dispatch = dispatch_repository(delivery.stack.ctx("dispatch"))
    warning = warning_repository(delivery.stack.ctx("warning"))
    seen = reporting.incident_view(incident_id) or {}
    open_deadlines = sorted(
        (d["kind"], as_utc(d["due_at"]).isoformat(), d["grade"])
        for d in reporting.open_deadlines(incident_id)
    )
    local = dispatch.incident_view(incident_id) or {}
    plan_id = f"incident-{incident_id}"
    view = warning.incident(incident_id) or {}
    pending = warning.pending_suggestions(incident_id)
    return {
        "reporting": {
            "status": seen.get("status"),
            "grade": seen.get("grade"),
            "merged_into": seen.get("merged_into") and "primary",
            "closed_at": seen.get("closed_at"),
            "open_deadlines": open_deadlines,
            "plan_active_level": _active_level(reporting.plan_view(plan_id)),
            "timeline": sum(
                1
                for entry in reporting.timeline_page(incident_id, 200, None)[0]
                if entry["source"] == "intake"
            ),
            "parked": len(reporting.parked_events_of(incident_id)),
        },
        "dispatch": {
            key: local.get(key)
            for key in ("status", "grade", "exercise", "township_code", "category", "title")
        }
        | {
            "plan_active_level": _active_level(dispatch.plan(plan_id)),
            "stranded_standby": _stranded_standby(dispatch, plan_id),
        },
        "warning": {key: view.get(key) for key in ("status", "grade", "exercise", "title")}
        | {"pending_suggestions": sorted(s["level"] for s in pending)},
    }


def test_incident_reported_regraded_closed_in_any_order(delivery: Delivery) -> None:
    _run(
        delivery,
        lambda d, ids: _incident_events(d, ids, "incident_closed"),
        _incident_state,
        ["incident", "primary"],
    )


def test_incident_reported_regraded_merged_in_any_order(delivery: Delivery) -> None:
    _run(
        delivery,
        lambda d, ids: _incident_events(d, ids, "incident_merged"),
        _incident_state,
        ["incident", "primary"],
    )


# ------------------------------------------------------------------------- plans


def _plan_events(delivery: Delivery, ids: dict[str, str]) -> list[EventEnvelope]:
    plan_id = f"incident-{ids['incident']}"
    activated = make_event(
        _at(delivery, 0),
        "dispatch",
        "plan_activated",
        {
            "plan_id": plan_id,
            "level": 2,
            "trigger_kind": "incident",
            "trigger_id": ids["incident"],
            "incident_id": ids["incident"],
            "township_codes": [TOWNSHIP_A],
        },
    )
    changed = make_event(
        _at(delivery, 5),
        "dispatch",
        "plan_changed",
        {"plan_id": plan_id, "old_level": 2, "level": 1, "reason": "事件升级"},
    )
    ended = make_event(
        _at(delivery, 10),
        "dispatch",
        "plan_ended",
        {"plan_id": plan_id, "reason": "响应结束", "incident_id": ids["incident"]},
    )
    return [activated, changed, ended]


def _plan_state(delivery: Delivery, ids: dict[str, str]) -> dict[str, Any]:
    reporting = reporting_repository(delivery.stack.ctx("reporting"))
    plan = reporting.plan_view(f"incident-{ids['incident']}") or {}
    return {
        key: plan.get(key)
        for key in ("status", "level", "activated_at", "ended_at", "trigger_kind", "township_codes")
    }


def test_plan_activated_changed_ended_in_any_order(delivery: Delivery) -> None:
    _run(delivery, _plan_events, _plan_state, ["incident"])


# ------------------------------------------------------------------------- warnings


def _warning_events(delivery: Delivery, ids: dict[str, str]) -> list[EventEnvelope]:
    warning_id = ids["warning"]
    # Every version says what its areas cover (到村); the newest version's figures stand.
    common = {
        "warning_id": warning_id,
        "hazard": "flood",
        "areas": [TOWNSHIP_A],
        "villages": 6,
        "people": 77410,
    }
    start = delivery.stack.clock.now()
    issued = make_event(
        _at(delivery, 0),
        "warning",
        "warning_issued",
        {
            **common,
            "version": 1,
            "level": 2,
            "color": "orange",
            "headline": "洪水橙色预警",
            "effective": start.isoformat(),
            "expires": (start + timedelta(hours=24)).isoformat(),
        },
        correlation_id=warning_id,
    )
    adjusted = make_event(
        _at(delivery, 5),
        "warning",
        "warning_adjusted",
        {**common, "version": 2, "level": 3, "color": "yellow", "old_level": 2, "reason": "雨减弱"},
        correlation_id=warning_id,
    )
    lifted = make_event(
        _at(delivery, 10),
        "warning",
        "warning_lifted",
        {**common, "version": 3, "level": 3, "color": "yellow", "reason": "降雨结束"},
        correlation_id=warning_id,
    )
    return [issued, adjusted, lifted]


def _warning_state(delivery: Delivery, ids: dict[str, str]) -> dict[str, Any]:
    warning_id = ids["warning"]
    reporting = reporting_repository(delivery.stack.ctx("reporting"))
    dispatch = dispatch_repository(delivery.stack.ctx("dispatch"))
    seen = reporting.warning_view(warning_id) or {}
    local = dispatch.warning_view(warning_id) or {}
    plan_id = f"warning-{warning_id}"
    return {
        "reporting": {
            k: seen.get(k)
            for k in ("status", "version", "level", "issued_at", "villages", "people")
        },
        "dispatch": {k: local.get(k) for k in ("version", "level", "ended", "exercise")}
        | {
            "plan_active_level": _active_level(dispatch.plan(plan_id)),
            "stranded_standby": _stranded_standby(dispatch, plan_id),
        },
    }


def test_warning_issued_adjusted_lifted_in_any_order(delivery: Delivery) -> None:
    _run(delivery, _warning_events, _warning_state, ["warning"])


# ------------------------------------------------------------------------- enterprises


def _enterprise_events(delivery: Delivery, ids: dict[str, str]) -> list[EventEnvelope]:
    """Three snapshots of one enterprise of the register: registered, renamed, closed."""
    enterprise_id = ids["enterprise"]
    base = {
        "enterprise_id": enterprise_id,
        "township_code": TOWNSHIP_A,
        "risk_level": "major",
        "responsible": {"name": "赵厂长", "phone": "13800000001"},
        "safety_officer": {"name": "钱安全", "phone": "13800000002"},
    }
    snapshots = [
        {"revision": 1, "name": "城关化工"},
        {"revision": 2, "name": "城关化工有限公司", "risk_level": "large"},
        {"revision": 3, "name": "城关化工有限公司", "status": "closed"},
    ]
    return [
        make_event(
            _at(delivery, minutes),
            "dispatch",
            "enterprise_registered",
            {**base, **snapshot},
            correlation_id=enterprise_id,
        )
        for minutes, snapshot in zip((0, 5, 10), snapshots, strict=True)
    ]


def _enterprise_state(delivery: Delivery, ids: dict[str, str]) -> dict[str, Any]:
    warning = warning_repository(delivery.stack.ctx("warning"))
    kept = [e for e in warning.enterprises_in([TOWNSHIP_A]) if e["_id"] == ids["enterprise"]]
    reporting = reporting_repository(delivery.stack.ctx("reporting"))
    return {
        "warning": [{k: e.get(k) for k in ("revision", "name", "status")} for e in kept],
        "reporting": {
            k: v
            for k, v in (reporting.enterprise_entry(ids["enterprise"]) or {}).items()
            if k != "_id"
        },
    }


def test_enterprise_snapshots_in_any_order(delivery: Delivery) -> None:
    _run(delivery, _enterprise_events, _enterprise_state, ["enterprise"])


def _approval_events(delivery: Delivery, ids: dict[str, str]) -> list[EventEnvelope]:
    """A level-2 draft waits for a leader, is approved, and goes out."""
    warning_id = ids["warning"]
    start = delivery.stack.clock.now()
    version = {
        "warning_id": warning_id,
        "version": 1,
        "hazard": "flood",
        "areas": [TOWNSHIP_A],
        "level": 2,
        "color": "orange",
    }
    requested = make_event(
        _at(delivery, 0),
        "warning",
        "warning_approval_requested",
        {
            **version,
            "msg_type": "Alert",
            "headline": "洪水橙色预警",
            "requested_by": "值班员",
            "requested_at": start.isoformat(),
        },
        correlation_id=warning_id,
    )
    decided_at = start + timedelta(minutes=5)
    decided = make_event(
        _at(delivery, 5),
        "warning",
        "warning_approval_decided",
        {
            "warning_id": warning_id,
            "version": 1,
            "decision": "approved",
            "decided_by": "带班领导",
            "decided_at": decided_at.isoformat(),
            "note": "同意发布",
        },
        correlation_id=warning_id,
    )
    issued = make_event(
        _at(delivery, 5),
        "warning",
        "warning_issued",
        {
            **version,
            "headline": "洪水橙色预警",
            "effective": decided_at.isoformat(),
            "expires": (start + timedelta(hours=24)).isoformat(),
        },
        correlation_id=warning_id,
    )
    return [requested, decided, issued]


def _approval_state(delivery: Delivery, ids: dict[str, str]) -> dict[str, Any]:
    warning_id = ids["warning"]
    reporting = reporting_repository(delivery.stack.ctx("reporting"))
    approval = reporting.warning_approval(f"{warning_id}:1") or {}
    still_open = [a["_id"] for a in reporting.open_warning_approvals(False)]
    seen = reporting.warning_view(warning_id) or {}
    return {
        "approval": {
            k: v for k, v in approval.items() if not k.startswith("_") and k != "warning_id"
        },
        "open": f"{warning_id}:1" in still_open,
        "warning": {k: seen.get(k) for k in ("status", "version", "level")},
    }


def test_warning_approval_requested_decided_issued_in_any_order(delivery: Delivery) -> None:
    _run(delivery, _approval_events, _approval_state, ["warning"])


# ------------------------------------------------------------------------- dispatch orders


def _order_events(delivery: Delivery, ids: dict[str, str]) -> list[EventEnvelope]:
    common = {"dispatch_id": ids["order"], "incident_id": ids["incident"], "team_ids": ["T01"]}
    ordered = make_event(_at(delivery, 0), "dispatch", "dispatch_ordered", common)
    en_route = make_event(
        _at(delivery, 5),
        "dispatch",
        "dispatch_status_changed",
        {**common, "old_status": "ordered", "status": "en_route"},
    )
    on_scene = make_event(
        _at(delivery, 10),
        "dispatch",
        "dispatch_status_changed",
        {**common, "old_status": "en_route", "status": "on_scene"},
    )
    return [ordered, en_route, on_scene]


def _order_state(delivery: Delivery, ids: dict[str, str]) -> dict[str, Any]:
    reporting = reporting_repository(delivery.stack.ctx("reporting"))
    order = reporting.dispatch_view(ids["order"]) or {}
    return {k: order.get(k) for k in ("status", "team_ids", "ordered_at", "resources")}


def test_dispatch_ordered_and_status_changes_in_any_order(delivery: Delivery) -> None:
    _run(delivery, _order_events, _order_state, ["order", "incident"])


# ------------------------------------------------------------------------- intake's reports


def _report_events(delivery: Delivery, ids: dict[str, str]) -> list[EventEnvelope]:
    incident_id = ids["incident"]
    figures = [
        ({"injured": 0}, {"people_affected": 200}),
        ({"injured": 2}, {"people_affected": 600, "houses_damaged": 10}),
        ({"injured": 3}, {"people_affected": 800, "houses_damaged": 12}),
    ]
    made = []
    for number, (casualties, affected) in enumerate(figures, start=1):
        final = number == len(figures)
        body: dict[str, Any] = {
            "report_id": f"{incident_id}-r{number}",
            "incident_id": incident_id,
            "township_code": TOWNSHIP_A,
            "casualties": casualties,
            "affected": affected,
        }
        if not final:
            body["number"] = number
        made.append(
            make_event(
                _at(delivery, 10 * number),
                "reporting",
                "final_report_filed" if final else "followup_filed",
                body,
                correlation_id=incident_id,
            )
        )
    return made


def _report_scenario(delivery: Delivery, ids: dict[str, str]) -> list[EventEnvelope]:
    if "incident" not in ids:
        response = delivery.stack.call(
            "POST",
            "/v1/incidents",
            "township_a",
            json=incident_body(delivery.stack.clock.now()),
        )
        assert response.status_code == 201, response.text
        ids["incident"] = response.json()["id"]
    return _report_events(delivery, ids)


def _intake_state(delivery: Delivery, ids: dict[str, str]) -> dict[str, Any]:
    response = delivery.stack.call("GET", f"/v1/incidents/{ids['incident']}")
    assert response.status_code == 200, response.text
    body = response.json()
    return {k: body.get(k) for k in ("status", "grade", "casualties", "affected", "closed_by")}


def test_follow_ups_and_final_report_reach_intake_in_any_order(delivery: Delivery) -> None:
    _run(delivery, _report_scenario, _intake_state, [])


# ------------------------------------------------------------------- dispute supervision


def _dispute_events(delivery: Delivery, ids: dict[str, str]) -> list[EventEnvelope]:
    """A dispute supervised by letter, discussed at a joint meeting, then moved up a level."""
    incident_id, assignment_id = ids["incident"], ids["assignment"]
    day = delivery.stack.clock.now().date().isoformat()
    supervised = make_event(
        _at(delivery, 0),
        "dispatch",
        "assignment_supervised",
        {
            "assignment_id": assignment_id,
            "incident_id": incident_id,
            "supervision_id": "s1",
            "form": "letter",
            "on": day,
            "by": "县综治办",
            "summary": "县综治办对纠纷化解发函督办",
        },
        correlation_id=incident_id,
    )
    meeting = make_event(
        _at(delivery, 5),
        "dispatch",
        "joint_meeting_held",
        {
            "meeting_id": ids["meeting"],
            "held_on": day,
            "convener": "县综治办",
            "attendees": ["县司法局"],
            "decisions": ["司法所牵头调解"],
            "assignment_ids": [assignment_id],
            "incident_ids": [incident_id],
            "summary": "县综治办召开联席会议，议定1项",
        },
        correlation_id=f"meeting:{ids['meeting']}",
    )
    escalated = make_event(
        _at(delivery, 10),
        "dispatch",
        "assignment_escalated",
        {
            "assignment_id": assignment_id,
            "incident_id": incident_id,
            "from_level": "group",
            "to_level": "village",
        },
        correlation_id=incident_id,
    )
    return [supervised, meeting, escalated]


def _dispute_state(delivery: Delivery, ids: dict[str, str]) -> dict[str, Any]:
    """The dispute's timeline in reporting: each event once, whatever the order."""
    reporting = reporting_repository(delivery.stack.ctx("reporting"))
    rows, _ = reporting.timeline_page(ids["incident"], 50, None)
    assert len(rows) == 3, rows  # each event once, none lost
    return {"timeline": sorted((r["event_type"], r.get("summary")) for r in rows)}


def test_supervision_meeting_and_escalation_in_any_order(delivery: Delivery) -> None:
    _run(delivery, _dispute_events, _dispute_state, ["incident", "assignment", "meeting"])


# ------------------------------------------------------------------- special campaigns


def _campaign_events(delivery: Delivery, ids: dict[str, str]) -> list[EventEnvelope]:
    """A campaign started, reported on and ended (reporting's own events, as it reads them)."""
    campaign_id = ids["campaign"]
    day = delivery.stack.clock.now().date()
    common = {"campaign_id": campaign_id, "exercise": False}
    started = make_event(
        _at(delivery, 0),
        "reporting",
        "campaign_started",
        {
            **common,
            "name": "矛盾纠纷大排查",
            "starts_on": day.isoformat(),
            "ends_on": (day + timedelta(days=9)).isoformat(),
            "participants": [TOWNSHIP_A],
            "report_every_days": 3,
            "stage_report_days": 2,
            "summary": "启动专项行动「矛盾纠纷大排查」",
        },
        correlation_id=f"campaign:{campaign_id}",
    )
    filed = make_event(
        _at(delivery, 5),
        "reporting",
        "campaign_report_filed",
        {
            **common,
            "report_id": ids["report"],
            "participant": TOWNSHIP_A,
            "kind": "campaign_report",
            "summary": "专项行动「矛盾纠纷大排查」：青石镇报送定期报告",
        },
        correlation_id=f"campaign:{campaign_id}",
    )
    ended = make_event(
        _at(delivery, 10),
        "reporting",
        "campaign_ended",
        {
            **common,
            "name": "矛盾纠纷大排查",
            "ended_at": delivery.stack.clock.now().isoformat(),
            "summary": "专项行动「矛盾纠纷大排查」结束",
        },
        correlation_id=f"campaign:{campaign_id}",
    )
    return [started, filed, ended]


def _campaign_state(delivery: Delivery, ids: dict[str, str]) -> dict[str, Any]:
    """The campaign's entries of the audit trail: each event once, whatever the order."""
    reporting = reporting_repository(delivery.stack.ctx("reporting"))
    entries = []
    for event_type in ("campaign_started", "campaign_report_filed", "campaign_ended"):
        rows, _ = reporting.audit_page(AuditFilter(event_type=event_type), 200, None)
        mine = [r for r in rows if r.get("correlation_id") == f"campaign:{ids['campaign']}"]
        entries += [(r["event_type"], r.get("summary")) for r in mine]
    assert len(entries) == 3, entries  # each event once, none lost
    return {"audit": sorted(entries)}


def test_campaign_started_reported_ended_in_any_order(delivery: Delivery) -> None:
    _run(delivery, _campaign_events, _campaign_state, ["campaign", "report"])


# ------------------------------------------------------------------------- information work


def _information_events(delivery: Delivery, ids: dict[str, str]) -> list[EventEnvelope]:
    """An item linked to an incident, its adoption and a leader's instruction on it."""
    item_id, day = ids["item"], delivery.stack.clock.now().date().isoformat()
    unit = {"unit_kind": "department", "unit_code": "water"}
    target = {"target_kind": "item", "target_id": item_id, **unit, "date": day}
    specs = [
        (
            "information_item_submitted",
            {
                "item_id": item_id,
                **unit,
                "kind": "info",
                "title": "青石河水位上涨",
                "incident_id": ids["incident"],
                "week": day,
                "month": day[:7],
                "summary": "县水利局报送信息「青石河水位上涨」",
            },
        ),
        (
            "information_adopted",
            {
                **target,
                "feedback_id": f"item:{item_id}:adoption:city",
                "adopted_level": "city",
                "adopted_by": "市政府办公室",
                "summary": "县水利局「青石河水位上涨」获市级采用（市政府办公室）",
            },
        ),
        (
            "information_instructed",
            {
                **target,
                "feedback_id": f"item:{item_id}:instruction",
                "leader": "县长",
                "leader_level": "county",
                "summary": "县水利局「青石河水位上涨」获县长（县级）批示",
            },
        ),
    ]
    incident = ids["incident"]
    return [
        make_event(_at(delivery, minute), "reporting", kind, payload, correlation_id=incident)
        for minute, (kind, payload) in enumerate(specs)
    ]


def _information_state(delivery: Delivery, ids: dict[str, str]) -> dict[str, Any]:
    """The audit trail of the item as reporting keeps it: each event once, with its sentence."""
    response = delivery.stack.call("GET", "/v1/audit", params={"limit": 200})
    assert response.status_code == 200, response.text
    about = [
        r
        for r in response.json()["items"]
        if ids["item"] in (r["payload"].get("item_id"), r["payload"].get("target_id"))
    ]
    assert len(about) == 3, "each event once in the audit trail, duplicates folded"
    return {"trail": sorted((r["event_type"], r["summary"]) for r in about)}


def test_information_item_adoption_and_instruction_in_any_order(delivery: Delivery) -> None:
    _run(delivery, _information_events, _information_state, ["incident", "item"])
