"""A warning waiting for a leader's approval is in the handover record: pre-filled while it
waits (with a Chinese label, in the console's data and the printed record), gone once approved;
a drill draft shows only on a drill handover, marked 演练."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.duty.test_duty_office import enter_today, ok
from tests.reporting.support import local
from tests.reporting.test_documents import docx_text
from tests.support.stack import TOWNSHIP_A, Stack

pytestmark = pytest.mark.e2e


def draft(stack: Stack, level: int = 2, exercise: bool = False) -> str:
    """A rainstorm warning of ``level`` drafted by a department (waits for a leader)."""
    body = {
        "hazard": "rainstorm",
        "level": level,
        "headline": "安河县暴雨橙色预警",
        "description": "预计未来6小时城关镇降雨量将达100毫米以上。",
        "instruction": "转移低洼地带人员。",
        "areas": [TOWNSHIP_A],
        "expires": (stack.clock.now() + timedelta(hours=24)).isoformat(),
        "exercise": exercise,
    }
    created = ok(stack.call("POST", "/v1/warnings", who="department", json=body), 201)
    assert created["status"] == "pending_approval"
    return str(created["id"])


def approvals(handover: dict[str, Any]) -> list[dict[str, Any]]:
    """The warning approvals the handover lists."""
    items = handover["snapshot"]["pending_approvals"]
    return [i for i in items if i["kind"] == "warning_approval"]


def test_a_pending_approval_is_handed_over_until_a_leader_approves_it(stack: Stack) -> None:
    enter_today(stack)
    real = draft(stack)
    drill = draft(stack, level=1, exercise=True)
    stack.settle()
    opened = ok(stack.call("POST", "/v1/duty/handovers", json={"outgoing_officer": "李明"}), 201)
    listed = approvals(opened)
    assert [(a["warning_id"], a["version"], a["exercise"]) for a in listed] == [(real, 1, False)]
    assert listed[0]["kind_label"] == "预警待审批"
    assert listed[0]["label"] == "暴雨橙色预警第1版（首发）：安河县暴雨橙色预警"
    assert listed[0]["requested_by"] == "department"
    text = docx_text(
        stack.call(
            "GET", f"/v1/duty/handovers/{opened['id']}/document", params={"format": "docx"}
        ).content
    )
    assert "暴雨橙色预警第1版（首发）：安河县暴雨橙色预警" in text
    assert "待审批事项：1项。" in text
    rehearsal = ok(
        stack.call(
            "POST",
            "/v1/duty/handovers",
            json={"outgoing_officer": "李明", "exercise": True},
        ),
        201,
    )
    assert [(a["warning_id"], a["exercise"]) for a in approvals(rehearsal)] == [
        (real, False),
        (drill, True),
    ]
    assert approvals(rehearsal)[1]["label"].startswith("【演练】暴雨红色预警第1版")
    ok(stack.call("POST", f"/v1/warnings/{real}/approve", who="leader", json={"note": "同意"}))
    stack.settle()
    stack.clock.set(local(2026, 7, 6, 20, 30))  # the night shift
    night = ok(stack.call("POST", "/v1/duty/handovers", json={"outgoing_officer": "赵强"}), 201)
    assert approvals(night) == []
    timeline = stack.call("GET", "/v1/audit", params={"limit": 200}).json()["items"]
    sentences = [i["summary"] for i in timeline if i["event_type"].startswith("warning_approval")]
    assert "橙色预警（暴雨）第1版首发待审批" in sentences
    assert "预警第1版审批通过" in sentences
