"""Bus consumers: intake's incidents feed suggestions and the lift guard's open-incident view;
dispatch's enterprise register feeds the enterprises a warning reaches."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from libs.common.bus import Subscription
from libs.common.events import EventEnvelope, parse_payload
from libs.common.service import subscribe
from services.warning.usecases import WarningUseCases


def on_incident(service: WarningUseCases) -> Callable[[EventEnvelope], bool]:
    """``incident_reported`` / ``incident_regraded``: update the view, maybe draft a suggestion."""

    def handle(envelope: EventEnvelope) -> bool:
        payload = parse_payload(envelope).model_dump(mode="python")
        return service.on_incident(envelope, payload)

    return handle


def on_incident_status(service: WarningUseCases) -> Callable[[EventEnvelope], bool]:
    """``incident_closed`` / ``incident_merged``: the incident no longer holds a warning open."""

    def handle(envelope: EventEnvelope) -> bool:
        payload = parse_payload(envelope).model_dump(mode="python")
        return service.on_incident_status(envelope, payload)

    return handle


def on_enterprise(service: WarningUseCases) -> Callable[[EventEnvelope], bool]:
    """``enterprise_registered``: keep the snapshot of the highest revision."""

    def handle(envelope: EventEnvelope) -> bool:
        payload = parse_payload(envelope).model_dump(mode="python")
        return service.on_enterprise(payload)

    return handle


def subscriptions(service: WarningUseCases) -> Sequence[Subscription]:
    """Every queue the warning service consumes."""
    return [
        subscribe("intake", "incident_reported", "suggest", on_incident(service)),
        subscribe("intake", "incident_regraded", "suggest", on_incident(service)),
        subscribe("intake", "incident_closed", "incident_view", on_incident_status(service)),
        subscribe("intake", "incident_merged", "incident_view", on_incident_status(service)),
        subscribe("dispatch", "enterprise_registered", "enterprises", on_enterprise(service)),
    ]
