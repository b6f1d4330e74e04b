"""One contract for the enterprise register's repository, on SQLite, mongomock, and a real
MongoDB when ``YINGJI_TEST_MONGO_URL`` is set: unique ids and credit codes (drills apart),
revision-guarded changes under concurrency with their events, risk-ordered pages and filters,
inspections, the overdue range flagged once, and the figures."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from libs.common.clock import ManualClock
from libs.common.pagination import cursor_scope
from services.dispatch.enterprises import domain, events
from services.dispatch.enterprises.repository import (
    EnterpriseFilter,
    EnterpriseRepository,
    TakenError,
    credit_key,
)
from services.dispatch.enterprises.repository.mongo import MongoEnterpriseRepository
from services.dispatch.enterprises.repository.sqlite import SqliteEnterpriseRepository
from tests.support.engines import drain, engine_names, in_threads, repository_on

pytestmark = pytest.mark.store

T0 = datetime(2026, 7, 6, 2, 0, tzinfo=UTC)
CLOCK = ManualClock(T0)
TOWN_A, TOWN_B = "349901001", "349901101"


@pytest.fixture(params=engine_names())
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EnterpriseRepository]:
    """The enterprise repository on one engine, schema in place."""
    with repository_on(
        request.param, tmp_path, SqliteEnterpriseRepository, MongoEnterpriseRepository
    ) as on_engine:
        yield on_engine


def enterprise(ident: str, n: int, **extra: Any) -> dict[str, Any]:
    """An enterprise document with what the queries look at."""
    level = extra.pop("risk_level", "general")
    exercise = bool(extra.get("exercise"))
    code = domain.with_check(f"91349901{n:08d}A")
    doc: dict[str, Any] = {
        "_id": ident,
        "revision": 1,
        "name": f"企业{n}",
        "credit_code": code,
        "credit_key": credit_key(code, exercise),
        "township_code": TOWN_A,
        "risk_level": level,
        "risk_rank": domain.RISK_RANK[level],
        "hazard_types": ["燃气"],
        "lat": 31.5,
        "lon": 116.4,
        "responsible": {"name": "赵", "phone": "13800000001"},
        "safety_officer": {"name": "钱", "phone": "13800000002"},
        "response_groups": [],
        "status": "active",
        "exercise": exercise,
    }
    doc.update(extra)
    return doc


def add(repo: EnterpriseRepository, doc: dict[str, Any]) -> dict[str, Any]:
    """Insert with its snapshot event."""
    return repo.add_enterprise(doc, [events.enterprise_registered(CLOCK, doc)])


def inspection(
    ident: str, enterprise_id: str, deadline: str | None, **extra: Any
) -> dict[str, Any]:
    """An inspection document."""
    doc: dict[str, Any] = {
        "_id": ident,
        "enterprise_id": enterprise_id,
        "township_code": TOWN_A,
        "date": "2026-07-01",
        "inspector": "王",
        "findings": ["问题"] if deadline else [],
        "deadline": deadline,
        "rectified_on": None,
        "rectification_note": None,
        "overdue_flagged": False,
        "exercise": False,
    }
    doc.update(extra)
    return doc


def test_ids_and_credit_codes_are_unique_drills_apart(repo: EnterpriseRepository) -> None:
    add(repo, enterprise("E1", 1))
    with pytest.raises(TakenError) as same_id:
        add(repo, enterprise("E1", 2))
    assert same_id.value.field == "id"
    with pytest.raises(TakenError) as same_code:
        add(repo, enterprise("E2", 1))
    assert same_code.value.field == "credit_code"
    add(repo, enterprise("E3", 1, exercise=True))
    assert repo.enterprise("E3") is not None and repo.enterprise("E2") is None
    sent = drain(repo)
    assert [e.payload["enterprise_id"] for e in sent] == ["E1", "E3"]


def test_changes_are_guarded_by_revision_under_concurrency(repo: EnterpriseRepository) -> None:
    add(repo, enterprise("E1", 1))
    drain(repo)

    def change(i: int) -> bool:
        fields = {"name": f"改名{i}", "revision": 2}
        event = events.enterprise_registered(CLOCK, {**enterprise("E1", 1), **fields})
        return repo.change_enterprise("E1", 1, fields, [event]) is not None

    assert sorted(in_threads(6, change)) == [False] * 5 + [True]
    stored = repo.enterprise("E1")
    assert stored is not None and stored["revision"] == 2
    sent = drain(repo)
    assert len(sent) == 1 and sent[0].payload["revision"] == 2
    assert repo.change_enterprise("E1", 1, {"name": "x"}, []) is None


def test_pages_walk_risk_order_with_filters(repo: EnterpriseRepository) -> None:
    levels = ["low", "major", "general", "large", "major", "low", "general"]
    for n, level in enumerate(levels):
        town = TOWN_B if n % 2 else TOWN_A
        add(repo, enterprise(f"E{n}", n, risk_level=level, township_code=town))
    add(repo, enterprise("E9", 9, risk_level="major", status="closed"))
    add(repo, enterprise("D1", 10, risk_level="major", exercise=True))
    seen: list[dict[str, Any]] = []
    cursor = None
    with cursor_scope(b"contract-cursor-secret-32-bytes!", "/v1/enterprises"):
        while True:
            rows, cursor = repo.enterprises_page(EnterpriseFilter(), 3, cursor)
            seen += rows
            if cursor is None:
                break
    assert [r["_id"] for r in seen] == ["E1", "E4", "E3", "E2", "E6", "E0", "E5"]
    rows, _ = repo.enterprises_page(EnterpriseFilter(township_code=TOWN_B), 50, None)
    assert [r["_id"] for r in rows] == ["E1", "E3", "E5"]
    rows, _ = repo.enterprises_page(EnterpriseFilter(risk_level="major", status=None), 50, None)
    assert [r["_id"] for r in rows] == ["E1", "E4", "E9"]
    rows, _ = repo.enterprises_page(EnterpriseFilter(hazard_type="非煤矿山"), 50, None)
    assert rows == []
    rows, _ = repo.enterprises_page(EnterpriseFilter(exercise=True), 50, None)
    assert [r["_id"] for r in rows] == ["D1"]
    assert [r["_id"] for r in repo.enterprises_in([TOWN_A], False)] == ["E4", "E2", "E6", "E0"]
    assert "D1" in [r["_id"] for r in repo.enterprises_in(None, True)]
    assert "D1" not in [r["_id"] for r in repo.enterprises_in(None, False)]
    figures = repo.figures("2026-07-06")
    assert figures["enterprises"] == {"major": 2, "large": 1, "general": 2, "low": 2}


def test_inspections_overdue_once_and_rectified(repo: EnterpriseRepository) -> None:
    add(repo, enterprise("E1", 1))
    drain(repo)
    assert repo.add_inspection(inspection("I1", "E1", "2026-07-03"))
    assert not repo.add_inspection(inspection("I1", "E1", "2026-07-03"))
    repo.add_inspection(inspection("I2", "E1", "2026-07-10"))
    repo.add_inspection(inspection("I3", "E1", None))
    repo.add_inspection(inspection("I4", "E1", "2026-07-02", exercise=True))
    assert [i["_id"] for i in repo.inspections_past_due("2026-07-06")] == ["I1", "I4"]
    assert repo.figures("2026-07-06")["overdue"] == 1
    enterprise_doc = repo.enterprise("E1") or {}
    past = repo.inspections_past_due("2026-07-06")[0]
    event = events.rectification_overdue(CLOCK, enterprise_doc, past)
    assert repo.mark_overdue("I1", T0, event) and not repo.mark_overdue("I1", T0, event)
    assert [e.event_type for e in drain(repo)] == ["enterprise_rectification_overdue"]
    assert [i["_id"] for i in repo.inspections_past_due("2026-07-06")] == ["I4"]
    fixed = repo.rectify("I1", {"rectified_on": "2026-07-06", "rectification_note": "已整改"})
    assert fixed is not None and fixed["rectified_on"] == "2026-07-06"
    assert repo.rectify("I1", {"rectified_on": "2026-07-07"}) is None
    assert repo.rectify("I3", {"rectified_on": "2026-07-07"}) is None
    assert repo.figures("2026-07-06")["overdue"] == 0
    assert {i["_id"] for i in repo.inspections_of(["E1"])} == {"I1", "I2", "I3", "I4"}
    assert repo.inspections_of([]) == []
