"""The duty office's storage boundary, named by intent: the roster, handovers, spot checks, the
incidents it reports upward, the push outbox and the city's requests.

Two engines: ``sqlite.py`` (documents as JSON, generated columns indexed, guarded updates as one
``UPDATE … WHERE guard … RETURNING``, events in the outbox table of the same transaction) and
``mongo.py`` (one collection per kind, events inside the written document). Pushes to the city
are rows of their own table, written in the transaction that decided them, so a push decided is
a push delivered some day, also across restarts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from libs.common.events import EventEnvelope
from libs.common.service import RelayParts

PUSH_PENDING = "pending"
PUSH_HELD = "held"  # waiting for its incident (a follow-up that came before the first report)
PUSH_DELIVERED = "delivered"
PUSH_STATUSES = (PUSH_PENDING, PUSH_HELD, PUSH_DELIVERED)


class DutyRepository(Protocol):
    """Every read and write of the duty office; a change and its events are one atomic write."""

    def ensure_schema(self) -> None:
        """Create tables or indexes the queries rely on (idempotent)."""

    # ------------------------------------------------------------ roster

    def save_shifts(self, shifts: Sequence[Mapping[str, Any]]) -> None:
        """Insert or replace roster entries (by ``_id``), all in one write."""

    def shifts_between(
        self, start: datetime, end: datetime, exercise: bool
    ) -> list[dict[str, Any]]:
        """Roster entries starting in [start, end), in start order."""

    def shift_by_id(self, shift_id: str) -> dict[str, Any] | None:
        """One roster entry."""

    def flag_shift(
        self, placeholder: Mapping[str, Any], flag: str, events: Sequence[EventEnvelope]
    ) -> bool:
        """Set ``flag`` on a shift (created from ``placeholder`` if absent) unless already set;
        True and the events written when this call set it."""

    # ------------------------------------------------------------ handovers

    def open_handover(self, doc: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """Store a new handover unless its shift has one; the stored record and whether new."""

    def change_open_handover(
        self, handover_id: str, fields: Mapping[str, Any], events: Sequence[EventEnvelope]
    ) -> dict[str, Any] | None:
        """Set ``fields`` on an unconfirmed handover (notes, or the confirmation itself); the
        record after, None when it was confirmed already."""

    def handover_by_id(self, handover_id: str) -> dict[str, Any] | None:
        """One handover record."""

    def handover_of_shift(self, shift_id: str) -> dict[str, Any] | None:
        """The handover opened at the end of ``shift_id``, if any."""

    def recent_handovers(self, limit: int, exercise: bool) -> list[dict[str, Any]]:
        """The latest handovers, newest first."""

    # ------------------------------------------------------------ spot checks

    def record_spot_check(self, doc: Mapping[str, Any]) -> None:
        """Store one spot check."""

    def spot_checks_between(
        self, start: datetime, end: datetime, exercise: bool
    ) -> list[dict[str, Any]]:
        """Spot checks made in [start, end), oldest first."""

    # ------------------------------------------------------------ upward reporting

    def tracked_incident(self, incident_id: str) -> dict[str, Any] | None:
        """What the duty office knows of an incident it may report upward."""

    def record_decision(
        self,
        incident: Mapping[str, Any] | None,
        pushes: Sequence[Mapping[str, Any]],
        events: Sequence[EventEnvelope],
    ) -> int:
        """One write: the incident's facts (replaced), new pushes (a known message id is kept
        as it is) and events; how many pushes were new."""

    def release_held(self, incident_id: str, now: datetime) -> int:
        """Held pushes of an incident become due now; how many."""

    def claim_due_pushes(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[dict[str, Any]]:
        """Pending pushes due by ``now`` and not leased, leased until ``lease_until``."""

    def settle_push(
        self,
        push_id: str,
        fields: Mapping[str, Any],
        appends: Mapping[str, Sequence[Any]],
        events: Sequence[EventEnvelope],
    ) -> bool:
        """Record an attempt's outcome on a pending push (lease released); False if it is
        no longer pending (another process had the receipt)."""

    def push_by_id(self, push_id: str) -> dict[str, Any] | None:
        """One push."""

    def pushes_page(
        self, incident_id: str | None, status: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """Pushes newest first, optionally of one incident or status."""

    def pushes_between(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Pushes decided in [start, end)."""

    def count_pushes(self) -> dict[str, int]:
        """Real (non-drill) pushes per status."""

    def record_request(
        self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]
    ) -> tuple[dict[str, Any], bool]:
        """Store the city's request once per its id; the stored one and whether new."""

    def requests_of_incident(self, incident_id: str) -> list[dict[str, Any]]:
        """The city's requests on an incident, oldest first."""

    def open_requests(self, now: datetime) -> list[dict[str, Any]]:
        """Real requests whose answer is due after ``now`` or overdue within two days."""

    # ------------------------------------------------------------ plumbing

    def relay_parts(self) -> RelayParts:
        """Where the relay finds this repository's pending events."""

    def ping(self) -> None:
        """Touch the database (readiness)."""

    def close(self) -> None:
        """Release connections."""
