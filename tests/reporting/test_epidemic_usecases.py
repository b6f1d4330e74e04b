"""The epidemic use cases on a real SQLite repository: two filings of one unit's day that race
(both read nothing filed yet) never let the later one change the figures without a reason."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from libs.common.clock import ManualClock
from libs.common.county import load_county
from libs.common.errors import ApiError
from services.reporting.epidemic.repository.sqlite import SqliteEpidemicRepository
from services.reporting.epidemic.usecases import EpidemicUseCases
from tests.support.engines import sqlite_database

pytestmark = pytest.mark.store


class BothReadFirst(SqliteEpidemicRepository):
    """A repository whose first read in each of two worker threads waits until both have read."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.barrier = threading.Barrier(2)
        self.waited: set[int] = set()

    def report(self, report_id: str) -> dict[str, Any] | None:
        found = super().report(report_id)
        if threading.current_thread() is not threading.main_thread() and (
            threading.get_ident() not in self.waited
        ):
            self.waited.add(threading.get_ident())
            self.barrier.wait(timeout=10)
        return found


def filing(cases: int) -> dict[str, Any]:
    return {
        "unit_id": "H02",
        "date": "2026-07-06",
        "entries": [{"disease_code": "hfmd", "cases": cases, "case_report": f"{cases}例"}],
        "zero_for_rest": False,
        "reporter": {"name": "钱玉兰", "phone": "13900001002"},
        "correction_reason": None,
        "exercise": False,
    }


def test_a_racing_filing_with_other_figures_is_refused_not_applied(tmp_path: Path) -> None:
    with sqlite_database(tmp_path) as db:
        repo = BothReadFirst(db)
        repo.ensure_schema()
        epidemic = EpidemicUseCases(
            repo=repo,
            county=load_county(),
            clock=ManualClock(datetime(2026, 7, 6, 2, 0, tzinfo=UTC)),
            cutoff_time=time(8, 0),
            tz=ZoneInfo("Asia/Shanghai"),
        )
        epidemic.record_first_start()
        outcomes: dict[int, Any] = {}

        def file(cases: int) -> None:
            try:
                outcomes[cases] = epidemic.file_day(filing(cases), "key")["created"]
            except ApiError as refused:
                outcomes[cases] = refused.code

        threads = [threading.Thread(target=file, args=(n,)) for n in (2, 3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes.values(), key=str) == [1, "epidemic_report_exists"]
        winner = next(n for n, outcome in outcomes.items() if outcome == 1)
        stored = repo.report("H02:2026-07-06:hfmd")
        assert stored is not None
        assert (stored["cases"], stored["version"], stored["history"]) == (winner, 1, [])
