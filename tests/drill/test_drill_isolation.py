"""A real drill (`yingji drill`) against the embedded stack leaves real operations exactly as they
were: a snapshot over HTTP before the run equals the one after it, and every event the drill
caused carries ``exercise: true``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml

from libs.common.county import load_county
from services.warning.service import use_cases
from tests.console.support import live_server
from tests.support.bodies import incident_body, zero_report_body
from tests.support.stack import TOWNSHIP_A, TOWNSHIP_B, Stack, running_stack
from yingji.drill import Drill

pytestmark = pytest.mark.e2e

SHANGHAI = ZoneInfo("Asia/Shanghai")
# What the drill must have done for the comparison to mean anything.
DRILL_OPERATIONS = (
    "incident",
    "followup",
    "zero_report",
    "epidemic_report",
    "dispatch",
    "warning",
    "duty_roster",
    "duty_handover",
    "duty_confirm",
    "spot_check",
    "enterprise",
    "inspection",
    "village_warning",
    "village_link_ack",
    "village_ack_by_township",
    "campaign",
    "campaign_report",
    "supervision",
    "joint_meeting",
    "information_item",
    "information_adoption",
    "information_instruction",
)
GAUGES = (
    "yingji_dispatch_teams",
    "yingji_dispatch_orders_active",
    "yingji_dispatch_plans_active",
    "yingji_dispatch_enterprises",
    "yingji_dispatch_enterprise_rectifications_overdue",
    "yingji_reporting_deadlines_overdue",
    "yingji_reporting_zero_reports_filed_today",
    "yingji_reporting_zero_reports_missing_today",
    "yingji_reporting_epidemic_units_missing",
    "yingji_reporting_epidemic_cases",
    "yingji_reporting_information_units_behind",
    "yingji_warning_active",
)


class Platform:
    """The embedded stack (all four services, one process) served over HTTP on a free port."""

    def __init__(self, stack: Stack, url: str) -> None:
        self.stack = stack
        self.url = url
        self.keys = stack.keys
        self.http = httpx.Client(base_url=url, timeout=30)

    def now(self) -> datetime:
        """The platform's clock (a manual one: no day or month boundary moves under the test)."""
        return self.stack.clock.now()

    def call(self, method: str, path: str, who: str = "operator", **kwargs: Any) -> Any:
        """A request as ``who``."""
        headers = {"Authorization": f"Bearer {self.keys[who]}"}
        return self.http.request(method, path, headers=headers, **kwargs)

    def ok(self, method: str, path: str, who: str = "operator", **kwargs: Any) -> Any:
        """The JSON of a request that must succeed."""
        response = self.call(method, path, who, **kwargs)
        assert response.status_code < 300, response.text
        return response.json()

    def settle(self) -> None:
        """Every event published and handled."""
        self.stack.settle(30)


class PlatformDrill(Drill):
    """The drill, with its bodies timed on the platform's clock instead of the wall clock."""

    def __init__(self, platform: Platform, **kwargs: Any) -> None:
        super().__init__(platform.url, platform.keys["admin"], **kwargs)
        self.platform = platform

    def now(self) -> datetime:
        """The platform's time."""
        return self.platform.now()


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    """All four services in one process, like `yingji up`, on a Monday at 10:00 local."""
    # The county went live a week before: yesterday's zero reports (real and drill) are owed.
    county = load_county().model_dump(mode="json", exclude={"start_date"})
    county_file = tmp_path / "county.yaml"
    county_file.write_text(
        yaml.safe_dump({**county, "start_date": "2026-06-29"}, allow_unicode=True), "utf-8"
    )
    with (
        running_stack(tmp_path, county_file=county_file) as stack,
        live_server(stack.client.app) as server,
    ):
        running = Platform(stack, server.url)
        yield running
        running.http.close()


def seed_real_work(platform: Platform) -> None:
    """A real day so far: two incidents, a follow-up, a dispatch with sandbags, a zero report."""
    now = platform.now()
    flood_body = incident_body(now, TOWNSHIP_A)
    flood = platform.ok("POST", "/v1/incidents", "township_a", json=flood_body)["id"]
    platform.ok(
        "POST",
        "/v1/incidents",
        "township_b",
        json=incident_body(now, TOWNSHIP_B, category="geological", title="青石镇山体滑坡"),
    )
    platform.settle()
    platform.ok(
        "POST",
        "/v1/dispatches",
        json={
            "incident_id": flood,
            "team_ids": ["T03"],
            "resources": [{"warehouse_id": "W01", "item_code": "sandbag", "quantity": 200}],
        },
    )
    platform.ok("POST", "/v1/reports", "township_a", json=followup(flood, flood_body))
    yesterday = (now.astimezone(SHANGHAI) - timedelta(days=1)).date().isoformat()
    platform.ok(
        "POST",
        "/v1/zero-reports",
        "township_b",
        json=zero_report_body(TOWNSHIP_B, date.fromisoformat(yesterday)),
    )
    seed_real_information(platform)
    platform.settle()


def seed_real_information(platform: Platform) -> None:
    """A real information item of the water bureau, adopted by the city (信息报送)."""
    item = {
        "unit_kind": "department",
        "unit_code": "water",
        "kind": "info",
        "title": "城关镇河段水位上涨",
        "body": "受上游来水影响，城关镇河段水位上涨0.8米，已安排专人巡查。",
    }
    made = platform.ok("POST", "/v1/information/items", "water_department", json=item)
    day = platform.now().astimezone(SHANGHAI).date().isoformat()
    adoption = {"target_kind": "item", "target_id": made["id"], "level": "city"}
    adoption |= {"by": "市政府办公室《政务信息》", "date": day}
    platform.ok("POST", "/v1/information/adoptions", json=adoption)


def followup(incident_id: str, initial: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """A complete follow-up (续报) with the initial report's figures, one more person affected."""
    affected = dict(initial["affected"])
    affected["people_affected"] += 1
    return {
        "incident_id": incident_id,
        "kind": "followup",
        "casualties": initial["casualties"],
        "affected": affected,
        "progress": "堤防加固完成，水位回落。",
        "measures_taken": "持续巡堤。",
        "needs": "无",
        "reporter": {"name": "张伟", "phone": "13800001111"},
        "approver": {"name": "李娜", "phone": "13900002222"},
        **overrides,
    }


def gauges(platform: Platform) -> dict[str, str]:
    """The alerting gauges, line by line, from /metrics."""
    text = platform.http.get("/metrics").text
    return {
        line.rsplit(" ", 1)[0]: line.rsplit(" ", 1)[1]
        for line in text.splitlines()
        if line.startswith(GAUGES)
    }


def epidemic_line(platform: Platform, day: date) -> dict[str, Any]:
    """The day's epidemic line without the count of drill reports, which it shows apart."""
    line = platform.ok("GET", "/v1/epidemic/day", params={"date": day.isoformat()})
    return {k: v for k, v in line.items() if k != "exercise_reports"}


def snapshot(platform: Platform) -> dict[str, Any]:
    """Everything a drill must never change, read over HTTP."""
    local = platform.now().astimezone(SHANGHAI)
    today, yesterday = local.date(), local.date() - timedelta(days=1)
    teams = platform.ok("GET", "/v1/teams", params={"limit": 200})["items"]
    stock = platform.ok("GET", "/v1/stock", params={"limit": 200})["items"]
    ledger = platform.ok("GET", "/v1/stock/ledger", params={"limit": 200})["items"]
    summary = platform.ok("GET", "/v1/summaries/daily", params={"date": today.isoformat()})
    for moving in ("generated_at", "as_of", "published_at"):
        summary.pop(moving, None)
    zero = {
        day.isoformat(): {
            part: platform.ok("GET", "/v1/zero-reports", params={"date": day.isoformat()})[part]
            for part in ("filed", "missing", "late")
        }
        for day in (yesterday, today)
    }
    scores = platform.ok("GET", "/v1/scores", params={"month": today.strftime("%Y-%m")})
    real_open = platform.ok("GET", "/v1/incidents", params={"status": "open", "exercise": "false"})
    return {
        "teams": {t["id"]: (t["status"], t["dispatch_id"], t["standby_plan_id"]) for t in teams},
        "stock": {f"{s['warehouse_id']}:{s['item_code']}": s["quantity"] for s in stock},
        "ledger": [(e["id"], e["delta"], e["quantity_after"]) for e in ledger],
        "summary": summary,
        "zero_reports": zero,
        "epidemic": {str(day): epidemic_line(platform, day) for day in (yesterday, today)},
        "scores": scores["items"],
        "open_incidents": sorted(i["id"] for i in real_open["items"]),
        "real_dispatches": platform.ok("GET", "/v1/dispatches", params={"exercise": "false"}),
        "enterprises": platform.ok("GET", "/v1/enterprises", params={"limit": 200})["items"],
        "gauges": gauges(platform),
        # The duty office: who is on duty, the real handovers and the month's duty score.
        "on_duty": platform.ok("GET", "/v1/duty/now"),
        "handovers": platform.ok("GET", "/v1/duty/handovers"),
        "duty_month": platform.ok(
            "GET", "/v1/duty/monthly", params={"month": today.strftime("%Y-%m")}
        ),
        # Information work: quotas, the month's scores and ranking, real items and feedback.
        "information": information(platform, today),
    }


def information(platform: Platform, today: date) -> dict[str, Any]:
    """Quotas, scores, real items and real feedback of information work (信息报送)."""
    month = {"month": today.strftime("%Y-%m")}
    return {
        "quotas": platform.ok("GET", "/v1/information/quotas")["items"],
        "scores": platform.ok("GET", "/v1/information/scores", params=month),
        "items": platform.ok("GET", "/v1/information/items", params=month)["items"],
        "feedback": platform.ok("GET", "/v1/information/feedback", params=month)["items"],
    }


def did(drill: Drill, operation: str) -> bool:
    """The server acknowledged at least one request of ``operation`` (a PUT creates no id)."""
    return any(o.operation == operation and o.acknowledged for o in drill.recorder.outcomes)


def run_drill(platform: Platform, budget: float = 90.0) -> Drill:
    """Drive the drill until it has done each kind of write at least once, or the budget ends."""
    drill = PlatformDrill(platform, seed=7, rate=20, duration=4, concurrency=4)
    ends = time.monotonic() + budget
    while time.monotonic() < ends:
        drill.run()
        if all(did(drill, op) for op in DRILL_OPERATIONS):
            break
    drill.close()
    return drill


def drill_events(platform: Platform, since: datetime) -> list[dict[str, Any]]:
    """Every event recorded from ``since`` on (the audit trail), all pages."""
    events: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"from": since.isoformat(), "limit": 200}
        if cursor:
            params["cursor"] = cursor
        page = platform.ok("GET", "/v1/audit", params=params)
        events.extend(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return events


def test_a_drill_leaves_real_operations_exactly_as_they_were(platform: Platform) -> None:
    seed_real_work(platform)
    # The drill's events are told apart from the real ones by their time.
    started = platform.stack.clock.advance(60)
    before = snapshot(platform)

    drill = run_drill(platform)
    platform.settle()

    for operation in DRILL_OPERATIONS:
        assert did(drill, operation), f"the drill made no {operation}"
    after = snapshot(platform)
    for part in before:
        assert after[part] == before[part], f"the drill changed {part}"
    # The villages nobody acknowledged escalate to their townships (a drill's limit: 30 s),
    # and real operations stay as they were.
    platform.stack.clock.advance(60)
    use_cases(platform.stack.ctx("warning")).run_ack_scan()
    platform.settle()
    escalated = snapshot(platform)
    for part in ("teams", "stock", "ledger", "scores", "open_incidents", "real_dispatches"):
        assert escalated[part] == before[part], f"the escalation changed {part}"
    # Every event the drill caused says it is a drill, so no consumer can take it for real work.
    caused = drill_events(platform, started)
    assert caused, "the drill caused no events"
    untagged = [
        (e["event_type"], e["payload"]) for e in caused if e["payload"].get("exercise") is not True
    ]
    assert untagged == []
    assert any(e["event_type"] == "warning_village_unacknowledged" for e in caused)
    assert any(
        e["event_type"] == "warning_village_acknowledged" and e["payload"]["via"] == "link"
        for e in caused
    )
    # Its texts are Chinese: hazard names, not codes.
    titles = {e["payload"]["title"] for e in caused if e["event_type"] == "incident_reported"}
    assert titles
    assert [t for t in titles if not t.startswith("演练：") or any(c.isascii() for c in t)] == []


def test_a_drill_report_matches_its_incident_and_carries_the_flag(platform: Platform) -> None:
    body = incident_body(platform.now(), TOWNSHIP_A, exercise=True, title="演练：洪涝灾害")
    drill = platform.ok("POST", "/v1/incidents", "township_a", json=body)["id"]
    platform.settle()
    report = followup(drill, body, progress="演练：险情得到控制。")
    wrong = platform.call("POST", "/v1/reports", "township_a", json={**report, "exercise": False})
    assert wrong.status_code == 422
    assert wrong.json()["error"]["fields"][0]["path"] == "exercise"
    filed = platform.ok("POST", "/v1/reports", "township_a", json={**report, "exercise": True})
    assert filed["id"]
    platform.settle()
    events = platform.ok("GET", "/v1/audit", params={"incident_id": drill, "limit": 200})["items"]
    followups = [e for e in events if e["event_type"] == "followup_filed"]
    assert [e["payload"]["report_id"] for e in followups] == [filed["id"]]
    assert [e["event_type"] for e in events if e["payload"].get("exercise") is not True] == []
