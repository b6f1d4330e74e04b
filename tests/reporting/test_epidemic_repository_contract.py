"""One contract for the epidemic reports' repository, on SQLite, mongomock, and a real MongoDB
when ``YINGJI_TEST_MONGO_URL`` is set: one report per id, guarded corrections under concurrency,
drills apart, missed flags once, forward-only state, and events written with their change."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from libs.common.clock import ManualClock
from libs.common.events import EventEnvelope
from services.reporting.epidemic import events
from services.reporting.epidemic.repository import EpidemicRepository
from services.reporting.epidemic.repository.mongo import MongoEpidemicRepository
from services.reporting.epidemic.repository.sqlite import SqliteEpidemicRepository
from tests.support.engines import drain, engine_names, in_threads, repository_on

pytestmark = pytest.mark.store

T0 = datetime(2026, 7, 6, 2, 0, tzinfo=UTC)
CLOCK = ManualClock(T0)
DAY = "2026-07-06"


@pytest.fixture(params=engine_names())
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EpidemicRepository]:
    """The epidemic repository on one engine, schema in place."""
    with repository_on(
        request.param, tmp_path, SqliteEpidemicRepository, MongoEpidemicRepository
    ) as on_engine:
        yield on_engine


def report(
    unit: str, disease: str, *, day: str = DAY, exercise: bool = False, **extra: Any
) -> dict[str, Any]:
    """A report document with what the queries look at."""
    prefix = "drill:" if exercise else ""
    township = unit if unit.isdigit() else "349901001"
    doc: dict[str, Any] = {
        "_id": f"{prefix}{unit}:{day}:{disease}",
        "unit_id": unit,
        "unit_kind": "township" if unit.isdigit() else "health_unit",
        "township_code": township,
        "date": day,
        "disease_code": disease,
        "cases": 0,
        "deaths": 0,
        "case_report": None,
        "filed_at": T0,
        "late": False,
        "exercise": exercise,
        "version": 1,
        "history": [],
    }
    doc.update(extra)
    return doc


def filed_event(doc: dict[str, Any]) -> EventEnvelope:
    return events.report_filed(CLOCK, doc)


def test_a_report_is_stored_once_with_its_event(repo: EpidemicRepository) -> None:
    doc = report("H01", "hfmd", cases=2)
    stored, created = repo.record_report(doc, [filed_event(doc)])
    assert created and stored["cases"] == 2
    again, created_again = repo.record_report(report("H01", "hfmd", cases=5), [filed_event(doc)])
    assert not created_again and again["cases"] == 2
    assert [e.event_type for e in drain(repo)] == ["epidemic_report_filed"]
    found = repo.report(doc["_id"])
    assert found is not None and found["filed_at"] == T0 and found["case_report"] is None


def test_concurrent_inserts_of_one_report_keep_one(repo: EpidemicRepository) -> None:
    outcomes = in_threads(6, lambda i: repo.record_report(report("H02", "measles", cases=i), [])[1])
    assert outcomes.count(True) == 1


def test_one_of_many_concurrent_corrections_wins_and_keeps_history(
    repo: EpidemicRepository,
) -> None:
    doc = report("H01", "hfmd", cases=2)
    repo.record_report(doc, [])
    outcomes = in_threads(
        8,
        lambda i: repo.correct_report(
            doc["_id"], 1, {"cases": 10 + i}, {"cases": 2, "version": 1}, [filed_event(doc)]
        ),
    )
    assert outcomes.count(True) == 1
    found = repo.report(doc["_id"])
    assert found is not None
    assert found["version"] == 2 and found["history"] == [{"cases": 2, "version": 1}]
    assert len(drain(repo)) == 1


def test_a_day_lists_real_or_drill_reports_in_unit_order(repo: EpidemicRepository) -> None:
    for doc in [
        report("349901101", "hfmd"),
        report("H01", "measles"),
        report("H01", "hfmd"),
        report("349901001", "hfmd", exercise=True),
        report("H01", "hfmd", day="2026-07-07"),
    ]:
        repo.record_report(doc, [])
    real = repo.reports_of_day(DAY, False)
    assert [(r["unit_id"], r["disease_code"]) for r in real] == [
        ("H01", "hfmd"),
        ("H01", "measles"),
        ("349901101", "hfmd"),
    ]
    assert [r["unit_id"] for r in repo.reports_of_day(DAY, True)] == ["349901001"]
    assert [r["unit_id"] for r in repo.reports_of_day(DAY, False, "349901101")] == ["349901101"]
    assert all("_outbox" not in r for r in real)


def test_a_missed_flag_is_raised_once(repo: EpidemicRepository) -> None:
    doc = {"_id": f"H01:{DAY}", "unit_id": "H01", "date": DAY, "disease_codes": ["hfmd"]}
    unit = {"id": "H01", "kind": "health_unit", "township_code": "349901001"}
    event = events.report_missed(CLOCK, unit, DAY, ["hfmd"])
    results = in_threads(4, lambda i: repo.record_missed(doc, [event]))
    assert results.count(True) == 1
    assert [m["unit_id"] for m in repo.missed_of_day(DAY)] == ["H01"]
    assert repo.missed_of_day("2026-07-07") == []
    assert [e.event_type for e in drain(repo)] == ["epidemic_report_missed"]


def test_state_is_set_once_and_only_moves_forward(repo: EpidemicRepository) -> None:
    assert repo.state("cursor") is None
    assert repo.init_state("cursor", "2026-07-05") is True
    assert repo.init_state("cursor", "2026-07-01") is False
    repo.advance_state("cursor", "2026-07-07")
    repo.advance_state("cursor", "2026-07-06")
    assert repo.state("cursor") == "2026-07-07"
    repo.ping()
