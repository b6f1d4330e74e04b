"""Building the epidemic reports' events from their documents."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from libs.common.clock import Clock
from libs.common.events import EventEnvelope, make_event

SOURCE = "reporting"


def report_filed(clock: Clock, doc: Mapping[str, Any]) -> EventEnvelope:
    """``epidemic_report_filed`` for a new or corrected report (its version says which)."""
    return make_event(
        clock,
        SOURCE,
        "epidemic_report_filed",
        {
            "unit_id": doc["unit_id"],
            "unit_kind": doc["unit_kind"],
            "township_code": doc["township_code"],
            "date": doc["date"],
            "disease_code": doc["disease_code"],
            "cases": doc["cases"],
            "deaths": doc["deaths"],
            "late": doc["late"],
            "version": doc["version"],
            "exercise": bool(doc.get("exercise")),
        },
        correlation_id=f"epidemic:{doc['date']}",
    )


def report_missed(
    clock: Clock, unit: Mapping[str, str], day: str, lacking: Sequence[str]
) -> EventEnvelope:
    """``epidemic_report_missed`` for a unit that lacked diseases at the cut-off."""
    return make_event(
        clock,
        SOURCE,
        "epidemic_report_missed",
        {
            "unit_id": unit["id"],
            "unit_kind": unit["kind"],
            "township_code": unit["township_code"],
            "date": day,
            "disease_codes": list(lacking),
        },
        correlation_id=f"epidemic:{day}",
    )
