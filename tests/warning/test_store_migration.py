"""A data directory written by the previous embedded engine (litemongo documents under
``<data_dir>/store``) comes over to the warning service's SQLite file on first start, or through
``yingji migrate-store``, and every warning, delivery, receipt and suggestion reads back
identical over the API."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from libs.common.eventmodels import warning as warning_events
from libs.common.settings import Settings
from libs.common.sqlite import SqliteDatabase
from libs.common.store import EmbeddedEngine, sqlite_file
from services.warning import service as warning_service
from services.warning.domain import township_target
from services.warning.repository.legacy import import_legacy_warnings
from services.warning.repository.mongo import MongoWarningRepository
from services.warning.repository.sqlite import SqliteWarningRepository
from services.warning.rules import load_rules
from services.warning.service import build_spec, use_cases
from tests.support.stack import Stack, running_stack
from tests.warning.conftest import TOWNSHIP_A, TOWNSHIP_B, WarningStack

pytestmark = pytest.mark.e2e
assert warning_events  # the warning event models are registered

# The delivery job runs when the test says so: the history is the same on every run.
SPEC = build_spec(
    load_rules().with_changes(delivery={"worker_interval_seconds": 3600}), wake_on_issue=False
)


@contextmanager
def previous_engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The warning service as it ran before: its documents in the data directory's litemongo."""
    with monkeypatch.context() as patch:
        patch.setattr(warning_service, "sqlite_file", lambda settings, name: None)
        yield


def warnings_of(stack: Stack) -> WarningStack:
    """The stack with the warning helpers (bodies, incident events)."""
    return WarningStack(
        runtime=stack.runtime, client=stack.client, clock=stack.clock, keys=stack.keys
    )


def write_history(stack: WarningStack) -> tuple[list[str], dict[str, Any]]:
    """Issued, approved, adjusted, lifted, rejected and drill warnings, deliveries, a receipt and
    suggestions accepted, dismissed and pending, over the API and the bus handlers."""
    stack.report_incident("inc-1", category="flood", grade=2)
    stack.report_incident("inc-2", category="flood", grade=2, township=TOWNSHIP_B)
    stack.report_incident("inc-3", category="flood", grade=3)
    suggestions = stack.call("GET", "/v1/warnings/suggestions").json()["items"]
    by_incident = {s["incident_id"]: s["id"] for s in suggestions}
    accepted = stack.call("POST", f"/v1/warnings/suggestions/{by_incident['inc-1']}/accept")
    assert accepted.status_code == 201, accepted.text
    dismiss = {"reason": "已有预警"}
    path = f"/v1/warnings/suggestions/{by_incident['inc-2']}/dismiss"
    assert stack.call("POST", path, json=dismiss).status_code == 200
    keyed_body = stack.warning_body(headline="城关镇暴雨黄色预警")
    keyed = stack.call(
        "POST", "/v1/warnings", json=keyed_body, headers={"Idempotency-Key": "w-1"}
    ).json()
    stack.clock.advance(60)
    red = stack.issue(level=1).json()
    assert red["status"] == "pending_approval"
    assert stack.call("POST", f"/v1/warnings/{red['id']}/approve", who="leader").status_code == 200
    adjust = {"level": 2, "reason": "雨势减弱"}
    assert stack.call("POST", f"/v1/warnings/{red['id']}/adjust", json=adjust).status_code == 200
    stack.clock.advance(60)
    rejected = stack.issue(level=2).json()
    reject = {"reason": "证据不足"}
    path = f"/v1/warnings/{rejected['id']}/reject"
    assert stack.call("POST", path, who="leader", json=reject).status_code == 200
    stack.clock.advance(60)
    lifted = stack.issue(level=4).json()
    lift = {"reason": "降雨结束"}
    assert stack.call("POST", f"/v1/warnings/{lifted['id']}/lift", json=lift).status_code == 200
    stack.clock.advance(60)
    drill = stack.issue(level=3, exercise=True).json()
    stack.service.run_deliveries()
    assert (
        stack.call("POST", f"/v1/warnings/{keyed['id']}/ack", who="township_a").status_code == 200
    )
    stack.settle()
    ids = [accepted.json()["id"], keyed["id"], red["id"], rejected["id"], lifted["id"], drill["id"]]
    return ids, keyed_body


def read_all(stack: Stack, ids: list[str]) -> dict[str, Any]:
    """Every warning's detail, deliveries and CAP documents, the lists page by page, the feed."""
    seen: dict[str, Any] = {}
    for wid in ids:
        detail = stack.call("GET", f"/v1/warnings/{wid}").json()
        caps = [
            stack.call("GET", f"/v1/warnings/{wid}/cap", params={"version": v["number"]}).text
            for v in detail["versions"]
        ]
        deliveries = stack.call("GET", f"/v1/warnings/{wid}/deliveries").json()
        seen[wid] = {"detail": detail, "caps": caps, "deliveries": deliveries}
    return {
        "warnings": seen,
        "pages": pages(stack, "/v1/warnings"),
        "township_pages": pages(stack, "/v1/warnings", who="township_b"),
        "suggestions": pages(stack, "/v1/warnings/suggestions"),
        "feed": stack.call("GET", "/v1/warnings/feed").json()["items"],
    }


def pages(stack: Stack, path: str, who: str = "operator") -> list[list[dict[str, Any]]]:
    """A list read two items at a time."""
    found, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = stack.call("GET", path, who=who, params=params).json()
        found.append(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return found


def test_warnings_come_over_on_first_start_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    with previous_engine(monkeypatch), running_stack(tmp_path, [SPEC], data_dir=data) as old:
        ids, keyed_body = write_history(warnings_of(old))
        before = read_all(old, ids)
        old_key = old.keys["operator"]
    assert not sqlite_file(Settings(data_dir=data), "warning").exists()  # type: ignore[union-attr]
    with running_stack(tmp_path, [SPEC], data_dir=data) as new:
        assert isinstance(new.ctx("warning").resources["repository"], SqliteWarningRepository)
        after = read_all(new, ids)
        # The key of a request made before the move still answers with the same warning.
        new.keys["old_operator"] = old_key
        replay = new.call(
            "POST",
            "/v1/warnings",
            who="old_operator",
            json=keyed_body,
            headers={"Idempotency-Key": "w-1"},
        )
        # Receipts came over: the township's acknowledgement is not taken a second time.
        again = new.call("POST", f"/v1/warnings/{ids[1]}/ack", who="township_a")
    assert after == before
    states = [before["warnings"][w]["detail"]["status"] for w in ids]
    assert states == ["pending_approval", "active", "active", "rejected", "lifted", "active"]
    assert {s["status"] for page in before["suggestions"] for s in page} == {
        "accepted",
        "dismissed",
        "pending",
    }
    keyed = before["warnings"][ids[1]]["deliveries"]
    assert keyed["summary"]["acknowledgements"]["acked"] == 1
    assert keyed["summary"]["deliveries"]["delivered"] == 2
    assert replay.status_code == 200 and replay.json()["id"] == ids[1]
    assert again.status_code == 200 and again.json()["acked_at"] is not None


def test_pending_events_move_into_the_outbox_and_a_second_run_copies_nothing(
    tmp_path: Path,
) -> None:
    from tests.warning.test_repository_contract import expired, receipt, warning

    engine = EmbeddedEngine(tmp_path / "store")
    db = SqliteDatabase(tmp_path / "yingji_warning.sqlite3")
    try:
        legacy = MongoWarningRepository(engine.database("yingji_warning"))
        legacy.ensure_schema()
        doc = warning("w")
        waiting = expired(doc)
        legacy.record_warning(doc, "auto:w", "h", [waiting])
        legacy.ensure_receipt(receipt("w", township_target(TOWNSHIP_A)))
        legacy.merge_incident_event("inc", "e1", lambda view: {"status": "open"})
        legacy.first_delivery("w:v1:349901001", doc["created_at"], "短信")
        repo = SqliteWarningRepository(db)
        repo.ensure_schema()
        assert import_legacy_warnings(engine.database("yingji_warning"), repo) == 4
        assert import_legacy_warnings(engine.database("yingji_warning"), repo) == 0
        moved = repo.warning_by_id("w")
        assert moved is not None
        assert not any(key.startswith("_outbox") for key in moved)
        assert moved["_idem"] == {"key": "auto:w", "hash": "h"}
        assert moved["expiry_due"] == doc["expiry_due"]
        assert repo.warnings_due_to_expire(doc["expires"] + timedelta(seconds=1), 5) == [moved]
        view = repo.incident("inc")
        assert view is not None and view["_applied"] == ["e1"]
        assert not repo.first_delivery("w:v1:349901001", doc["created_at"], "短信")
        [source] = repo.relay_parts().sources
        batch = source.claim(10, 30.0, "relay")
        assert batch is not None
        assert [e.event_id for e in batch.events] == [waiting.event_id]
    finally:
        db.close()
        engine.close()


def test_the_cli_migrates_the_warning_service(tmp_path: Path) -> None:
    from tests.warning.test_repository_contract import warning
    from yingji.cli import main

    data = tmp_path / "data"
    engine = EmbeddedEngine(data / "store")
    try:
        legacy = MongoWarningRepository(engine.database("yingji_warning"))
        for ident in ("a", "b", "c"):
            legacy.record_warning(warning(ident), f"auto:{ident}", "h", [])
    finally:
        engine.close()
    main(["migrate-store", "--data-dir", str(data)])
    db = SqliteDatabase(data / "yingji_warning.sqlite3")
    try:
        repo = SqliteWarningRepository(db)
        assert repo.imported()
        assert repo.count_active_by_level()[3] == 3
    finally:
        db.close()


def test_a_fresh_data_directory_is_marked_imported(tmp_path: Path) -> None:
    with running_stack(tmp_path, [SPEC], data_dir=tmp_path / "data") as first:
        repo = first.ctx("warning").resources["repository"]
        assert isinstance(repo, SqliteWarningRepository) and repo.imported()
        assert use_cases(first.ctx("warning")).repo is repo
