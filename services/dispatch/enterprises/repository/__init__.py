"""The enterprise register's storage boundary, named by intent.

Two engines: ``sqlite.py`` (its own file beside dispatch's: JSON documents with generated,
indexed columns; a change and its ``enterprise_registered`` event in one transaction through the
outbox table) and ``mongo.py`` (events inside the document, one single-document write). An
enterprise changes only at the revision it was read at; its credit code is unique (drill
enterprises apart). Inspections are documents of their own, keyed to the enterprise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from libs.common.events import EventEnvelope
from libs.common.service import RelayParts

Page = tuple[list[dict[str, Any]], str | None]


class TakenError(Exception):
    """A unique field of a new enterprise (``id`` or ``credit_code``) belongs to another."""

    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


def credit_key(credit_code: str, exercise: bool) -> str:
    """The unique key of a credit code: drill enterprises (演练) never collide with real ones."""
    return f"drill:{credit_code}" if exercise else credit_code


@dataclass(frozen=True)
class EnterpriseFilter:
    """What an enterprise listing narrows by; None means any."""

    township_code: str | None = None
    risk_level: str | None = None
    hazard_type: str | None = None
    status: str | None = "active"
    exercise: bool = False


class EnterpriseRepository(Protocol):
    """Every read and write of the enterprise register; a change and its events are one write."""

    def ensure_schema(self) -> None:
        """Create tables or indexes the queries rely on (idempotent)."""

    def enterprise(self, enterprise_id: str) -> dict[str, Any] | None:
        """One enterprise (real or drill) by id."""

    def enterprise_by_idempotency_scope(self, scope: str) -> dict[str, Any] | None:
        """The enterprise created under an Idempotency-Key scope."""

    def add_enterprise(
        self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]
    ) -> dict[str, Any]:
        """Insert with its events; ``TakenError`` naming the field when the id or code is taken."""

    def change_enterprise(
        self,
        enterprise_id: str,
        revision: int,
        fields: Mapping[str, Any],
        events: Sequence[EventEnvelope],
    ) -> dict[str, Any] | None:
        """Set ``fields`` if still at ``revision``; the new document, or None on a conflict."""

    def enterprises_page(self, filters: EnterpriseFilter, limit: int, cursor: str | None) -> Page:
        """A page in risk order (重大 first), then id."""

    def enterprises_in(self, township_codes: Sequence[str] | None, exercise: bool) -> list[Any]:
        """Active enterprises of some townships (None: the county), real ones and, for a drill,
        drill ones too."""

    def add_inspection(self, doc: Mapping[str, Any]) -> bool:
        """Insert an inspection once (by id); False when it exists."""

    def inspection(self, inspection_id: str) -> dict[str, Any] | None:
        """One inspection by id."""

    def rectify(self, inspection_id: str, fields: Mapping[str, Any]) -> dict[str, Any] | None:
        """Record rectification if the findings are still open; the new document or None."""

    def inspections_of(self, enterprise_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The inspections of some enterprises, newest date first."""

    def inspections_past_due(self, today: str) -> list[dict[str, Any]]:
        """Open findings whose deadline is before ``today`` (ISO date), not yet flagged."""

    def mark_overdue(self, inspection_id: str, now: datetime, event: EventEnvelope) -> bool:
        """Flag an inspection overdue once, with its event; True when flagged now."""

    def figures(self, today: str) -> dict[str, Any]:
        """Real active enterprises by risk level and real rectifications overdue on ``today``."""

    def relay_parts(self) -> RelayParts:
        """Where the relay finds the pending events."""

    def ping(self) -> None:
        """Touch the database (readiness)."""

    def close(self) -> None:
        """Release connections."""
