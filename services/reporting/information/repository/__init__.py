"""The information work's storage boundary, named by intent.

Two engines: ``sqlite.py`` (embedded and one-host mode: documents as JSON with generated, indexed
columns; events in the outbox table of the same transaction) and ``mongo.py`` (the cluster:
events inside the document, one single-document write). Items, feedback (采用, 批示, 通报) and
missed-quota flags are each written once under an id that says what they are, so a repeated
request or timer run finds the stored one. Drill (演练) items and feedback carry
``exercise: true`` and no count reads them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

from libs.common.events import EventEnvelope
from libs.common.service import RelayParts

# State keys: the first local day information work ran, and the last closed week (its Monday)
# and month whose quotas the missed-quota scan has checked (ISO text, compared as text).
FIRST_START = "information_first_start"
WEEK_SCAN = "information_week_scan"
MONTH_SCAN = "information_month_scan"

Period = Literal["week", "month"]
# (unit_kind, unit_code, item kind) → how many real items.
Counts = dict[tuple[str, str, str], int]


class InformationRepository(Protocol):
    """Every read and write of information work; a change and its events are one write."""

    def ensure_schema(self) -> None:
        """Create tables or indexes the queries rely on (idempotent)."""

    def item(self, item_id: str) -> dict[str, Any] | None:
        """One item (real or drill) by its id."""

    def record_item(
        self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]
    ) -> tuple[dict[str, Any], bool]:
        """Insert a new item with its events; when its id exists, the stored one and False."""

    def items_of_month(
        self, month: str, exercise: bool, unit_kind: str | None = None, unit_code: str | None = None
    ) -> list[dict[str, Any]]:
        """The real (or drill) items submitted in a month, newest first, optionally one unit's."""

    def item_counts(self, period: Period, value: str) -> Counts:
        """Real items per unit and kind in one week (its Monday) or month (YYYY-MM)."""

    def record_feedback(
        self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]
    ) -> tuple[dict[str, Any], bool]:
        """Insert an adoption, instruction or notice once; an existing id: stored one, False."""

    def feedback_of_target(self, target_kind: str, target_id: str) -> list[dict[str, Any]]:
        """The feedback recorded against one item or report, oldest first."""

    def feedback_of_month(self, month: str, exercise: bool) -> list[dict[str, Any]]:
        """The real (or drill) feedback dated in a month, by date then id."""

    def record_missed(self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]) -> bool:
        """Keep a missed-quota flag once (by its id) with its event; True when new."""

    def missed_of_period(self, period: str) -> list[dict[str, Any]]:
        """The missed-quota flags raised for one week (its Monday) or month."""

    def state(self, key: str) -> str | None:
        """A bookkeeping value (the first start, the scan cursors)."""

    def init_state(self, key: str, value: str) -> bool:
        """Set a bookkeeping value unless it is set; True when it was set now."""

    def advance_state(self, key: str, value: str) -> None:
        """Move a bookkeeping value forward to ``value`` (never back)."""

    def relay_parts(self) -> RelayParts:
        """Where the relay finds the pending events (the journal is the service's)."""

    def ping(self) -> None:
        """Touch the database (readiness)."""

    def close(self) -> None:
        """Release connections."""
