"""Monthly scores (篇6) with exact totals: exemplary, late, active-but-lax and silent townships.

The month holds a drill (exercise) incident in the exemplary township: one follow-up is filed on
it and its other deadlines go overdue. Counting drill deadlines, drill incidents or drill reports
in the scores changes the exemplary township's total, so this test catches each of them.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

from services.reporting.service import SPEC
from tests.reporting.support import incident_reported, local, report_body, scan, zero_body
from tests.support.stack import TOWNSHIP_A, TOWNSHIP_B, Stack, running_stack

EXEMPLARY, LATE = TOWNSHIP_A, TOWNSHIP_B
ACTIVE = "349901002"  # 河西街道
SILENT = "349901102"  # 柳湾镇
DRILL = "drill"


def _zero(stack: Stack, code: str, day: date, incidents: dict[str, str]) -> None:
    body = zero_body(code, day)
    if day == date(2026, 11, 10) and code in incidents:
        body.update(nothing_to_report=False, incident_ids=[incidents[code]])
    response = stack.call("POST", "/v1/zero-reports", json=body)
    assert response.status_code == 201, response.text


def _file(stack: Stack, incident_id: str, kind: str = "followup") -> dict[str, Any]:
    response = stack.call("POST", "/v1/reports", json=report_body(incident_id, kind))
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def _incidents_of_the_10th(stack: Stack) -> dict[str, str]:
    """Grade IV incidents reported at 10:00: on time for two townships, late for one, and a
    drill in the exemplary township (under the key ``DRILL``)."""
    stack.clock.set(local(2026, 11, 10, 10))
    on_time = local(2026, 11, 10, 9, 50)
    ids = {
        EXEMPLARY: incident_reported(stack, township_code=EXEMPLARY, discovered_at=on_time),
        LATE: incident_reported(stack, township_code=LATE, discovered_at=local(2026, 11, 10, 6)),
        ACTIVE: incident_reported(stack, township_code=ACTIVE, discovered_at=on_time),
    }
    ids[DRILL] = incident_reported(
        stack, township_code=EXEMPLARY, discovered_at=on_time, exercise=True
    )
    return {code: envelope.payload["incident_id"] for code, envelope in ids.items()}


def _yesterdays_zero_reports(stack: Stack, today: date, incidents: dict[str, str]) -> None:
    """The exemplary township files yesterday's zero report on time, the late one after 08:00."""
    stack.clock.set(local(today.year, today.month, today.day, 7))
    _zero(stack, EXEMPLARY, today - timedelta(days=1), incidents)
    stack.clock.set(local(today.year, today.month, today.day, 9))
    _zero(stack, LATE, today - timedelta(days=1), incidents)


def _november(stack: Stack) -> None:
    """Every day: the exemplary township files yesterday's zero report at 07:00, the late one
    at 09:00 (after the 08:00 cut-off); the other two file none."""
    incidents: dict[str, str] = {}
    for number in range(1, 31):
        day = date(2026, 11, number)
        if number > 1:
            _yesterdays_zero_reports(stack, day, incidents)
        if number == 10:
            incidents = _incidents_of_the_10th(stack)
            stack.clock.set(local(2026, 11, 10, 16))
            assert _file(stack, incidents[EXEMPLARY])["late"] is False
            assert _file(stack, incidents[DRILL])["late"] is False
            stack.clock.set(local(2026, 11, 10, 17, 30))
            assert _file(stack, incidents[LATE])["late"] is True
            assert _file(stack, incidents[ACTIVE])["late"] is True
        if number == 11:
            stack.clock.set(local(2026, 11, 11, 10))
            _file(stack, incidents[EXEMPLARY], "final")
            _file(stack, incidents[LATE], "final")
    _yesterdays_zero_reports(stack, date(2026, 12, 1), incidents)
    scan(stack)


def test_exact_scores_rank_reporting_above_silence(tmp_path: Path) -> None:
    """Formula (docs/services/reporting.md): 0.40 timeliness + 0.25 completeness + 0.20 zero
    report + 0.15 volume, each a share of what was owed over the 30 days of November.

    - exemplary: 2 deadlines and 30 zero reports owed, all on time → 100, 100, 100; items
      3 + 0.5 × 30 = 18 of a quota of 5 × 30 / 7 → volume 84.0 → 97.6. Its drill (the
      incident, one follow-up and 22 deadlines of which 20 go overdue) does not count.
    - late: initial and follow-up late (credit 0), 30 zero reports late (credit 0.5) →
      timeliness 0, completeness 31/31, zero 50, volume 84.0 → 47.6.
    - active: initial on time, one follow-up late, 20 follow-ups overdue, no zero report →
      timeliness 1/52, completeness 1/51, zero 0, volume 2 / (150/7) → 2.7.
    - silent: owed 30 zero reports, filed nothing → 0.0, last with the other silent ones.
    """
    with running_stack(tmp_path, specs=[SPEC], start=local(2026, 11, 1, 0, 30)) as stack:
        _november(stack)
        scores = stack.call("GET", "/v1/scores", params={"month": "2026-11"}).json()
    rows = {r["township_code"]: r for r in scores["items"]}
    assert scores["days_counted"] == 30 and scores["zero_report_days"] == 30
    exemplary, late, active, silent = (rows[c] for c in (EXEMPLARY, LATE, ACTIVE, SILENT))
    assert exemplary["components"] == {
        "timeliness": 100.0,
        "completeness": 100.0,
        "zero_report": 100.0,
        "volume": 84.0,
    }
    assert exemplary["basis"]["deadlines_due"] == 2
    assert exemplary["total"] == 97.6
    assert late["components"] == {
        "timeliness": 0.0,
        "completeness": 100.0,
        "zero_report": 50.0,
        "volume": 84.0,
    }
    assert late["total"] == 47.6
    assert active["basis"]["deadlines_due"] == 22 and active["basis"]["deadlines_late"] == 1
    assert active["components"] == {
        "timeliness": 1.9,
        "completeness": 2.0,
        "zero_report": 0.0,
        "volume": 9.3,
    }
    assert active["total"] == 2.7
    assert silent["components"] == {
        "timeliness": 0.0,
        "completeness": 0.0,
        "zero_report": 0.0,
        "volume": 0.0,
    }
    assert silent["total"] == 0.0
    ranks = {code: row["rank"] for code, row in rows.items()}
    assert (ranks[EXEMPLARY], ranks[LATE], ranks[ACTIVE], ranks[SILENT]) == (1, 2, 3, 4)
    assert {row["total"] for row in scores["items"][3:]} == {0.0}
