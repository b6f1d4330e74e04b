"""One contract for intake's repository, run on every engine: SQLite, mongomock, and a real
MongoDB when ``YINGJI_TEST_MONGO_URL`` is set. Guards under concurrency, unique keys, null vs
missing, array membership, paging order and the outbox behave the same everywhere."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from libs.common.clock import ManualClock
from libs.common.eventmodels.intake import IncidentClosedV1
from libs.common.events import EventEnvelope, make_event
from libs.common.pagination import cursor_scope
from services.intake.domain import DuplicateProbe, Neighbourhood
from services.intake.repository import IncidentFilter, IncidentRepository
from services.intake.repository.mongo import MongoIntakeRepository
from services.intake.repository.sqlite import SqliteIntakeRepository
from tests.support.engines import drain, engine_names, in_threads, repository_on

pytestmark = pytest.mark.store

T0 = datetime(2026, 7, 6, 2, 0, tzinfo=UTC)
HERE = Neighbourhood("349901001")
CLOCK = ManualClock(T0)


@pytest.fixture(autouse=True)
def incidents_list() -> Iterator[None]:
    """Pages sign and check their cursors for the list a request names, as the API's do."""
    with cursor_scope(b"contract-cursor-secret-32-bytes!", "/v1/incidents"):
        yield


@pytest.fixture(params=engine_names())
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IncidentRepository]:
    """The intake repository on one engine, schema in place."""
    with repository_on(
        request.param, tmp_path, SqliteIntakeRepository, MongoIntakeRepository
    ) as on_engine:
        yield on_engine


def incident(ident: str, **fields: Any) -> dict[str, Any]:
    """A minimal incident document with what the repository's queries look at."""
    doc: dict[str, Any] = {
        "_id": ident,
        "category": "flood",
        "township_code": "349901001",
        "status": "open",
        "grade": 4,
        "exercise": False,
        "late": False,
        "escalated": False,
        "occurred_at": T0,
        "reported_at": T0,
        "location": {"address": "x", "lat": None, "lon": None},
        "merged_ids": [],
        "history": [{"kind": "reported", "at": T0}],
        "version": 1,
    }
    doc.update(fields)
    return doc


def event(incident_id: str, reason: str = "r") -> EventEnvelope:
    """An intake event about ``incident_id``."""
    payload = IncidentClosedV1(
        incident_id=incident_id,
        township_code="349901001",
        closed_by="leader",
        reason=reason,
        exercise=False,
    )
    return make_event(CLOCK, "intake", "incident_closed", payload, correlation_id=incident_id)


def record(repo: IncidentRepository, doc: dict[str, Any], *events: EventEnvelope) -> None:
    """Store ``doc`` under its own key."""
    _, created = repo.record_incident_with_event(doc, f"auto:{doc['_id']}", "h", list(events))
    assert created


# Guards under concurrency -------------------------------------------------------------------


def test_one_of_many_concurrent_closes_wins_and_writes_one_event(repo: IncidentRepository) -> None:
    record(repo, incident("a"))
    drain(repo)
    outcomes = in_threads(
        8,
        lambda i: repo.close_incident(
            "a", 1, {"status": "closed", "close_reason": f"r{i}"}, {"kind": "closed"}, event("a")
        ),
    )
    assert outcomes.count(True) == 1
    doc = repo.incident_by_id("a")
    assert doc is not None
    assert (doc["status"], doc["version"], len(doc["history"])) == ("closed", 2, 2)
    assert len(drain(repo)) == 1


def test_a_report_event_applied_concurrently_counts_once(repo: IncidentRepository) -> None:
    record(repo, incident("a"))
    outcomes = in_threads(
        6,
        lambda i: repo.apply_report(
            "a", 1, {"grade": 3}, [{"kind": "updated", "n": i}], [event("a")], "evt-1"
        ),
    )
    assert outcomes.count(True) == 1
    doc = repo.incident_by_id("a")
    assert doc is not None
    assert doc["_applied"] == ["evt-1"]
    assert [h["kind"] for h in doc["history"]] == ["reported", "updated"]
    # A redelivery at the new version is refused by the applied list, not by the version.
    assert not repo.apply_report("a", 2, {"grade": 2}, [], [], "evt-1")


def test_a_stale_version_changes_nothing_and_writes_no_event(repo: IncidentRepository) -> None:
    record(repo, incident("a", version=3))
    drain(repo)
    assert not repo.close_incident("a", 2, {"status": "closed"}, {"kind": "closed"}, event("a"))
    doc = repo.incident_by_id("a")
    assert doc is not None
    assert (doc["status"], doc["version"]) == ("open", 3)
    assert drain(repo) == []


# Unique keys --------------------------------------------------------------------------------


def test_one_idempotency_key_creates_one_incident_under_a_race(repo: IncidentRepository) -> None:
    outcomes = in_threads(
        6,
        lambda i: repo.record_incident_with_event(
            incident(f"id{i}"), "caller:key-1", "digest", [event(f"id{i}")]
        ),
    )
    created = [doc for doc, made in outcomes if made]
    assert len(created) == 1
    winner = created[0]["_id"]
    assert {doc["_id"] for doc, _ in outcomes} == {winner}
    assert repo.count_incidents() == 1
    found = repo.incident_by_idempotency_key("caller:key-1")
    assert found is not None
    assert found["_idem"] == {"key": "caller:key-1", "hash": "digest"}
    assert [e.payload["incident_id"] for e in drain(repo)] == [winner]


def test_incidents_without_a_key_scope_of_their_own_never_collide(
    repo: IncidentRepository,
) -> None:
    for ident in ("a", "b", "c"):
        record(repo, incident(ident))
    assert repo.count_incidents() == 3
    assert repo.incident_by_idempotency_key("auto:b") is not None
    assert repo.incident_by_idempotency_key("auto:zz") is None


# Null vs missing ----------------------------------------------------------------------------


def test_null_and_missing_fields_come_back_as_they_went_in(repo: IncidentRepository) -> None:
    with_null = incident("a", trend=None, dispute=None)
    without = incident("b")
    record(repo, with_null)
    record(repo, without)
    a, b = repo.incident_by_id("a"), repo.incident_by_id("b")
    assert a is not None and b is not None
    assert "trend" in a and a["trend"] is None and a["dispute"] is None
    assert "trend" not in b and "dispute" not in b
    assert a["occurred_at"] == T0 and a["occurred_at"].tzinfo is not None
    assert a["history"][0]["at"] == T0


def test_a_missing_flag_matches_neither_true_nor_false(repo: IncidentRepository) -> None:
    legacy = incident("legacy")
    del legacy["exercise"]
    record(repo, legacy)
    record(repo, incident("drill", exercise=True))
    record(repo, incident("real", exercise=False))

    def ids(exercise: bool) -> set[str]:
        rows, _ = repo.incidents_page(IncidentFilter(exercise=exercise), 50, None)
        return {r["_id"] for r in rows}

    assert ids(True) == {"drill"}
    assert ids(False) == {"real"}
    assert repo.count_open_by_grade()[4] == 1


# Array membership ---------------------------------------------------------------------------


def test_a_primary_lists_a_duplicate_once(repo: IncidentRepository) -> None:
    record(repo, incident("p"))
    entry = {"kind": "merged", "duplicate_id": "d", "at": T0}
    outcomes = in_threads(5, lambda i: repo.claim_for_merge("p", "d", entry, T0))
    assert outcomes.count(True) == 1
    assert repo.claim_for_merge("p", "e", {**entry, "duplicate_id": "e"}, T0)
    primary = repo.incident_by_id("p")
    assert primary is not None
    assert primary["merged_ids"] == ["d", "e"]
    repo.release_merge_claim("p", "d")
    primary = repo.incident_by_id("p")
    assert primary is not None
    assert primary["merged_ids"] == ["e"]
    assert [h.get("duplicate_id") for h in primary["history"]] == [None, "e"]


def test_an_incident_that_absorbed_another_cannot_be_merged_away(
    repo: IncidentRepository,
) -> None:
    record(repo, incident("p", merged_ids=["x"]))
    record(repo, incident("q"))
    fields = {"status": "merged", "merged_into": "z"}
    assert not repo.mark_merged("p", 1, fields, {"kind": "merged"}, event("p"))
    assert repo.mark_merged("q", 1, fields, {"kind": "merged"}, event("q"))
    q = repo.incident_by_id("q")
    assert q is not None
    assert (q["status"], q["merged_into"], q["version"]) == ("merged", "z", 2)


def test_the_applied_list_keeps_only_the_latest_ids(repo: IncidentRepository) -> None:
    from libs.common.idempotency import APPLIED_KEEP

    record(repo, incident("a", _applied=[f"old{i}" for i in range(APPLIED_KEEP)]))
    assert repo.apply_report("a", 1, {}, [], [], "new")
    doc = repo.incident_by_id("a")
    assert doc is not None
    assert len(doc["_applied"]) == APPLIED_KEEP
    assert doc["_applied"][0] == "old1" and doc["_applied"][-1] == "new"


# Queries and paging order -------------------------------------------------------------------


def test_pages_walk_newest_first_with_ties_broken_by_id(repo: IncidentRepository) -> None:
    times = [T0, T0, T0 + timedelta(minutes=1), T0 - timedelta(minutes=5), T0, T0]
    for i, at in enumerate(times):
        record(repo, incident(f"i{i}", reported_at=at, status="closed" if i == 4 else "open"))
    expected = sorted(
        ((at, f"i{i}") for i, at in enumerate(times)), key=lambda p: (p[0], p[1]), reverse=True
    )
    seen, cursor = [], None
    while True:
        rows, cursor = repo.incidents_page(IncidentFilter(), 4, cursor)
        seen.extend(r["_id"] for r in rows)
        if cursor is None:
            break
    assert seen == [ident for _, ident in expected]
    rows, cursor = repo.incidents_page(IncidentFilter(status="open"), 2, None)
    more, end = repo.incidents_page(IncidentFilter(status="open"), 2, cursor)
    rest, _ = repo.incidents_page(IncidentFilter(status="open"), 2, end)
    assert [r["_id"] for r in rows + more + rest] == [i for i in seen if i != "i4"]


def test_a_report_time_window_is_half_open(repo: IncidentRepository) -> None:
    for i in range(4):
        record(repo, incident(f"i{i}", reported_at=T0 + timedelta(hours=i)))
    window = IncidentFilter(
        reported_after=T0 + timedelta(hours=1), reported_before=T0 + timedelta(hours=3)
    )
    rows, _ = repo.incidents_page(window, 50, None)
    assert [r["_id"] for r in rows] == ["i2", "i1"]


def test_duplicate_candidates_are_open_same_kind_incidents_inside_the_window(
    repo: IncidentRepository,
) -> None:
    record(repo, incident("inside", occurred_at=T0 + timedelta(minutes=30)))
    record(repo, incident("edge", occurred_at=T0 + timedelta(hours=2)))
    record(repo, incident("early", occurred_at=T0 - timedelta(hours=1)))
    record(repo, incident("outside", occurred_at=T0 + timedelta(hours=3)))
    record(repo, incident("closed", status="closed"))
    record(repo, incident("other", category="fire"))
    record(repo, incident("drill", exercise=True))
    found = repo.duplicate_candidates(
        "flood", T0 - timedelta(hours=1), T0 + timedelta(hours=2), False, HERE
    )
    assert [d.incident_id for d in found] == ["early", "inside", "edge"]
    assert found[1] == DuplicateProbe(
        incident_id="inside",
        category="flood",
        township_code="349901001",
        occurred_at=T0 + timedelta(minutes=30),
        exercise=False,
    )
    assert found[1].occurred_at.utcoffset() == timedelta(0)


def test_duplicate_candidates_are_the_township_s_or_inside_the_box(
    repo: IncidentRepository,
) -> None:
    def at(lat: float | None, lon: float | None) -> dict[str, Any]:
        return {"address": "x", "lat": lat, "lon": lon}

    record(repo, incident("same_township"))
    record(repo, incident("near", township_code="349901101", location=at(31.5, 116.4)))
    record(repo, incident("far", township_code="349901101", location=at(33.0, 116.4)))
    record(repo, incident("no_place", township_code="349901101"))
    box = Neighbourhood("349901001", (31.4, 31.6, 116.3, 116.5))
    window = (T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    found = repo.duplicate_candidates("flood", *window, False, box)
    assert sorted(d.incident_id for d in found) == ["near", "same_township"]
    assert [(d.lat, d.lon) for d in found if d.incident_id == "near"] == [(31.5, 116.4)]
    found = repo.duplicate_candidates("flood", *window, False, HERE)
    assert [d.incident_id for d in found] == ["same_township"]


# The outbox ---------------------------------------------------------------------------------


def test_events_leave_in_order_per_incident_and_only_once_confirmed(
    repo: IncidentRepository,
) -> None:
    first, second = event("a", "1"), event("a", "2")
    record(repo, incident("a"), first)
    assert repo.close_incident("a", 1, {"status": "closed"}, {"kind": "closed"}, second)
    [source] = repo.relay_parts().sources
    batch = source.claim(100, 30.0, "relay-1")
    assert batch is not None
    assert [e.event_id for e in batch.events] == [first.event_id, second.event_id]
    # Another relay finds nothing while the lease holds.
    assert source.claim(100, 30.0, "relay-2") is None
    source.give_back(batch)
    count, oldest = source.pending()
    assert count == 2 and oldest == T0
    again = source.claim(100, 30.0, "relay-2")
    assert again is not None and len(again.events) == 2
    source.confirm(again)
    assert source.pending() == (0, None)
    assert source.claim(100, 30.0, "relay-1") is None


def test_a_confirmed_batch_is_journalled_as_it_leaves_the_outbox(
    repo: IncidentRepository,
) -> None:
    first, second = event("a", "1"), event("a", "2")
    record(repo, incident("a"), first)
    assert repo.close_incident("a", 1, {"status": "closed"}, {"kind": "closed"}, second)
    parts = repo.relay_parts()
    [source] = parts.sources
    assert parts.journal is not None
    batch = source.claim(100, 30.0, "relay-1")
    assert batch is not None
    source.confirm(batch, parts.journal)
    assert source.pending() == (0, None)
    # What the journal gives back (to publish again after a crash) is the events as sent.
    assert parts.journal.since(0) == [first, second]


def test_a_later_event_waits_while_an_earlier_one_of_its_incident_is_leased(
    repo: IncidentRepository,
) -> None:
    first, later = event("a", "1"), event("a", "2")
    record(repo, incident("a"), first)
    [source] = repo.relay_parts().sources
    held = source.claim(100, 30.0, "relay-1")
    assert held is not None
    assert repo.close_incident("a", 1, {"status": "closed"}, {"kind": "closed"}, later)
    # Publishing the later event now could overtake the earlier one: another relay must wait.
    assert source.claim(100, 30.0, "relay-2") is None
    source.confirm(held)
    after = source.claim(100, 30.0, "relay-2")
    assert after is not None
    assert [e.event_id for e in after.events] == [later.event_id]


def test_an_expired_lease_lets_another_relay_publish_again(repo: IncidentRepository) -> None:
    record(repo, incident("a"), event("a"))
    [source] = repo.relay_parts().sources
    assert source.claim(100, -1.0, "crashed") is not None
    again = source.claim(100, 30.0, "relay-2")
    assert again is not None and len(again.events) == 1


def test_concurrent_relays_never_share_an_incident(repo: IncidentRepository) -> None:
    for i in range(20):
        record(repo, incident(f"i{i:02d}"), event(f"i{i:02d}", "1"), event(f"i{i:02d}", "2"))
    [source] = repo.relay_parts().sources
    claimed: dict[str, list[str]] = {}
    lock = threading.Lock()

    def relay(n: int) -> None:
        while (batch := source.claim(3, 30.0, f"relay-{n}")) is not None:
            with lock:
                for e in batch.events:
                    claimed.setdefault(e.payload["incident_id"], []).append(
                        f"{n}:{e.payload['reason']}"
                    )
            source.confirm(batch)

    in_threads(4, relay)
    assert len(claimed) == 20
    for sends in claimed.values():
        owners = {s.split(":")[0] for s in sends}
        assert len(owners) == 1 and [s.split(":")[1] for s in sends] == ["1", "2"]
    assert source.pending()[0] == 0
