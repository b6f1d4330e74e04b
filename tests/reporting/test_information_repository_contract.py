"""One contract for information work's repository, on SQLite, mongomock, and a real MongoDB when
``YINGJI_TEST_MONGO_URL`` is set: items and feedback written once by id (also under threads),
month lists newest first with drills apart, counts per unit and kind by week and month that never
include drills, missed flags once, forward-only state, and events written with their change."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from libs.common.clock import ManualClock
from services.reporting.information import events
from services.reporting.information.repository import InformationRepository
from services.reporting.information.repository.mongo import MongoInformationRepository
from services.reporting.information.repository.sqlite import SqliteInformationRepository
from tests.support.engines import drain, engine_names, in_threads, repository_on

pytestmark = pytest.mark.store

T0 = datetime(2026, 7, 6, 2, 0, tzinfo=UTC)
CLOCK = ManualClock(T0)


@pytest.fixture(params=engine_names())
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[InformationRepository]:
    """Information work's repository on one engine, schema in place."""
    with repository_on(
        request.param, tmp_path, SqliteInformationRepository, MongoInformationRepository
    ) as on_engine:
        yield on_engine


def item(ident: str, unit: str = "water", **extra: Any) -> dict[str, Any]:
    """An item document with what the queries look at."""
    doc: dict[str, Any] = {
        "_id": ident,
        "unit_kind": "township" if unit.isdigit() else "department",
        "unit_code": unit,
        "unit_name": "县水利局",
        "kind": "info",
        "title": "水位上涨",
        "body": "河段水位上涨0.8米。",
        "incident_id": None,
        "submitted_at": T0,
        "day": "2026-07-06",
        "week": "2026-07-06",
        "month": "2026-07",
        "exercise": False,
        "digest": "d",
    }
    doc.update(extra)
    return doc


def adoption(target: str, level: str = "city", **extra: Any) -> dict[str, Any]:
    """An adoption document."""
    doc: dict[str, Any] = {
        "_id": f"item:{target}:adoption:{level}",
        "type": "adoption",
        "target_kind": "item",
        "target_id": target,
        "target_title": "水位上涨",
        "unit_kind": "department",
        "unit_code": "water",
        "unit_name": "县水利局",
        "level": level,
        "by": "市政府办公室",
        "date": "2026-07-06",
        "month": "2026-07",
        "exercise": False,
        "digest": "d",
        "recorded_at": T0,
        "recorded_by": "operator",
    }
    doc.update(extra)
    return doc


def test_an_item_is_stored_once_with_its_event(repo: InformationRepository) -> None:
    doc = item("I-1")
    stored, created = repo.record_item(doc, [events.item_submitted(CLOCK, doc)])
    assert created and stored["title"] == "水位上涨"
    again, created_again = repo.record_item(item("I-1", title="另一条"), [])
    assert not created_again and again["title"] == "水位上涨"
    found = repo.item("I-1")
    assert found is not None and found["submitted_at"] == T0 and found["incident_id"] is None
    assert "_outbox" not in found
    assert [e.event_type for e in drain(repo)] == ["information_item_submitted"]


def test_concurrent_inserts_of_one_item_keep_one(repo: InformationRepository) -> None:
    outcomes = in_threads(6, lambda i: repo.record_item(item("I-2", title=f"第{i}条"), [])[1])
    assert outcomes.count(True) == 1


def test_a_month_lists_real_or_drill_items_newest_first(repo: InformationRepository) -> None:
    for doc in [
        item("A", submitted_at=T0),
        item("B", submitted_at=T0 + timedelta(hours=2)),
        item("C", "349901001", submitted_at=T0 + timedelta(hours=1)),
        item("D", exercise=True),
        item("E", month="2026-08", week="2026-08-03"),
    ]:
        repo.record_item(doc, [])
    assert [r["_id"] for r in repo.items_of_month("2026-07", False)] == ["B", "C", "A"]
    assert [r["_id"] for r in repo.items_of_month("2026-07", True)] == ["D"]
    township = repo.items_of_month("2026-07", False, "township", "349901001")
    assert [r["_id"] for r in township] == ["C"]
    assert [r["_id"] for r in repo.items_of_month("2026-07", False, None, "water")] == ["B", "A"]


def test_counts_per_unit_and_kind_leave_drills_out(repo: InformationRepository) -> None:
    for doc in [
        item("A"),
        item("B"),
        item("C", kind="research"),
        item("D", "349901001"),
        item("E", exercise=True),
        item("F", week="2026-07-13"),
    ]:
        repo.record_item(doc, [])
    assert repo.item_counts("week", "2026-07-06") == {
        ("department", "water", "info"): 2,
        ("department", "water", "research"): 1,
        ("township", "349901001", "info"): 1,
    }
    assert repo.item_counts("month", "2026-07")[("department", "water", "info")] == 3
    assert repo.item_counts("month", "2026-06") == {}


def test_feedback_is_kept_once_and_read_by_target_and_month(repo: InformationRepository) -> None:
    doc = adoption("I-1")
    outcomes = in_threads(
        4, lambda i: repo.record_feedback(doc, [events.feedback_recorded(CLOCK, doc)])[1]
    )
    assert outcomes.count(True) == 1
    stored, created = repo.record_feedback(adoption("I-1", by="另一单位"), [])
    assert not created and stored["by"] == "市政府办公室"
    later = adoption("I-1", "province", recorded_at=T0 + timedelta(minutes=5), date="2026-07-07")
    repo.record_feedback(later, [])
    repo.record_feedback(adoption("I-9", exercise=True), [])
    repo.record_feedback(adoption("I-8", date="2026-08-01", month="2026-08"), [])
    by_target = repo.feedback_of_target("item", "I-1")
    assert [f["level"] for f in by_target] == ["city", "province"]
    assert by_target[0]["recorded_at"] == T0
    assert [f["target_id"] for f in repo.feedback_of_month("2026-07", False)] == ["I-1", "I-1"]
    assert [f["target_id"] for f in repo.feedback_of_month("2026-07", True)] == ["I-9"]
    assert [e.event_type for e in drain(repo)] == ["information_adopted"]


def test_a_missed_flag_is_raised_once(repo: InformationRepository) -> None:
    doc = {
        "_id": "items:2026-07-06:department:water",
        "unit_kind": "department",
        "unit_code": "water",
        "unit_name": "县水利局",
        "quota": "items",
        "period": "2026-07-06",
        "period_start": "2026-07-06",
        "period_end": "2026-07-12",
        "required": 5,
        "submitted": 2,
    }
    event = events.quota_missed(CLOCK, doc)
    results = in_threads(4, lambda i: repo.record_missed(doc, [event]))
    assert results.count(True) == 1
    assert [m["unit_code"] for m in repo.missed_of_period("2026-07-06")] == ["water"]
    assert repo.missed_of_period("2026-07") == []
    assert [e.event_type for e in drain(repo)] == ["information_quota_missed"]


def test_state_is_set_once_and_only_moves_forward(repo: InformationRepository) -> None:
    assert repo.state("week") is None
    assert repo.init_state("week", "2026-06-29") is True
    assert repo.init_state("week", "2026-06-22") is False
    repo.advance_state("week", "2026-07-13")
    repo.advance_state("week", "2026-07-06")
    assert repo.state("week") == "2026-07-13"
    repo.init_state("month", "2026-06")
    repo.advance_state("month", "2026-07")
    assert repo.state("month") == "2026-07"
    repo.ping()
