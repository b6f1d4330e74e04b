"""The epidemic reports' storage boundary, named by intent.

Two engines: ``sqlite.py`` (embedded and one-host mode: the report as JSON with generated,
indexed columns; events in the outbox table of the same transaction) and ``mongo.py`` (the
cluster: events inside the document, one single-document write). One report per unit, day and
disease (its id says so); a correction changes it at its version and keeps the earlier figures
in its history. Drill (演练) reports live beside the real ones under ids of their own and are
read only when asked for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from libs.common.events import EventEnvelope
from libs.common.service import RelayParts

# State keys: the first local day the epidemic reports ran, and the last day the missed-report
# scan has checked (both ISO dates, compared as text).
FIRST_START = "epidemic_first_start"
SCAN_CURSOR = "epidemic_scan"


class EpidemicRepository(Protocol):
    """Every read and write of the epidemic reports; a change and its events are one write."""

    def ensure_schema(self) -> None:
        """Create tables or indexes the queries rely on (idempotent)."""

    def report(self, report_id: str) -> dict[str, Any] | None:
        """One report (real or drill) by its id."""

    def record_report(
        self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]
    ) -> tuple[dict[str, Any], bool]:
        """Insert a new report with its events; when one exists already, it and False."""

    def correct_report(
        self,
        report_id: str,
        version: int,
        fields: Mapping[str, Any],
        earlier: Mapping[str, Any],
        events: Sequence[EventEnvelope],
    ) -> bool:
        """Set ``fields`` and keep ``earlier`` in the history if the report is at ``version``."""

    def reports_of_day(
        self, day: str, exercise: bool, township_code: str | None = None
    ) -> list[dict[str, Any]]:
        """The real (or drill) reports of one day, by unit then disease."""

    def record_missed(self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]) -> bool:
        """Keep a missed-report flag once (by its id) with its event; True when new."""

    def missed_of_day(self, day: str) -> list[dict[str, Any]]:
        """The missed-report flags raised for one day."""

    def state(self, key: str) -> str | None:
        """A bookkeeping value (the first start, the scan cursor)."""

    def init_state(self, key: str, value: str) -> bool:
        """Set a bookkeeping value unless it is set; True when it was set now."""

    def advance_state(self, key: str, value: str) -> None:
        """Move a bookkeeping date forward to ``value`` (never back)."""

    def relay_parts(self) -> RelayParts:
        """Where the relay finds the pending events (the journal is the service's)."""

    def ping(self) -> None:
        """Touch the database (readiness)."""

    def close(self) -> None:
        """Release connections."""
