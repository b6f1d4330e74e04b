"""The deadline engine on the manual clock: a whole incident under each profile, and scan cost."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from libs.common.events import EventEnvelope, make_event
from libs.common.profiles import deadline_profile
from services.reporting.repository.sqlite import SqliteReportingRepository
from services.reporting.service import SPEC, open_repository
from tests.reporting.support import (
    deadlines,
    emit,
    events_of,
    incident_reported,
    local,
    publish,
    report_body,
    scan,
)
from tests.support.stack import TOWNSHIP_A, TOWNSHIP_B, Stack, running_stack

OVERDUE_GAUGE = (
    f'yingji_reporting_deadlines_overdue{{service="reporting",township_code="{TOWNSHIP_A}"}}'
)


def by_kind(stack: Stack, incident_id: str) -> dict[str, list[dict[str, Any]]]:
    rows = stack.call(
        "GET", "/v1/deadlines", params={"incident_id": incident_id, "limit": "200"}
    ).json()["items"]
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(row["kind"], []).append(row)
    return grouped


def iso(moment: Any) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize("profile_name", ["default", "national", "henan"])
def test_whole_incident_under_each_profile(tmp_path: Path, profile_name: str) -> None:
    profile = deadline_profile(profile_name)
    g3, g1 = profile.limits(3), profile.limits(1)
    start = local(2026, 7, 6, 10)
    with running_stack(tmp_path, specs=[SPEC], start=start, deadline_profile=profile_name) as stack:
        # Initial report late: discovered longer ago than the grade's limit.
        late_id = incident_reported(
            stack,
            grade=3,
            township_code=TOWNSHIP_B,
            discovered_at=start - timedelta(minutes=g3.initial_minutes + 20),
        ).payload["incident_id"]
        late_initial = by_kind(stack, late_id)["initial"][0]
        assert late_initial["status"] == "met" and late_initial["late"] is True
        assert late_initial["profile"] == profile_name

        # Initial report on time; the first follow-up is due at 17:00 (one limit later at least).
        iid = incident_reported(stack, grade=3, discovered_at=start - timedelta(minutes=5)).payload[
            "incident_id"
        ]
        deadlines = by_kind(stack, iid)
        assert deadlines["initial"][0]["late"] is False
        assert deadlines["initial"][0]["due_at"] == iso(
            start - timedelta(minutes=5) + timedelta(minutes=g3.initial_minutes)
        )
        assert [d["due_at"] for d in deadlines["followup"]] == [iso(local(2026, 7, 6, 17))]

        # Follow-up 1 at 16:00 meets the 17:00 slot; the next slot is 08:00 tomorrow.
        stack.clock.set(local(2026, 7, 6, 16))
        first = stack.call("POST", "/v1/reports", who="township_a", json=report_body(iid))
        assert first.status_code == 201 and first.json()["late"] is False
        followups = by_kind(stack, iid)["followup"]
        assert [(d["due_at"], d["status"]) for d in followups] == [
            (iso(local(2026, 7, 6, 17)), "met"),
            (iso(local(2026, 7, 7, 8)), "pending"),
        ]

        # 08:00 passes without a follow-up: overdue at once, long overdue later, once each.
        stack.clock.set(local(2026, 7, 7, 8, 1))
        assert scan(stack)["overdue"] >= 1
        assert scan(stack) == {"overdue": 0, "escalated": 0}
        missed = by_kind(stack, iid)["followup"][1]
        assert missed["status"] == "overdue" and missed["escalation"] == 1
        stack.clock.advance(timedelta(minutes=profile.long_overdue_minutes))
        assert scan(stack)["escalated"] >= 1
        assert scan(stack) == {"overdue": 0, "escalated": 0}
        overdue_events = [
            e["payload"]
            for e in events_of(stack, "report_overdue")
            if e["payload"]["incident_id"] == iid
        ]
        assert [(e["deadline_id"], e["escalation"]) for e in overdue_events] == [
            (missed["id"], 1),
            (missed["id"], 2),
        ]
        listed = stack.call(
            "GET", "/v1/deadlines", params={"status": "overdue", "township_code": TOWNSHIP_A}
        ).json()["items"]
        assert [d["id"] for d in listed] == [missed["id"]]

        # Re-graded 3 → 1 mid-way (越级): a report at grade I within its initial limit, and
        # grade I's follow-up times from then on.
        regrade_at = local(2026, 7, 7, 9, 30)
        stack.clock.set(regrade_at)
        emit(
            stack,
            "intake",
            "incident_regraded",
            {
                "incident_id": iid,
                "township_code": TOWNSHIP_A,
                "category": "flood",
                "old_grade": 3,
                "new_grade": 1,
                "reason": "死亡人数上升",
                "skipped_grades": True,
            },
            correlation_id=iid,
        )
        deadlines = by_kind(stack, iid)
        escalation_due = regrade_at + timedelta(minutes=g1.initial_minutes)
        assert [
            (d["due_at"], d["status"], d["skipped_grades"]) for d in deadlines["escalation"]
        ] == [(iso(escalation_due), "pending", True)]
        pending = [d for d in deadlines["followup"] if d["status"] == "pending"]
        expected_slot = min(
            local(2026, 7, 7, t.hour, t.minute)
            for t in g1.followup_times
            if local(2026, 7, 7, t.hour, t.minute) > escalation_due
        )
        assert [(d["due_at"], d["grade"]) for d in pending] == [(iso(expected_slot), 1)]
        assert [d["status"] for d in deadlines["followup"]].count("cancelled") == 1

        # One follow-up meets one deadline: follow-up 2 meets the missed 08:00 slot (late) and
        # leaves the escalation open; follow-up 3 meets the escalation on time. The next
        # slot's window has not opened yet.
        stack.clock.set(regrade_at + timedelta(minutes=10))
        second = stack.call("POST", "/v1/reports", json=report_body(iid))
        assert second.status_code == 201 and second.json()["number"] == 2
        assert second.json()["late"] is True
        deadlines = by_kind(stack, iid)
        assert deadlines["escalation"][0]["status"] == "pending"
        met_late = next(d for d in deadlines["followup"] if d["id"] == missed["id"])
        assert met_late["status"] == "met" and met_late["late"] is True
        stack.clock.set(regrade_at + timedelta(minutes=11))
        third = stack.call("POST", "/v1/reports", json=report_body(iid))
        assert third.status_code == 201 and third.json()["late"] is False
        deadlines = by_kind(stack, iid)
        assert deadlines["escalation"][0]["status"] == "met"
        assert deadlines["escalation"][0]["late"] is False
        assert [d["due_at"] for d in deadlines["followup"] if d["status"] == "pending"] == [
            iso(expected_slot)
        ]

        # The leader closes the incident: follow-ups stop, the final report is due.
        closed_at = local(2026, 7, 7, 11)
        stack.clock.set(closed_at)
        emit(
            stack,
            "intake",
            "incident_closed",
            {
                "incident_id": iid,
                "township_code": TOWNSHIP_A,
                "closed_by": "leader",
                "reason": "响应结束",
            },
            correlation_id=iid,
        )
        deadlines = by_kind(stack, iid)
        assert not [d for d in deadlines["followup"] if d["status"] == "pending"]
        assert deadlines["final"][0]["due_at"] == iso(closed_at + timedelta(days=g1.final_days))
        stack.clock.advance(timedelta(days=2))
        scan(stack)
        assert by_kind(stack, iid)["final"][0]["status"] == "pending"
        final = stack.call("POST", "/v1/reports", json=report_body(iid, "final"))
        assert final.status_code == 201
        deadlines = by_kind(stack, iid)
        assert deadlines["final"][0]["status"] == "met" and deadlines["final"][0]["late"] is False
        pending_now = stack.call(
            "GET", "/v1/deadlines", params={"status": "pending", "incident_id": iid}
        ).json()["items"]
        assert pending_now == []


def test_one_followup_meets_one_deadline_only(tmp_path: Path) -> None:
    """A follow-up at 17:05 after a missed 17:00 slot meets that slot (late), not also the next
    day's 17:00 slot whose window opened at 17:00."""
    start = local(2026, 12, 1, 9)
    with running_stack(tmp_path, specs=[SPEC], start=start) as stack:
        iid = incident_reported(stack, grade=4).payload["incident_id"]
        stack.clock.set(local(2026, 12, 1, 17, 1))
        scan(stack)
        stack.clock.set(local(2026, 12, 1, 17, 5))
        filed = stack.call("POST", "/v1/reports", json=report_body(iid))
        assert filed.status_code == 201, filed.text
        assert filed.json()["late"] is True
        followups = sorted(by_kind(stack, iid)["followup"], key=lambda d: d["due_at"])
        assert [(d["due_at"], d["status"], d["late"]) for d in followups] == [
            (iso(local(2026, 12, 1, 17)), "met", True),
            (iso(local(2026, 12, 2, 17)), "pending", False),
        ]
        # The next day's slot is met by the next day's follow-up, on time.
        stack.clock.set(local(2026, 12, 2, 16))
        assert stack.call("POST", "/v1/reports", json=report_body(iid)).json()["late"] is False
        followups = sorted(by_kind(stack, iid)["followup"], key=lambda d: d["due_at"])
        assert [d["status"] for d in followups[:2]] == ["met", "met"]


def test_a_late_final_report_turns_overdue_then_is_met_late(rstack: Stack) -> None:
    iid = incident_reported(rstack, grade=4).payload["incident_id"]
    emit(
        rstack,
        "intake",
        "incident_closed",
        {"incident_id": iid, "township_code": TOWNSHIP_A, "closed_by": "leader", "reason": "结束"},
        correlation_id=iid,
    )
    rstack.clock.advance(timedelta(days=7, minutes=1))
    assert scan(rstack)["overdue"] == 1
    metrics = rstack.client.get("/metrics").text
    assert f"{OVERDUE_GAUGE} 1.0" in metrics
    final = rstack.call("POST", "/v1/reports", json=report_body(iid, "final"))
    assert final.status_code == 201 and final.json()["late"] is True
    scan(rstack)
    metrics = rstack.client.get("/metrics").text
    assert f"{OVERDUE_GAUGE} 0.0" in metrics


def test_a_regrade_caused_by_our_followup_is_met_by_that_followup(rstack: Stack) -> None:
    iid = incident_reported(rstack, grade=4).payload["incident_id"]
    response = rstack.call(
        "POST",
        "/v1/reports",
        json=report_body(iid, casualties={"deaths": 12, "injured": 0, "missing": 0, "trapped": 0}),
    )
    assert response.status_code == 201
    rstack.settle()
    cause = events_of(rstack, "followup_filed")[0]
    emit(
        rstack,
        "intake",
        "incident_regraded",
        {
            "incident_id": iid,
            "township_code": TOWNSHIP_A,
            "category": "flood",
            "old_grade": 4,
            "new_grade": 2,
            "reason": "死亡12人",
            "skipped_grades": True,
        },
        correlation_id=iid,
        causation_id=cause["event_id"],
    )
    escalation = by_kind(rstack, iid)["escalation"][0]
    assert escalation["status"] == "met" and escalation["met_by"] == response.json()["id"]


def test_a_regrade_brings_the_new_grades_times_from_its_escalation_due_time(
    rstack: Stack,
) -> None:
    """A grade-IV incident (follow-ups at 17:00) reported at 01:30 whose early follow-up raises
    it to III (08:00 and 17:00): the next slot is 08:00 the same day, not the next morning; a
    slot at a time already met is not asked for again."""
    rstack.clock.set(local(2026, 12, 4, 1, 30))
    iid = incident_reported(rstack, grade=4).payload["incident_id"]
    rstack.clock.set(local(2026, 12, 4, 1, 35))
    deaths = {"deaths": 3, "injured": 0, "missing": 0, "trapped": 0}
    filed = rstack.call("POST", "/v1/reports", json=report_body(iid, casualties=deaths))
    assert filed.status_code == 201, filed.text
    rstack.settle()
    regrade = {"old_grade": 4, "new_grade": 3, "reason": "死亡3人", "skipped_grades": False}
    emit(
        rstack,
        "intake",
        "incident_regraded",
        {"incident_id": iid, "township_code": TOWNSHIP_A, "category": "flood", **regrade},
        correlation_id=iid,
        causation_id=events_of(rstack, "followup_filed")[0]["event_id"],
    )

    def followups() -> list[tuple[str, str, int]]:
        rows = sorted(by_kind(rstack, iid)["followup"], key=lambda d: d["due_at"])
        return [(d["due_at"], d["status"], d["grade"]) for d in rows]

    # The grade-IV slot planned after the early follow-up gives way to grade III's.
    assert followups() == [
        (iso(local(2026, 12, 4, 8)), "pending", 3),
        (iso(local(2026, 12, 4, 17)), "met", 4),
        (iso(local(2026, 12, 5, 17)), "cancelled", 4),
    ]
    rstack.clock.set(local(2026, 12, 4, 7, 50))
    second = rstack.call("POST", "/v1/reports", json=report_body(iid, casualties=deaths))
    assert second.status_code == 201, second.text
    rstack.settle()
    assert followups() == [
        (iso(local(2026, 12, 4, 8)), "met", 3),
        (iso(local(2026, 12, 4, 17)), "met", 4),
        (iso(local(2026, 12, 5, 8)), "pending", 3),
        (iso(local(2026, 12, 5, 17)), "cancelled", 4),
    ]


def test_township_keys_see_only_their_deadlines(rstack: Stack) -> None:
    incident_reported(rstack, township_code=TOWNSHIP_A)
    incident_reported(rstack, township_code=TOWNSHIP_B)
    own = rstack.call("GET", "/v1/deadlines", who="township_b").json()["items"]
    assert own and {d["township_code"] for d in own} == {TOWNSHIP_B}
    other = rstack.call(
        "GET", "/v1/deadlines", who="township_b", params={"township_code": TOWNSHIP_A}
    )
    assert other.status_code == 403
    bad = rstack.call("GET", "/v1/deadlines", params={"status": "late"})
    assert bad.status_code == 422


def test_a_scan_touches_only_what_is_due(rstack: Stack) -> None:
    """10 000 met deadlines of history and 3 armed ones: the scan reads the 3, on its index."""
    repo = open_repository(rstack.ctx("reporting"))
    now = rstack.clock.now()
    for n in range(10_000):
        repo.record_deadline_if_new(
            {
                "_id": f"old-{n}:followup",
                "incident_id": f"old-{n}",
                "township_code": TOWNSHIP_A,
                "kind": "followup",
                "grade": 4,
                "due_at": now - timedelta(days=30, minutes=n),
                "status": "met",
                "late": False,
                "escalation": 0,
                "armed": None,
                "next_check_at": None,
                "met_at": now - timedelta(days=30),
            }
        )
    for _n in range(3):
        incident_reported(rstack, grade=4, settle=False)
    rstack.settle()
    rstack.clock.advance(timedelta(days=2))
    due = repo.deadlines_due(rstack.clock.now())
    assert len(due) == 3
    # Only the armed hot set is examined, not the 10 000 met deadlines: a range on the index.
    assert isinstance(repo, SqliteReportingRepository)
    plan = repo.db.query(
        "EXPLAIN QUERY PLAN SELECT doc FROM deadlines WHERE armed = 1 AND next_check_at <= ?"
        " ORDER BY next_check_at, id LIMIT ?",
        ("x", 200),
    )
    details = " ".join(row[-1] for row in plan)
    assert "USING INDEX deadlines_scan (armed=? AND next_check_at<?)" in details, details
    assert "TEMP B-TREE" not in details


def test_deadlines_that_fell_due_during_a_downtime_are_raised_on_restart(rstack: Stack) -> None:
    """Down for three days after a grade Ⅳ report: the first scan turns every slot that fell due
    overdue (the follow-up slots planned one after another), each raised once, none left."""
    iid = incident_reported(rstack, grade=4).payload["incident_id"]
    assert scan(rstack) == {"overdue": 0, "escalated": 0}
    rstack.clock.advance(timedelta(days=3))
    first = scan(rstack)
    assert first["overdue"] >= 3, first
    assert scan(rstack) == {"overdue": 0, "escalated": 0}
    now = rstack.clock.now()
    rows = [r for rows in by_kind(rstack, iid).values() for r in rows]
    still_due = [r["id"] for r in rows if r["status"] == "pending" and r["due_at"] <= iso(now)]
    assert still_due == []
    overdue = [r for r in rows if r["status"] == "overdue"]
    assert len(overdue) == first["overdue"]
    raised = events_of(rstack, "report_overdue")
    per_deadline: dict[str, list[int]] = {}
    for event in raised:
        per_deadline.setdefault(event["payload"]["deadline_id"], []).append(
            event["payload"]["escalation"]
        )
    assert sorted(per_deadline) == sorted(r["id"] for r in overdue)
    assert len(raised) == first["overdue"] + first["escalated"]
    assert all(levels in ([1], [1, 2]) for levels in per_deadline.values()), per_deadline


def upstream_request(
    stack: Stack, incident_id: str, request_id: str, due_in: timedelta
) -> EventEnvelope:
    """``upstream_request_received`` as the duty office raises it (not yet published)."""
    now = stack.clock.now()
    return make_event(
        stack.clock,
        "reporting",
        "upstream_request_received",
        {
            "request_id": request_id,
            "incident_id": incident_id,
            "kind": "more_info",
            "text": "请于两小时内续报人员搜救进展",
            "due_at": now + due_in,
            "township_code": TOWNSHIP_A,
            "summary": "市级续报要求：请于两小时内续报人员搜救进展",
        },
        correlation_id=incident_id,
    )


def test_the_citys_request_is_a_deadline_for_the_township_and_goes_overdue(
    rstack: Stack,
) -> None:
    iid = incident_reported(rstack, grade=4).payload["incident_id"]
    request = upstream_request(rstack, iid, "city-req-1", timedelta(hours=2))
    publish(rstack, request)
    publish(rstack, request)  # redelivered: still one deadline
    (owed,) = by_kind(rstack, iid)["upstream_request"]
    assert owed["status"] == "pending" and owed["township_code"] == TOWNSHIP_A
    assert owed["due_at"] == iso(rstack.clock.now() + timedelta(hours=2))
    # The township sees what it owes; the list filters on the new kind.
    kind = {"kind": "upstream_request"}
    mine = rstack.call("GET", "/v1/deadlines", who="township_a", params=kind)
    assert [d["id"] for d in mine.json()["items"]] == [owed["id"]]
    rstack.clock.advance(timedelta(hours=2, minutes=1))
    scan(rstack)
    (overdue,) = [d for d in deadlines(rstack, status="overdue") if d["incident_id"] == iid]
    assert overdue["id"] == owed["id"]
    raised = [e for e in events_of(rstack, "report_overdue") if e["payload"]["incident_id"] == iid]
    assert [e["payload"]["kind"] for e in raised] == ["upstream_request"]
    assert raised[0]["summary"] == "上级要求逾期未报（第1次催报）"
    # The township's next follow-up answers the city, late.
    filed = rstack.call("POST", "/v1/reports", json=report_body(iid))
    assert filed.status_code == 201, filed.text
    (answered,) = by_kind(rstack, iid)["upstream_request"]
    assert answered["status"] == "met" and answered["late"] is True
    assert answered["met_by"] == filed.json()["id"]


def test_the_citys_request_in_any_order_with_its_incident_and_the_answer(rstack: Stack) -> None:
    # Before its incident: it waits, and the incident's arrival records it.
    early_id = "inc-before-request"
    publish(rstack, upstream_request(rstack, early_id, "city-req-early", timedelta(hours=2)))
    assert deadlines(rstack, incident_id=early_id) == []
    incident_reported(rstack, incident_id=early_id, grade=4)
    (early,) = by_kind(rstack, early_id)["upstream_request"]
    assert early["status"] == "pending"
    # After the report that answers it: recorded met by that report, on time.
    iid = incident_reported(rstack, grade=4).payload["incident_id"]
    request = upstream_request(rstack, iid, "city-req-late", timedelta(hours=2))
    rstack.clock.advance(timedelta(minutes=10))
    filed = rstack.call("POST", "/v1/reports", json=report_body(iid))
    assert filed.status_code == 201, filed.text
    publish(rstack, request)
    publish(rstack, request)
    (answered,) = by_kind(rstack, iid)["upstream_request"]
    assert answered["status"] == "met" and answered["late"] is False
    assert answered["met_by"] == filed.json()["id"]
    # A report filed before the city asked answers nothing.
    rstack.clock.advance(timedelta(minutes=1))
    again = upstream_request(rstack, iid, "city-req-next", timedelta(hours=2))
    publish(rstack, again)
    pending = [d for d in by_kind(rstack, iid)["upstream_request"] if d["status"] == "pending"]
    assert [d["id"] for d in pending] == [f"{iid}:upstream_request:city-req-next"]
