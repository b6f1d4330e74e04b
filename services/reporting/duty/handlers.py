"""Bus consumers of the duty office: what may go up to the city. Each is idempotent (a push's
id is its message id, derived from what decided it) and converges in any order (a follow-up
that comes before its incident waits as a held push)."""

from __future__ import annotations

from collections.abc import Callable

from libs.common.bus import Subscription
from libs.common.events import EventEnvelope
from libs.common.service import subscribe
from services.reporting.duty.usecases import DutyUseCases

Handler = Callable[[EventEnvelope], bool]
WARNING_CHANGES = {
    "warning_issued": "issued",
    "warning_adjusted": "adjusted",
    "warning_lifted": "lifted",
}


def _warning(duty: DutyUseCases, change: str) -> Handler:
    return lambda envelope: duty.on_warning(change, envelope.payload)


def _report(duty: DutyUseCases, kind: str) -> Handler:
    return lambda envelope: duty.on_report_filed(kind, envelope.payload, envelope.event_id)


def subscriptions(duty: DutyUseCases) -> list[Subscription]:
    """Incidents, their reports, the daily report and warnings, for upward reporting."""
    handlers: list[tuple[str, str, Handler]] = [
        ("intake", "incident_reported", lambda e: duty.on_incident_reported(e.payload)),
        ("intake", "incident_regraded", lambda e: duty.on_incident_regraded(e.payload)),
        ("reporting", "followup_filed", _report(duty, "followup")),
        ("reporting", "final_report_filed", _report(duty, "final")),
        ("reporting", "summary_published", lambda e: duty.on_summary_published(e.payload)),
        *(("warning", t, _warning(duty, change)) for t, change in WARNING_CHANGES.items()),
    ]
    return [
        subscribe(source, event_type, f"duty_upward_{event_type}", handler)
        for source, event_type, handler in handlers
    ]
