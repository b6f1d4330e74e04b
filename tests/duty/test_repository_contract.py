"""One contract for the duty office's repository on every engine (SQLite, mongomock, and a real
MongoDB when configured): flags set once, one handover per shift, a confirmed handover closed,
pushes idempotent by message id, leases exclusive, settling guarded, held pushes released,
the city's requests once per id, and events written with the change."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from libs.common.clock import ManualClock
from libs.common.events import EventEnvelope, make_event
from services.reporting.duty.repository import DutyRepository
from services.reporting.duty.repository.mongo import MongoDutyRepository
from services.reporting.duty.repository.sqlite import SqliteDutyRepository
from tests.support.engines import engine_names, repository_on

pytestmark = pytest.mark.store

T0 = datetime(2026, 7, 6, 2, 0, tzinfo=UTC)
CLOCK = ManualClock(T0)


@pytest.fixture(params=engine_names())
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DutyRepository]:
    """The duty repository on one engine, schema in place."""
    with repository_on(
        request.param, tmp_path, SqliteDutyRepository, MongoDutyRepository
    ) as on_engine:
        yield on_engine


def unstaffed_event(shift_id: str) -> EventEnvelope:
    """The vacancy event of a shift."""
    payload = {"shift_id": shift_id, "day": "2026-07-06", "code": "night", "starts_at": T0}
    return make_event(CLOCK, "reporting", "duty_shift_unstaffed", payload)


def pending_events(repo: DutyRepository) -> list[str]:
    """Event types waiting in the repository's outbox."""
    found = []
    for source in repo.relay_parts().sources:
        batch = source.claim(100, 30.0, "contract")
        if batch is not None:
            found.extend(e.event_type for e in batch.events)
            source.give_back(batch)
    return found


def shift(ident: str, **fields: Any) -> dict[str, Any]:
    """A roster entry."""
    return {
        "_id": ident,
        "day": "2026-07-06",
        "code": "night",
        "starts_at": T0,
        "ends_at": T0 + timedelta(hours=12),
        "leader": None,
        "officers": [],
        "exercise": False,
        **fields,
    }


def push(ident: str, **fields: Any) -> dict[str, Any]:
    """A pending push."""
    return {
        "_id": ident,
        "message_id": ident,
        "kind": "initial",
        "incident_id": "inc-1",
        "status": "pending",
        "attempts": 0,
        "created_at": T0,
        "next_attempt_at": T0,
        "lease_until": None,
        "exercise": False,
        "errors": [],
        **fields,
    }


def test_a_flag_is_set_once_with_its_event(repo: DutyRepository) -> None:
    assert repo.flag_shift(shift("s1"), "vacancy_announced", [unstaffed_event("s1")])
    assert not repo.flag_shift(shift("s1"), "vacancy_announced", [unstaffed_event("s1")])
    assert pending_events(repo) == ["duty_shift_unstaffed"]
    stored = repo.shift_by_id("s1")
    assert stored is not None and stored["vacancy_announced"] is True
    # A shift entered later keeps its people and gets its own, other flag.
    repo.save_shifts([shift("s2", officers=[{"name": "李明", "phone": "13800000000"}])])
    assert repo.flag_shift(shift("s2"), "handover_missing", [])
    again = repo.shift_by_id("s2")
    assert again is not None and again["officers"][0]["name"] == "李明"


def test_shifts_between_sorts_and_separates_drills(repo: DutyRepository) -> None:
    repo.save_shifts(
        [
            shift("late", starts_at=T0 + timedelta(hours=12)),
            shift("early"),
            shift("drill", exercise=True),
            shift("outside", starts_at=T0 + timedelta(days=2)),
        ]
    )
    found = repo.shifts_between(T0, T0 + timedelta(days=1), False)
    assert [s["_id"] for s in found] == ["early", "late"]
    assert [s["_id"] for s in repo.shifts_between(T0, T0 + timedelta(days=1), True)] == ["drill"]


def test_one_handover_per_shift_and_closed_once_confirmed(repo: DutyRepository) -> None:
    doc = {"_id": "h1", "shift_id": "s1", "opened_at": T0, "notes": "", "confirmed_at": None,
           "exercise": False}  # fmt: skip
    stored, created = repo.open_handover(doc)
    assert created and stored["_id"] == "h1"
    other, created = repo.open_handover({**doc, "_id": "h2"})
    assert not created and other["_id"] == "h1"
    assert repo.change_open_handover("h1", {"notes": "雨"}, []) is not None
    confirmed = repo.change_open_handover("h1", {"confirmed_at": T0}, [])
    assert confirmed is not None and confirmed["notes"] == "雨"
    assert repo.change_open_handover("h1", {"notes": "改"}, []) is None
    assert repo.handover_of_shift("s1")["notes"] == "雨"  # type: ignore[index]
    assert [h["_id"] for h in repo.recent_handovers(5, False)] == ["h1"]


def test_pushes_are_idempotent_leased_once_and_settled_once(repo: DutyRepository) -> None:
    incident = {"_id": "inc-1", "grade": 2, "reported": True}
    assert repo.record_decision(incident, [push("m1"), push("m2")], []) == 2
    assert repo.record_decision(incident, [push("m1")], []) == 0
    lease = T0 + timedelta(minutes=1)
    first = repo.claim_due_pushes(T0, lease, 10)
    assert sorted(p["_id"] for p in first) == ["m1", "m2"]
    assert repo.claim_due_pushes(T0, lease, 10) == []  # leased
    assert repo.settle_push("m1", {"status": "delivered", "receipt": "R1"}, {}, [])
    assert not repo.settle_push("m1", {"status": "delivered", "receipt": "R2"}, {}, [])
    failure = {"at": T0, "reason": "超时"}
    assert repo.settle_push(
        "m2", {"attempts": 1, "next_attempt_at": lease}, {"errors": [failure]}, []
    )
    assert repo.claim_due_pushes(T0, lease, 10) == []  # not due yet
    assert [p["_id"] for p in repo.claim_due_pushes(lease, lease, 10)] == ["m2"]
    stored = repo.push_by_id("m2")
    assert stored is not None and stored["errors"] == [failure] and stored["attempts"] == 1
    assert repo.count_pushes() == {"delivered": 1, "pending": 1}
    assert repo.tracked_incident("inc-1") == incident


def test_held_pushes_wait_for_their_incident(repo: DutyRepository) -> None:
    repo.record_decision(None, [push("held", status="held", incident_id="inc-9")], [])
    assert repo.claim_due_pushes(T0, T0, 10) == []
    assert repo.release_held("inc-9", T0) == 1
    assert repo.release_held("inc-9", T0) == 0
    assert [p["_id"] for p in repo.pushes_page("inc-9", "pending", 10)] == ["held"]


def test_a_citys_request_is_kept_once(repo: DutyRepository) -> None:
    doc = {"_id": "r1", "incident_id": "inc-1", "received_at": T0, "due_at": T0, "exercise": False}
    event = make_event(
        CLOCK,
        "reporting",
        "upstream_request_received",
        {"request_id": "r1", "incident_id": "inc-1", "kind": "instruction", "text": "批示",
         "due_at": T0},
    )  # fmt: skip
    assert repo.record_request(doc, [event])[1]
    assert not repo.record_request(doc, [event])[1]
    assert pending_events(repo) == ["upstream_request_received"]
    assert [r["_id"] for r in repo.requests_of_incident("inc-1")] == ["r1"]
    assert [r["_id"] for r in repo.open_requests(T0)] == ["r1"]
    assert repo.open_requests(T0 + timedelta(days=3)) == []
