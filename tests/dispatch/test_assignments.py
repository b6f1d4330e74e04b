"""Dispute assignments (篇4): approval of major disputes, 三三制 at every level, 督办."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from services.dispatch.service import dispute_cases, overdue
from tests.dispatch.conftest import report_incident, sent_events
from tests.support.stack import Stack

STABILITY = {"name": "王稳控", "phone": "13800000001", "unit": "乡综治办"}


def _due(stack: Stack, hours: float = 48) -> str:
    return (stack.clock.now() + timedelta(hours=hours)).isoformat()


def _assign(stack: Stack, incident: str, **extra: Any) -> Any:
    body = {
        "incident_id": incident,
        "responsible_leader": "李副乡长",
        "responsible_unit": "乡综治办",
        "due_at": _due(stack),
        "stability_contact": STABILITY,
        **extra,
    }
    return stack.call("POST", "/v1/assignments", json=body)


def _attempt(stack: Stack, aid: str, level: str, outcome: str = "unresolved", **kw: Any) -> Any:
    return stack.call(
        "POST",
        f"/v1/assignments/{aid}/attempts",
        json={"level": level, "outcome": outcome, "note": "调解"},
        **kw,
    )


def test_three_three_rule_from_group_to_county(dstack: Stack) -> None:
    incident = report_incident(dstack, category="dispute")
    created = _assign(dstack, incident)
    assert created.status_code == 201, created.text
    aid = created.json()["id"]
    assert created.json()["status"] == "active" and created.json()["level"] == "group"
    escalate = f"/v1/assignments/{aid}/escalate"
    for level, upper in [("group", "village"), ("village", "township"), ("township", "county")]:
        for done in range(3):
            refused = dstack.call("POST", escalate, json={"reason": "仍未化解"})
            assert refused.status_code == 409, (level, done)
            assert "三三制" in refused.json()["error"]["message"]
            # Attempts are recorded at the current level only.
            assert _attempt(dstack, aid, upper).status_code == 409
            assert _attempt(dstack, aid, level).status_code == 201
        view = dstack.call("GET", f"/v1/assignments/{aid}").json()
        assert view["unresolved_at_level"] == 3 and view["escalation_allowed"]
        # Not automatic: the dispute stays at its level until someone escalates.
        assert view["level"] == level
        moved = dstack.call("POST", escalate, json={"reason": "三次调处未果"})
        assert moved.status_code == 200, moved.text
        assert moved.json()["level"] == upper and moved.json()["unresolved_at_level"] == 0
    for _ in range(3):
        _attempt(dstack, aid, "county")
    top = dstack.call("POST", escalate, json={})
    assert top.status_code == 409 and "县级" in top.json()["error"]["message"]
    resolved = _attempt(dstack, aid, "county", "resolved")
    assert resolved.json()["status"] == "resolved"
    assert _attempt(dstack, aid, "county").status_code == 409
    escalations = resolved.json()["escalations"]
    assert [(e["from_level"], e["to_level"]) for e in escalations] == [
        ("group", "village"),
        ("village", "township"),
        ("township", "county"),
    ]
    kinds = [e["event_type"] for e in sent_events(dstack)]
    assert kinds.count("assignment_escalated") == 3 and kinds.count("assignment_created") == 1


def test_major_dispute_waits_for_a_leader(dstack: Stack) -> None:
    incident = report_incident(dstack, category="mass_incident")
    created = _assign(dstack, incident, major=True)
    aid = created.json()["id"]
    assert created.json()["status"] == "pending_approval"
    refused = _attempt(dstack, aid, "group")
    assert refused.status_code == 409 and "审批" in refused.json()["error"]["message"]
    assert dstack.call("POST", f"/v1/assignments/{aid}/approve").status_code == 403
    approved = dstack.call(
        "POST", f"/v1/assignments/{aid}/approve", who="leader", json={"note": "同意"}
    )
    assert approved.status_code == 200 and approved.json()["status"] == "active"
    assert approved.json()["approved_by"] == "leader"
    assert dstack.call("POST", f"/v1/assignments/{aid}/approve", who="leader").status_code == 409
    assert _attempt(dstack, aid, "group").status_code == 201


def test_only_known_open_disputes_can_be_assigned(dstack: Stack) -> None:
    flood = report_incident(dstack, category="flood")
    response = _assign(dstack, flood)
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["path"] == "incident_id"
    assert _assign(dstack, "unknown").status_code == 422
    dispute = report_incident(dstack, category="dispute")
    past = _assign(dstack, dispute, due_at=(dstack.clock.now() - timedelta(hours=1)).isoformat())
    assert past.status_code == 422 and past.json()["error"]["fields"][0]["path"] == "due_at"
    naive = _assign(dstack, dispute, due_at="2026-08-01T10:00:00")
    assert naive.status_code == 422
    assert _assign(dstack, dispute).status_code == 201
    # One door in, one door out: a second open assignment for the same dispute is refused.
    assert _assign(dstack, dispute).status_code == 409


def test_cross_area_dispute_starts_at_county(dstack: Stack) -> None:
    incident = report_incident(dstack, category="dispute")
    created = _assign(dstack, incident, cross_area=True)
    assert created.json()["level"] == "county"


def test_overdue_assignment_emits_once(dstack: Stack) -> None:
    incident = report_incident(dstack, category="dispute")
    aid = _assign(dstack, incident, due_at=_due(dstack, hours=2)).json()["id"]
    store = dispute_cases(dstack.ctx("dispatch"))
    assert overdue(store) == 0
    dstack.clock.advance(timedelta(hours=2, seconds=1))
    assert overdue(store) == 1
    assert overdue(store) == 0
    listed = dstack.call("GET", "/v1/assignments", params={"overdue": "true"}).json()["items"]
    assert [a["id"] for a in listed] == [aid]
    assert dstack.call("GET", "/v1/assignments", params={"overdue": "false"}).json()["items"] == []
    assert [e["event_type"] for e in sent_events(dstack)].count("assignment_overdue") == 1
    assert "yingji_dispatch_assignments_overdue 1.0" in dstack.client.get("/metrics").text


def test_township_scope_on_assignments(dstack: Stack) -> None:
    ours = report_incident(dstack, category="dispute", township="349901001")
    theirs = report_incident(dstack, category="dispute", township="349901101")
    mine = _assign(dstack, ours).json()["id"]
    other = _assign(dstack, theirs).json()["id"]
    listed = dstack.call("GET", "/v1/assignments", who="township_a").json()["items"]
    assert [a["id"] for a in listed] == [mine]
    assert _attempt(dstack, other, "group", who="township_a").status_code == 404
    assert _attempt(dstack, mine, "group", who="township_a").status_code == 201


@pytest.mark.parametrize("key", ["attempt-1"])
def test_attempt_idempotency_key(dstack: Stack, key: str) -> None:
    incident = report_incident(dstack, category="dispute")
    aid = _assign(dstack, incident).json()["id"]
    for _ in range(2):
        response = _attempt(dstack, aid, "group", headers={"Idempotency-Key": key})
        assert response.status_code == 201
    assert response.json()["unresolved_at_level"] == 1
