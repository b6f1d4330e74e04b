"""Events emitted by the intake service."""

from __future__ import annotations

from datetime import datetime

from libs.common.eventmodels.common import Affected, Casualties
from libs.common.events import EventPayload, event_model


class DisputeFacts(EventPayload):
    """A dispute's classification and markers (篇1/篇4)."""

    nature: str | None = None
    stability_impact: str | None = None
    escalation_risk: str | None = None
    petition_or_lawsuit: bool = False
    repeated_petitions: bool = False
    key_persons: bool = False


class Signatory(EventPayload):
    """报送人或审签人 with a contact number (篇6)."""

    name: str
    phone: str


class CallTaker(EventPayload):
    """接听人: the duty officer who took a phoned-in report (the phone may be unknown)."""

    name: str
    phone: str | None = None


@event_model("intake", "incident_reported")
class IncidentReportedV1(EventPayload):
    """An incident was accepted at intake (首报)."""

    incident_id: str
    township_code: str
    category: str
    title: str
    grade: int
    occurred_at: datetime
    discovered_at: datetime
    reported_at: datetime
    late: bool = False
    escalated: bool = False
    escalation_reasons: list[str] = []
    casualties: Casualties = Casualties()
    affected: Affected = Affected()
    people_involved: int = 0
    lat: float | None = None
    lon: float | None = None
    exercise: bool = False
    address: str | None = None
    dispute: DisputeFacts | None = None
    # The elements of the 首报 itself, so the 信息专报 of the initial report is complete.
    description: str | None = None
    scope: str | None = None
    measures_taken: str | None = None
    needs: str | None = None
    trend: str | None = None
    source: str | None = None
    reporter: Signatory | None = None
    approver: Signatory | None = None
    # 接听人 of a phoned-in report (电话报告); optional, so version 1 still reads older events.
    received_by: CallTaker | None = None
    # The enterprise of dispatch's risk register it concerns (企业风险台账); optional, additive.
    enterprise_id: str | None = None


@event_model("intake", "incident_regraded")
class IncidentRegradedV1(EventPayload):
    """The grade changed after new figures (越级 when it jumps more than one grade)."""

    incident_id: str
    township_code: str
    category: str
    old_grade: int
    new_grade: int
    reason: str
    skipped_grades: bool = False
    exercise: bool = False
    escalated: bool = False
    escalation_reasons: list[str] = []
    casualties: Casualties | None = None
    affected: Affected | None = None
    people_involved: int | None = None


@event_model("intake", "incident_merged")
class IncidentMergedV1(EventPayload):
    """A duplicate incident was merged into its primary."""

    incident_id: str
    primary_id: str
    township_code: str
    merged_by: str
    reason: str = ""
    exercise: bool = False


@event_model("intake", "incident_closed")
class IncidentClosedV1(EventPayload):
    """An incident was closed (by a leader, or by its final report)."""

    incident_id: str
    township_code: str
    closed_by: str
    reason: str
    exercise: bool = False
