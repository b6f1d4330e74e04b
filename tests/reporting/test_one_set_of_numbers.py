"""One data set, one set of numbers: the console tiles, the daily summary and the Prometheus
gauges the county overview reads agree on open incidents, active warnings, dispatches in
progress and missing zero reports (definitions in docs/metrics.md)."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.reporting.service import use_cases
from tests.reporting.support import local
from tests.support.bodies import incident_body, zero_report_body
from tests.support.stack import TOWNSHIP_A, TOWNSHIP_B, Stack

pytestmark = pytest.mark.e2e

APP_JS = Path(__file__).parents[2] / "services" / "reporting" / "console" / "app.js"
TODAY = date(2026, 7, 8)


def console_active_dispatch() -> set[str]:
    """The statuses the console's dispatch tile counts as in progress (read from app.js)."""
    found = re.search(r"const ACTIVE_DISPATCH = new Set\(\[([^\]]*)\]\)", APP_JS.read_text())
    assert found, "ACTIVE_DISPATCH not found in the console"
    return set(re.findall(r'"(\w+)"', found.group(1)))


def ok(stack: Stack, method: str, path: str, who: str = "operator", **kwargs: Any) -> Any:
    """The JSON of a request that must succeed."""
    response = stack.call(method, path, who=who, **kwargs)
    assert response.status_code in (200, 201), response.text
    return response.json()


def items(stack: Stack, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a list endpoint (one page is enough for this data set)."""
    body = ok(stack, "GET", path, params={"limit": 200, **params})
    assert body.get("next_cursor") is None
    return list(body["items"])


def real(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the console counts: drills (演练) left out."""
    return [r for r in rows if not r.get("exercise")]


def incident(stack: Stack, township: str = TOWNSHIP_A, **overrides: Any) -> str:
    """Report an incident through intake; its id."""
    who = "township_a" if township == TOWNSHIP_A else "township_b"
    body = incident_body(stack.clock.now(), township, **overrides)
    return str(ok(stack, "POST", "/v1/incidents", who=who, json=body)["id"])


def warning(stack: Stack, level: int, **overrides: Any) -> dict[str, Any]:
    """Issue a rainstorm warning for townships A and B as the duty office."""
    body = {
        "hazard": "rainstorm",
        "level": level,
        "headline": "安河县暴雨预警",
        "description": "预计未来6小时城关镇、青石镇降雨量将达50毫米以上。",
        "instruction": "注意防范，转移低洼地带人员。",
        "areas": [TOWNSHIP_A, TOWNSHIP_B],
        "expires": (stack.clock.now() + timedelta(hours=30)).isoformat(),
        **overrides,
    }
    return dict(ok(stack, "POST", "/v1/warnings", json=body))


def order(stack: Stack, incident_id: str, team_id: str, *statuses: str) -> None:
    """Place a dispatch order and move it through ``statuses``."""
    placed = ok(
        stack, "POST", "/v1/dispatches", json={"incident_id": incident_id, "team_ids": [team_id]}
    )
    for status in statuses:
        ok(stack, "POST", f"/v1/dispatches/{placed['id']}/status", json={"status": status})


def refresh_gauges(stack: Stack) -> None:
    """What the timers do for the gauges: intake's open-incident job and the zero-report
    figures the zero-report scan refreshes (the scan itself is left out: it would count
    missed reports into a process-wide counter other tests read)."""
    for spec in stack.runtime.specs:
        for timer in spec.timers(stack.ctx(spec.name)):
            if "gauge" in timer.name:
                timer.run()
    use_cases(stack.ctx("reporting")).refresh_zero_gauges()


def gauges(stack: Stack) -> dict[str, float]:
    """Each gauge summed over its labels, as the county overview's stat panels show it."""
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(stack.client.get("/metrics").text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + float(sample.value)
    return totals


def console_tiles(stack: Stack) -> dict[str, int]:
    """The four tiles as the console computes them from the endpoints it calls."""
    due = date.fromisoformat(ok(stack, "GET", "/console/context")["today"])
    cutoff_passed = stack.clock.now() >= local(due.year, due.month, due.day, 8)
    zero_day = due - timedelta(days=1 if cutoff_passed else 2)
    active = console_active_dispatch()
    return {
        "incidents": len(real(items(stack, "/v1/incidents", status="open"))),
        "warnings": len(real(items(stack, "/v1/warnings", status="active"))),
        "dispatches": len(
            [d for d in real(items(stack, "/v1/dispatches")) if d["status"] in active]
        ),
        "zero_missing": len(
            ok(stack, "GET", "/v1/zero-reports", params={"date": zero_day.isoformat()})["missing"]
        ),
    }


def overview(stack: Stack) -> dict[str, int]:
    """The county overview's stat panels."""
    refresh_gauges(stack)
    values = gauges(stack)
    return {
        "incidents": int(values["yingji_intake_incidents_open"]),
        "warnings": int(values["yingji_warning_active"]),
        "dispatches": int(values["yingji_dispatch_orders_active"]),
        "zero_missing": int(values["yingji_reporting_zero_reports_missing_today"]),
    }


def summary(stack: Stack) -> dict[str, int]:
    """The same four figures in today's daily summary."""
    daily = ok(stack, "GET", "/v1/summaries/daily", params={"date": TODAY.isoformat()})
    active = console_active_dispatch()
    by_status = daily["dispatches"]["by_status"]
    return {
        "incidents": len(daily["open_incidents"]),
        "warnings": int(daily["warnings"]["active_total"]),
        "dispatches": sum(n for status, n in by_status.items() if status in active),
        "zero_missing": int(daily["zero_reports_due_today"]["missed"]),
    }


def seed(stack: Stack) -> None:
    """Real and drill incidents at several grades, some closed or merged; warnings active,
    lifted and pending; orders in every state; zero reports for the last two days."""
    deaths = {"deaths": 3, "injured": 0, "missing": 0, "trapped": 0}
    kept = incident(stack)  # Ⅳ, open
    major = incident(stack, TOWNSHIP_B, casualties=deaths)  # Ⅲ, open
    closed = incident(stack)
    duplicate = incident(stack)
    drill = incident(stack, exercise=True)
    incident(stack, TOWNSHIP_B, exercise=True, casualties=deaths)
    stack.settle()
    ok(stack, "POST", f"/v1/incidents/{closed}/close", who="leader", json={"reason": "已处置完毕"})
    merge = {"primary_id": kept, "reason": "同一事件重复报送"}
    ok(stack, "POST", f"/v1/incidents/{duplicate}/merge", json=merge)

    warning(stack, 3)
    lifted = warning(stack, 4)
    ok(stack, "POST", f"/v1/warnings/{lifted['id']}/lift", json={"reason": "降雨已结束"})
    assert warning(stack, 2)["status"] == "pending_approval"
    warning(stack, 4, exercise=True)

    order(stack, kept, "T03")
    order(stack, major, "T04", "en_route", "on_scene")
    order(stack, kept, "T08", "en_route", "on_scene", "completed")
    order(stack, major, "T09", "released")
    order(stack, drill, "T06")
    stack.settle()


def test_console_tiles_summary_and_gauges_agree_on_one_data_set(stack: Stack) -> None:
    for day, who, township in [
        (TODAY - timedelta(days=2), "township_b", TOWNSHIP_B),
        (TODAY - timedelta(days=1), "township_a", TOWNSHIP_A),
        (TODAY - timedelta(days=1), "township_b", TOWNSHIP_B),
    ]:
        stack.clock.set(local(2026, 7, 8, 6))
        ok(stack, "POST", "/v1/zero-reports", who=who, json=zero_report_body(township, day))
    seed(stack)

    # Before the 08:00 cut-off the zero-report day in force is the day before yesterday.
    stack.clock.set(local(2026, 7, 8, 7))
    assert overview(stack) == console_tiles(stack)

    stack.clock.set(local(2026, 7, 8, 10))
    tiles = console_tiles(stack)
    assert tiles["incidents"] == 2 and tiles["warnings"] == 1 and tiles["dispatches"] == 2
    assert overview(stack) == tiles
    assert summary(stack) == tiles
