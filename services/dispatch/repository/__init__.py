"""Dispatch's storage boundary: what the use cases may ask of teams, stock, orders, plans and
assignments, named by intent.

Two engines implement it, each saying its queries plainly: ``sqlite.py`` (embedded and one-host
mode; documents as JSON with indexed generated columns, guarded changes as one
``UPDATE … WHERE <guard> … RETURNING``, an order and all it takes in one transaction, events in
an outbox table of the same transaction) and ``mongo.py`` (the cluster; events inside the
document, one single-document write per change, an order reserved step by step and given back
on failure). No other module of dispatch touches a database.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from libs.common.events import EventEnvelope
from libs.common.service import RelayParts

Merge = Callable[[Mapping[str, Any] | None], Mapping[str, Any]]


def line_id(warehouse_id: str, item_code: str) -> str:
    """The ``_id`` of a stock line."""
    return f"{warehouse_id}:{item_code}"


def take_entry_id(order_id: str, line: Mapping[str, Any]) -> str:
    """The ledger entry id of an order taking a line (deterministic, for repair)."""
    return f"{order_id}:take:{line['warehouse_id']}:{line['item_code']}"


class DuplicateKeyTaken(Exception):  # noqa: N818 (reads as what happened)
    """A unique key (a team's id, a stock line, a dispute's open assignment) is taken."""


@dataclass(frozen=True)
class StockMove:
    """What a stock change did: ``applied``, ``duplicate`` (this entry was applied before),
    ``short`` (the line holds less than taken) or ``missing`` (no such line)."""

    outcome: str
    line: dict[str, Any] | None


@dataclass(frozen=True)
class Shortfall:
    """Why an order could not take everything: a team (``team``) or a line (``line``) at
    ``index`` of the order, and what it holds now; or ``interrupted`` (repair took it)."""

    kind: str
    index: int = 0
    team_status: str = "unknown"
    on_hand: float = 0.0


@dataclass(frozen=True)
class Placement:
    """An order after ``place_order``: created now or replayed, or refused with a shortfall."""

    order: dict[str, Any]
    created: bool
    shortfall: Shortfall | None = None


@dataclass(frozen=True)
class TeamFilter:
    """What the roster list is narrowed to; None leaves a field unfiltered."""

    status: str | None = None
    kind: str | None = None
    township_code: str | None = None
    capability: str | None = None


@dataclass(frozen=True)
class StockFilter:
    """Stock lines of a warehouse or an item, and lines below (or not below) their minimum."""

    warehouse_id: str | None = None
    item_code: str | None = None
    below_min: bool | None = None


@dataclass(frozen=True)
class LedgerFilter:
    """Ledger entries of a line, an order or a kind."""

    warehouse_id: str | None = None
    item_code: str | None = None
    dispatch_id: str | None = None
    kind: str | None = None


@dataclass(frozen=True)
class OrderFilter:
    """Orders of an incident, a status (None: all but rejected), drills or not, a township."""

    incident_id: str | None = None
    status: str | None = None
    exercise: bool | None = None
    township_code: str | None = None


@dataclass(frozen=True)
class PlanFilter:
    """Plans by status, trigger, incident or warning; ``township`` keeps those it may see
    (county-wide plans and plans naming it)."""

    status: str | None = None
    trigger_kind: str | None = None
    incident_id: str | None = None
    warning_id: str | None = None
    exercise: bool | None = None
    township: str | None = None


@dataclass(frozen=True)
class AssignmentFilter:
    """Dispute assignments by status, deadline, incident, level, drills or township."""

    status: str | None = None
    overdue: bool | None = None
    incident_id: str | None = None
    level: str | None = None
    exercise: bool | None = None
    township_code: str | None = None


Page = tuple[list[dict[str, Any]], str | None]


class DispatchRepository(Protocol):
    """Every read and write dispatch makes; a change and its events are one atomic write."""

    def ensure_schema(self) -> None:
        """Create tables or indexes the queries rely on (idempotent)."""

    # Local views of other services' incidents and warnings --------------------------------

    def incident_view(self, incident_id: str) -> dict[str, Any] | None:
        """What the incident's events have said so far."""

    def merge_incident_event(self, incident_id: str, event_id: str, merge: Merge) -> bool:
        """Fold one event into the incident view (created if absent), once per event."""

    def warning_view(self, warning_id: str) -> dict[str, Any] | None:
        """What the warning's events have said so far."""

    def merge_warning_event(self, warning_id: str, event_id: str, merge: Merge) -> bool:
        """Fold one event into the warning view (created if absent), once per event."""

    # Teams -----------------------------------------------------------------------------------

    def team(self, team_id: str) -> dict[str, Any] | None:
        """A team by id."""

    def teams_by_ids(self, team_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The teams with these ids (any order)."""

    def team_by_idempotency_scope(self, scope: str) -> dict[str, Any] | None:
        """The team a request with this Idempotency-Key scope created."""

    def teams_page(self, filters: TeamFilter, limit: int, cursor: str | None) -> Page:
        """One page of the roster in id order, and the next cursor."""

    def dispatchable_teams(self) -> list[dict[str, Any]]:
        """Teams that may be sent now (available or on standby)."""

    def available_teams_with_any(self, capabilities: Sequence[str]) -> list[dict[str, Any]]:
        """Available teams having at least one of ``capabilities``."""

    def add_team_once(self, doc: Mapping[str, Any]) -> bool:
        """Insert a team unless its id exists (seeding); True if inserted."""

    def add_team(
        self, doc: Mapping[str, Any], scope: str, digest: str
    ) -> tuple[dict[str, Any], bool]:
        """Insert a team stamped with its key; a key race returns the winner and False;
        ``DuplicateKeyTaken`` when another team has the id."""

    def change_team_if_status(
        self, team_id: str, status: str, fields: Mapping[str, Any], removed: Sequence[str]
    ) -> dict[str, Any] | None:
        """Set ``fields``, drop ``removed``, if the team is still in ``status``; the result."""

    def take_team(self, team_id: str, order_id: str, now: datetime) -> bool:
        """Deploy an available or standby team for an order (one guarded update)."""

    def give_back_team(self, team_id: str, order_id: str, now: datetime) -> None:
        """Return a team an order holds to the status it had before (idempotent)."""

    def release_order_teams(self, order_id: str, now: datetime) -> list[str]:
        """Make every team an order holds available again; their ids."""

    def put_on_standby(self, team_id: str, plan_id: str, now: datetime) -> bool:
        """Put an available team on standby for a plan (guarded)."""

    def standby_teams_of(self, plan_id: str) -> list[str]:
        """Ids of the teams on standby for a plan, sorted."""

    def release_standby(self, plan_id: str, now: datetime) -> int:
        """Standby teams of a plan become available (deployed ones untouched); how many."""

    def standby_plan_ids(self) -> list[str]:
        """The plans teams are on standby for."""

    # Warehouses and stock --------------------------------------------------------------------

    def warehouse(self, warehouse_id: str) -> dict[str, Any] | None:
        """A warehouse by id."""

    def add_warehouse_once(self, doc: Mapping[str, Any]) -> bool:
        """Insert a warehouse unless it exists; True if inserted."""

    def warehouses_with_line_counts(self, limit: int) -> list[tuple[dict[str, Any], int]]:
        """Warehouses in id order, each with how many stock lines it keeps."""

    def stock_line(self, ident: str) -> dict[str, Any] | None:
        """A stock line by id (``line_id``)."""

    def add_stock_line_once(self, doc: Mapping[str, Any]) -> bool:
        """Insert a stock line unless it exists; True if inserted."""

    def set_stock_line_fields(self, ident: str, fields: Mapping[str, Any]) -> None:
        """Change a line's description or minimum (never its quantity)."""

    def stock_page(self, filters: StockFilter, limit: int, cursor: str | None) -> Page:
        """One page of stock lines in id order."""

    def take_stock(self, ident: str, quantity: float, entry: Mapping[str, Any]) -> StockMove:
        """Take ``quantity`` unless the line holds less; with its ledger entry, once per entry."""

    def release_stock(self, ident: str, quantity: float, entry: Mapping[str, Any]) -> StockMove:
        """Put ``quantity`` back; with its ledger entry, once per entry."""

    def adjust_stock(self, ident: str, delta: float, entry: Mapping[str, Any]) -> StockMove:
        """Add ``delta`` (either sign) unless the line would go negative; with its entry."""

    def stock_entry_recorded(self, ident: str, entry_id: str) -> bool:
        """Whether the ledger entry ``entry_id`` was applied to the line."""

    def ledger_entry(self, entry_id: str) -> dict[str, Any] | None:
        """One ledger entry."""

    def ledger_page(self, filters: LedgerFilter, limit: int, cursor: str | None) -> Page:
        """One page of the ledger, newest first."""

    def finish_ledger_copies(self) -> int:
        """Finish ledger entries not yet in the ledger (an engine writing them apart)."""

    def mark_stock_low(self, ident: str, now: datetime, event: EventEnvelope) -> bool:
        """Flag a line below its minimum that has not alerted yet, with its event."""

    def clear_stock_low(self, ident: str) -> None:
        """Re-arm the alert of a line back at or above its minimum."""

    def lines_low_unalerted(self) -> list[str]:
        """Lines below their minimum that have not alerted."""

    # Dispatch orders -------------------------------------------------------------------------

    def order(self, order_id: str) -> dict[str, Any] | None:
        """A dispatch order."""

    def order_by_idempotency_scope(self, scope: str) -> dict[str, Any] | None:
        """The order a request with this Idempotency-Key scope created."""

    def orders_page(self, filters: OrderFilter, limit: int, cursor: str | None) -> Page:
        """One page of orders, newest first."""

    def record_order(
        self, doc: Mapping[str, Any], scope: str, digest: str, events: Sequence[EventEnvelope]
    ) -> tuple[dict[str, Any], bool]:
        """Insert an order as it is (a drill order reserves nothing) with its events."""

    def place_order(
        self,
        order: Mapping[str, Any],
        scope: str,
        digest: str,
        takes: Sequence[Mapping[str, Any]],
        ordered: Mapping[str, Any],
        event: EventEnvelope,
    ) -> Placement:
        """Record ``order`` and take its teams and its lines (``takes``: one ledger entry per
        line), all or nothing; when all is taken the order gets ``ordered`` (fields, and
        ``history`` entries appended) and its event."""

    def reject_order(
        self, order: Mapping[str, Any], rejection: Mapping[str, Any], now: datetime
    ) -> None:
        """Keep a refused order for the record as ``rejected`` (its key freed for a retry)."""

    def step_order(
        self,
        order_id: str,
        status: str,
        fields: Mapping[str, Any],
        entry: Mapping[str, Any],
        event: EventEnvelope,
    ) -> bool:
        """Move an order that is still in ``status``: fields set, an entry in its history."""

    def clear_release_pending(self, order_id: str) -> None:
        """Note that a released order gave everything back."""

    def orders_left_reserving(self, before: datetime) -> list[dict[str, Any]]:
        """Orders still reserving past their deadline (the process died mid-order)."""

    def orders_releasing(self) -> list[str]:
        """Released orders that have not given everything back yet."""

    # Response plans --------------------------------------------------------------------------

    def plan(self, plan_id: str) -> dict[str, Any] | None:
        """A response plan."""

    def plan_by_idempotency_scope(self, scope: str) -> dict[str, Any] | None:
        """The plan a request with this Idempotency-Key scope created."""

    def plans_page(self, filters: PlanFilter, limit: int, cursor: str | None) -> Page:
        """One page of plans, latest activation first."""

    def record_plan(
        self,
        doc: Mapping[str, Any],
        events: Sequence[EventEnvelope],
        scope_key: tuple[str, str] | None,
    ) -> tuple[dict[str, Any], bool]:
        """Insert an activated plan (once per id, or per key) with its events."""

    def change_plan_level(
        self,
        plan_id: str,
        old_level: int,
        fields: Mapping[str, Any],
        entry: Mapping[str, Any],
        event: EventEnvelope,
        applied_id: str,
    ) -> bool:
        """Step an active plan still at ``old_level``, once per ``applied_id``."""

    def end_plan(
        self,
        plan_id: str,
        fields: Mapping[str, Any],
        entry: Mapping[str, Any],
        event: EventEnvelope,
        applied_id: str,
    ) -> bool:
        """Stand an active plan down, once per ``applied_id``."""

    # Dispute assignments ---------------------------------------------------------------------

    def assignment(self, assignment_id: str) -> dict[str, Any] | None:
        """A dispute assignment."""

    def assignment_by_idempotency_scope(self, scope: str) -> dict[str, Any] | None:
        """The assignment a request with this Idempotency-Key scope created."""

    def assignments_page(self, filters: AssignmentFilter, limit: int, cursor: str | None) -> Page:
        """One page of assignments, newest first."""

    def record_assignment(
        self, doc: Mapping[str, Any], scope: str, digest: str, events: Sequence[EventEnvelope]
    ) -> tuple[dict[str, Any], bool]:
        """Insert an assignment with its events; ``DuplicateKeyTaken`` when the dispute has an
        open one (``open_incident`` is unique)."""

    def change_assignment(
        self,
        assignment_id: str,
        version: int,
        fields: Mapping[str, Any],
        appends: Mapping[str, Sequence[Any]],
        removed: Sequence[str],
        events: Sequence[EventEnvelope],
    ) -> dict[str, Any] | None:
        """Change an assignment still at ``version`` (which goes up by one); the result."""

    def close_assignments_of_incident(self, incident_id: str, closed_at: datetime) -> int:
        """Close the open assignments of a closed incident; how many."""

    def assignments_past_due(self, now: datetime) -> list[dict[str, Any]]:
        """Open assignments past their deadline not flagged yet."""

    def joint_meeting(self, meeting_id: str) -> dict[str, Any] | None:
        """A joint meeting (联席会议)."""

    def record_joint_meeting(
        self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]
    ) -> tuple[dict[str, Any], bool]:
        """Insert a joint meeting and its links to ``doc['assignment_ids']`` with its events
        (one write); when the id exists, the stored meeting and False."""

    def meetings_of_assignment(self, assignment_id: str) -> list[dict[str, Any]]:
        """The joint meetings linked to an assignment, by the day held, then id."""

    def mark_assignment_overdue(
        self, assignment_id: str, now: datetime, event: EventEnvelope
    ) -> bool:
        """Flag an assignment overdue once, with its event."""

    # Figures, relay, housekeeping ---------------------------------------------------------------

    def current_figures(self) -> dict[str, Any]:
        """The gauges' sources: ``teams`` by status, ``stock_below_min``, ``orders_active``,
        ``plans_active``, ``assignments_open`` and ``assignments_overdue`` (drills left out)."""

    def relay_parts(self) -> RelayParts:
        """Where the relay finds this repository's pending events and journals sent ones."""

    def ping(self) -> None:
        """Touch the database (readiness)."""

    def close(self) -> None:
        """Release connections."""
