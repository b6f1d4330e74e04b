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
    common = {"warning_id": warning_id, "hazard": "flood", "areas": [TOWNSHIP_A]}
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
        "reporting": {k: seen.get(k) for k in ("status", "version", "level", "issued_at")},
        "dispatch": {k: local.get(k) for k in ("version", "level", "ended", "exercise")}
        | {
            "plan_active_level": _active_level(dispatch.plan(plan_id)),
            "stranded_standby": _stranded_standby(dispatch, plan_id),
        },
    }


def test_warning_issued_adjusted_lifted_in_any_order(delivery: Delivery) -> None:
    _run(delivery, _warning_events, _warning_state, ["warning"])


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


# ------------------------------------------------------------------------- enterprises


def _enterprise_events(delivery: Delivery, ids: dict[str, str]) -> list[EventEnvelope]:
    enterprise_id = ids["enterprise"]
    base = {
        "enterprise_id": enterprise_id,
        "township_code": TOWNSHIP_A,
        "risk_level": "large",
        "hazard_types": ["危险化学品"],
        "responsible": {"name": "赵建国", "phone": "13800000001"},
        "safety_officer": {"name": "钱海燕", "phone": "13800000002"},
    }
    steps = [
        (1, "安河县青石化工有限公司", "active"),
        (2, "安河县青石新材料有限公司", "active"),
        (3, "安河县青石新材料有限公司", "closed"),
    ]
    return [
        make_event(
            _at(delivery, minutes),
            "dispatch",
            "enterprise_registered",
            {**base, "revision": revision, "name": name, "status": status},
            correlation_id=f"enterprise:{enterprise_id}",
        )
        for minutes, (revision, name, status) in enumerate(steps)
    ]


def _enterprise_state(delivery: Delivery, ids: dict[str, str]) -> dict[str, Any]:
    reporting = reporting_repository(delivery.stack.ctx("reporting"))
    return {"reporting_name": reporting.enterprise_name(ids["enterprise"])}


def test_enterprise_snapshots_in_any_order(delivery: Delivery) -> None:
    _run(delivery, _enterprise_events, _enterprise_state, ["enterprise"])
