"""Envelope and registry round trips."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from libs.common.clock import ManualClock
from libs.common.eventmodels.intake import IncidentReportedV1
from libs.common.events import (
    EventEnvelope,
    UnknownEventError,
    envelope_from_wire,
    latest_version,
    make_event,
    parse_payload,
    registered_event_types,
)

pytestmark = pytest.mark.unit

CLOCK = ManualClock(datetime(2026, 7, 6, 2, 0, tzinfo=UTC))


def _incident_payload() -> dict[str, object]:
    return {
        "incident_id": "inc-1",
        "township_code": "349901001",
        "category": "flood",
        "title": "河堤渗水",
        "grade": 3,
        "occurred_at": "2026-07-06T01:00:00+00:00",
        "discovered_at": "2026-07-06T01:10:00+00:00",
        "reported_at": "2026-07-06T01:30:00+00:00",
        "casualties": {"deaths": 3},
    }


def test_envelope_round_trips_through_json() -> None:
    event = make_event(
        CLOCK, "intake", "incident_reported", _incident_payload(), correlation_id="inc-1"
    )
    wire = json.loads(json.dumps(event.to_wire()))
    back = envelope_from_wire(wire)
    assert back == event
    payload = parse_payload(back)
    assert isinstance(payload, IncidentReportedV1)
    assert payload.casualties.deaths == 3
    assert back.occurred_at == CLOCK.now()
    assert back.schema_version == latest_version("incident_reported")


def test_payload_is_validated_against_its_model() -> None:
    bad = _incident_payload() | {"grade": "not a number"}
    with pytest.raises(ValidationError):
        make_event(CLOCK, "intake", "incident_reported", bad)


def test_a_service_may_not_emit_another_services_event() -> None:
    with pytest.raises(ValueError, match="may not emit"):
        make_event(CLOCK, "warning", "incident_reported", _incident_payload())


def test_unknown_event_types_and_versions_are_refused() -> None:
    with pytest.raises(UnknownEventError):
        make_event(CLOCK, "intake", "incident_vanished", {})
    event = make_event(CLOCK, "intake", "incident_reported", _incident_payload())
    future = event.model_copy(update={"schema_version": 99})
    with pytest.raises(UnknownEventError):
        parse_payload(future)


def test_unknown_payload_fields_from_newer_producers_are_kept() -> None:
    event = make_event(
        CLOCK, "intake", "incident_reported", _incident_payload() | {"new_optional_field": "x"}
    )
    assert parse_payload(event).model_extra == {"new_optional_field": "x"}


def test_registry_lists_every_service_event_with_its_source() -> None:
    types = {t: s for s, t in registered_event_types()}
    assert types["incident_reported"] == "intake"
    assert types["warning_issued"] == "warning"
    assert types["dispatch_ordered"] == "dispatch"
    assert types["followup_filed"] == "reporting"


def test_bare_nameko_payload_is_wrapped_with_a_stable_id() -> None:
    first = envelope_from_wire(
        {"hello": 1}, exchange="weather.events", routing_key="rain_forecast", message_id="m-1"
    )
    again = envelope_from_wire(
        {"hello": 1}, exchange="weather.events", routing_key="rain_forecast", message_id="m-1"
    )
    assert first.event_id == again.event_id
    assert first.source == "weather"
    assert first.event_type == "rain_forecast"
    assert first.payload == {"hello": 1}


def test_envelope_requires_its_fields() -> None:
    with pytest.raises(ValidationError):
        EventEnvelope.model_validate({"event_type": "x"})
