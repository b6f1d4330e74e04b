"""Intake's storage boundary: what the use cases may ask of the incidents, named by intent.

Two engines implement it, each saying its queries plainly: ``sqlite.py`` (embedded and one-host
mode; the document as JSON with indexed generated columns, events in an outbox table written in
the same transaction) and ``mongo.py`` (the cluster; events inside the document, as one
single-document write). No other module of intake touches a database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from libs.common.events import EventEnvelope
from libs.common.service import RelayParts
from services.intake.domain import DuplicateProbe, Neighbourhood

# Most candidates one duplicate lookup reads (a flood hour stays bounded).
DUPLICATE_SCAN_LIMIT = 500


@dataclass(frozen=True)
class IncidentFilter:
    """What a list of incidents is narrowed to; None leaves a field unfiltered."""

    township_code: str | None = None
    category: str | None = None
    status: str | None = None
    grade: int | None = None
    exercise: bool | None = None
    late: bool | None = None
    escalated: bool | None = None
    reported_after: datetime | None = None
    reported_before: datetime | None = None

    def equalities(self) -> dict[str, Any]:
        """The fields compared for equality, by document field name."""
        fields = {
            "township_code": self.township_code,
            "category": self.category,
            "status": self.status,
            "grade": self.grade,
            "exercise": self.exercise,
            "late": self.late,
            "escalated": self.escalated,
        }
        return {k: v for k, v in fields.items() if v is not None}


class IncidentRepository(Protocol):
    """Every read and write intake makes; a change and its events are one atomic write."""

    def ensure_schema(self) -> None:
        """Create tables or indexes the queries rely on (idempotent)."""

    def incident_by_id(self, incident_id: str) -> dict[str, Any] | None:
        """One incident document, internals included."""

    def incidents_by_ids(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """The incidents with these ids (any order)."""

    def incident_by_idempotency_key(self, scope: str) -> dict[str, Any] | None:
        """The incident a request with this Idempotency-Key scope created."""

    def record_incident_with_event(
        self, doc: Mapping[str, Any], scope: str, digest: str, events: Sequence[EventEnvelope]
    ) -> tuple[dict[str, Any], bool]:
        """Insert a new incident and its events; on a key race, the stored winner and False."""

    def duplicate_candidates(
        self,
        category: str,
        earliest: datetime,
        latest: datetime,
        exercise: bool,
        near: Neighbourhood,
    ) -> list[DuplicateProbe]:
        """Open incidents of ``category`` occurring in [earliest, latest] in the neighbourhood
        (same township, or coordinates inside its box), oldest first: the facts the duplicate
        rule compares, not whole documents (a flood hour has hundreds of them)."""

    def incidents_page(
        self, filters: IncidentFilter, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of incidents, newest report first (ties by id), and the next cursor."""

    def count_open_by_grade(self) -> dict[int, int]:
        """Open real (non-drill) incidents per grade 1–4."""

    def count_incidents(self) -> int:
        """How many incidents are stored."""

    def close_incident(
        self,
        incident_id: str,
        version: int,
        fields: Mapping[str, Any],
        entry: Mapping[str, Any],
        event: EventEnvelope,
    ) -> bool:
        """Set ``fields`` and log ``entry`` if the incident is open at ``version``; with event."""

    def claim_for_merge(
        self, primary_id: str, duplicate_id: str, entry: Mapping[str, Any], now: datetime
    ) -> bool:
        """Record the duplicate on an open primary that does not list it yet; True if it did."""

    def release_merge_claim(self, primary_id: str, duplicate_id: str) -> None:
        """Undo ``claim_for_merge`` (the duplicate could not be marked)."""

    def mark_merged(
        self,
        duplicate_id: str,
        version: int,
        fields: Mapping[str, Any],
        entry: Mapping[str, Any],
        event: EventEnvelope,
    ) -> bool:
        """Mark an open incident at ``version`` that absorbed none as merged; with its event."""

    def apply_report(
        self,
        incident_id: str,
        version: int,
        fields: Mapping[str, Any],
        entries: Sequence[Mapping[str, Any]],
        events: Sequence[EventEnvelope],
        event_id: str,
    ) -> bool:
        """Take a report's changes at ``version`` unless ``event_id`` was applied; with events."""

    def relay_parts(self) -> RelayParts:
        """Where the relay finds this repository's pending events and journals sent ones."""

    def ping(self) -> None:
        """Touch the database (readiness)."""

    def close(self) -> None:
        """Release connections."""
