"""One contract for reporting's repository, run on every engine: SQLite, mongomock, and a real
MongoDB when ``YINGJI_TEST_MONGO_URL`` is set. Insert-once under concurrency, guards, unique keys,
null vs missing, array membership, paging order, day-range reads and the outbox written with the
change behave the same everywhere."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from libs.common.clock import ManualClock
from libs.common.events import EventEnvelope, make_event
from libs.common.pagination import cursor_scope
from services.reporting.repository import (
    OVERDUE_FIELDS,
    AuditFilter,
    ChainSlotTakenError,
    DeadlineFilter,
    ReportingRepository,
)
from services.reporting.repository.mongo import MongoReportingRepository
from services.reporting.repository.sqlite import SqliteReportingRepository
from tests.support.engines import drain, engine_names, in_threads, repository_on

pytestmark = pytest.mark.store

T0 = datetime(2026, 7, 6, 2, 0, tzinfo=UTC)
TOWN_A, TOWN_B = "349901001", "349901101"
CLOCK = ManualClock(T0)


@pytest.fixture(autouse=True)
def a_list() -> Iterator[None]:
    """Pages sign and check their cursors for the list a request names, as the API's do."""
    with cursor_scope(b"contract-cursor-secret-32-bytes!", "/v1/deadlines"):
        yield


@pytest.fixture(params=engine_names())
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReportingRepository]:
    """The reporting repository on one engine, schema in place."""
    with repository_on(
        request.param, tmp_path, SqliteReportingRepository, MongoReportingRepository
    ) as on_engine:
        yield on_engine


def incident(ident: str, **fields: Any) -> dict[str, Any]:
    """Reporting's view of an incident, with what the queries look at."""
    doc: dict[str, Any] = {
        "_id": ident,
        "township_code": TOWN_A,
        "category": "flood",
        "title": ident,
        "grade": 4,
        "status": "open",
        "exercise": False,
        "late": False,
        "occurred_at": T0,
        "reported_at": T0,
        "report_seq": 0,
        "followup_count": 0,
        "regrades": [],
    }
    doc.update(fields)
    return doc


def deadline(ident: str, **fields: Any) -> dict[str, Any]:
    """A pending, armed deadline due at T0."""
    doc: dict[str, Any] = {
        "_id": ident,
        "incident_id": "i1",
        "township_code": TOWN_A,
        "kind": "followup",
        "exercise": False,
        "grade": 4,
        "due_at": T0,
        "window_start": T0 - timedelta(hours=1),
        "status": "pending",
        "late": False,
        "escalation": 0,
        "armed": True,
        "next_check_at": T0,
        "met_at": None,
    }
    doc.update(fields)
    return doc


def report(ident: str, seq: int, **fields: Any) -> dict[str, Any]:
    """A follow-up report of incident i1."""
    doc: dict[str, Any] = {
        "_id": ident,
        "incident_id": "i1",
        "township_code": TOWN_A,
        "kind": "followup",
        "exercise": False,
        "number": seq,
        "seq": seq,
        "chain_key": f"i1:F{seq}",
        "filed_at": T0,
        "event_id": f"evt-{ident}",
    }
    doc.update(fields)
    return doc


def timeline_entry(ident: str, at: datetime, incident_ids: list[str], **fields: Any) -> dict:
    """A timeline entry as the timeline handler stores it."""
    doc = {
        "_id": ident,
        "event_type": "incident_reported",
        "source": "intake",
        "occurred_at": at,
        "order_key": f"{at.strftime('%Y-%m-%dT%H:%M:%S.%f')}|{ident}",
        "incident_ids": incident_ids,
        "township_code": TOWN_A,
        "payload": {},
    }
    doc.update(fields)
    return doc


def event(aggregate: str, n: int = 1) -> EventEnvelope:
    """A reporting event about ``aggregate``."""
    payload = {
        "deadline_id": aggregate,
        "incident_id": "i1",
        "township_code": TOWN_A,
        "kind": "followup",
        "due_at": T0.isoformat(),
        "escalation": n,
        "exercise": False,
    }
    return make_event(CLOCK, "reporting", "report_overdue", payload, correlation_id="i1")


# Insert-once under concurrency --------------------------------------------------------------


def test_one_of_many_concurrent_inserts_of_an_incident_wins(repo: ReportingRepository) -> None:
    outcomes = in_threads(8, lambda i: repo.record_incident_if_new(incident("a", title=f"t{i}")))
    assert outcomes.count(True) == 1
    stored = repo.incident_view("a")
    assert stored is not None and stored["title"] in {f"t{i}" for i in range(8)}


def _first_slot(current: Mapping[str, Any]) -> dict[str, Any]:
    generation = len(current.get("regrades") or [])
    return deadline(f"{current['_id']}:followup:{generation}", incident_id=current["_id"])


def test_a_first_report_is_written_whole_once(repo: ReportingRepository) -> None:
    initial = deadline("i1:initial", kind="initial", status="met", armed=None)
    entry = timeline_entry("e1", T0, ["i1"])
    first = repo.record_reported_incident(incident("i1"), initial, _first_slot, entry)
    assert (first.incident, first.initial, first.followup, first.timeline) == (True,) * 4
    again = repo.record_reported_incident(incident("i1"), initial, _first_slot, entry)
    assert not again.changed and not again.timeline
    assert repo.deadline_by_id("i1:followup:0") is not None
    assert repo.has_followup_deadline("i1") and repo.has_timeline_entry("e1")
    assert not repo.has_timeline_entry("e2")
    assert [r["_id"] for r in repo.timeline_page("i1", 50, None)[0]] == ["e1"]


def test_a_redelivered_first_report_plans_from_the_incident_as_stored(
    repo: ReportingRepository,
) -> None:
    repo.record_incident_if_new(incident("i1", regrades=[{"grade": 3}]))
    initial = deadline("i1:initial", kind="initial", status="met", armed=None)
    entry = timeline_entry("e1", T0, ["i1"])
    written = repo.record_reported_incident(incident("i1"), initial, _first_slot, entry)
    assert (written.incident, written.initial, written.followup) == (False, True, True)
    assert repo.deadline_by_id("i1:followup:1") is not None
    repo.record_incident_if_new(incident("i2", status="closed"))
    closed = repo.record_reported_incident(
        incident("i2"), deadline("i2:initial", incident_id="i2", kind="initial"), _first_slot, entry
    )
    assert closed.initial and not closed.followup and not closed.timeline
    assert not repo.has_followup_deadline("i2")


def test_concurrent_first_reports_write_each_part_once(repo: ReportingRepository) -> None:
    initial = deadline("i1:initial", kind="initial", status="met", armed=None)
    outcomes = in_threads(
        6,
        lambda i: repo.record_reported_incident(
            incident("i1"), initial, _first_slot, timeline_entry("e1", T0, ["i1"])
        ),
    )
    assert sum(o.incident for o in outcomes) == 1
    assert sum(o.followup for o in outcomes) == 1
    assert sum(o.timeline for o in outcomes) == 1


def test_a_summary_is_published_once_with_one_event(repo: ReportingRepository) -> None:
    doc = {"_id": "daily:2026-07-06", "kind": "daily", "published_at": T0, "content": {}}
    outcomes = in_threads(6, lambda i: repo.record_summary_once(doc, [event(f"s{i}")]))
    assert outcomes.count(True) == 1
    assert len(drain(repo)) == 1
    found = repo.summary_by_id("daily:2026-07-06")
    assert found is not None and (found["kind"], found["published_at"]) == ("daily", T0)


def test_a_missed_zero_report_alert_is_raised_once(repo: ReportingRepository) -> None:
    doc = {"_id": f"{TOWN_A}:2026-07-05", "township_code": TOWN_A, "date": "2026-07-05"}
    outcomes = in_threads(5, lambda i: repo.record_missed_zero_report(doc, [event("z")]))
    assert outcomes.count(True) == 1
    assert [r["_id"] for r in repo.missed_zero_reports_of_day(date(2026, 7, 5))] == [doc["_id"]]
    assert len(drain(repo)) == 1


def test_plan_events_folded_concurrently_are_all_kept(repo: ReportingRepository) -> None:
    def fold(i: int) -> bool:
        return repo.merge_plan_event(
            "p1",
            f"evt-{i}",
            lambda view: {"seen": sorted({*(view or {}).get("seen", []), i})},
        )

    assert in_threads(6, fold).count(True) == 6
    plan = repo.plan_view("p1")
    assert plan is not None and plan["seen"] == list(range(6))
    assert repo.merge_plan_event("p1", "evt-0", lambda view: {"seen": []}) is False


# Guards -------------------------------------------------------------------------------------


def test_one_of_many_concurrent_meetings_of_a_deadline_wins(repo: ReportingRepository) -> None:
    repo.record_deadline_if_new(deadline("d1"))
    outcomes = in_threads(6, lambda i: repo.meet_deadline("d1", T0, f"r{i}", False))
    assert outcomes.count(True) == 1
    met = repo.deadline_by_id("d1")
    assert met is not None
    assert (met["status"], met["armed"], met["next_check_at"]) == ("met", None, None)
    assert repo.deadlines_due(T0 + timedelta(days=1)) == []


def test_a_deadline_goes_overdue_once_then_escalates_once(repo: ReportingRepository) -> None:
    repo.record_deadline_if_new(deadline("d1"))
    later = T0 + timedelta(hours=2)
    outcomes = in_threads(5, lambda i: repo.mark_overdue("d1", T0, later, event("d1", 1)))
    assert outcomes.count(True) == 1
    assert [e.payload["escalation"] for e in drain(repo)] == [1]
    assert [d["_id"] for d in repo.deadlines_due(later)] == ["d1"]
    assert repo.deadlines_due(later - timedelta(seconds=1)) == []
    assert not repo.mark_overdue("d1", T0, later, event("d1", 1))
    assert repo.mark_long_overdue("d1", later, event("d1", 2))
    assert not repo.mark_long_overdue("d1", later, event("d1", 2))
    assert [e.payload["escalation"] for e in drain(repo)] == [2]
    assert repo.deadlines_due(later + timedelta(days=9)) == []


def test_the_due_times_of_met_follow_ups_are_those_of_the_incident(
    repo: ReportingRepository,
) -> None:
    later = T0 + timedelta(hours=9)
    repo.record_deadline_if_new(deadline("d1"))
    repo.record_deadline_if_new(deadline("d2", due_at=later))
    repo.record_deadline_if_new(deadline("d3", due_at=later + timedelta(days=1)))
    repo.record_deadline_if_new(deadline("e1", kind="escalation", due_at=later))
    repo.record_deadline_if_new(deadline("x1", incident_id="i2", due_at=later))
    assert repo.met_followup_dues("i1") == set()
    for ident in ("d1", "d2", "e1", "x1"):
        assert repo.meet_deadline(ident, T0, f"r-{ident}", False)
    assert repo.met_followup_dues("i1") == {T0, later}
    assert repo.met_followup_dues("i3") == set()


def test_a_guard_that_fails_writes_no_event(repo: ReportingRepository) -> None:
    repo.record_deadline_if_new(deadline("d1", status="met", armed=None))
    assert not repo.mark_overdue("d1", T0, T0, event("d1"))
    assert not repo.mark_long_overdue("d1", T0, event("d1"))
    assert drain(repo) == []


def test_figures_of_an_older_report_never_replace_newer_ones(repo: ReportingRepository) -> None:
    repo.record_incident_if_new(incident("i1"))
    assert repo.take_report_figures("i1", 2, {"affected": {"n": 2}}, 2, None)
    assert not repo.take_report_figures("i1", 1, {"affected": {"n": 1}}, 1, None)
    assert repo.take_report_figures("i1", 3, {"affected": {"n": 3}}, 0, T0)
    view = repo.incident_view("i1")
    assert view is not None
    assert (view["current"], view["report_seq"], view["followup_count"]) == (
        {"affected": {"n": 3}},
        3,
        2,
    )
    assert view["finalised"] is True and view["finalised_at"] == T0


def test_a_later_grade_is_not_overwritten_by_an_earlier_regrade(
    repo: ReportingRepository,
) -> None:
    repo.record_incident_if_new(incident("i1"))
    assert repo.set_grade_if_later("i1", 2, T0 + timedelta(hours=2))
    assert not repo.set_grade_if_later("i1", 3, T0 + timedelta(hours=1))
    assert repo.set_grade_if_later("i1", 1, T0 + timedelta(hours=3))
    view = repo.incident_view("i1")
    assert view is not None and view["grade"] == 1


def test_a_report_meets_the_deadline_it_claimed_first(repo: ReportingRepository) -> None:
    repo.record_report(report("r1", 1), "auto:r1", "h", [])
    outcomes = in_threads(4, lambda i: repo.claim_deadline_for_report("r1", f"d{i}"))
    assert len(set(outcomes)) == 1 and outcomes[0] in {"d0", "d1", "d2", "d3"}


def test_a_cursor_only_moves_forward(repo: ReportingRepository) -> None:
    assert repo.advance_cursor("scan", "through", "2026-07-05")
    assert not repo.advance_cursor("scan", "through", "2026-07-04")
    assert repo.advance_cursor("scan", "through", "2026-07-06")
    state = repo.state("scan")
    assert state is not None and state["through"] == "2026-07-06"
    assert repo.record_state_if_new("first", {"date": "2026-07-01"})
    assert not repo.record_state_if_new("first", {"date": "2026-07-09"})
    assert (repo.state("first") or {})["date"] == "2026-07-01"


def test_an_event_changes_an_incident_once(repo: ReportingRepository) -> None:
    repo.record_incident_if_new(incident("i1"))
    entry = {"old_grade": 4, "new_grade": 3, "at": T0}
    assert in_threads(4, lambda i: repo.add_regrade_once("i1", entry, "evt-1")).count(True) == 1
    assert not repo.set_incident_once("i1", {"status": "closed"}, "evt-1")
    assert repo.set_incident_once("i1", {"status": "closed"}, "evt-2")
    view = repo.incident_view("i1")
    assert view is not None
    assert (view["status"], view["regrades"], view["_applied"]) == (
        "closed",
        [entry],
        ["evt-1", "evt-2"],
    )


def test_a_warning_view_moves_only_forward_in_version(repo: ReportingRepository) -> None:
    assert repo.apply_warning_version("w1", 2, {"version": 2, "level": 2}, "e2")
    assert not repo.apply_warning_version("w1", 1, {"version": 1, "level": 4}, "e1")
    assert not repo.apply_warning_version("w1", 2, {"version": 2, "level": 3}, "e2")
    repo.set_warning_issued_at_if_earlier("w1", T0)
    repo.set_warning_issued_at_if_earlier("w1", T0 + timedelta(hours=1))
    view = repo.warning_view("w1")
    assert view is not None and (view["level"], view["issued_at"]) == (2, T0)


def test_dispatches_under_way_are_the_real_ones_not_yet_completed(
    repo: ReportingRepository,
) -> None:
    for ident, status, minutes, exercise in [
        ("o-late", "on_scene", 5, False),
        ("o-first", "ordered", 0, False),
        ("o-done", "completed", 1, False),
        ("o-free", "released", 2, False),
        ("o-drill", "en_route", 3, True),
    ]:
        at = T0 + timedelta(minutes=minutes)
        doc = {"_id": ident, "status": status, "ordered_at": at, "exercise": exercise}
        assert repo.record_dispatch_if_new(doc)
    assert [d["_id"] for d in repo.dispatches_under_way()] == ["o-first", "o-late"]


def test_a_dispatch_advances_through_its_statuses_only(repo: ReportingRepository) -> None:
    stub = {"_id": "o1", "status": "ordered", "ordered_at": None, "exercise": False}
    assert repo.record_dispatch_if_new(stub)
    assert repo.advance_dispatch("o1", ["ordered"], "en_route", T0, "e1")
    assert not repo.advance_dispatch("o1", ["ordered"], "en_route", T0, "e1")
    assert not repo.advance_dispatch("o1", ["ordered"], "on_scene", T0, "e3")
    assert repo.fill_dispatch_stub("o1", {"ordered_at": T0, "team_ids": ["T1"]})
    assert not repo.fill_dispatch_stub("o1", {"ordered_at": T0, "team_ids": ["T2"]})
    view = repo.dispatch_view("o1")
    assert view is not None
    assert (view["status"], view["status_at"], view["team_ids"]) == (
        "en_route",
        {"en_route": T0},
        ["T1"],
    )


# Unique keys --------------------------------------------------------------------------------


def test_one_idempotency_key_files_one_report_under_a_race(repo: ReportingRepository) -> None:
    outcomes = in_threads(
        6,
        lambda i: repo.record_report(
            report(f"r{i}", i + 1, chain_key=f"i1:x{i}"), "caller:k", "d", [event("r")]
        ),
    )
    created = [doc for doc, made in outcomes if made]
    assert len(created) == 1
    assert {doc["_id"] for doc, _ in outcomes} == {created[0]["_id"]}
    assert (repo.report_by_idempotency_scope("caller:k") or {})["_id"] == created[0]["_id"]
    assert len(drain(repo)) == 1


def test_a_chain_slot_is_taken_once(repo: ReportingRepository) -> None:
    repo.record_report(report("r1", 1), "auto:r1", "h", [])
    with pytest.raises(ChainSlotTakenError):
        repo.record_report(report("r2", 2, chain_key="i1:F1"), "auto:r2", "h", [event("r2")])
    with pytest.raises(ChainSlotTakenError):
        repo.record_report(report("r3", 1, chain_key="i1:F9"), "auto:r3", "h", [event("r3")])
    assert drain(repo) == []
    repo.record_report(report("r4", 2, kind="final", chain_key="i1:final"), "auto:r4", "h", [])
    assert repo.final_report_filed("i1") and not repo.final_report_filed("i2")
    assert [r["_id"] for r in repo.chain_of("i1")] == ["r1", "r4"]
    assert (repo.last_report("i1") or {})["_id"] == "r4"
    assert (repo.report_by_event_id("evt-r1") or {})["_id"] == "r1"


def test_a_zero_report_is_filed_once_per_township_and_day(repo: ReportingRepository) -> None:
    doc = {"_id": f"{TOWN_A}:2026-07-05", "township_code": TOWN_A, "date": "2026-07-05"}
    stored, created = repo.record_zero_report({**doc, "hash": "1"}, [event("z")])
    assert created and stored["hash"] == "1"
    again, created = repo.record_zero_report({**doc, "hash": "2"}, [event("z")])
    assert not created and again["hash"] == "1"
    _, created = repo.record_zero_report({**doc, "hash": "3", "exercise": True}, [])
    assert created
    assert [r["hash"] for r in repo.zero_reports_of_day(date(2026, 7, 5))] == ["1"]
    assert [r["hash"] for r in repo.zero_reports_of_day(date(2026, 7, 5), exercise=True)] == ["3"]
    assert len(drain(repo)) == 1


# Null vs missing ----------------------------------------------------------------------------


def test_null_and_missing_fields_come_back_as_they_went_in(repo: ReportingRepository) -> None:
    repo.record_incident_if_new(incident("a", closed_by=None))
    repo.record_incident_if_new(incident("b"))
    a, b = repo.incident_view("a"), repo.incident_view("b")
    assert a is not None and b is not None
    assert "closed_by" in a and a["closed_by"] is None
    assert "closed_by" not in b
    assert a["reported_at"] == T0 and a["reported_at"].tzinfo is not None


def test_a_missing_drill_flag_counts_as_real(repo: ReportingRepository) -> None:
    legacy = deadline("legacy", status="overdue")
    del legacy["exercise"]
    repo.record_deadline_if_new(legacy)
    repo.record_deadline_if_new(deadline("drill", status="overdue", exercise=True))
    repo.record_deadline_if_new(deadline("real", status="overdue", township_code=TOWN_B))
    assert repo.overdue_per_township() == {TOWN_A: 1, TOWN_B: 1}

    def ids(exercise: bool) -> set[str]:
        rows, _ = repo.deadlines_page(DeadlineFilter(exercise=exercise), 50, None)
        return {r["_id"] for r in rows}

    assert ids(True) == {"drill"}
    assert ids(False) == {"legacy", "real"}
    due = [d["_id"] for d in repo.overdue_deadlines_due_before(T0 + timedelta(seconds=1))]
    assert sorted(due) == ["legacy", "real"]


def test_overdue_deadlines_come_with_the_fields_a_list_shows_as_stored(
    repo: ReportingRepository,
) -> None:
    met_late = deadline("a", status="overdue", late=True, met_at=T0, escalation=2)
    unmarked = deadline("b", status="overdue", due_at=T0 - timedelta(hours=1))
    del unmarked["late"], unmarked["escalation"], unmarked["incident_id"]
    for doc in (met_late, unmarked):
        repo.record_deadline_if_new(doc)
    rows = repo.overdue_deadlines_due_before(T0 + timedelta(seconds=1))
    expected = [
        {k: v for k, v in doc.items() if k in OVERDUE_FIELDS} for doc in (unmarked, met_late)
    ]
    # Missing stays missing, null stays null, booleans and datetimes keep their types.
    assert rows == expected
    assert type(rows[1]["late"]) is bool and type(rows[0]["status"]) is str


def test_titles_of_many_incidents_come_in_one_read(repo: ReportingRepository) -> None:
    repo.record_incident_if_new(incident("a", title="山洪"))
    repo.record_incident_if_new(incident("b", title=None))
    untitled = incident("c")
    del untitled["title"]
    repo.record_incident_if_new(untitled)
    titles = repo.incident_titles(["a", "b", "c", "a", "unknown"])
    assert titles == {"a": "山洪", "b": None, "c": None}
    assert repo.incident_titles([]) == {}


def test_a_published_summary_comes_back_whole_with_its_times(
    repo: ReportingRepository,
) -> None:
    """A published daily report is served from its stored copy: nested datetimes stay aware."""
    assert repo.summary_by_id("daily:2026-07-06") is None
    doc: dict[str, Any] = {
        "_id": "daily:2026-07-06",
        "kind": "daily",
        "published_at": T0,
        "published_by": "timer",
        "content": {"issue_number": 7, "period": {"from": T0}, "incident_list": [{"n": 1}]},
    }
    assert repo.record_summary_once(doc, [event(doc["_id"])])
    assert not repo.record_summary_once({**doc, "published_by": "k1"}, [event("again")])
    stored = repo.summary_by_id("daily:2026-07-06")
    assert stored is not None and stored["published_by"] == "timer"
    assert stored["content"] == doc["content"]
    assert stored["content"]["period"]["from"].utcoffset() == timedelta(0)


def test_a_deadline_without_the_armed_flag_is_never_due(repo: ReportingRepository) -> None:
    unarmed = deadline("missing")
    del unarmed["armed"]
    repo.record_deadline_if_new(unarmed)
    repo.record_deadline_if_new(deadline("null", armed=None))
    repo.record_deadline_if_new(deadline("armed"))
    assert [d["_id"] for d in repo.deadlines_due(T0)] == ["armed"]


# Array membership ---------------------------------------------------------------------------


def test_an_entry_about_two_incidents_is_in_both_timelines(repo: ReportingRepository) -> None:
    assert repo.record_timeline_entry(timeline_entry("e1", T0, ["a", "b"]))
    assert not repo.record_timeline_entry(timeline_entry("e1", T0, ["a", "b"]))
    repo.record_timeline_entry(timeline_entry("e2", T0, ["b"]))
    assert [r["_id"] for r in repo.timeline_page("a", 50, None)[0]] == ["e1"]
    assert [r["_id"] for r in repo.timeline_page("b", 50, None)[0]] == ["e1", "e2"]
    assert repo.timeline_page("c", 50, None) == ([], None)
    audit, _ = repo.audit_page(AuditFilter(incident_id="a"), 50, None)
    assert [r["_id"] for r in audit] == ["e1"]


# Paging order -------------------------------------------------------------------------------


def test_deadline_pages_walk_due_time_with_ties_broken_by_id(repo: ReportingRepository) -> None:
    times = [T0, T0, T0 + timedelta(minutes=1), T0 - timedelta(minutes=5), T0, T0]
    for i, at in enumerate(times):
        status = "met" if i == 4 else "pending"
        repo.record_deadline_if_new(deadline(f"d{i}", due_at=at, status=status))
    expected = [ident for _, ident in sorted((at, f"d{i}") for i, at in enumerate(times))]
    seen, cursor = [], None
    while True:
        rows, cursor = repo.deadlines_page(DeadlineFilter(), 4, cursor)
        seen.extend(r["_id"] for r in rows)
        if cursor is None:
            break
    assert seen == expected
    rows, cursor = repo.deadlines_page(DeadlineFilter(status="pending"), 2, None)
    more, end = repo.deadlines_page(DeadlineFilter(status="pending"), 2, cursor)
    rest, _ = repo.deadlines_page(DeadlineFilter(status="pending"), 2, end)
    assert [r["_id"] for r in rows + more + rest] == [i for i in expected if i != "d4"]


def test_timeline_and_audit_pages_walk_arrival_order(repo: ReportingRepository) -> None:
    for n in range(5):
        at = T0 + timedelta(minutes=n)
        repo.record_timeline_entry(timeline_entry(f"e{n}", at, ["a"], source=f"s{n % 2}"))
    first, cursor = repo.timeline_page("a", 2, None)
    second, cursor = repo.timeline_page("a", 2, cursor)
    third, end = repo.timeline_page("a", 2, cursor)
    assert [r["_id"] for r in first + second + third] == [f"e{n}" for n in range(5)]
    assert end is None
    window = AuditFilter(
        occurred_from=T0 + timedelta(minutes=1), occurred_before=T0 + timedelta(minutes=4)
    )
    assert [r["_id"] for r in repo.audit_page(window, 50, None)[0]] == ["e1", "e2", "e3"]
    odd, _ = repo.audit_page(AuditFilter(source="s1"), 50, None)
    assert [r["_id"] for r in odd] == ["e1", "e3"]
    live = repo.timeline_since(T0 + timedelta(minutes=3), None, 10)
    assert [r["_id"] for r in live] == ["e3", "e4"]
    after = repo.timeline_since(T0, (T0 + timedelta(minutes=3), "e3"), 10)
    assert [r["_id"] for r in after] == ["e4"]


# Day-range reads ----------------------------------------------------------------------------


def test_incidents_of_a_period_are_real_and_half_open(repo: ReportingRepository) -> None:
    for i in range(4):
        repo.record_incident_if_new(incident(f"i{i}", reported_at=T0 + timedelta(hours=i)))
    repo.record_incident_if_new(incident("drill", exercise=True))
    repo.record_incident_if_new(incident("late", late=True, township_code=TOWN_B))
    start, end = T0, T0 + timedelta(hours=3)
    assert [r["_id"] for r in repo.incidents_reported_between(start, end)] == [
        "i0",
        "late",
        "i1",
        "i2",
    ]
    assert [r["_id"] for r in repo.incidents_reported_between(start, end, late_only=True)] == [
        "late"
    ]
    assert repo.incidents_reported_per_township(start, end) == {TOWN_A: 3, TOWN_B: 1}
    assert repo.township_incidents_between(TOWN_A, "reported_at", start, end) == [
        "i0",
        "i1",
        "i2",
    ]
    assert repo.township_incidents_between(TOWN_B, "occurred_at", start, end) == ["late"]


def test_a_merged_duplicate_is_no_incident_of_the_period(repo: ReportingRepository) -> None:
    """The period's incidents leave a merged duplicate out (its primary is the event); what the
    township itself filed still counts for its reporting work and its zero report."""
    repo.record_incident_if_new(incident("primary"))
    repo.record_incident_if_new(incident("dup", status="merged", late=True))
    repo.record_incident_if_new(incident("closed", status="closed"))
    day = (T0, T0 + timedelta(days=1))
    assert [r["_id"] for r in repo.incidents_reported_between(*day)] == ["closed", "primary"]
    assert repo.incidents_reported_between(*day, late_only=True) == []
    assert repo.incidents_reported_per_township(*day) == {TOWN_A: 3}
    assert repo.township_incidents_between(TOWN_A, "reported_at", *day) == [
        "closed",
        "dup",
        "primary",
    ]
    for about in ("primary", "dup"):
        filed = report(f"r-{about}", 1, incident_id=about, chain_key=f"{about}:F1")
        repo.record_report(filed, f"auto:{about}", "h", [])
        late = deadline(f"late-{about}", incident_id=about, status="met", late=True, met_at=T0)
        repo.record_deadline_if_new(late)
    # A campaign's deadline names no incident and stays in.
    campaign = deadline("campaign", incident_id=None, status="met", late=True, met_at=T0)
    repo.record_deadline_if_new(campaign)
    assert repo.reports_filed_per_kind(*day) == {"followup": 1}
    assert repo.reports_filed_per_township(*day) == {TOWN_A: 2}
    late_ids = [d["_id"] for d in repo.late_deadlines_met_between(*day)]
    assert sorted(late_ids) == ["campaign", "late-primary"]


def test_the_open_set_comes_by_grade_then_report_time(repo: ReportingRepository) -> None:
    repo.record_incident_if_new(incident("g4", grade=4))
    repo.record_incident_if_new(incident("g2", grade=2, reported_at=T0 + timedelta(hours=1)))
    repo.record_incident_if_new(incident("closed", grade=1, status="closed"))
    repo.record_incident_if_new(incident("after", grade=1, reported_at=T0 + timedelta(days=2)))
    found = repo.open_incidents_reported_before(T0 + timedelta(days=1))
    assert [r["_id"] for r in found] == ["g2", "g4"]


def test_reports_and_deadlines_are_counted_per_period(repo: ReportingRepository) -> None:
    repo.record_report(report("r1", 1), "auto:r1", "h", [])
    repo.record_report(report("r2", 2, filed_at=T0 + timedelta(days=1)), "auto:r2", "h", [])
    repo.record_report(report("r3", 3, kind="final", chain_key="i1:final"), "auto:r3", "h", [])
    repo.record_report(
        report("r4", 4, exercise=True, chain_key="i1:F4", incident_id="i1"), "auto:r4", "h", []
    )
    day = (T0, T0 + timedelta(days=1))
    assert repo.reports_filed_per_kind(*day) == {"followup": 1, "final": 1}
    assert repo.reports_filed_per_township(*day) == {TOWN_A: 2}
    repo.record_deadline_if_new(deadline("on_time", status="met", kind="initial"))
    repo.record_deadline_if_new(deadline("late", status="met", late=True, met_at=T0))
    repo.record_deadline_if_new(deadline("open"))
    repo.record_deadline_if_new(deadline("cancelled", status="cancelled"))
    repo.record_deadline_if_new(deadline("drill", exercise=True))
    tally = repo.deadline_tallies(*day)[TOWN_A]
    assert (tally.due, tally.met_on_time, tally.met_late) == (3, 1, 1)
    assert (tally.later_due, tally.later_met) == (2, 1)
    assert [d["_id"] for d in repo.late_deadlines_met_between(*day)] == ["late"]


def test_zero_reports_and_contradictions_are_read_by_day(repo: ReportingRepository) -> None:
    for n, day in enumerate(("2026-07-04", "2026-07-05", "2026-07-06")):
        for town in (TOWN_B, TOWN_A):
            doc = {"_id": f"{town}:{day}", "township_code": town, "date": day}
            repo.record_zero_report(doc, [])
            conflict = {
                **doc,
                "_id": f"{town}:{day}:c",
                "incident_ids": [],
                "attempted_at": T0 + timedelta(hours=n, minutes=town == TOWN_A),
            }
            repo.record_contradiction(conflict, [])
    rows = repo.zero_reports_of_day(date(2026, 7, 5))
    assert [r["township_code"] for r in rows] == [TOWN_A, TOWN_B]
    span = repo.zero_reports_between(date(2026, 7, 5), date(2026, 7, 6))
    assert sorted(r["_id"] for r in span) == sorted(
        f"{t}:{d}" for t in (TOWN_A, TOWN_B) for d in ("2026-07-05", "2026-07-06")
    )
    newest = repo.contradictions_of_days(
        date(2026, 7, 5), date(2026, 7, 6), TOWN_A, newest_first=True
    )
    assert [r["_id"] for r in newest] == [f"{TOWN_A}:2026-07-06:c", f"{TOWN_A}:2026-07-05:c"]
    oldest = repo.contradictions_of_days(date(2026, 7, 4), date(2026, 7, 4))
    assert [r["_id"] for r in oldest] == [f"{TOWN_B}:2026-07-04:c", f"{TOWN_A}:2026-07-04:c"]
    made = repo.contradictions_attempted_between(T0 + timedelta(hours=1), T0 + timedelta(hours=2))
    assert [r["date"] for r in made] == ["2026-07-05", "2026-07-05"]


def test_warnings_and_plans_active_at_a_moment(repo: ReportingRepository) -> None:
    end = T0 + timedelta(days=1)
    cases = {
        "running": {"issued_at": T0, "ended_at": None},
        "ended_after": {"issued_at": T0, "ended_at": end + timedelta(hours=1)},
        "ended_before": {"issued_at": T0, "ended_at": end - timedelta(hours=1)},
        "issued_after": {"issued_at": end + timedelta(hours=1), "ended_at": None},
        "drill": {"issued_at": T0, "ended_at": None, "exercise": True},
    }
    for name, fields in cases.items():
        exercise = bool(fields.pop("exercise", False))
        repo.apply_warning_version(name, 1, {**fields, "exercise": exercise}, f"e-{name}")
        plan = {
            "activated_at": fields["issued_at"],
            "ended_at": fields["ended_at"],
            "exercise": exercise,
        }
        repo.merge_plan_event(name, f"p-{name}", lambda view, plan=plan: plan)
    assert sorted(w["_id"] for w in repo.warnings_active_at(end)) == ["ended_after", "running"]
    assert sorted(p["_id"] for p in repo.plans_active_at(end)) == ["ended_after", "running"]


def test_early_events_wait_for_their_incident(repo: ReportingRepository) -> None:
    for n in (2, 1):
        doc = {"_id": f"e{n}", "incident_id": "i1", "occurred_at": T0 + timedelta(minutes=n)}
        assert repo.park_event_once(doc)
        assert not repo.park_event_once(doc)
    assert [p["_id"] for p in repo.parked_events_of("i1")] == ["e1", "e2"]
    repo.unpark("e1")
    assert [p["_id"] for p in repo.parked_events_of("i1")] == ["e2"]


# The outbox ---------------------------------------------------------------------------------


def test_events_leave_in_order_per_aggregate_and_only_once_confirmed(
    repo: ReportingRepository,
) -> None:
    repo.record_deadline_if_new(deadline("d1"))
    first, second = event("d1", 1), event("d1", 2)
    assert repo.mark_overdue("d1", T0, T0, first)
    assert repo.mark_long_overdue("d1", T0, second)
    sources = repo.relay_parts().sources
    claimed = [(s, b) for s in sources if (b := s.claim(100, 30.0, "relay-1")) is not None]
    assert [e.event_id for _, b in claimed for e in b.events] == [
        first.event_id,
        second.event_id,
    ]
    # Another relay finds nothing while the lease holds.
    assert drain(repo) == []
    for source, batch in claimed:
        source.confirm(batch)
    assert sum(source.pending()[0] for source in sources) == 0
    assert drain(repo) == []


def test_an_enterprise_name_moves_only_forward_in_revision(repo: ReportingRepository) -> None:
    assert repo.enterprise_entry("E1") is None
    assert repo.keep_enterprise_name("E1", 2, "新名称")
    assert not repo.keep_enterprise_name("E1", 1, "旧名称")
    assert not repo.keep_enterprise_name("E1", 2, "新名称")
    assert repo.enterprise_entry("E1")["name"] == "新名称"  # type: ignore[index]
    assert repo.keep_enterprise_name("E1", 3, "更新名称")
    assert repo.enterprise_entry("E1") == {
        "_id": "E1",
        "revision": 3,
        "name": "更新名称",
        "exercise": False,
    }


def test_an_enterprise_keeps_its_drill_flag(repo: ReportingRepository) -> None:
    """A drill enterprise (演练) stays one at every revision it is kept at."""
    assert repo.enterprise_entry("E-drill") is None
    assert repo.keep_enterprise_name("E-drill", 1, "演练：化工", exercise=True)
    assert not repo.keep_enterprise_name("E-drill", 1, "演练：化工", exercise=True)
    entry = repo.enterprise_entry("E-drill")
    assert entry is not None and (entry["name"], entry["exercise"]) == ("演练：化工", True)
    assert repo.keep_enterprise_name("E-drill", 2, "演练：化工厂", exercise=True)
    entry = repo.enterprise_entry("E-drill")
    assert entry is not None and (entry["revision"], entry["exercise"]) == (2, True)


# Approvals of warning versions -------------------------------------------------------------


def approval_stub(warning_id: str, version: int, exercise: bool = False) -> dict[str, Any]:
    """An approval before either of its events filled it in, as the handlers make it."""
    return {
        "_id": f"{warning_id}:{version}",
        "warning_id": warning_id,
        "version": version,
        "exercise": exercise,
        "requested_at": None,
        "decision": None,
    }


def test_a_decision_before_its_request_leaves_the_approval_closed(
    repo: ReportingRepository,
) -> None:
    decided = {"decision": "approved", "decided_by": "带班领导", "decided_at": T0, "note": None}
    requested = {"level": 2, "headline": "暴雨橙色预警", "requested_at": T0 - timedelta(minutes=5)}
    assert repo.record_approval_decision(approval_stub("w1", 1), decided)
    assert repo.record_approval_request(approval_stub("w1", 1), requested)
    assert not repo.record_approval_request(approval_stub("w1", 1), requested)
    assert not repo.record_approval_decision(approval_stub("w1", 1), {**decided, "note": "x"})
    assert repo.open_warning_approvals(False) == []
    stored = repo.warning_approval("w1:1") or {}
    assert (stored["decision"], stored["note"], stored["headline"]) == (
        "approved",
        None,
        "暴雨橙色预警",
    )
    assert stored["requested_at"] == T0 - timedelta(minutes=5)


def test_open_approvals_are_requested_undecided_and_drills_apart(
    repo: ReportingRepository,
) -> None:
    for ident, minutes, drill in (("w2", 2, False), ("w1", 1, False), ("w3", 0, True)):
        fields = {"level": 1, "requested_at": T0 + timedelta(minutes=minutes)}
        assert repo.record_approval_request(approval_stub(ident, 1, drill), fields)
    repo.record_approval_decision(approval_stub("w4", 1), {"decision": "expired", "decided_at": T0})
    outcomes = in_threads(
        4,
        lambda i: repo.record_approval_decision(
            approval_stub("w2", 1), {"decision": "rejected", "decided_at": T0, "note": f"n{i}"}
        ),
    )
    assert outcomes.count(True) == 1
    assert [a["_id"] for a in repo.open_warning_approvals(False)] == ["w1:1"]
    assert [a["_id"] for a in repo.open_warning_approvals(True)] == ["w3:1"]


def test_a_report_note_is_written_once_and_read_back(repo: ReportingRepository) -> None:
    repo.record_report(report("r1", 1, late=None), "auto:r1", "h", [])
    stored = in_threads(4, lambda i: repo.note_report_meets("r1", "d1", i % 2 == 0))
    assert len(set(stored)) == 1 and isinstance(stored[0], bool)
    kept = repo.report_by_id("r1") or {}
    assert (kept["late"], kept["deadline_id"]) == (stored[0], "d1")
    assert repo.note_report_meets("r1", "d1", not stored[0]) is stored[0]
    assert repo.note_report_meets("unknown", "d1", True) is None
