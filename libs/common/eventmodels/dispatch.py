"""Events emitted by the dispatch service."""

from __future__ import annotations

from datetime import date, datetime

from libs.common.events import EventPayload, event_model


class ResourceLine(EventPayload):
    """One line of supplies in a dispatch order."""

    warehouse_id: str
    item_code: str
    quantity: float


@event_model("dispatch", "dispatch_ordered")
class DispatchOrderedV1(EventPayload):
    """Teams and supplies were committed to an incident (EDXL-RM commit)."""

    dispatch_id: str
    incident_id: str
    team_ids: list[str]
    resources: list[ResourceLine] = []
    township_code: str | None = None
    exercise: bool = False  # 演练 (drill): touches nothing real, left out of every count


@event_model("dispatch", "dispatch_status_changed")
class DispatchStatusChangedV1(EventPayload):
    """A dispatch moved along ordered → en_route → on_scene → completed → released."""

    dispatch_id: str
    incident_id: str
    old_status: str
    status: str
    team_ids: list[str] = []
    returned: list[ResourceLine] = []
    exercise: bool = False  # 演练 (drill): touches nothing real, left out of every count


@event_model("dispatch", "stock_low")
class StockLowV1(EventPayload):
    """A stock line fell below its minimum level."""

    warehouse_id: str
    item_code: str
    quantity: float
    min_level: float
    name: str | None = None
    unit: str | None = None


@event_model("dispatch", "plan_activated")
class PlanActivatedV1(EventPayload):
    """A response plan (预案) was activated."""

    plan_id: str
    level: int
    trigger_kind: str
    trigger_id: str
    township_codes: list[str]
    teams_on_standby: list[str] = []
    incident_id: str | None = None
    warning_id: str | None = None
    hazard: str | None = None
    scope: str | None = None
    reason: str | None = None
    reason_label: str | None = None  # the reason in Chinese (the operator's words, or the rule's)
    activated_by: str | None = None
    exercise: bool = False  # 演练 (drill): touches nothing real, left out of every count


@event_model("dispatch", "plan_changed")
class PlanChangedV1(EventPayload):
    """A plan's response level changed."""

    plan_id: str
    old_level: int
    level: int
    reason: str
    reason_label: str | None = None
    exercise: bool = False  # 演练 (drill): touches nothing real, left out of every count


@event_model("dispatch", "plan_ended")
class PlanEndedV1(EventPayload):
    """A plan was stood down."""

    plan_id: str
    reason: str
    reason_label: str | None = None
    incident_id: str | None = None
    warning_id: str | None = None
    teams_released: list[str] = []
    exercise: bool = False  # 演练 (drill): touches nothing real, left out of every count


@event_model("dispatch", "assignment_created")
class AssignmentCreatedV1(EventPayload):
    """A dispute was assigned to a responsible leader and unit (统一指派)."""

    assignment_id: str
    incident_id: str
    level: str
    due_at: datetime
    major: bool = False
    responsible_leader: str | None = None
    responsible_unit: str | None = None
    approved_by: str | None = None
    exercise: bool = False  # 演练 (drill): touches nothing real, left out of every count


@event_model("dispatch", "assignment_escalated")
class AssignmentEscalatedV1(EventPayload):
    """A dispute moved up a level after three unresolved attempts (三三制)."""

    assignment_id: str
    incident_id: str
    from_level: str
    to_level: str
    reason: str | None = None
    unresolved_attempts: int | None = None
    exercise: bool = False  # 演练 (drill): touches nothing real, left out of every count


@event_model("dispatch", "assignment_overdue")
class AssignmentOverdueV1(EventPayload):
    """An assignment passed its deadline unresolved (督办)."""

    assignment_id: str
    incident_id: str
    due_at: datetime
    exercise: bool = False  # 演练 (drill): touches nothing real, left out of every count


@event_model("dispatch", "assignment_supervised")
class AssignmentSupervisedV1(EventPayload):
    """A supervision (督办) was recorded on a dispute assignment, in one of the seed's forms
    (letter 发函, meeting 会议, onsite 现场, notice 通报); the sentence is the use case's."""

    assignment_id: str
    incident_id: str
    supervision_id: str
    form: str
    on: date
    by: str
    exercise: bool = False  # 演练 (drill): touches nothing real, left out of every count
    summary: str


@event_model("dispatch", "joint_meeting_held")
class JointMeetingHeldV1(EventPayload):
    """A joint meeting (联席会议) on one or more disputes was recorded with its decisions."""

    meeting_id: str
    held_on: date
    convener: str
    attendees: list[str]
    decisions: list[str]
    assignment_ids: list[str]
    incident_ids: list[str]
    exercise: bool = False  # 演练 (drill): touches nothing real, left out of every count
    summary: str
