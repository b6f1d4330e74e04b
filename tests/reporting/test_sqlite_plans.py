"""Every key read of reporting's SQLite repository is answered from an index, never by reading a
whole table, and lists come in index order (no sort of the whole match). Each repository method
is called as the service calls it; the statements it runs are captured as executed and checked
with EXPLAIN QUERY PLAN, so no timing is involved and the SQL cannot drift from what is tested."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from libs.common.pagination import cursor_scope
from libs.common.sqlite import SqliteDatabase
from services.reporting.repository import AuditFilter, DeadlineFilter
from services.reporting.repository.sqlite import SqliteReportingRepository

pytestmark = pytest.mark.store

T0 = datetime(2026, 7, 6, 2, 0, tzinfo=UTC)
DAY = (T0, T0 + timedelta(days=1))
TOWN = "349901001"
Query = Callable[[SqliteReportingRepository], Any]


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[SqliteReportingRepository]:
    """Reporting's schema on a fresh file, with a row in each table the reads touch."""
    sqlite_repo = SqliteReportingRepository(SqliteDatabase(tmp_path / "reporting.sqlite3"))
    sqlite_repo.ensure_schema()
    with cursor_scope(b"plans-cursor-secret-32-bytes-long", "/v1/deadlines"):
        yield sqlite_repo
    sqlite_repo.close()


def executed(repo: SqliteReportingRepository, query: Query) -> list[str]:
    """The SELECT statements ``query`` ran on this thread's connection, values bound in."""
    conn = repo.db.connection()
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        query(repo)
    finally:
        conn.set_trace_callback(None)
    return [s for s in statements if s.lstrip().upper().startswith("SELECT")]


def plan(repo: SqliteReportingRepository, statement: str) -> str:
    """The query plan as one line per step."""
    return "\n".join(row[3] for row in repo.db.query(f"EXPLAIN QUERY PLAN {statement}"))


CASES: list[tuple[str, Query, str]] = [
    ("day's incidents", lambda r: r.incidents_reported_between(*DAY), "incidents_reported"),
    (
        "day's late incidents",
        lambda r: r.incidents_reported_between(*DAY, late_only=True),
        "incidents_reported",
    ),
    (
        "township reported on a day",
        lambda r: r.township_incidents_between(TOWN, "reported_at", *DAY),
        "incidents_township_reported",
    ),
    (
        "township occurred on a day",
        lambda r: r.township_incidents_between(TOWN, "occurred_at", *DAY),
        "incidents_township_occurred",
    ),
    ("open set", lambda r: r.open_incidents_reported_before(T0), "incidents_open"),
    (
        "initial reports per township",
        lambda r: r.incidents_reported_per_township(*DAY),
        "incidents_reported",
    ),
    ("report by key", lambda r: r.report_by_idempotency_scope("k"), "reports_idem"),
    ("report by event", lambda r: r.report_by_event_id("e"), "reports_event"),
    ("last report", lambda r: r.last_report("i1"), "reports_chain_seq"),
    ("chain", lambda r: r.chain_of("i1"), "reports_chain_seq"),
    ("final filed", lambda r: r.final_report_filed("i1"), "reports_chain_key"),
    ("reports per kind", lambda r: r.reports_filed_per_kind(*DAY), "reports_filed"),
    ("reports per township", lambda r: r.reports_filed_per_township(*DAY), "reports_filed"),
    ("scan", lambda r: r.deadlines_due(T0), "deadlines_scan"),
    ("open deadlines", lambda r: r.open_deadlines("i1"), "deadlines_incident"),
    ("follow-up exists", lambda r: r.has_followup_deadline("i1", "pending"), "deadlines_incident"),
    ("met follow-up dues", lambda r: r.met_followup_dues("i1"), "deadlines_incident"),
    ("overdue gauge", lambda r: r.overdue_per_township(), "deadlines_overdue"),
    (
        "deadline list",
        lambda r: r.deadlines_page(DeadlineFilter(), 50, None),
        "deadlines_due",
    ),
    (
        "deadline board: overdue",
        lambda r: r.deadlines_page(DeadlineFilter(status="overdue"), 50, None),
        "deadlines_status_due",
    ),
    (
        "deadline board: a township's overdue",
        lambda r: r.deadlines_page(DeadlineFilter(status="overdue", township_code=TOWN), 50, None),
        "deadlines_township_status_due",
    ),
    (
        "deadline board: a township's",
        lambda r: r.deadlines_page(DeadlineFilter(township_code=TOWN, exercise=False), 50, None),
        "deadlines_township",
    ),
    (
        "deadlines of an incident",
        lambda r: r.deadlines_page(DeadlineFilter(incident_id="i1"), 50, None),
        "deadlines_incident",
    ),
    ("late met on a day", lambda r: r.late_deadlines_met_between(*DAY), "deadlines_met"),
    ("overdue before", lambda r: r.overdue_deadlines_due_before(T0), "deadlines_status_due"),
    (
        "titles of many incidents",
        lambda r: r.incident_titles(["i1", "i2"]),
        "SEARCH incidents USING INDEX sqlite_autoindex_incidents_1 (id=?)",
    ),
    (
        "a published summary",
        lambda r: r.summary_by_id("daily:2026-07-06"),
        "SEARCH summaries USING INDEX sqlite_autoindex_summaries_1 (id=?)",
    ),
    ("tallies", lambda r: r.deadline_tallies(*DAY), "deadlines_due"),
    (
        "zero reports of a day",
        lambda r: r.zero_reports_of_day(date(2026, 7, 6)),
        "zero_reports_day",
    ),
    (
        "drill zero reports of a day",
        lambda r: r.zero_reports_of_day(date(2026, 7, 6), exercise=True),
        "exercise_zero_reports_day",
    ),
    (
        "zero reports of a month",
        lambda r: r.zero_reports_between(date(2026, 7, 1), date(2026, 7, 31)),
        "zero_reports_day",
    ),
    ("missed of a day", lambda r: r.missed_zero_reports_of_day(date(2026, 7, 6)), "zero_missed"),
    (
        "contradictions of a day",
        lambda r: r.contradictions_of_days(date(2026, 7, 6), date(2026, 7, 6)),
        "zero_conflicts_day",
    ),
    (
        "contradictions attempted on a day",
        lambda r: r.contradictions_attempted_between(*DAY),
        "zero_conflicts_attempted",
    ),
    (
        "timeline",
        lambda r: r.timeline_page("i1", 200, None),
        "SEARCH m USING PRIMARY KEY (incident_id=?)",
    ),
    ("audit", lambda r: r.audit_page(AuditFilter(), 100, None), "timeline_order"),
    (
        "audit by type",
        lambda r: r.audit_page(AuditFilter(event_type="report_overdue"), 100, None),
        "timeline_type",
    ),
    (
        "audit by source",
        lambda r: r.audit_page(AuditFilter(source="intake"), 100, None),
        "timeline_source",
    ),
    (
        "audit of a township",
        lambda r: r.audit_page(AuditFilter(township_code=TOWN), 100, None),
        "timeline_township",
    ),
    (
        "audit of a day",
        lambda r: r.audit_page(
            AuditFilter(occurred_from=DAY[0], occurred_before=DAY[1]), 100, None
        ),
        "timeline_order",
    ),
    ("console window", lambda r: r.timeline_since(T0, None, 200), "timeline_occurred"),
    (
        "console window after",
        lambda r: r.timeline_since(T0, (T0, "e1"), 200),
        "timeline_occurred",
    ),
    ("active warnings", lambda r: r.warnings_active_at(T0), "warnings_active"),
    ("active plans", lambda r: r.plans_active_at(T0), "plans_active"),
    ("day's dispatches", lambda r: r.dispatches_ordered_between(*DAY), "dispatches_ordered"),
    ("day's stock alerts", lambda r: r.stock_alerts_between(*DAY), "stock_alerts_at"),
    ("parked", lambda r: r.parked_events_of("i1"), "parked_incident"),
]


@pytest.mark.parametrize(("name", "query", "index"), CASES, ids=[c[0] for c in CASES])
def test_key_reads_use_their_index(
    repo: SqliteReportingRepository, name: str, query: Query, index: str
) -> None:
    statements = executed(repo, query)
    assert statements, name
    plans = [plan(repo, statement) for statement in statements]
    joined = "\n".join(plans)
    assert index in joined, joined
    # A plain "SCAN <table>" reads every row; "SCAN … USING INDEX" walks an index in order.
    assert not re.search(r"^SCAN \w+$", joined, re.MULTILINE), joined
    assert not re.search(r"TEMP B-TREE FOR .*ORDER BY", joined), joined
