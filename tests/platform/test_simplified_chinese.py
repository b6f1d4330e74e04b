"""One script: API answers, the OpenAPI document, README and docs carry no traditional-only
characters (a character whose simplified form differs, as OpenCC's t2s table says).

Request bodies here are simplified; what the API adds (labels, rule texts, reasons) must be too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest

from services.reporting.handlers import summarise
from tests.console.support import warning_body
from tests.reporting.support import report_body
from tests.support.bodies import INCIDENT, incident_body, zero_report_body
from tests.support.script import traditional
from tests.support.stack import TOWNSHIP_A, TOWNSHIP_B, Stack, running_stack

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
# Routes that stream or that are not JSON answers about the county's data.
SHANGHAI = ZoneInfo("Asia/Shanghai")
# Whoever may read a route: platform routes need the admin, county data a leader or operator.
READERS = ("leader", "operator", "admin")
SKIPPED = {"/v1/stream", "/metrics", "/healthz", "/readyz"}


def test_the_detector_finds_traditional_and_passes_simplified() -> None:
    assert [hit[:3] for hit in traditional("上報市應急處置")] == ["報→报", "應→应", "處→处"]
    assert traditional("上报市应急处置领导小组并启动预案，显著，于是") == []


def ok(response: Any) -> dict[str, Any]:
    """The JSON of a 2xx answer."""
    assert response.status_code < 300, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """All four services."""
    with running_stack(tmp_path_factory.mktemp("script")) as running:
        yield running


@pytest.fixture(scope="module")
def seeded(stack: Stack) -> dict[str, str]:
    """Incidents (escalated, grade Ⅱ), a red warning approved, its plan, a dispatch, a follow-up
    report and a zero report."""
    now = stack.clock.now()
    ids: dict[str, str] = {}
    ids["incident_id"] = ok(
        stack.call("POST", "/v1/incidents", who="township_a", json=incident_body(now, TOWNSHIP_A))
    )["id"]
    crowd = incident_body(
        now,
        TOWNSHIP_B,
        category="dispute",
        title="企业欠薪职工聚集",
        description="某厂拖欠工资，职工15人在厂门口聚集。",
        people_involved=15,
    )
    ok(stack.call("POST", "/v1/incidents", who="operator", json=crowd))
    severe = incident_body(
        now,
        TOWNSHIP_B,
        title="青石镇山体滑坡",
        category="geological",
        casualties={"deaths": 12, "injured": 2, "missing": 1, "trapped": 3},
        occurred_at=(now - timedelta(hours=3)).isoformat(),
        discovered_at=(now - timedelta(hours=3)).isoformat(),
    )
    slide = ok(stack.call("POST", "/v1/incidents", who="operator", json=severe))
    red = ok(
        stack.call(
            "POST",
            "/v1/warnings",
            who="department",
            json=warning_body(now, [TOWNSHIP_A, TOWNSHIP_B], level=1, headline="暴雨红色预警"),
        )
    )
    ids["warning_id"] = red["id"]
    ok(stack.call("POST", f"/v1/warnings/{red['id']}/approve", who="leader", json={}))
    stack.settle()
    team = ok(stack.call("GET", f"/v1/dispatches/suggest?incident_id={slide['id']}"))["items"][0]
    ids["dispatch_id"] = ok(
        stack.call(
            "POST",
            "/v1/dispatches",
            json={"incident_id": slide["id"], "team_ids": [team["team"]["id"]], "note": "增援"},
        )
    )["id"]
    stack.settle()
    ids["plan_id"] = ok(stack.call("GET", "/v1/plans"))["items"][0]["id"]
    followup = report_body(
        ids["incident_id"],
        "followup",
        casualties=INCIDENT["casualties"],
        affected={**INCIDENT["affected"], "people_evacuated": 60},
    )
    ids["report_id"] = ok(stack.call("POST", "/v1/reports", who="township_a", json=followup))["id"]
    today = stack.clock.now().astimezone(SHANGHAI).date()
    quiet = next(
        t.code for t in stack.runtime.county.townships if t.code not in (TOWNSHIP_A, TOWNSHIP_B)
    )
    # Only a day that is over takes a zero report; the day before the start, as a drill.
    yesterday = zero_report_body(quiet, today - timedelta(days=1), exercise=True)
    ok(stack.call("POST", "/v1/zero-reports", json=yesterday))
    stack.settle()
    return ids


def query_values(stack: Stack, ids: dict[str, str]) -> dict[str, str]:
    """Values for the query parameters a route may require."""
    today = stack.clock.now().astimezone(SHANGHAI).date()
    return {
        **ids,
        "date": today.isoformat(),
        "month": today.strftime("%Y-%m"),
        "from": (today - timedelta(days=1)).isoformat() + "T00:00:00+08:00",
        "to": today.isoformat() + "T23:59:00+08:00",
    }


def answers(stack: Stack, ids: dict[str, str]) -> Iterator[tuple[str, int, str]]:
    """``(path, status, text)`` of every GET route whose parameters the seeded data can fill."""
    spec = ok(stack.call("GET", "/openapi.json"))
    values = query_values(stack, ids)
    for template, operations in spec["paths"].items():
        if "get" not in operations or template in SKIPPED:
            continue
        names = re.findall(r"\{([^}]+)\}", template)
        if any(name not in ids for name in names):
            continue
        path = template.format(**{name: ids[name] for name in names})
        required = [
            p["name"]
            for p in operations["get"].get("parameters", [])
            if p["in"] == "query" and p.get("required") and p["name"] in values
        ]
        query = urlencode({name: values[name] for name in required})
        target = f"{path}?{query}" if query else path
        for who in READERS:
            response = stack.call("GET", target, who=who)
            if response.status_code != 403:
                break
        text = response.text
        if response.headers.get("content-type", "").startswith("application/json"):
            text = json.dumps(response.json(), ensure_ascii=False)
        yield path, response.status_code, text


def test_api_answers_are_simplified(stack: Stack, seeded: dict[str, str]) -> None:
    found: dict[str, list[str]] = {}
    checked = 0
    refused: list[str] = []
    for path, status, text in answers(stack, seeded):
        checked += 1
        if status >= 400:
            refused.append(f"{path} {status}")
        hits = traditional(text)
        if hits:
            found[path] = hits[:5]
    plans = ok(stack.call("GET", "/v1/plans"))["items"]
    assert any(p["reason_label"] == "涉及10人以上（接报时已上报），启动预案" for p in plans)
    assert checked > 25 and refused == []
    assert found == {}


def test_labels_the_issue_named_are_simplified(stack: Stack, seeded: dict[str, str]) -> None:
    incidents = ok(stack.call("GET", "/v1/incidents"))["items"]
    labels = {i["grade_label"] for i in incidents}
    assert labels and labels <= {"特别重大", "重大", "较大", "一般"}
    plans = ok(stack.call("GET", "/v1/plans"))["items"]
    assert {p["level_label"] for p in plans} <= {"Ⅰ级响应", "Ⅱ级响应", "Ⅲ级响应", "Ⅳ级响应"}
    assert all(traditional(p["reason_label"]) == [] for p in plans)


def test_timeline_names_plan_reasons_in_chinese() -> None:
    payload = {
        "plan_id": "p1",
        "reason": "warning lifted: 雨停",
        "reason_label": "预警已解除：雨停",
    }
    assert summarise("plan_ended", payload) == "预案终止：预警已解除：雨停"


def test_daily_summary_html_is_simplified(stack: Stack, seeded: dict[str, str]) -> None:
    day = stack.clock.now().astimezone(SHANGHAI).date().isoformat()
    page = stack.call("GET", f"/v1/summaries/daily?date={day}&format=html", who="admin")
    assert page.status_code == 200, page.text
    assert traditional(page.text) == []


def test_openapi_document_is_simplified(stack: Stack) -> None:
    text = json.dumps(ok(stack.call("GET", "/openapi.json")), ensure_ascii=False)
    assert traditional(text) == []


@pytest.mark.parametrize(
    "path",
    [
        "README.md",
        *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md")),
    ],
)
def test_docs_are_simplified(path: str) -> None:
    assert traditional((ROOT / path).read_text(encoding="utf-8")) == []


TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".json", ".js", ".html", ".css", ".conf"}
# Vendored third-party bundles (Swagger UI's own locale strings) are not the project's texts.
VENDORED = ROOT / "libs" / "common" / "docs_assets"


def project_texts() -> list[Path]:
    """Labels, rule tables, county data, console, deploy files and CLI texts."""
    found = []
    for top in ("services", "libs", "yingji", "deploy"):
        for path in sorted((ROOT / top).rglob("*")):
            if path.suffix in TEXT_SUFFIXES and VENDORED not in path.parents:
                found.append(path)
    return found


def test_labels_rules_console_and_deploy_files_are_simplified() -> None:
    paths = project_texts()
    assert len(paths) > 50
    found = {}
    for path in paths:
        hits = traditional(path.read_text(encoding="utf-8"))
        if hits:
            found[str(path.relative_to(ROOT))] = hits[:5]
    assert found == {}
