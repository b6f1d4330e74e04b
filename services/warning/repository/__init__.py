"""The warning service's storage boundary: what the use cases may ask of warnings, deliveries,
receipts (签收), suggestions and the incident view, named by intent.

Two engines implement it, each saying its queries plainly: ``sqlite.py`` (embedded and one-host
mode; documents as JSON with indexed generated columns, events in an outbox table written in the
same transaction) and ``mongo.py`` (the cluster; events inside the changed document, one
single-document write). No other module of the warning service touches a database.

Deliveries and receipts are keyed by a delivery target (``domain.Target``): a township, a
village below it, or an enterprise in it. Lists of them are by the township the target lies in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from libs.common.events import EventEnvelope
from libs.common.service import RelayParts
from services.warning.lastmile.domain import ReachMarks

# Collections (MongoDB, and the previous embedded store) and tables (SQLite) alike.
WARNINGS = "warnings"
DELIVERIES = "deliveries"
RECEIPTS = "acks"
SUGGESTIONS = "suggestions"
INCIDENTS = "incidents"
MARKS = "delivery_marks"
TOKENS = "ack_tokens"
ENTERPRISES = "enterprises"
DOCUMENT_TABLES = (WARNINGS, DELIVERIES, RECEIPTS, SUGGESTIONS, INCIDENTS, MARKS)
# Fields a warnings list leaves out (the version history is read one warning at a time).
LIST_OMITS = ("versions",)


@dataclass(frozen=True)
class WarningFilter:
    """What a list of warnings is narrowed to; None leaves a field unfiltered."""

    statuses: tuple[str, ...] | None = None
    area: str | None = None
    level: int | None = None
    hazard: str | None = None
    exercise: bool | None = None


@dataclass(frozen=True)
class DeliveryOutcome:
    """What one try of a delivery left: its new state, and when to try again (None: never)."""

    state: str
    attempts: int
    error: str | None
    at: datetime
    next_attempt_at: datetime | None = None
    # A drill's village delivery keeps the link it carried, for the drill to click (演练).
    exercise_ack_url: str | None = None


class WarningRepository(Protocol):
    """Every read and write the warning service makes; a change and its events are atomic."""

    def ensure_schema(self) -> None:
        """Create tables or indexes the queries rely on (idempotent)."""

    # Warnings ------------------------------------------------------------------------------

    def warning_by_id(self, warning_id: str) -> dict[str, Any] | None:
        """One warning with its versions, internals included."""

    def warning_by_idempotency_key(self, scope: str) -> dict[str, Any] | None:
        """The warning a request with this Idempotency-Key scope created."""

    def record_warning(
        self, doc: Mapping[str, Any], scope: str, digest: str, events: Sequence[EventEnvelope]
    ) -> tuple[dict[str, Any], bool]:
        """Insert a new warning and its events; on a key or id race, the stored winner and False.

        Raises ``WarningExistsError`` when the id is taken by a warning with another key."""

    def change_warning(
        self,
        warning_id: str,
        rev: int,
        changes: Mapping[str, Any],
        unset: Sequence[str],
        events: Sequence[EventEnvelope],
    ) -> dict[str, Any] | None:
        """Set ``changes`` (``rev`` + 1) and drop ``unset`` if the warning is still at ``rev``;
        with its events. The saved warning, or None when another change came first."""

    def versions_of(self, warning_id: str) -> list[dict[str, Any]]:
        """The version history of one warning (empty when unknown)."""

    def warnings_page(
        self, filters: WarningFilter, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of warnings without their versions, newest first (ties by id)."""

    def public_warnings(self, limit: int) -> list[dict[str, Any]]:
        """Active real (non-drill) warnings, latest issue first."""

    def count_active_by_level(self) -> dict[int, int]:
        """Active real warnings per level 1–4."""

    def warnings_due_to_expire(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        """Warnings whose expiry time has come, soonest first."""

    def forget_expiry(self, warning_id: str) -> None:
        """The warning needs no expiry any more (it ended otherwise)."""

    def warnings_awaiting_fanout(self, limit: int) -> list[str]:
        """Ids of warnings with issued versions whose deliveries are not planned yet."""

    def finish_fanout(self, warning_id: str, numbers: Sequence[int]) -> None:
        """These versions are planned; the warning awaits no fanout once none is left."""

    # Deliveries ----------------------------------------------------------------------------

    def plan_delivery(self, delivery: Mapping[str, Any]) -> bool:
        """Insert a delivery once (its id names warning, version, target, channel)."""

    def delivery_by_id(self, delivery_id: str) -> dict[str, Any] | None:
        """One delivery with its message."""

    def supersede_older(self, warning_id: str, version: int) -> None:
        """Pending deliveries and receipts of versions before ``version`` are superseded."""

    def pending_deliveries(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        """Pending deliveries whose next try is due, oldest due first."""

    def claim_delivery(
        self, delivery_id: str, attempts: int, now: datetime, until: datetime
    ) -> dict[str, Any] | None:
        """Lease a due pending delivery still at ``attempts`` until ``until``; None if taken."""

    def supersede_delivery(self, delivery_id: str) -> None:
        """A pending delivery will not be tried (a newer version goes out instead)."""

    def record_delivery_attempt(
        self, delivery_id: str, outcome: DeliveryOutcome, events: Sequence[EventEnvelope]
    ) -> None:
        """Keep what one try did (delivered, failed for good, or to be tried again)."""

    def deliveries_for(self, warning_id: str, townships: Sequence[str]) -> list[dict[str, Any]]:
        """Deliveries of a warning to targets in these townships, without the message, by
        version then channel."""

    def reach_marks(self, versions: Mapping[str, int]) -> dict[str, ReachMarks]:
        """For each warning (id → its current version), whom that version's own deliveries
        and receipts went to and their states (escalation repeats left out), for a whole page
        at once and without decoding any document."""

    def count_pending_deliveries(self) -> int:
        """Deliveries still waiting for a try."""

    def first_delivery(self, mark_id: str, at: datetime, channel: str) -> bool:
        """Note a version's first delivery to a target; False if one was noted before."""

    # Receipts (签收) ------------------------------------------------------------------------

    def ensure_receipt(self, receipt: Mapping[str, Any]) -> None:
        """Create the receipt awaited from a target for a version, unless it exists."""

    def receipt_by_id(self, receipt_id: str) -> dict[str, Any] | None:
        """One receipt."""

    def acknowledge(self, receipt_id: str, fields: Mapping[str, Any], event: EventEnvelope) -> bool:
        """Record the acknowledgement if none was (guard: not acknowledged); with its event."""

    def receipts_for(self, warning_id: str, townships: Sequence[str]) -> list[dict[str, Any]]:
        """Receipts of a warning from targets in these townships, by version."""

    def receipts_overdue(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        """Receipts still awaited past their deadline, most overdue first."""

    def mark_receipt_overdue(self, receipt_id: str, now: datetime, event: EventEnvelope) -> bool:
        """Pending and unacknowledged → overdue, with its event; False if it was not."""

    def close_receipt(self, receipt_id: str) -> None:
        """A pending receipt is no longer owed."""

    def close_receipts_due_after(self, warning_id: str, expires: datetime) -> None:
        """Pending receipts due at or after the warning's end are no longer owed."""

    # Link tokens (the last mile) -----------------------------------------------------------

    def record_ack_token(self, token: Mapping[str, Any]) -> bool:
        """Keep one link token (``_id`` is its SHA-256, never the token); False if known."""

    def ack_token(self, token_hash: str) -> dict[str, Any] | None:
        """The link token with this SHA-256."""

    # Enterprises (the dispatch service's register, folded) ---------------------------------

    def fold_enterprise(self, snapshot: Mapping[str, Any]) -> bool:
        """Keep the snapshot if its ``revision`` is above the kept one's; True if it was."""

    def enterprises_in(self, townships: Sequence[str]) -> list[dict[str, Any]]:
        """Every kept enterprise (any status) of these townships."""

    # Suggestions ---------------------------------------------------------------------------

    def suggestion_by_id(self, suggestion_id: str) -> dict[str, Any] | None:
        """One suggestion."""

    def record_suggestion(self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]) -> bool:
        """Insert a suggestion (id from the causing event) and its event; False if it exists."""

    def pending_suggestions(self, incident_id: str) -> list[dict[str, Any]]:
        """The incident's suggestions still pending."""

    def supersede_suggestions(self, incident_id: str, keep_id: str) -> None:
        """The incident's other pending suggestions are superseded by ``keep_id``."""

    def close_suggestion(self, suggestion_id: str, fields: Mapping[str, Any]) -> bool:
        """Set ``fields`` (accepted or dismissed) if still pending; False otherwise."""

    def suggestions_page(
        self, status: str | None, incident_id: str | None, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of suggestions, newest first (ties by id)."""

    # The incident view (what intake's events said) -----------------------------------------

    def incident(self, incident_id: str) -> dict[str, Any] | None:
        """The view of one incident."""

    def incidents_with_primaries(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The views of ``ids`` and of the incidents they were merged into, by id."""

    def merge_incident_event(
        self,
        incident_id: str,
        event_id: str,
        merge: Callable[[Mapping[str, Any] | None], Mapping[str, Any]],
    ) -> bool:
        """Fold one event into the view (created if absent) once per event id; True if it
        changed something now."""

    # Plumbing ------------------------------------------------------------------------------

    def relay_parts(self) -> RelayParts:
        """Where the relay finds this repository's pending events and journals sent ones."""

    def ping(self) -> None:
        """Touch the database (readiness)."""

    def close(self) -> None:
        """Release connections."""


class WarningExistsError(RuntimeError):
    """A warning with this id exists already (a suggestion accepted twice at once)."""
