"""One contract for the campaigns' repository, on SQLite, mongomock, and a real MongoDB when
``YINGJI_TEST_MONGO_URL`` is set: insert once by id under a race, the end guarded (once),
newest-first pages, drills filtered, reports in filing order, events written with their change."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from libs.common.clock import ManualClock
from libs.common.pagination import cursor_scope
from services.reporting.campaigns import events
from services.reporting.campaigns.repository import CampaignFilter, CampaignRepository
from services.reporting.campaigns.repository.mongo import MongoCampaignRepository
from services.reporting.campaigns.repository.sqlite import SqliteCampaignRepository
from tests.support.engines import drain, engine_names, in_threads, repository_on

pytestmark = pytest.mark.store

T0 = datetime(2026, 7, 6, 2, 0, tzinfo=UTC)
CLOCK = ManualClock(T0)


@pytest.fixture(autouse=True)
def listed() -> Iterator[None]:
    """Pages sign and check their cursors for the list a request names, as the API's do."""
    with cursor_scope(b"contract-cursor-secret-32-bytes!", "/v1/campaigns"):
        yield


@pytest.fixture(params=engine_names())
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CampaignRepository]:
    """The campaigns' repository on one engine, schema in place."""
    with repository_on(
        request.param, tmp_path, SqliteCampaignRepository, MongoCampaignRepository
    ) as on_engine:
        yield on_engine


def campaign(ident: str, minutes: int = 0, **fields: Any) -> dict[str, Any]:
    """An active campaign started ``minutes`` after T0."""
    return {
        "_id": ident,
        "name": f"专项行动{ident}",
        "starts_on": "2026-07-06",
        "ends_on": "2026-07-15",
        "stages": [],
        "participants": [{"code": "349901001", "kind": "township", "name": "青石镇"}],
        "rhythm": {"report_every_days": 3, "stage_report_days": 2, "report_time": "17:00"},
        "status": "active",
        "exercise": False,
        "started_at": T0 + timedelta(minutes=minutes),
        "started_by": "值班员",
        **fields,
    }


def report(ident: str, minutes: int) -> dict[str, Any]:
    """A campaign report of C1 filed ``minutes`` after T0."""
    return {
        "_id": ident,
        "campaign_id": "C1",
        "participant": "349901001",
        "kind": "campaign_report",
        "content": "排查纠纷",
        "filed_at": T0 + timedelta(minutes=minutes),
        "late": False,
        "exercise": False,
    }


def test_a_campaign_is_recorded_once_under_a_race(repo: CampaignRepository) -> None:
    doc = campaign("C1")
    event = events.campaign_started(CLOCK, doc)
    results = in_threads(4, lambda i: repo.record_campaign(doc, [event]))
    assert [created for _, created in results].count(True) == 1
    assert [e.event_id for e in drain(repo)] == [event.event_id]
    assert repo.campaign("C1")["name"] == "专项行动C1"  # type: ignore[index]
    assert repo.campaign("C9") is None


def test_a_campaign_ends_once(repo: CampaignRepository) -> None:
    repo.record_campaign(campaign("C1"), [])
    ended = events.campaign_ended(CLOCK, campaign("C1"), T0, 3)
    fields = {"status": "ended", "ended_at": T0}
    outcomes = in_threads(4, lambda i: repo.end_campaign("C1", fields, [ended]))
    assert outcomes.count(True) == 1
    assert [e.event_id for e in drain(repo)] == [ended.event_id]
    assert repo.campaign("C1")["status"] == "ended"  # type: ignore[index]
    assert repo.active_campaigns() == []
    assert not repo.end_campaign("C9", fields, [])


def test_pages_are_newest_first_and_filter_drills(repo: CampaignRepository) -> None:
    for minutes, ident in enumerate(("C1", "C2", "C3")):
        repo.record_campaign(campaign(ident, minutes, exercise=ident == "C2"), [])
    first, cursor = repo.campaigns_page(CampaignFilter(), 2, None)
    assert [c["_id"] for c in first] == ["C3", "C2"]
    rest, end = repo.campaigns_page(CampaignFilter(), 2, cursor)
    assert [c["_id"] for c in rest] == ["C1"] and end is None
    drills, _ = repo.campaigns_page(CampaignFilter(exercise=True), 10, None)
    real, _ = repo.campaigns_page(CampaignFilter(exercise=False, status="active"), 10, None)
    assert [c["_id"] for c in drills] == ["C2"]
    assert [c["_id"] for c in real] == ["C3", "C1"]
    assert [c["_id"] for c in repo.active_campaigns()] == ["C1", "C2", "C3"]


def test_a_participant_pages_through_the_campaigns_it_takes_part_in(
    repo: CampaignRepository,
) -> None:
    water = {"code": "water", "kind": "department", "name": "县水利局"}
    other = {"code": "349901002", "kind": "township", "name": "城关镇"}
    repo.record_campaign(campaign("C1", 0), [])
    repo.record_campaign(campaign("C2", 1, participants=[other, water]), [])
    repo.record_campaign(campaign("C3", 2, participants=[water, other]), [])

    def ids(unit: str, limit: int = 10, cursor: str | None = None) -> list[str]:
        rows, _ = repo.campaigns_page(CampaignFilter(participant=unit), limit, cursor)
        return [c["_id"] for c in rows]

    assert ids("349901001") == ["C1"]
    assert ids("349901002") == ["C3", "C2"]
    assert ids("water") == ["C3", "C2"]
    assert ids("3499") == [] and ids("nobody") == []  # whole codes only
    first, cursor = repo.campaigns_page(CampaignFilter(participant="water"), 1, None)
    assert [c["_id"] for c in first] == ["C3"]
    assert ids("water", 1, cursor) == ["C2"]


def test_reports_are_kept_once_in_filing_order(repo: CampaignRepository) -> None:
    repo.record_campaign_report(report("R2", 5), [])
    stored, created = repo.record_campaign_report(report("R1", 1), [])
    again, twice = repo.record_campaign_report({**report("R1", 1), "content": "另一份"}, [])
    assert created and not twice and again["content"] == "排查纠纷"
    assert [r["_id"] for r in repo.reports_of_campaign("C1")] == ["R1", "R2"]
    assert repo.reports_of_campaign("C2") == []
    assert repo.campaign_report("R2") is not None and stored["_id"] == "R1"
