"""The shape of the failures seen in daily operation: a change that overtakes its incident's
initial report in a backlog, and a plan that ends before it is seen to start. Both end applied,
with nothing dead-lettered, on the memory transport and on RabbitMQ."""

from __future__ import annotations

import uuid
from datetime import timedelta

from libs.common.bus import Publisher
from libs.common.clock import ManualClock
from libs.common.events import make_event
from services.reporting.service import open_repository as reporting_repository
from tests.ordering.conftest import Delivery
from tests.reporting.support import report_body
from tests.support.bodies import incident_body
from tests.support.stack import TOWNSHIP_A

BURST = 30


def _ready(delivery: Delivery) -> None:
    for worker in delivery.stack.runtime.consumers.values():
        assert worker.ready.wait(30), "a consumer did not connect"


def test_close_and_merge_right_after_a_burst_of_reports_are_applied(delivery: Delivery) -> None:
    _ready(delivery)
    stack = delivery.stack
    dead_before = delivery.dead_letters()
    ids = []
    for n in range(BURST):
        body = incident_body(stack.clock.now(), title=f"第{n + 1}处河堤漫溢")
        response = stack.call("POST", "/v1/incidents", "township_a", json=body)
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    primary, duplicate, closed = ids[-3], ids[-2], ids[-1]
    merged = stack.call(
        "POST",
        f"/v1/incidents/{duplicate}/merge",
        "operator",
        json={"primary_id": primary, "reason": "同一处河堤"},
    )
    assert merged.status_code == 200, merged.text
    response = stack.call(
        "POST", f"/v1/incidents/{closed}/close", "leader", json={"reason": "处置完毕"}
    )
    assert response.status_code == 200, response.text
    delivery.settle()

    reporting = reporting_repository(stack.ctx("reporting"))
    assert (reporting.incident_view(closed) or {}).get("status") == "closed"
    assert (reporting.incident_view(duplicate) or {}).get("status") == "merged"
    open_kinds = {d["kind"] for d in reporting.open_deadlines(closed)}
    assert open_kinds <= {"final"}, "the closed incident's follow-up clocks keep running"
    assert reporting.open_deadlines(duplicate) == []
    followup = stack.call("POST", "/v1/reports", "township_a", json=report_body(duplicate))
    assert followup.status_code == 409, followup.text
    assert delivery.dead_letters() == dead_before, "an event was dead-lettered"


def test_plans_ended_before_they_were_seen_to_start_stay_ended(delivery: Delivery) -> None:
    _ready(delivery)
    stack = delivery.stack
    dead_before = delivery.dead_letters()
    clock = ManualClock(stack.clock.now())
    plans = [f"incident-{uuid.uuid4().hex[:12]}" for _ in range(5)]
    activated = [
        make_event(
            clock,
            "dispatch",
            "plan_activated",
            {
                "plan_id": plan_id,
                "level": 2,
                "trigger_kind": "incident",
                "trigger_id": plan_id,
                "township_codes": [TOWNSHIP_A],
            },
        )
        for plan_id in plans
    ]
    clock.advance(timedelta(minutes=10))
    ended = [
        make_event(clock, "dispatch", "plan_ended", {"plan_id": plan_id, "reason": "响应结束"})
        for plan_id in plans
    ]
    # As after a restart: every end has reached reporting before any start is published.
    for event in ended:
        delivery.deliver(event)
    publisher = Publisher(stack.runtime.settings, "dispatch")
    try:
        publisher.publish(activated)
    finally:
        publisher.close()
    delivery.settle()

    reporting = reporting_repository(stack.ctx("reporting"))
    for plan_id in plans:
        plan = reporting.plan_view(plan_id) or {}
        assert (plan.get("status"), plan.get("level")) == ("ended", 2), plan
        assert plan.get("activated_at") is not None
    assert delivery.dead_letters() == dead_before, "an event was dead-lettered"
