"""Bus consumers: intake's incident events and warning's warning events, handed to the use cases.

Every event tolerates redelivery and any arrival order: the use cases fold it into a local view
of its incident or warning (the event id recorded in the same write), then bring the plan in line
with the view (see ``DispatchUseCases.on_incident_event`` and ``on_warning_event``).
"""

from __future__ import annotations

from collections.abc import Sequence

from libs.common.bus import Subscription
from libs.common.service import subscribe
from services.dispatch.usecases import DispatchUseCases

INCIDENT_EVENTS = ("incident_reported", "incident_regraded", "incident_closed")
WARNING_EVENTS = ("warning_issued", "warning_adjusted", "warning_lifted", "warning_expired")


def subscriptions(dispatch: DispatchUseCases) -> Sequence[Subscription]:
    """Every event the dispatch service consumes."""
    return [
        *(subscribe("intake", name, name, dispatch.on_incident_event) for name in INCIDENT_EVENTS),
        *(subscribe("warning", name, name, dispatch.on_warning_event) for name in WARNING_EVENTS),
    ]
