"""The campaigns' storage boundary, named by intent.

Two engines: ``sqlite.py`` (the document as JSON with generated, indexed columns; events in the
outbox table of the same transaction) and ``mongo.py`` (events inside the document, one
single-document write). A campaign and a campaign report are each inserted once by their id
(derived from the Idempotency-Key when one is given); ending is one guarded change. The
deadlines the campaign asks for live with reporting's other deadlines (its repository).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from libs.common.events import EventEnvelope
from libs.common.service import RelayParts

Page = tuple[list[dict[str, Any]], str | None]


@dataclass(frozen=True)
class CampaignFilter:
    """What the campaign list is narrowed to."""

    status: str | None = None
    exercise: bool | None = None
    # Only campaigns this township or department takes part in.
    participant: str | None = None


class CampaignRepository(Protocol):
    """Every read and write of the campaigns; a change and its events are one write."""

    def ensure_schema(self) -> None:
        """Create tables or indexes the queries rely on (idempotent)."""

    def campaign(self, campaign_id: str) -> dict[str, Any] | None:
        """One campaign by its id."""

    def record_campaign(
        self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]
    ) -> tuple[dict[str, Any], bool]:
        """Insert a new campaign with its events; when the id exists, the stored one and False."""

    def end_campaign(
        self, campaign_id: str, fields: Mapping[str, Any], events: Sequence[EventEnvelope]
    ) -> bool:
        """Set ``fields`` (the end) if the campaign is still active; the events with it."""

    def campaigns_page(self, filters: CampaignFilter, limit: int, cursor: str | None) -> Page:
        """Campaigns newest first (by start time, then id)."""

    def active_campaigns(self) -> list[dict[str, Any]]:
        """Every campaign not yet ended (real and drill)."""

    def campaign_report(self, report_id: str) -> dict[str, Any] | None:
        """One campaign report by its id."""

    def record_campaign_report(
        self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]
    ) -> tuple[dict[str, Any], bool]:
        """Insert a report with its events; when the id exists, the stored one and False."""

    def reports_of_campaign(self, campaign_id: str) -> list[dict[str, Any]]:
        """A campaign's reports in the order they were filed."""

    def relay_parts(self) -> RelayParts:
        """Where the relay finds the pending events (the journal is the service's)."""

    def ping(self) -> None:
        """Touch the database (readiness)."""

    def close(self) -> None:
        """Release connections."""
