"""Building the enterprise register's events from its documents."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from libs.common.clock import Clock
from libs.common.events import EventEnvelope, make_event

SOURCE = "dispatch"
SNAPSHOT_FIELDS = (
    "name",
    "township_code",
    "risk_level",
    "hazard_types",
    "lat",
    "lon",
    "responsible",
    "safety_officer",
    "response_groups",
    "status",
)


def enterprise_registered(clock: Clock, doc: Mapping[str, Any]) -> EventEnvelope:
    """The full record at its revision (every change sends one; consumers keep the highest)."""
    payload: dict[str, Any] = {name: doc.get(name) for name in SNAPSHOT_FIELDS}
    payload.update(
        enterprise_id=doc["_id"], revision=doc["revision"], exercise=bool(doc.get("exercise"))
    )
    return make_event(
        clock, SOURCE, "enterprise_registered", payload, correlation_id=f"enterprise:{doc['_id']}"
    )


def rectification_overdue(
    clock: Clock, enterprise: Mapping[str, Any], inspection: Mapping[str, Any]
) -> EventEnvelope:
    """An inspection's findings unrectified past the deadline (整改逾期)."""
    return make_event(
        clock,
        SOURCE,
        "enterprise_rectification_overdue",
        {
            "enterprise_id": enterprise["_id"],
            "inspection_id": inspection["_id"],
            "name": enterprise["name"],
            "township_code": enterprise["township_code"],
            "risk_level": enterprise["risk_level"],
            "deadline": inspection["deadline"],
            "findings": len(inspection.get("findings") or []),
            "exercise": bool(inspection.get("exercise")),
        },
        correlation_id=f"enterprise:{enterprise['_id']}",
    )
