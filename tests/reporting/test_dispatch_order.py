"""Reporting's dispatch read model does not depend on the order its queues deliver in: a status
change that overtakes its order is applied (not retried until dead-lettered)."""

from __future__ import annotations

import uuid

from libs.common.clock import ManualClock
from libs.common.events import make_event
from services.reporting.service import open_repository
from services.reporting.usecases.incoming import dispatch_ordered as _dispatch_ordered
from services.reporting.usecases.incoming import dispatch_status as _dispatch_status
from tests.support.stack import Stack


def test_status_change_before_the_order_is_kept_and_filled_in(stack: Stack) -> None:
    store = open_repository(stack.ctx("reporting"))
    clock = ManualClock(stack.clock.now())
    dispatch_id, incident_id = uuid.uuid4().hex, uuid.uuid4().hex
    ordered = make_event(
        clock,
        "dispatch",
        "dispatch_ordered",
        {"dispatch_id": dispatch_id, "incident_id": incident_id, "team_ids": ["T01"]},
    )
    clock.advance(60)
    en_route = make_event(
        clock,
        "dispatch",
        "dispatch_status_changed",
        {
            "dispatch_id": dispatch_id,
            "incident_id": incident_id,
            "old_status": "ordered",
            "status": "en_route",
            "team_ids": ["T01"],
        },
    )
    assert _dispatch_status(store)(en_route) is True
    assert _dispatch_status(store)(en_route) is False  # a redelivery changes nothing
    assert _dispatch_ordered(store)(ordered) is True
    assert _dispatch_ordered(store)(ordered) is False
    doc = store.dispatch_view(dispatch_id)
    assert doc["status"] == "en_route"
    assert doc["team_ids"] == ["T01"]
    assert doc["ordered_at"] is not None
