"""Every read of the campaigns' SQLite repository (and of dispatch's joint meetings) is answered
from an index in index order: the statements each method runs are captured and checked with
EXPLAIN QUERY PLAN (no timing involved)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from libs.common.pagination import cursor_scope
from libs.common.sqlite import SqliteDatabase
from services.dispatch.repository.sqlite import SqliteDispatchRepository
from services.reporting.campaigns.repository import CampaignFilter
from services.reporting.campaigns.repository.sqlite import SqliteCampaignRepository

pytestmark = pytest.mark.store

Query = Callable[[Any], Any]


@pytest.fixture
def campaigns(tmp_path: Path) -> Iterator[SqliteCampaignRepository]:
    """The campaigns' schema on a fresh file."""
    repo = SqliteCampaignRepository(SqliteDatabase(tmp_path / "campaigns.sqlite3"))
    repo.ensure_schema()
    with cursor_scope(b"plans-cursor-secret-32-bytes-long", "/v1/campaigns"):
        yield repo
    repo.close()


@pytest.fixture
def dispatch(tmp_path: Path) -> Iterator[SqliteDispatchRepository]:
    """Dispatch's schema on a fresh file."""
    repo = SqliteDispatchRepository(SqliteDatabase(tmp_path / "dispatch.sqlite3"))
    repo.ensure_schema()
    yield repo
    repo.close()


def plans_of(repo: Any, query: Query) -> str:
    """The query plans of the SELECT statements ``query`` ran, one step per line."""
    conn = repo.db.connection()
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        query(repo)
    finally:
        conn.set_trace_callback(None)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert selects
    return "\n".join(row[3] for s in selects for row in repo.db.query(f"EXPLAIN QUERY PLAN {s}"))


CASES: list[tuple[str, Query, str]] = [
    ("campaign list", lambda r: r.campaigns_page(CampaignFilter(), 50, None), "campaigns_started"),
    (
        "campaigns of a status",
        lambda r: r.campaigns_page(CampaignFilter(status="active"), 50, None),
        "campaigns_status",
    ),
    ("active campaigns", lambda r: r.active_campaigns(), "campaigns_status"),
    ("campaign reports", lambda r: r.reports_of_campaign("C1"), "campaign_reports_campaign"),
]


def clean(joined: str) -> None:
    """No plain scan of a whole table and no sort of the whole match."""
    assert not re.search(r"^SCAN \w+$", joined, re.MULTILINE), joined
    assert not re.search(r"TEMP B-TREE FOR .*ORDER BY", joined), joined


@pytest.mark.parametrize(("name", "query", "index"), CASES, ids=[c[0] for c in CASES])
def test_campaign_reads_use_their_index(
    campaigns: SqliteCampaignRepository, name: str, query: Query, index: str
) -> None:
    joined = plans_of(campaigns, query)
    assert index in joined, joined
    clean(joined)


def test_an_assignments_meetings_are_read_through_its_links(
    dispatch: SqliteDispatchRepository,
) -> None:
    joined = plans_of(dispatch, lambda r: r.meetings_of_assignment("a1"))
    assert (
        "SEARCH l USING COVERING INDEX sqlite_autoindex_joint_meeting_links_1 (assignment_id=?)"
        in joined
    )
    clean(joined)
