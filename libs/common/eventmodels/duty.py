"""Events of the duty office (值班室, 篇9), emitted by the reporting service it lives in."""

from __future__ import annotations

from datetime import datetime

from libs.common.events import EventPayload, event_model


@event_model("reporting", "duty_shift_unstaffed")
class DutyShiftUnstaffedV1(EventPayload):
    """A shift starting within a day has nobody on the roster (空班)."""

    shift_id: str
    day: str
    code: str
    starts_at: datetime
    exercise: bool = False
    summary: str | None = None  # the timeline's Chinese sentence


@event_model("reporting", "duty_handover_confirmed")
class DutyHandoverConfirmedV1(EventPayload):
    """The incoming officer confirmed a shift handover (交接班); the record is closed."""

    handover_id: str
    shift_id: str
    outgoing_officer: str
    incoming_officer: str
    confirmed_at: datetime
    exercise: bool = False
    summary: str | None = None  # the timeline's Chinese sentence


@event_model("reporting", "duty_handover_missing")
class DutyHandoverMissingV1(EventPayload):
    """A shift ended without a confirmed handover (未交接)."""

    shift_id: str
    ended_at: datetime
    exercise: bool = False
    summary: str | None = None  # the timeline's Chinese sentence


@event_model("reporting", "upward_report_sent")
class UpwardReportSentV1(EventPayload):
    """The city's platform gave a receipt for a push (已上报市); late when 迟报 upward."""

    push_id: str
    message_id: str
    kind: str
    received_at: datetime
    incident_id: str | None = None
    township_code: str | None = None
    receipt: str | None = None
    late: bool = False
    exercise: bool = False
    summary: str | None = None  # the timeline's Chinese sentence


@event_model("reporting", "upward_report_failed")
class UpwardReportFailedV1(EventPayload):
    """A push to the city failed (上报失败); it is retried with back-off until a receipt."""

    push_id: str
    message_id: str
    kind: str
    reason: str
    attempts: int
    next_attempt_at: datetime
    incident_id: str | None = None
    township_code: str | None = None
    exercise: bool = False
    summary: str | None = None  # the timeline's Chinese sentence


@event_model("reporting", "upstream_request_received")
class UpstreamRequestReceivedV1(EventPayload):
    """The city sent a leader's instruction (批示) or asked for more (续报要求) on an incident:
    the township owes an answer by ``due_at`` (reporting's deadline engine makes it a deadline)."""

    request_id: str
    incident_id: str
    kind: str
    text: str
    due_at: datetime
    township_code: str | None = None
    issued_by: str | None = None
    exercise: bool = False
    summary: str | None = None  # the timeline's Chinese sentence
