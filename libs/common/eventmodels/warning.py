"""Events emitted by the warning service."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from libs.common.events import EventPayload, event_model


class _WarningVersion(EventPayload):
    warning_id: str
    version: int
    level: int
    color: str
    hazard: str
    areas: list[str]
    exercise: bool = False
    # What the areas cover in the county file (到村): villages, their population, villages
    # whose population the file does not give, and enterprises of 重大/较大 risk in the fan-out.
    villages: int | None = None
    people: int | None = None
    villages_without_population: int | None = None
    enterprises: int | None = None


@event_model("warning", "warning_issued")
class WarningIssuedV1(_WarningVersion):
    """A warning became active (levels 3–4 at once, 1–2 after approval)."""

    headline: str
    effective: datetime
    expires: datetime
    incident_ids: list[str] = []
    issued_by: str | None = None
    approved_by: str | None = None


@event_model("warning", "warning_adjusted")
class WarningAdjustedV1(_WarningVersion):
    """A new version of an active warning (CAP Update)."""

    old_level: int
    reason: str
    incident_ids: list[str] = []
    expires: datetime | None = None
    approved_by: str | None = None
    # The new version's headline (absent from events sent before it was added).
    headline: str | None = None


@event_model("warning", "warning_lifted")
class WarningLiftedV1(_WarningVersion):
    """A warning was lifted (CAP Cancel)."""

    reason: str
    incident_ids: list[str] = []


@event_model("warning", "warning_expired")
class WarningExpiredV1(_WarningVersion):
    """A warning reached its expiry time."""

    incident_ids: list[str] = []


@event_model("warning", "warning_delivery_failed")
class WarningDeliveryFailedV1(EventPayload):
    """A channel gave up delivering a warning version to a township."""

    warning_id: str
    version: int
    township_code: str
    channel: str
    attempts: int
    error: str
    level: int | None = None
    exercise: bool = False
    # Whom the delivery was for: the township itself, a village or an enterprise in it.
    target_kind: str | None = None
    target_code: str | None = None


@event_model("warning", "warning_acknowledged")
class WarningAcknowledgedV1(EventPayload):
    """A township confirmed receipt of a warning."""

    warning_id: str
    version: int
    township_code: str
    acknowledged_by: str | None = None
    late: bool = False
    exercise: bool = False


@event_model("warning", "warning_unacknowledged")
class WarningUnacknowledgedV1(EventPayload):
    """A township did not acknowledge a warning in time."""

    warning_id: str
    version: int
    level: int
    township_code: str
    due_at: datetime | None = None
    exercise: bool = False


@event_model("warning", "warning_village_acknowledged")
class WarningVillageAcknowledgedV1(EventPayload):
    """A village's information officer confirmed receipt (by the link, or the township for it)."""

    warning_id: str
    version: int
    township_code: str
    village_code: str
    village_name: str | None = None
    acknowledged_by: str | None = None
    via: str = "link"  # link: the officer's link; township: the township's key on its behalf
    late: bool = False
    exercise: bool = False


@event_model("warning", "warning_village_unacknowledged")
class WarningVillageUnacknowledgedV1(EventPayload):
    """A village did not acknowledge a red or orange warning in time: escalated to its township."""

    warning_id: str
    version: int
    level: int
    township_code: str
    village_code: str
    village_name: str | None = None
    due_at: datetime | None = None
    exercise: bool = False


@event_model("warning", "warning_suggested")
class WarningSuggestedV1(EventPayload):
    """A draft warning was suggested from an incident, for an operator to review."""

    suggestion_id: str
    incident_id: str
    hazard: str
    level: int
    areas: list[str]
    grade: int | None = None
    exercise: bool = False


@event_model("warning", "warning_approval_requested")
class WarningApprovalRequestedV1(_WarningVersion):
    """A version of a warning (a first issue or an adjustment) awaits a leader's approval."""

    msg_type: str
    headline: str
    requested_by: str | None = None
    requested_at: datetime
    old_level: int | None = None
    incident_ids: list[str] = []


@event_model("warning", "warning_approval_decided")
class WarningApprovalDecidedV1(EventPayload):
    """A version that awaited approval was decided: approved or rejected by a leader, or
    closed without a decision (superseded when the warning was lifted, expired unapproved)."""

    warning_id: str
    version: int
    decision: Literal["approved", "rejected", "superseded", "expired"]
    decided_by: str | None = None
    decided_at: datetime
    note: str | None = None
    # The draft's headline, so the issuer knows which one was decided (absent before it was).
    headline: str | None = None
    incident_ids: list[str] = []
    exercise: bool = False
