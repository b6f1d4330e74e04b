"""Building the warning service's events from its documents."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from libs.common.clock import Clock
from libs.common.events import EventEnvelope, make_event
from services.warning.domain import VERSION_PENDING

SOURCE = "warning"


def correlation_of(warning: Mapping[str, Any]) -> str:
    """The chain a warning belongs to: the first incident it was raised for, else itself."""
    incidents = warning.get("incident_ids") or []
    return str(incidents[0]) if incidents else str(warning["_id"])


def _version_fields(warning: Mapping[str, Any], version: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "warning_id": warning["_id"],
        "version": version["number"],
        "level": version["level"],
        "color": version["color"],
        "hazard": version["hazard"],
        "areas": list(version["areas"]),
        "exercise": bool(version.get("exercise")),
        "incident_ids": list(version.get("incident_ids") or []),
    }


def _event(
    clock: Clock,
    event_type: str,
    payload: dict[str, Any],
    correlation_id: str,
    causation_id: str | None = None,
) -> EventEnvelope:
    return make_event(
        clock,
        SOURCE,
        event_type,
        payload,
        correlation_id=correlation_id,
        causation_id=causation_id,
    )


def version_event(
    clock: Clock,
    warning: Mapping[str, Any],
    version: Mapping[str, Any],
    old_level: int | None,
    covered: Mapping[str, int] | None = None,
) -> EventEnvelope:
    """``warning_issued`` / ``warning_adjusted`` / ``warning_lifted`` for a version just issued;
    ``covered`` adds what its areas reach (villages, people, enterprises)."""
    fields = {**_version_fields(warning, version), **(covered or {})}
    approver = (version.get("approved_by") or {}).get("name")
    kind = version["msg_type"]
    if kind == "Alert":
        payload = {
            **fields,
            "headline": version["headline"],
            "effective": version["effective"],
            "expires": version["expires"],
            "issued_by": (version.get("requested_by") or {}).get("name"),
            "approved_by": approver,
        }
        return _event(clock, "warning_issued", payload, correlation_of(warning))
    if kind == "Update":
        payload = {
            **fields,
            "old_level": old_level if old_level is not None else version["level"],
            "reason": version.get("reason") or "",
            "headline": version["headline"],
            "expires": version["expires"],
            "approved_by": approver,
        }
        return _event(clock, "warning_adjusted", payload, correlation_of(warning))
    payload = {**fields, "reason": version.get("reason") or ""}
    return _event(clock, "warning_lifted", payload, correlation_of(warning))


def expired_event(clock: Clock, warning: Mapping[str, Any]) -> EventEnvelope:
    """``warning_expired`` for a warning that reached its expiry time."""
    current = warning["versions"][-1]
    for version in reversed(warning["versions"]):
        if version["number"] == warning["version"]:
            current = version
            break
    return _event(
        clock, "warning_expired", _version_fields(warning, current), correlation_of(warning)
    )


def delivery_failed_event(
    clock: Clock, delivery: Mapping[str, Any], attempts: int, error: str
) -> EventEnvelope:
    """``warning_delivery_failed`` after a channel's last attempt."""
    payload = {
        "warning_id": delivery["warning_id"],
        "version": delivery["version"],
        "township_code": delivery["township_code"],
        "target_kind": (delivery.get("target") or {}).get("kind", "township"),
        "target_code": (delivery.get("target") or {}).get("code", delivery["township_code"]),
        "channel": delivery["channel"],
        "attempts": attempts,
        "error": error,
        "level": delivery.get("level"),
        "exercise": bool(delivery.get("exercise")),
    }
    return _event(clock, "warning_delivery_failed", payload, delivery["correlation_id"])


def acknowledged_event(clock: Clock, ack: Mapping[str, Any], by: str, late: bool) -> EventEnvelope:
    """``warning_acknowledged`` when a township confirms receipt."""
    payload = {
        "warning_id": ack["warning_id"],
        "version": ack["version"],
        "township_code": ack["township_code"],
        "acknowledged_by": by,
        "late": late,
        "exercise": bool(ack.get("exercise")),
    }
    return _event(clock, "warning_acknowledged", payload, ack["correlation_id"])


def unacknowledged_event(clock: Clock, ack: Mapping[str, Any]) -> EventEnvelope:
    """``warning_unacknowledged`` when a township's receipt is overdue."""
    payload = {
        "warning_id": ack["warning_id"],
        "version": ack["version"],
        "level": ack["level"],
        "township_code": ack["township_code"],
        "due_at": ack["due_at"],
        "exercise": bool(ack.get("exercise")),
    }
    return _event(clock, "warning_unacknowledged", payload, ack["correlation_id"])


def village_acknowledged_event(
    clock: Clock, receipt: Mapping[str, Any], by: str, via: str, late: bool
) -> EventEnvelope:
    """``warning_village_acknowledged`` when a village (or its township for it) confirms."""
    payload = {
        "warning_id": receipt["warning_id"],
        "version": receipt["version"],
        "township_code": receipt["township_code"],
        "village_code": receipt["target"]["code"],
        "village_name": receipt.get("village_name"),
        "acknowledged_by": by,
        "via": via,
        "late": late,
        "exercise": bool(receipt.get("exercise")),
    }
    return _event(clock, "warning_village_acknowledged", payload, receipt["correlation_id"])


def village_unacknowledged_event(clock: Clock, receipt: Mapping[str, Any]) -> EventEnvelope:
    """``warning_village_unacknowledged`` when a village's silence escalates to its township."""
    payload = {
        "warning_id": receipt["warning_id"],
        "version": receipt["version"],
        "level": receipt["level"],
        "township_code": receipt["township_code"],
        "village_code": receipt["target"]["code"],
        "village_name": receipt.get("village_name"),
        "due_at": receipt["due_at"],
        "exercise": bool(receipt.get("exercise")),
    }
    return _event(clock, "warning_village_unacknowledged", payload, receipt["correlation_id"])


def suggested_event(
    clock: Clock, suggestion: Mapping[str, Any], causation_id: str
) -> EventEnvelope:
    """``warning_suggested`` for a draft drawn from an incident."""
    payload = {
        "suggestion_id": suggestion["_id"],
        "incident_id": suggestion["incident_id"],
        "hazard": suggestion["hazard"],
        "level": suggestion["level"],
        "areas": list(suggestion["areas"]),
        "grade": suggestion.get("grade"),
        "exercise": bool(suggestion.get("exercise")),
    }
    return _event(
        clock,
        "warning_suggested",
        payload,
        correlation_id=suggestion["incident_id"],
        causation_id=causation_id,
    )


def approval_requested_event(
    clock: Clock, warning: Mapping[str, Any], version: Mapping[str, Any]
) -> EventEnvelope:
    """``warning_approval_requested`` for a version left waiting for a leader's approval."""
    fields = _version_fields(warning, version)
    payload = {
        **fields,
        "msg_type": version["msg_type"],
        "headline": version["headline"],
        "requested_by": (version.get("requested_by") or {}).get("name"),
        "requested_at": version["requested_at"],
        "old_level": version.get("old_level"),
    }
    return _event(clock, "warning_approval_requested", payload, correlation_of(warning))


def approval_decided_event(
    clock: Clock,
    warning: Mapping[str, Any],
    version: Mapping[str, Any],
    decision: str,
    decided_at: datetime,
    by: Mapping[str, Any] | None = None,
    note: str | None = None,
) -> EventEnvelope:
    """``warning_approval_decided`` when a version that awaited approval is closed: approved,
    rejected, superseded by a lift, or expired before anyone decided."""
    payload = {
        "warning_id": warning["_id"],
        "version": version["number"],
        "decision": decision,
        "decided_by": (by or {}).get("name"),
        "decided_at": decided_at,
        "note": note,
        "headline": version.get("headline"),
        "incident_ids": list(version.get("incident_ids") or []),
        "exercise": bool(version.get("exercise")),
    }
    return _event(clock, "warning_approval_decided", payload, correlation_of(warning))


def pending_closed_events(
    clock: Clock, warning: Mapping[str, Any], decision: str, decided_at: datetime
) -> list[EventEnvelope]:
    """``warning_approval_decided`` for each version still awaiting approval that a lift or
    the warning's expiry closes without a leader's decision."""
    return [
        approval_decided_event(clock, warning, version, decision, decided_at)
        for version in warning.get("versions") or []
        if version.get("state") == VERSION_PENDING
    ]
