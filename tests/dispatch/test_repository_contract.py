"""One contract for dispatch's repository, run on every engine: SQLite, mongomock, and a real
MongoDB when ``YINGJI_TEST_MONGO_URL`` is set. Guards under concurrency (the last unit, the last
team), unique keys, null vs missing, array membership, paging order and the outbox written with
its change behave the same everywhere."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from libs.common.clock import ManualClock
from libs.common.pagination import cursor_scope
from services.dispatch import domain, events
from services.dispatch.repository import (
    AssignmentFilter,
    DispatchRepository,
    DuplicateKeyTaken,
    OrderFilter,
    PlanFilter,
    TeamFilter,
    take_entry_id,
)
from services.dispatch.repository.mongo import MongoDispatchRepository
from services.dispatch.repository.sqlite import SqliteDispatchRepository
from services.dispatch.usecases import new_line
from tests.support.engines import drain, engine_names, in_threads, repository_on

pytestmark = pytest.mark.store

T0 = datetime(2026, 7, 6, 2, 0, tzinfo=UTC)
CLOCK = ManualClock(T0)
TOWN = "349901001"


@pytest.fixture(autouse=True)
def listed() -> Iterator[None]:
    """Pages sign and check their cursors for the list a request names, as the API's do."""
    with cursor_scope(b"contract-cursor-secret-32-bytes!", "/v1/dispatches"):
        yield


@pytest.fixture(params=engine_names())
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DispatchRepository]:
    """The dispatch repository on one engine, schema in place."""
    with repository_on(
        request.param, tmp_path, SqliteDispatchRepository, MongoDispatchRepository
    ) as on_engine:
        yield on_engine


def team(ident: str, status: str = "available", **fields: Any) -> dict[str, Any]:
    """A team document with what the repository's queries look at."""
    return {
        "_id": ident,
        "name": f"队伍{ident}",
        "kind": "rescue",
        "capabilities": ["flood", "rescue"],
        "township_code": TOWN,
        "headcount": 10,
        "status": status,
        "created_at": T0,
        **fields,
    }


def line(quantity: float, item: str = "tent", min_level: float = 0) -> dict[str, Any]:
    """A stock line of W01 holding ``quantity``."""
    return new_line("W01", item, "帐篷", "顶", min_level, T0) | {"quantity": float(quantity)}


def entry(entry_id: str, item: str = "tent", kind: str = "adjustment") -> dict[str, Any]:
    """A ledger entry of W01's ``item``."""
    return {
        "_id": entry_id,
        "warehouse_id": "W01",
        "item_code": item,
        "reason": "盘点",
        "kind": kind,
        "by": "t",
        "at": T0,
        "dispatch_id": None,
    }


def order(ident: str, teams: list[str], quantity: float = 0, **fields: Any) -> dict[str, Any]:
    """A dispatch order in state reserving."""
    resources = [{"warehouse_id": "W01", "item_code": "tent", "quantity": quantity}]
    return {
        "_id": ident,
        "incident_id": "inc-1",
        "township_code": TOWN,
        "team_ids": teams,
        "resources": resources if quantity else [],
        "note": "",
        "status": "reserving",
        "created_at": T0,
        "created_by": "t",
        "updated_at": T0,
        "reserve_deadline": T0 + timedelta(seconds=120),
        "history": [{"status": "requested", "at": T0, "by": "t"}],
        **fields,
    }


def place(repo: DispatchRepository, doc: dict[str, Any]) -> Any:
    """Place an order as the use cases do (one take entry per line, the ordered event)."""
    takes = [
        entry(take_entry_id(doc["_id"], r), kind="dispatch") | {"dispatch_id": doc["_id"]}
        for r in doc["resources"]
    ]
    ordered = {"status": "ordered", "ordered_at": T0, "history": [{"status": "ordered"}]}
    event = events.dispatch_ordered(CLOCK, {**doc, "status": "ordered"})
    return repo.place_order(doc, f"auto:{doc['_id']}", "h", takes, ordered, event)


def plan(ident: str, **fields: Any) -> dict[str, Any]:
    """An active plan document."""
    return {
        "_id": ident,
        "status": "active",
        "level": 2,
        "trigger_kind": "operator",
        "trigger_id": ident,
        "incident_id": None,
        "warning_id": None,
        "hazard": "flood",
        "township_codes": [TOWN],
        "scope": "township",
        "activated_at": T0,
        "teams_on_standby": [],
        "history": [],
        **fields,
    }


def assignment(ident: str, incident_id: str, **fields: Any) -> dict[str, Any]:
    """An open dispute assignment."""
    return {
        "_id": ident,
        "incident_id": incident_id,
        "township_code": TOWN,
        "status": "active",
        "level": "group",
        "attempts": [],
        "escalations": [],
        "overdue": False,
        "open_incident": incident_id,
        "due_at": T0 + timedelta(hours=1),
        "created_at": T0,
        "version": 1,
        **fields,
    }


# -------------------------------------------------------------------------- guards under races


def test_threads_racing_for_the_last_units_take_exactly_what_is_there(
    repo: DispatchRepository,
) -> None:
    assert repo.add_stock_line_once(line(5))
    moves = in_threads(12, lambda i: repo.take_stock("W01:tent", 1, entry(f"take-{i}")))
    assert sorted(m.outcome for m in moves) == ["applied"] * 5 + ["short"] * 7
    assert repo.stock_line("W01:tent")["quantity"] == 0  # type: ignore[index]
    repo.finish_ledger_copies()
    afters = sorted(
        repo.ledger_entry(f"take-{i}")["quantity_after"]
        for i in range(12)  # type: ignore[index]
        if repo.stock_entry_recorded("W01:tent", f"take-{i}")
    )
    assert afters == [0, 1, 2, 3, 4]


def test_threads_racing_for_the_last_team_one_takes_it(repo: DispatchRepository) -> None:
    assert repo.add_team_once(team("T1", status="standby", standby_plan_id="p"))
    taken = in_threads(8, lambda i: repo.take_team("T1", f"order-{i}", T0))
    assert taken.count(True) == 1
    winner = f"order-{taken.index(True)}"
    held = repo.team("T1")
    assert held is not None and held["status"] == "deployed" and held["dispatch_id"] == winner
    repo.give_back_team("T1", "someone-else", T0)  # only the holder gives it back
    assert repo.team("T1")["status"] == "deployed"  # type: ignore[index]
    repo.give_back_team("T1", winner, T0)
    back = repo.team("T1")
    assert back is not None and back["status"] == "standby" and back["standby_plan_id"] == "p"
    assert "dispatch_id" not in back and "held_from" not in back


def test_orders_racing_for_one_team_one_placed_the_rest_hold_nothing(
    repo: DispatchRepository,
) -> None:
    assert repo.add_team_once(team("T1"))
    assert repo.add_stock_line_once(line(10))
    placements = in_threads(6, lambda i: place(repo, order(f"o{i}", ["T1"], quantity=2)))
    won = [p for p in placements if p.shortfall is None]
    assert len(won) == 1 and won[0].order["status"] == "ordered"
    assert {(p.shortfall.kind, p.shortfall.index) for p in placements if p.shortfall} == {
        ("team", 0)
    }
    assert repo.stock_line("W01:tent")["quantity"] == 8  # type: ignore[index]
    # One ordered event, the winner's; a refused order writes none.
    [ordered] = drain(repo)
    assert ordered.event_type == "dispatch_ordered"
    assert ordered.payload["dispatch_id"] == won[0].order["_id"]


def test_a_short_line_names_what_is_on_hand(repo: DispatchRepository) -> None:
    assert repo.add_stock_line_once(line(3))
    refused = place(repo, order("o1", [], quantity=4))
    assert refused.shortfall is not None
    assert (refused.shortfall.kind, refused.shortfall.on_hand) == ("line", 3)
    assert repo.take_stock("W01:nothing", 1, entry("x", item="nothing")).outcome == "missing"
    assert repo.adjust_stock("W01:tent", -4, entry("adj")).outcome == "short"
    assert repo.stock_line("W01:tent")["quantity"] == 3  # type: ignore[index]


def test_a_ledger_entry_is_applied_once(repo: DispatchRepository) -> None:
    assert repo.add_stock_line_once(line(1))
    moves = in_threads(6, lambda i: repo.release_stock("W01:tent", 2, entry("back-1")))
    assert sorted(m.outcome for m in moves) == ["applied"] + ["duplicate"] * 5
    assert repo.stock_line("W01:tent")["quantity"] == 3  # type: ignore[index]
    assert repo.stock_entry_recorded("W01:tent", "back-1")
    assert not repo.stock_entry_recorded("W01:tent", "back-2")


def test_a_stale_assignment_version_changes_nothing(repo: DispatchRepository) -> None:
    repo.record_assignment(assignment("a1", "inc-1"), "auto:a1", "h", [])
    changed = in_threads(5, lambda i: repo.change_assignment("a1", 1, {"note": str(i)}, {}, [], []))
    assert sum(c is not None for c in changed) == 1
    assert repo.assignment("a1")["version"] == 2  # type: ignore[index]


# ------------------------------------------------------------------------------- unique keys


def test_one_idempotency_key_creates_one_team_under_a_race(repo: DispatchRepository) -> None:
    results = in_threads(6, lambda i: repo.add_team(team(f"T{i}"), "key:k1", "h"))
    assert [created for _, created in results].count(True) == 1
    assert len({doc["_id"] for doc, _ in results}) == 1
    with pytest.raises(DuplicateKeyTaken):
        repo.add_team(team("T0") if results[0][0]["_id"] == "T0" else results[0][0], "key:k2", "h")


def test_a_dispute_has_one_open_assignment(repo: DispatchRepository) -> None:
    repo.record_assignment(assignment("a1", "inc-1"), "auto:a1", "h", [])
    with pytest.raises(DuplicateKeyTaken):
        repo.record_assignment(assignment("a2", "inc-1"), "auto:a2", "h", [])
    # Closed ones no longer hold the dispute, and never collide with each other.
    assert repo.close_assignments_of_incident("inc-1", T0) == 1
    repo.record_assignment(assignment("a2", "inc-1"), "auto:a2", "h", [])
    assert repo.close_assignments_of_incident("inc-1", T0) == 1
    closed = repo.assignment("a2")
    assert closed is not None and closed["status"] == "closed" and "open_incident" not in closed


def test_a_plan_is_recorded_once_per_id(repo: DispatchRepository) -> None:
    event = events.plan_activated(CLOCK, plan("p1"))
    results = in_threads(4, lambda i: repo.record_plan(plan("p1", level=i + 1), [event], None))
    assert [created for _, created in results].count(True) == 1
    assert len(drain(repo)) == 1


def test_a_refused_order_keeps_its_record_and_frees_its_key(repo: DispatchRepository) -> None:
    doc = order("o1", ["missing-team"])
    refused = place(repo, doc)
    assert refused.shortfall is not None and refused.shortfall.team_status == "unknown"
    repo.reject_order(doc, {"path": "team_ids.0", "reason": "不可调派"}, T0)
    kept = repo.order("o1")
    assert kept is not None and kept["status"] == "rejected" and "_idem" not in kept
    assert repo.order_by_idempotency_scope("auto:o1") is None


# -------------------------------------------------------------------------- null vs missing


def test_a_missing_or_null_drill_flag_is_a_real_operation(repo: DispatchRepository) -> None:
    repo.record_order(order("flag-missing", [], status="ordered"), "auto:1", "h", [])
    repo.record_order(order("flag-null", [], status="ordered", exercise=None), "auto:2", "h", [])
    repo.record_order(order("flag-false", [], status="ordered", exercise=False), "auto:3", "h", [])
    repo.record_order(order("flag-true", [], status="ordered", exercise=True), "auto:4", "h", [])
    real, _ = repo.orders_page(OrderFilter(exercise=False), 10, None)
    drills, _ = repo.orders_page(OrderFilter(exercise=True), 10, None)
    assert sorted(o["_id"] for o in real) == ["flag-false", "flag-missing", "flag-null"]
    assert [o["_id"] for o in drills] == ["flag-true"]
    assert repo.current_figures()["orders_active"] == 3
    assert repo.order("flag-null")["exercise"] is None  # type: ignore[index]
    assert "exercise" not in repo.order("flag-missing")  # type: ignore[operator]


def test_null_and_missing_fields_come_back_as_they_went_in(repo: DispatchRepository) -> None:
    repo.add_team_once(team("T1", contact=None))
    back = repo.team("T1")
    assert back is not None and back["contact"] is None and "dispatch_id" not in back
    assert back["created_at"] == T0


# ------------------------------------------------------------------------ array membership


def test_a_capability_matches_array_membership(repo: DispatchRepository) -> None:
    repo.add_team_once(team("T1", capabilities=["flood"]))
    repo.add_team_once(team("T2", capabilities=["fire", "medical"]))
    repo.add_team_once(team("T3", capabilities=["medical"], status="deployed"))
    rows, _ = repo.teams_page(TeamFilter(capability="medical"), 10, None)
    assert [r["_id"] for r in rows] == ["T2", "T3"]
    available = repo.available_teams_with_any(["medical", "flood"])
    assert sorted(r["_id"] for r in available) == ["T1", "T2"]
    assert repo.available_teams_with_any(["rope"]) == []


def test_a_township_sees_county_plans_and_plans_naming_it(repo: DispatchRepository) -> None:
    repo.record_plan(plan("p-county", scope="county", township_codes=["349901101"]), [], None)
    repo.record_plan(plan("p-ours", township_codes=["349901101", TOWN]), [], None)
    repo.record_plan(plan("p-theirs", township_codes=["349901101"]), [], None)
    rows, _ = repo.plans_page(PlanFilter(township=TOWN), 10, None)
    assert sorted(r["_id"] for r in rows) == ["p-county", "p-ours"]


def test_standby_follows_its_plan_and_never_frees_a_deployed_team(
    repo: DispatchRepository,
) -> None:
    for ident in ("T1", "T2", "T3"):
        repo.add_team_once(team(ident))
    assert repo.put_on_standby("T1", "p1", T0) and repo.put_on_standby("T2", "p1", T0)
    assert not repo.put_on_standby("T1", "p2", T0)  # no longer available
    assert repo.take_team("T2", "o1", T0)  # deployed from standby
    assert repo.standby_teams_of("p1") == ["T1"]
    assert repo.standby_plan_ids() == ["p1"]
    assert repo.release_standby("p1", T0) == 1
    assert repo.team("T2")["status"] == "deployed"  # type: ignore[index]
    assert repo.release_order_teams("o1", T0) == ["T2"]
    assert {repo.team(i)["status"] for i in ("T1", "T2", "T3")} == {"available"}  # type: ignore[index]


# ------------------------------------------------------------------------------ paging order


def test_pages_walk_newest_first_with_ties_broken_by_id(repo: DispatchRepository) -> None:
    times = [T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)]
    for index, at in enumerate(times):
        doc = order(f"o{index}", [], status="ordered", created_at=at)
        repo.record_order(doc, f"auto:{index}", "h", [])
    repo.record_order(order("o-refused", [], status="rejected"), "auto:r", "h", [])
    seen, cursor = [], None
    while True:
        rows, cursor = repo.orders_page(OrderFilter(), 2, cursor)
        seen.append([r["_id"] for r in rows])
        if cursor is None:
            break
    assert seen == [["o3", "o2"], ["o1", "o0"]]
    rejected, _ = repo.orders_page(OrderFilter(status="rejected"), 5, None)
    assert [r["_id"] for r in rejected] == ["o-refused"]


def test_the_roster_walks_in_id_order(repo: DispatchRepository) -> None:
    for ident in ("T3", "T1", "T2", "T10"):
        repo.add_team_once(team(ident))
    first, cursor = repo.teams_page(TeamFilter(), 3, None)
    rest, end = repo.teams_page(TeamFilter(), 3, cursor)
    assert [r["_id"] for r in first + rest] == ["T1", "T10", "T2", "T3"] and end is None


def test_assignments_filter_on_flags_and_township(repo: DispatchRepository) -> None:
    repo.record_assignment(assignment("a1", "i1"), "auto:a1", "h", [])
    repo.record_assignment(assignment("a2", "i2", overdue=True), "auto:a2", "h", [])
    repo.record_assignment(assignment("a3", "i3", township_code="349901101"), "auto:a3", "h", [])
    overdue, _ = repo.assignments_page(AssignmentFilter(overdue=True), 10, None)
    ours, _ = repo.assignments_page(AssignmentFilter(township_code=TOWN), 10, None)
    assert [a["_id"] for a in overdue] == ["a2"]
    assert sorted(a["_id"] for a in ours) == ["a1", "a2"]


# ---------------------------------------------------------------------------------- outbox


def test_a_plan_step_and_its_event_are_applied_once(repo: DispatchRepository) -> None:
    repo.record_plan(plan("p1"), [], None)
    changed = events.plan_changed(CLOCK, plan("p1"), 2, 3, "降级")
    steps = in_threads(
        4,
        lambda i: repo.change_plan_level(
            "p1", 2, {"level": 3}, {"action": "changed"}, changed, "e1"
        ),
    )
    assert steps.count(True) == 1
    assert repo.plan("p1")["level"] == 3  # type: ignore[index]
    assert [e.event_id for e in drain(repo)] == [changed.event_id]
    ended = events.plan_ended(CLOCK, plan("p1"), "结束", [])
    assert not repo.change_plan_level("p1", 2, {"level": 4}, {}, changed, "e2")  # stale level
    assert repo.end_plan("p1", {"status": "ended"}, {"action": "ended"}, ended, "e3")
    assert not repo.end_plan("p1", {"status": "ended"}, {"action": "ended"}, ended, "e4")
    assert [e.event_id for e in drain(repo)] == [ended.event_id]


def test_a_low_stock_alert_is_written_once_with_its_event(repo: DispatchRepository) -> None:
    repo.add_stock_line_once(line(2, min_level=5))
    low = events.stock_low(CLOCK, line(2, min_level=5))
    assert repo.lines_low_unalerted() == ["W01:tent"]
    marked = in_threads(4, lambda i: repo.mark_stock_low("W01:tent", T0, low))
    assert marked.count(True) == 1 and repo.lines_low_unalerted() == []
    assert [e.event_id for e in drain(repo)] == [low.event_id]
    repo.clear_stock_low("W01:tent")  # still low: stays alerted
    assert repo.stock_line("W01:tent")["low_alerted"] is True  # type: ignore[index]
    repo.release_stock("W01:tent", 5, entry("refill"))
    repo.clear_stock_low("W01:tent")
    refilled = repo.stock_line("W01:tent")
    assert refilled is not None and refilled["low_alerted"] is False and "low_since" not in refilled
    assert repo.current_figures()["stock_below_min"] == 0


def test_an_order_step_is_guarded_by_its_status_and_carries_its_event(
    repo: DispatchRepository,
) -> None:
    doc = order("o1", [], status="ordered")
    created = events.dispatch_ordered(CLOCK, doc)
    repo.record_order(doc, "auto:o1", "h", [created])
    moved = events.dispatch_status_changed(CLOCK, doc, "ordered", "en_route")
    entry_ = {"status": "en_route", "at": T0, "by": "t"}
    steps = in_threads(
        3, lambda i: repo.step_order("o1", "ordered", {"status": "en_route"}, entry_, moved)
    )
    assert steps.count(True) == 1
    stored = repo.order("o1")
    assert stored is not None and [h["status"] for h in stored["history"]] == [
        "requested",
        "en_route",
    ]
    assert [e.event_id for e in drain(repo)] == [created.event_id, moved.event_id]


def test_an_overdue_flag_is_raised_once(repo: DispatchRepository) -> None:
    repo.record_assignment(assignment("a1", "i1"), "auto:a1", "h", [])
    later = T0 + timedelta(hours=2)
    [due] = repo.assignments_past_due(later)
    event = events.assignment_overdue(CLOCK, due)
    flagged = in_threads(3, lambda i: repo.mark_assignment_overdue("a1", later, event))
    assert flagged.count(True) == 1 and repo.assignments_past_due(later) == []
    assert len(drain(repo)) == 1
    figures = repo.current_figures()
    assert (figures["assignments_open"], figures["assignments_overdue"]) == (1, 1)


def test_a_view_takes_each_event_once(repo: DispatchRepository) -> None:
    def fold(view: Any) -> dict[str, Any]:
        return {**(view or {}), "count": int((view or {}).get("count", 0)) + 1}

    merged = in_threads(4, lambda i: repo.merge_incident_event("inc-1", f"e{i % 2}", fold))
    assert merged.count(True) == 2
    assert repo.incident_view("inc-1")["count"] == 2  # type: ignore[index]
    assert repo.merge_warning_event("w-1", "e", lambda view: domain.new_warning_view("w-1"))
    assert repo.warning_view("w-1")["ended"] is False  # type: ignore[index]


# ------------------------------------------------------------------------- joint meetings


def meeting(ident: str, held_on: str, assignment_ids: list[str]) -> dict[str, Any]:
    """A joint meeting (联席会议) linked to assignments."""
    return {
        "_id": ident,
        "held_on": held_on,
        "convener": "县综治办",
        "attendees": ["县司法局", "县公安局"],
        "decisions": ["由司法所牵头调解"],
        "assignment_ids": assignment_ids,
        "recorded_at": T0,
        "recorded_by": "值班员",
        "exercise": False,
    }


def test_a_joint_meeting_is_recorded_once_with_its_event(repo: DispatchRepository) -> None:
    doc = meeting("m1", "2026-07-06", ["a1", "a2"])
    event = events.assignment_overdue(CLOCK, assignment("a1", "inc-1"))
    results = in_threads(4, lambda i: repo.record_joint_meeting(doc, [event]))
    assert [created for _, created in results].count(True) == 1
    assert all(stored["_id"] == "m1" for stored, _ in results)
    assert [e.event_id for e in drain(repo)] == [event.event_id]
    stored = repo.joint_meeting("m1")
    assert stored is not None and stored["decisions"] == ["由司法所牵头调解"]
    assert repo.joint_meeting("nope") is None


def test_meetings_are_listed_on_each_linked_assignment_in_order(repo: DispatchRepository) -> None:
    repo.record_joint_meeting(meeting("m2", "2026-07-08", ["a1"]), [])
    repo.record_joint_meeting(meeting("m1", "2026-07-06", ["a1", "a2"]), [])
    repo.record_joint_meeting(meeting("m3", "2026-07-07", ["a3"]), [])
    assert [m["_id"] for m in repo.meetings_of_assignment("a1")] == ["m1", "m2"]
    assert [m["_id"] for m in repo.meetings_of_assignment("a2")] == ["m1"]
    assert repo.meetings_of_assignment("a9") == []
    assert "_outbox" not in repo.meetings_of_assignment("a3")[0]
