"""A version waiting for a leader's approval is announced (``warning_approval_requested``) and
so is its end (``warning_approval_decided``): approved, rejected, superseded by a lift, or
expired before anyone decided."""

from __future__ import annotations

from datetime import datetime, timedelta

from libs.common.clock import as_utc
from tests.warning.conftest import TOWNSHIP_A, TOWNSHIP_B, WarningStack


def _decisions(wstack: WarningStack, warning_id: str) -> list[tuple[int, str]]:
    return [
        (d["version"], d["decision"])
        for d in wstack.probe.of("warning_approval_decided")
        if d["warning_id"] == warning_id
    ]


def test_a_draft_announces_its_request_and_the_approval(wstack: WarningStack) -> None:
    created = wstack.issue("department", level=2).json()
    wid = created["id"]
    wstack.settle()
    requested = wstack.probe.envelopes("warning_approval_requested")
    assert len(requested) == 1
    payload = requested[0].payload
    assert (payload["warning_id"], payload["version"], payload["msg_type"]) == (wid, 1, "Alert")
    assert (payload["level"], payload["color"], payload["hazard"]) == (2, "orange", "rainstorm")
    assert payload["areas"] == [TOWNSHIP_A, TOWNSHIP_B]
    assert payload["headline"] == "安河县暴雨黄色预警"
    assert payload["requested_by"] == "department"
    assert as_utc(datetime.fromisoformat(payload["requested_at"])) == wstack.now()
    assert payload["exercise"] is False
    assert _decisions(wstack, wid) == []
    wstack.clock.advance(60)
    approved = wstack.call(
        "POST", f"/v1/warnings/{wid}/approve", who="leader", json={"note": "同意发布"}
    )
    assert approved.status_code == 200, approved.text
    wstack.settle()
    decided = [
        e
        for e in wstack.probe.envelopes("warning_approval_decided")
        if e.payload["warning_id"] == wid
    ]
    assert len(decided) == 1
    assert decided[0].payload["decision"] == "approved"
    assert decided[0].payload["decided_by"] == "leader"
    assert decided[0].payload["note"] == "同意发布"
    assert as_utc(datetime.fromisoformat(decided[0].payload["decided_at"])) == wstack.now()
    assert decided[0].correlation_id == requested[0].correlation_id


def test_a_rejection_closes_the_request_with_its_reason(wstack: WarningStack) -> None:
    wid = wstack.issue("operator", level=1, exercise=True).json()["id"]
    rejected = wstack.call(
        "POST", f"/v1/warnings/{wid}/reject", who="leader", json={"reason": "证据不足"}
    )
    assert rejected.status_code == 200, rejected.text
    wstack.settle()
    assert [p["exercise"] for p in wstack.probe.of("warning_approval_requested")] == [True]
    decided = wstack.probe.of("warning_approval_decided")
    assert [(d["decision"], d["note"], d["exercise"]) for d in decided] == [
        ("rejected", "证据不足", True)
    ]


def test_an_adjustment_awaiting_approval_is_superseded_by_a_lift(wstack: WarningStack) -> None:
    wid = wstack.issue("operator", level=3).json()["id"]
    up = wstack.call("POST", f"/v1/warnings/{wid}/adjust", json={"level": 2, "reason": "雨势加强"})
    assert up.json()["pending_version"] == 2
    wstack.settle()
    requested = wstack.probe.of("warning_approval_requested")
    assert [(r["version"], r["msg_type"], r["level"], r["old_level"]) for r in requested] == [
        (2, "Update", 2, 3)
    ]
    lifted = wstack.call("POST", f"/v1/warnings/{wid}/lift", json={"reason": "降雨结束"})
    assert lifted.status_code == 200, lifted.text
    wstack.settle()
    assert _decisions(wstack, wid) == [(2, "superseded")]
    assert [d["decided_by"] for d in wstack.probe.of("warning_approval_decided")] == [None]


def test_a_draft_that_runs_out_unapproved_closes_as_expired(wstack: WarningStack) -> None:
    wid = wstack.issue(
        "operator", level=2, expires=(wstack.now() + timedelta(hours=1)).isoformat()
    ).json()["id"]
    wstack.clock.advance(2 * 3600)
    wstack.service.run_expiry()
    wstack.settle()
    assert _decisions(wstack, wid) == [(1, "expired")]
    assert wstack.probe.of("warning_expired") == []
    wstack.service.run_expiry()
    wstack.settle()
    assert _decisions(wstack, wid) == [(1, "expired")]


def test_issuing_without_approval_announces_no_request(wstack: WarningStack) -> None:
    wstack.issue("operator", level=3)
    wstack.issue("leader", level=1)
    wstack.settle()
    assert wstack.probe.of("warning_approval_requested") == []
    assert wstack.probe.of("warning_approval_decided") == []
