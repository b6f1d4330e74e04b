"""One rule for folding intake's incident events into a consumer's view, whatever their order.

Dispatch and warning each keep a view of the incidents they act on. The events that build it
arrive on separate queues, in any order and more than once; this fold makes every arrival order
end in the same view. A service adds what only it needs around it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any


def new_incident_view(incident_id: str) -> dict[str, Any]:
    """What a consumer knows of an incident before any of its events: nothing, not even whether
    it is an exercise (``None`` until the initial report says)."""
    return {
        "_id": incident_id,
        "township_code": None,
        "category": None,
        "title": "",
        "grade": None,
        "grade_at": None,
        "status": "open",
        "exercise": None,
    }


def fold_incident_event(
    view: Mapping[str, Any] | None,
    incident_id: str,
    event_type: str,
    payload: Mapping[str, Any],
    at: datetime,
) -> dict[str, Any]:
    """An incident view after one more of its events, whatever the order they arrive in.

    The grade is the latest re-grade's (by when it occurred), else the initial report's; closed
    and merged are final (a late report or re-grade does not reopen it, a close does not undo a
    merge); title and exercise come from the initial report alone.
    """
    incident = dict(view) if view is not None else new_incident_view(incident_id)
    for key in ("township_code", "category"):
        if incident.get(key) is None and payload.get(key) is not None:
            incident[key] = payload[key]
    if payload.get("exercise") is True:
        # A drill is never taken for a real incident, whichever of its events says so first.
        incident["exercise"] = True
    if event_type == "incident_reported":
        incident.update(title=payload.get("title") or "", exercise=bool(payload.get("exercise")))
        if incident.get("grade_at") is None:
            incident["grade"] = int(payload["grade"])
    elif event_type == "incident_regraded":
        known = incident.get("grade_at")
        if known is None or at >= known:
            incident.update(grade=int(payload["new_grade"]), grade_at=at)
    elif event_type == "incident_closed" and incident.get("status") != "merged":
        incident.update(status="closed", closed_by=payload.get("closed_by"))
    elif event_type == "incident_merged":
        incident.update(status="merged", primary_id=payload.get("primary_id"))
    return incident
