"""Building the supervision and joint-meeting events; each carries its Chinese sentence."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from libs.common.clock import Clock
from libs.common.events import EventEnvelope, make_event
from services.dispatch.disputes.domain import FORM_LABELS

SOURCE = "dispatch"


def assignment_supervised(
    clock: Clock, assignment: Mapping[str, Any], supervision: Mapping[str, Any]
) -> EventEnvelope:
    """``assignment_supervised`` for a supervision just recorded."""
    label = FORM_LABELS[supervision["form"]]
    return make_event(
        clock,
        SOURCE,
        "assignment_supervised",
        {
            "assignment_id": assignment["_id"],
            "incident_id": assignment["incident_id"],
            "supervision_id": supervision["id"],
            "form": supervision["form"],
            "on": supervision["on"],
            "by": supervision["by"],
            "exercise": bool(assignment.get("exercise")),
            "summary": f"{supervision['by']}对纠纷化解{label}督办（{supervision['on']}）",
        },
        correlation_id=assignment["incident_id"],
    )


def joint_meeting_held(
    clock: Clock, meeting: Mapping[str, Any], incident_ids: Sequence[str]
) -> EventEnvelope:
    """``joint_meeting_held`` naming every linked assignment and its dispute."""
    return make_event(
        clock,
        SOURCE,
        "joint_meeting_held",
        {
            "meeting_id": meeting["_id"],
            "held_on": meeting["held_on"],
            "convener": meeting["convener"],
            "attendees": meeting["attendees"],
            "decisions": meeting["decisions"],
            "assignment_ids": meeting["assignment_ids"],
            "incident_ids": list(incident_ids),
            "exercise": bool(meeting.get("exercise")),
            "summary": f"{meeting['convener']}召开联席会议（{meeting['held_on']}），"
            f"{len(meeting['attendees'])}个单位参加，议定{len(meeting['decisions'])}项",
        },
        correlation_id=f"meeting:{meeting['_id']}",
    )
