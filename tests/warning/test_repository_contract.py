"""One contract for the warning service's repository, run on every engine: SQLite, mongomock,
and a real MongoDB when ``YINGJI_TEST_MONGO_URL`` is set. Guards under concurrency, unique keys,
null vs missing, array membership, paging order and the outbox behave the same everywhere."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from libs.common.clock import ManualClock
from libs.common.eventmodels import warning as warning_events
from libs.common.events import EventEnvelope
from libs.common.pagination import cursor_scope
from services.warning import events
from services.warning.domain import Target, delivery_id, receipt_id, township_target
from services.warning.lastmile.domain import ReachMarks
from services.warning.repository import (
    DeliveryOutcome,
    WarningExistsError,
    WarningFilter,
    WarningRepository,
)
from services.warning.repository.mongo import MongoWarningRepository
from services.warning.repository.sqlite import SqliteWarningRepository
from tests.support.engines import drain, engine_names, in_threads, repository_on

pytestmark = pytest.mark.store

T0 = datetime(2026, 7, 6, 2, 0, tzinfo=UTC)
CLOCK = ManualClock(T0)
TOWNSHIP_A, TOWNSHIP_B = "349901001", "349901101"
assert warning_events  # the warning event models are registered


@pytest.fixture(autouse=True)
def warnings_list() -> Iterator[None]:
    """Pages sign and check their cursors for the list a request names, as the API's do."""
    with cursor_scope(b"contract-cursor-secret-32-bytes!", "/v1/warnings"):
        yield


@pytest.fixture(params=engine_names())
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WarningRepository]:
    """The warning repository on one engine, schema in place."""
    with repository_on(
        request.param, tmp_path, SqliteWarningRepository, MongoWarningRepository
    ) as on_engine:
        yield on_engine


def warning(ident: str, **fields: Any) -> dict[str, Any]:
    """A minimal active warning with what the repository's queries look at."""
    version = {
        "number": 1,
        "msg_type": "Alert",
        "state": "issued",
        "hazard": "rainstorm",
        "level": 3,
        "color": "yellow",
        "areas": [TOWNSHIP_A],
        "exercise": False,
        "incident_ids": [],
        "issued_at": T0,
    }
    doc: dict[str, Any] = {
        "_id": ident,
        "hazard": "rainstorm",
        "level": 3,
        "color": "yellow",
        "status": "active",
        "version": 1,
        "pending_version": None,
        "areas": [TOWNSHIP_A],
        "exercise": False,
        "incident_ids": [],
        "created_at": T0,
        "issued_at": T0,
        "expires": T0 + timedelta(hours=6),
        "expiry_due": T0 + timedelta(hours=6),
        "versions": [version],
        "fanout": [1],
        "fanout_due": True,
        "rev": 1,
    }
    doc.update(fields)
    return doc


def record(repo: WarningRepository, doc: dict[str, Any], *evts: EventEnvelope) -> None:
    """Store ``doc`` under its own key."""
    _, created = repo.record_warning(doc, f"auto:{doc['_id']}", "h", list(evts))
    assert created


def expired(doc: Mapping[str, Any]) -> EventEnvelope:
    """A warning event about ``doc``."""
    return events.expired_event(CLOCK, doc)


def receipt(wid: str, target: Target, **fields: Any) -> dict[str, Any]:
    """A pending receipt awaited from ``target`` for version 1."""
    doc: dict[str, Any] = {
        "_id": receipt_id(wid, 1, target),
        "warning_id": wid,
        "version": 1,
        **target.fields(),
        "level": 3,
        "exercise": False,
        "correlation_id": wid,
        "issued_at": T0,
        "due_at": T0 + timedelta(minutes=30),
        "ack_due_at": T0 + timedelta(minutes=30),
        "state": "pending",
        "acked_at": None,
    }
    doc.update(fields)
    return doc


def delivery(wid: str, version: int, code: str, channel: str = "短信", **fields: Any) -> dict:
    """A pending delivery due at T0."""
    target = township_target(code)
    doc: dict[str, Any] = {
        "_id": delivery_id(wid, version, target, channel),
        "warning_id": wid,
        "version": version,
        **target.fields(),
        "channel": channel,
        "state": "pending",
        "attempts": 0,
        "next_attempt_at": T0,
        "level": 3,
        "correlation_id": wid,
        "message": {"text": f"v{version}"},
    }
    doc.update(fields)
    return doc


# Guards under concurrency -------------------------------------------------------------------


def test_two_approvals_racing_one_wins_with_one_event(repo: WarningRepository) -> None:
    doc = warning("w", status="pending_approval", pending_version=1)
    record(repo, doc)
    outcomes = in_threads(
        2,
        lambda i: repo.change_warning(
            "w", 1, {"status": "active", "approved_note": f"n{i}"}, [], [expired(doc)]
        ),
    )
    winners = [o for o in outcomes if o is not None]
    assert len(winners) == 1
    saved = repo.warning_by_id("w")
    assert saved is not None
    assert (saved["status"], saved["rev"]) == ("active", 2)
    assert saved["approved_note"] == winners[0]["approved_note"]
    assert len(drain(repo)) == 1


def test_a_stale_revision_changes_nothing_and_writes_no_event(repo: WarningRepository) -> None:
    doc = warning("w")
    record(repo, doc)
    assert repo.change_warning("w", 1, {"level": 2}, ["expiry_due"], []) is not None
    assert repo.change_warning("w", 1, {"level": 1}, [], [expired(doc)]) is None
    saved = repo.warning_by_id("w")
    assert saved is not None
    assert (saved["level"], saved["rev"]) == (2, 2)
    assert "expiry_due" not in saved
    assert drain(repo) == []


def test_acknowledging_twice_at_once_records_one_receipt_and_one_event(
    repo: WarningRepository,
) -> None:
    target = township_target(TOWNSHIP_A)
    record(repo, warning("w"))
    repo.ensure_receipt(receipt("w", target))
    rid = receipt_id("w", 1, target)
    pending = repo.receipt_by_id(rid)
    assert pending is not None
    outcomes = in_threads(
        4,
        lambda i: repo.acknowledge(
            rid,
            {"acked_at": T0, "acked_by": {"name": f"k{i}"}, "note": None, "late": False},
            events.acknowledged_event(CLOCK, pending, f"k{i}", False),
        ),
    )
    assert outcomes.count(True) == 1
    acked = repo.receipt_by_id(rid)
    assert acked is not None
    assert acked["state"] == "acked" and "ack_due_at" not in acked
    assert [e.event_type for e in drain(repo)] == ["warning_acknowledged"]
    # Acknowledged receipts are owed no more: the scan cannot mark them overdue.
    assert not repo.mark_receipt_overdue(rid, T0, events.unacknowledged_event(CLOCK, acked))
    assert repo.receipts_overdue(T0 + timedelta(days=1), 10) == []


def test_an_overdue_receipt_may_still_be_acknowledged_late(repo: WarningRepository) -> None:
    target = township_target(TOWNSHIP_A)
    repo.ensure_receipt(receipt("w", target))
    rid = receipt_id("w", 1, target)
    owed = repo.receipts_overdue(T0 + timedelta(hours=1), 10)
    assert [r["_id"] for r in owed] == [rid]
    outcomes = in_threads(
        3, lambda i: repo.mark_receipt_overdue(rid, T0, events.unacknowledged_event(CLOCK, owed[0]))
    )
    assert outcomes.count(True) == 1
    assert repo.receipts_overdue(T0 + timedelta(hours=1), 10) == []
    fields = {"acked_at": T0, "acked_by": {"name": "k"}, "note": "迟签", "late": True}
    assert repo.acknowledge(rid, fields, events.acknowledged_event(CLOCK, owed[0], "k", True))
    assert [e.event_type for e in drain(repo)] == [
        "warning_unacknowledged",
        "warning_acknowledged",
    ]


def test_one_worker_of_many_claims_a_due_delivery(repo: WarningRepository) -> None:
    repo.plan_delivery(delivery("w", 1, TOWNSHIP_A))
    ident = delivery_id("w", 1, township_target(TOWNSHIP_A), "短信")
    later = T0 + timedelta(seconds=40)
    claims = in_threads(6, lambda i: repo.claim_delivery(ident, 0, T0, later))
    assert len([c for c in claims if c is not None]) == 1
    # Leased: no longer due now, due again once the lease runs out.
    assert repo.pending_deliveries(T0, 10) == []
    assert [d["_id"] for d in repo.pending_deliveries(later, 10)] == [ident]
    # A claim made with a stale attempt count finds nothing.
    assert repo.claim_delivery(ident, 1, later, later) is None


def test_the_incident_view_keeps_every_fact_of_concurrent_events(
    repo: WarningRepository,
) -> None:
    def fold(event_id: str) -> Callable[[Mapping[str, Any] | None], Mapping[str, Any]]:
        def merge(view: Mapping[str, Any] | None) -> Mapping[str, Any]:
            return {**(view or {}), "seen": sorted({*((view or {}).get("seen") or []), event_id})}

        return merge

    outcomes = in_threads(6, lambda i: repo.merge_incident_event("i", f"e{i}", fold(f"e{i}")))
    assert all(outcomes)
    assert not repo.merge_incident_event("i", "e3", fold("e3"))  # a redelivery
    view = repo.incident("i")
    assert view is not None
    assert view["seen"] == [f"e{i}" for i in range(6)]


# Unique keys --------------------------------------------------------------------------------


def test_one_idempotency_key_creates_one_warning_under_a_race(repo: WarningRepository) -> None:
    outcomes = in_threads(
        5, lambda i: repo.record_warning(warning(f"w{i}"), "key:k1", "h", [expired(warning("w"))])
    )
    created = [doc for doc, new in outcomes if new]
    assert len(created) == 1
    assert {doc["_id"] for doc, _ in outcomes} == {created[0]["_id"]}
    assert len(drain(repo)) == 1
    found = repo.warning_by_idempotency_key("key:k1")
    assert found is not None and found["_id"] == created[0]["_id"]


def test_an_id_taken_under_another_key_is_refused(repo: WarningRepository) -> None:
    record(repo, warning("w"))
    with pytest.raises(WarningExistsError):
        repo.record_warning(warning("w"), "key:other", "h", [])


def test_deliveries_marks_receipts_and_suggestions_are_written_once(
    repo: WarningRepository,
) -> None:
    assert repo.plan_delivery(delivery("w", 1, TOWNSHIP_A))
    assert not repo.plan_delivery(delivery("w", 1, TOWNSHIP_A, attempts=9))
    assert repo.first_delivery("w:v1:a", T0, "短信")
    assert not repo.first_delivery("w:v1:a", T0, "广播")
    target = township_target(TOWNSHIP_A)
    repo.ensure_receipt(receipt("w", target))
    rid = receipt_id("w", 1, target)
    assert repo.mark_receipt_overdue(
        rid, T0, events.unacknowledged_event(CLOCK, receipt("w", target))
    )
    repo.ensure_receipt(receipt("w", target))  # a second plan leaves the receipt as it is
    again = repo.receipt_by_id(rid)
    assert again is not None and again["state"] == "overdue"
    suggestion = {"_id": "s1", "incident_id": "i", "level": 3, "status": "pending"}
    evt = events.suggested_event(CLOCK, {**suggestion, "hazard": "flood", "areas": []}, "c")
    assert repo.record_suggestion({**suggestion, "created_at": T0}, [evt])
    assert not repo.record_suggestion({**suggestion, "created_at": T0}, [evt])
    assert [e.event_type for e in drain(repo)] == ["warning_unacknowledged", "warning_suggested"]


# Null vs missing ----------------------------------------------------------------------------


def test_null_and_missing_fields_come_back_as_they_went_in(repo: WarningRepository) -> None:
    with_null = warning("a", lifted_at=None)
    without = warning("b")
    record(repo, with_null)
    record(repo, without)
    a, b = repo.warning_by_id("a"), repo.warning_by_id("b")
    assert a is not None and b is not None
    assert "lifted_at" in a and a["lifted_at"] is None and a["pending_version"] is None
    assert "lifted_at" not in b
    assert a["created_at"] == T0 and a["created_at"].tzinfo is not None
    assert a["versions"][0]["issued_at"] == T0


def test_a_missing_acknowledgement_time_counts_as_none(repo: WarningRepository) -> None:
    a, b = township_target(TOWNSHIP_A), township_target(TOWNSHIP_B)
    missing = receipt("w", a)
    del missing["acked_at"]
    repo.ensure_receipt(missing)
    repo.ensure_receipt(receipt("w", b, acked_at=T0, state="acked"))
    fields = {"acked_at": T0, "acked_by": {"name": "k"}, "note": None, "late": False}
    evt = events.acknowledged_event(CLOCK, missing, "k", False)
    assert repo.acknowledge(receipt_id("w", 1, a), fields, evt)
    assert not repo.acknowledge(receipt_id("w", 1, b), fields, evt)


def test_a_missing_flag_matches_neither_true_nor_false(repo: WarningRepository) -> None:
    legacy = warning("legacy")
    del legacy["exercise"]
    record(repo, legacy)
    record(repo, warning("drill", exercise=True))
    record(repo, warning("real", exercise=False))

    def ids(exercise: bool) -> set[str]:
        rows, _ = repo.warnings_page(WarningFilter(exercise=exercise), 50, None)
        return {r["_id"] for r in rows}

    assert ids(True) == {"drill"}
    assert ids(False) == {"real"}
    assert repo.count_active_by_level()[3] == 1
    assert [w["_id"] for w in repo.public_warnings(10)] == ["real"]


def test_a_warning_without_an_expiry_due_never_expires(repo: WarningRepository) -> None:
    record(repo, warning("due"))
    gone = warning("gone")
    del gone["expiry_due"]
    record(repo, gone)
    record(repo, warning("later", expiry_due=T0 + timedelta(days=2)))
    soon = T0 + timedelta(days=1)
    assert [w["_id"] for w in repo.warnings_due_to_expire(soon, 10)] == ["due"]
    repo.forget_expiry("due")
    assert repo.warnings_due_to_expire(soon, 10) == []


# Array membership ---------------------------------------------------------------------------


def test_an_area_filter_matches_whole_codes_in_the_areas(repo: WarningRepository) -> None:
    record(repo, warning("a", areas=[TOWNSHIP_A]))
    record(repo, warning("ab", areas=[TOWNSHIP_B, TOWNSHIP_A]))
    record(repo, warning("b", areas=[TOWNSHIP_B]))
    record(repo, warning("part", areas=[TOWNSHIP_A[:-1]]))

    def ids(area: str) -> set[str]:
        rows, _ = repo.warnings_page(WarningFilter(area=area), 50, None)
        return {r["_id"] for r in rows}

    assert ids(TOWNSHIP_A) == {"a", "ab"}
    assert ids(TOWNSHIP_B) == {"ab", "b"}


def test_finishing_a_fanout_pulls_its_numbers(repo: WarningRepository) -> None:
    record(repo, warning("w", fanout=[1, 2, 3]))
    record(repo, warning("idle", fanout=[], fanout_due=False))
    assert repo.warnings_awaiting_fanout(10) == ["w"]
    repo.finish_fanout("w", [1, 3])
    doc = repo.warning_by_id("w")
    assert doc is not None and doc["fanout"] == [2] and doc["fanout_due"] is True
    repo.finish_fanout("w", [2])
    doc = repo.warning_by_id("w")
    assert doc is not None and doc["fanout"] == [] and doc["fanout_due"] is False
    assert repo.warnings_awaiting_fanout(10) == []


def test_the_newest_version_supersedes_what_older_ones_left_pending(
    repo: WarningRepository,
) -> None:
    a = township_target(TOWNSHIP_A)
    repo.plan_delivery(delivery("w", 1, TOWNSHIP_A))
    delivered = delivery("w", 1, TOWNSHIP_B, state="delivered")
    del delivered["next_attempt_at"]
    repo.plan_delivery(delivered)
    repo.plan_delivery(delivery("w", 2, TOWNSHIP_A))
    repo.plan_delivery(delivery("other", 1, TOWNSHIP_A))
    repo.ensure_receipt(receipt("w", a))
    repo.supersede_older("w", 2)
    rows = repo.deliveries_for("w", [TOWNSHIP_A, TOWNSHIP_B])
    assert [(r["version"], r["township_code"], r["state"]) for r in rows] == [
        (1, TOWNSHIP_A, "superseded"),
        (1, TOWNSHIP_B, "delivered"),
        (2, TOWNSHIP_A, "pending"),
    ]
    assert all("message" not in r for r in rows)
    assert sorted(d["warning_id"] for d in repo.pending_deliveries(T0, 10)) == ["other", "w"]
    superseded = repo.receipt_by_id(receipt_id("w", 1, a))
    assert superseded is not None and superseded["state"] == "superseded"
    assert "ack_due_at" not in superseded


def test_reach_marks_name_each_target_of_the_version_and_its_state(
    repo: WarningRepository,
) -> None:
    village = Target("village", "349901001001", TOWNSHIP_A)
    enterprise = Target("enterprise", "ent-1", TOWNSHIP_B)
    old_style = delivery("w", 2, TOWNSHIP_A, state="delivered")
    del old_style["target"]  # written before targets had kinds: the township's
    repo.plan_delivery(old_style)
    for target, state in ((village, "failed"), (enterprise, "delivered")):
        repo.plan_delivery(
            {
                **delivery("w", 2, TOWNSHIP_A),
                **target.fields(),
                "_id": f"{target.key}",
                "state": state,
            }
        )
    repeat = {**delivery("w", 2, TOWNSHIP_B), "_id": "repeat", "escalation_of": "first"}
    repo.plan_delivery(repeat)
    repo.plan_delivery(delivery("w", 1, TOWNSHIP_B, state="delivered"))
    repo.plan_delivery(delivery("other", 2, TOWNSHIP_A, state="delivered"))
    signed = receipt("w", township_target(TOWNSHIP_A), version=2, acked_at=T0)
    signed["_id"] = receipt_id("w", 2, township_target(TOWNSHIP_A))
    late = receipt("w", village, version=2, overdue_at=T0)
    late["_id"] = receipt_id("w", 2, village)
    del late["acked_at"]  # missing, as null is: not acknowledged
    for doc in (signed, late, receipt("w", township_target(TOWNSHIP_B), acked_at=T0)):
        repo.ensure_receipt(doc)
    marks = repo.reach_marks({"w": 2, "none": 1})
    assert marks["none"] == ReachMarks() and repo.reach_marks({}) == {}
    facts = {fact: codes for fact, codes in marks["w"].codes.items() if codes}
    assert facts == {
        ("planned", "township"): {TOWNSHIP_A},
        ("delivered", "township"): {TOWNSHIP_A},
        ("planned", "village"): {"349901001001"},
        ("failed", "village"): {"349901001001"},
        ("planned", "enterprise"): {"ent-1"},
        ("delivered", "enterprise"): {"ent-1"},
        ("acknowledged", "township"): {TOWNSHIP_A},
        ("escalated", "village"): {"349901001001"},
    }


# Paging order and due work ------------------------------------------------------------------


def test_pages_walk_newest_first_with_ties_broken_by_id(repo: WarningRepository) -> None:
    times = [T0, T0, T0 + timedelta(minutes=1), T0 - timedelta(minutes=5), T0, T0]
    for i, at in enumerate(times):
        record(repo, warning(f"w{i}", created_at=at, status="lifted" if i == 4 else "active"))
    expected = sorted(((at, f"w{i}") for i, at in enumerate(times)), reverse=True)
    seen, cursor = [], None
    while True:
        rows, cursor = repo.warnings_page(WarningFilter(), 4, cursor)
        assert all("versions" not in r for r in rows)
        seen.extend(r["_id"] for r in rows)
        if cursor is None:
            break
    assert seen == [ident for _, ident in expected]
    active = WarningFilter(statuses=("active",))
    rows, cursor = repo.warnings_page(active, 2, None)
    more, end = repo.warnings_page(active, 2, cursor)
    rest, _ = repo.warnings_page(active, 2, end)
    assert [r["_id"] for r in rows + more + rest] == [i for i in seen if i != "w4"]


def test_suggestion_pages_and_the_incident_s_pending_ones(repo: WarningRepository) -> None:
    for i in range(5):
        doc = {"_id": f"s{i}", "incident_id": "i" if i < 3 else "j", "level": 4 - i % 2}
        repo.record_suggestion({**doc, "status": "pending", "created_at": T0 + timedelta(i)}, [])
    repo.supersede_suggestions("i", "s2")
    assert [s["_id"] for s in repo.pending_suggestions("i")] == ["s2"]
    assert repo.close_suggestion("s2", {"status": "dismissed", "dismiss_reason": "无需"})
    assert not repo.close_suggestion("s2", {"status": "accepted"})
    rows, cursor = repo.suggestions_page(None, None, 2, None)
    more, _ = repo.suggestions_page(None, None, 10, cursor)
    assert [r["_id"] for r in rows + more] == ["s4", "s3", "s2", "s1", "s0"]
    superseded, _ = repo.suggestions_page("superseded", "i", 10, None)
    assert [(r["_id"], r["superseded_by"]) for r in superseded] == [("s1", "s2"), ("s0", "s2")]


def test_a_delivery_attempt_is_kept_and_its_retry_is_due_later(repo: WarningRepository) -> None:
    a, b = delivery("w", 1, TOWNSHIP_A), delivery("w", 1, TOWNSHIP_B)
    b["next_attempt_at"] = T0 - timedelta(seconds=1)
    repo.plan_delivery(a)
    repo.plan_delivery(b)
    assert [d["_id"] for d in repo.pending_deliveries(T0, 10)] == [b["_id"], a["_id"]]
    retry_at = T0 + timedelta(seconds=30)
    repo.record_delivery_attempt(a["_id"], DeliveryOutcome("pending", 1, "超时", T0, retry_at), [])
    failed = events.delivery_failed_event(CLOCK, b, 3, "HTTP 500")
    repo.record_delivery_attempt(b["_id"], DeliveryOutcome("failed", 3, "HTTP 500", T0), [failed])
    assert repo.pending_deliveries(T0, 10) == []
    assert [d["_id"] for d in repo.pending_deliveries(retry_at, 10)] == [a["_id"]]
    assert repo.count_pending_deliveries() == 1
    gone = repo.delivery_by_id(b["_id"])
    assert gone is not None
    assert (gone["state"], gone["attempts"], gone["failed_at"]) == ("failed", 3, T0)
    assert "next_attempt_at" not in gone
    assert [e.event_type for e in drain(repo)] == ["warning_delivery_failed"]


def test_incident_views_follow_merges_to_their_primary(repo: WarningRepository) -> None:
    def setting(fields: dict[str, Any]) -> Callable[[Mapping[str, Any] | None], Mapping[str, Any]]:
        return lambda view: {**(view or {}), **fields}

    repo.merge_incident_event("dup", "e1", setting({"status": "merged", "primary_id": "p"}))
    repo.merge_incident_event("p", "e2", setting({"status": "open"}))
    views = repo.incidents_with_primaries(["dup", "unknown"])
    assert set(views) == {"dup", "p"}


# The outbox ---------------------------------------------------------------------------------


def test_events_of_a_warning_leave_in_order_and_only_once_confirmed(
    repo: WarningRepository,
) -> None:
    doc = warning("w")
    first, second = expired(doc), expired(doc)
    record(repo, doc, first)
    assert repo.change_warning("w", 1, {"status": "expired"}, ["expiry_due"], [second])
    sent = drain(repo)
    assert [e.event_id for e in sent] == [first.event_id, second.event_id]
    assert drain(repo) == []
    for source in repo.relay_parts().sources:
        assert source.pending() == (0, None)


# The last mile: link tokens and the enterprise register -------------------------------------


def enterprise(ident: str, revision: int, **fields: Any) -> dict[str, Any]:
    """A folded enterprise snapshot as the use cases keep it."""
    return {
        "_id": ident,
        "revision": revision,
        "name": f"企业{ident}",
        "township_code": TOWNSHIP_A,
        "risk_level": "major",
        "status": "active",
        "exercise": False,
        **fields,
    }


def test_an_ack_token_is_kept_once_and_found_by_its_hash(repo: WarningRepository) -> None:
    token = {"_id": "a" * 64, "receipt_id": "w:v1:village:349901001001", "expires_at": T0}
    assert repo.record_ack_token(token) is True
    assert repo.record_ack_token({**token, "receipt_id": "other"}) is False
    found = repo.ack_token("a" * 64)
    assert found is not None and found["receipt_id"] == "w:v1:village:349901001001"
    assert found["expires_at"] == T0
    assert repo.ack_token("b" * 64) is None


def test_the_highest_enterprise_revision_wins_in_any_order(repo: WarningRepository) -> None:
    assert repo.fold_enterprise(enterprise("E1", 2, name="二版")) is True
    assert repo.fold_enterprise(enterprise("E1", 1, name="一版")) is False  # late, older
    assert repo.fold_enterprise(enterprise("E1", 2, name="二版重复")) is False  # duplicate
    assert repo.fold_enterprise(enterprise("E1", 10, name="十版")) is True  # 10 > 2, not "10" < "2"
    (kept,) = repo.enterprises_in([TOWNSHIP_A])
    assert (kept["name"], kept["revision"]) == ("十版", 10)


def test_enterprises_are_listed_by_township(repo: WarningRepository) -> None:
    repo.fold_enterprise(enterprise("E1", 1))
    repo.fold_enterprise(enterprise("E2", 1, township_code=TOWNSHIP_B, status="closed"))
    repo.fold_enterprise(enterprise("E3", 1, township_code="349901102"))
    assert [e["_id"] for e in repo.enterprises_in([TOWNSHIP_A, TOWNSHIP_B])] == ["E1", "E2"]
    assert repo.enterprises_in([]) == []


def test_a_village_receipt_without_escalation_is_never_overdue(repo: WarningRepository) -> None:
    village = Target("village", "349901001001", TOWNSHIP_A)
    quiet = {
        "_id": receipt_id("w1", 1, village),
        "warning_id": "w1",
        "version": 1,
        **village.fields(),
        "level": 3,
        "due_at": None,
        "state": "pending",
        "acked_at": None,
    }
    repo.ensure_receipt(quiet)
    chased = {**quiet, "_id": receipt_id("w1", 1, Target("village", "349901001002", TOWNSHIP_A))}
    chased.update(target={"kind": "village", "code": "349901001002"}, due_at=T0, ack_due_at=T0)
    repo.ensure_receipt(chased)
    overdue = repo.receipts_overdue(T0 + timedelta(days=30), 10)
    assert [r["_id"] for r in overdue] == [chased["_id"]]
    assert {r["target"]["kind"] for r in repo.receipts_for("w1", [TOWNSHIP_A])} == {"village"}


def test_a_drill_delivery_keeps_the_link_it_carried(repo: WarningRepository) -> None:
    drill, real = delivery("w", 1, TOWNSHIP_A), delivery("w", 1, TOWNSHIP_B)
    repo.plan_delivery(drill)
    repo.plan_delivery(real)
    link = "http://127.0.0.1:8000/v1/warnings/ack/abc"
    outcome = DeliveryOutcome("delivered", 1, None, T0, exercise_ack_url=link)
    repo.record_delivery_attempt(drill["_id"], outcome, [])
    repo.record_delivery_attempt(real["_id"], DeliveryOutcome("delivered", 1, None, T0), [])
    rows = {d["_id"]: d for d in repo.deliveries_for("w", [TOWNSHIP_A, TOWNSHIP_B])}
    assert rows[drill["_id"]]["exercise_ack_url"] == link
    assert "exercise_ack_url" not in rows[real["_id"]]
