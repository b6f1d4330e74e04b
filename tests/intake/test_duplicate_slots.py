"""Duplicate lookups ask for the occurrence hours of the window (cheap on the embedded engine)
and still find every open incident inside the window, across hour boundaries and for incidents
stored before the slot field existed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from libs.common.store import EmbeddedEngine
from services.intake.store import DUP_SLOT, IncidentStore


def _doc(ident: str, occurred: datetime) -> dict[str, object]:
    return {
        "_id": ident,
        "category": "flood",
        "status": "open",
        "exercise": False,
        "township_code": "349901001",
        "occurred_at": occurred,
        "location": {"address": "x"},
    }


def test_candidates_span_hour_boundaries_and_old_documents_are_backfilled(tmp_path: Path) -> None:
    engine = EmbeddedEngine(tmp_path / "store")
    try:
        store = IncidentStore(engine.database("yingji_intake"))
        store.ensure_indexes()
        at = datetime(2026, 7, 6, 10, 59, tzinfo=UTC)
        window = timedelta(hours=6)
        store.create(_doc("a", at), "auto:a", "h")
        store.create(_doc("b", at + timedelta(minutes=2)), "auto:b", "h")
        store.create(_doc("c", at + timedelta(hours=5, minutes=59)), "auto:c", "h")
        store.create(_doc("far", at + timedelta(hours=7)), "auto:far", "h")
        # Written before the slot existed (an older version of the service).
        store.collection.insert_one(_doc("old", at - timedelta(hours=3)))
        assert store.collection.find_one({"_id": "old"}).get(DUP_SLOT) is None
        store.ensure_indexes()
        assert store.collection.find_one({"_id": "old"})[DUP_SLOT] is not None
        found = {d["_id"] for d in store.duplicate_candidates("flood", at, window, False)}
        assert found == {"a", "b", "c", "old"}
    finally:
        engine.close()
