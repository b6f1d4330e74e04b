"""Bus consumers: follow-ups re-grade incidents, final reports close them (both idempotent)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from libs.common.bus import Subscription
from libs.common.events import EventEnvelope, parse_payload
from libs.common.service import subscribe
from services.intake.usecases import IntakeUseCases, report_figures


def on_followup_filed(intake: IntakeUseCases) -> Callable[[EventEnvelope], bool]:
    """续报 figures become the incident's facts; a higher grade re-grades it (upgrades only)."""

    def handle(envelope: EventEnvelope) -> bool:
        payload: Any = parse_payload(envelope)
        label = f"续报第{payload.number}次"
        figures = report_figures(payload, label, number=payload.number, close=False)
        return intake.take_report(envelope, figures)

    return handle


def on_final_report_filed(intake: IntakeUseCases) -> Callable[[EventEnvelope], bool]:
    """终报 closes the incident (closed_by ``final_report``), upgrading first if its figures do."""

    def handle(envelope: EventEnvelope) -> bool:
        payload: Any = parse_payload(envelope)
        label = "终报"
        figures = report_figures(payload, label, number=None, close=True)
        return intake.take_report(envelope, figures)

    return handle


def subscriptions(intake: IntakeUseCases) -> list[Subscription]:
    """What intake consumes: reporting's follow-ups and final reports."""
    return [
        subscribe("reporting", "followup_filed", "on_followup_filed", on_followup_filed(intake)),
        subscribe(
            "reporting",
            "final_report_filed",
            "on_final_report_filed",
            on_final_report_filed(intake),
        ),
    ]
