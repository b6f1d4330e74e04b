"""The duty office (值班室) in the console, in headless Chromium: the header says who is on duty
(and when nobody is), the week's roster is entered and copied, a handover is opened pre-filled
(a warning awaiting approval listed by name) and confirmed by the incoming officer, a spot check
is recorded into the month's score, and the pushes to the city are listed with their receipt or
failure. Screenshots go to ``$CONSOLE_SCREENSHOTS`` (``duty-*.png``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from tests.console.support import LiveServer
from tests.console.test_console_browser import SHOTS, WAIT_MS, chromium, expect, ok
from tests.support.bodies import incident_body
from tests.support.stack import TOWNSHIP_B, Stack

pytestmark = pytest.mark.browser
__all__ = ["chromium"]  # the browser fixture, shared with the main console tests

WEEK = "2026-07-06"  # the stack's Monday


@pytest.fixture(scope="module")
def seeded(console_stack: Stack) -> dict[str, Any]:
    """An open grade Ⅱ landslide for the handover to carry."""
    now = console_stack.clock.now()
    body = incident_body(
        now,
        TOWNSHIP_B,
        title="青石镇山体滑坡",
        category="geological",
        casualties={"deaths": 4, "injured": 2, "missing": 1, "trapped": 3},
    )
    slide = ok(console_stack.call("POST", "/v1/incidents", who="operator", json=body))
    draft = {
        "hazard": "rainstorm",
        "level": 2,
        "headline": "安河县暴雨橙色预警",
        "description": "预计未来6小时青石镇降雨量将达100毫米以上。",
        "instruction": "转移低洼地带人员。",
        "areas": [TOWNSHIP_B],
        "expires": (now + timedelta(hours=24)).isoformat(),
    }
    # A department's orange warning waits for a leader: the handover hands it over.
    ok(console_stack.call("POST", "/v1/warnings", who="department", json=draft))
    console_stack.settle()
    return {"slide": slide}


@pytest.fixture(scope="module")
def page(
    chromium: Any, server: LiveServer, console_stack: Stack, seeded: dict[str, Any]
) -> Iterator[Any]:
    """One tab signed in as the operator, at 1366x768."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    context = chromium.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN")
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.goto(f"{server.url}/console")
    tab.wait_for_selector("#login-form")
    tab.fill("#key-input", console_stack.keys["operator"])
    tab.click("#login-form button[type=submit]")
    tab.wait_for_selector("#board:not([hidden])", timeout=WAIT_MS)
    yield tab
    assert errors == [], errors
    context.close()


def test_the_header_says_nobody_is_on_duty_before_the_roster(page: Any) -> None:
    header = page.locator("#on-duty")
    expect(header).to_have_text("白班无人值守", timeout=WAIT_MS)
    assert "on-duty-empty" in (header.get_attribute("class") or "")


def test_the_week_is_entered_in_the_roster_and_shown_in_the_header(page: Any) -> None:
    page.click("#duty-btn")
    first = page.locator(f"#duty-roster-body tr[data-day='{WEEK}'][data-code='day']")
    first.wait_for(timeout=WAIT_MS)
    assert page.locator("#duty-roster-body tr").count() == 14
    assert "空班" in first.text_content()
    first.locator("[name=leader-name]").fill("王建国")
    first.locator("[name=leader-phone]").fill("13800000001")
    first.locator("[name=o1-name]").fill("李明")
    first.locator("[name=o1-phone]").fill("13800000002")
    night = page.locator(f"#duty-roster-body tr[data-day='{WEEK}'][data-code='night']")
    night.locator("[name=o1-name]").fill("赵强")
    night.locator("[name=o1-phone]").fill("13800000003")
    page.click("#duty-roster-save")
    expect(page.locator("#duty-roster-status")).to_have_text("值班表已保存。", timeout=WAIT_MS)
    expect(page.locator("#on-duty")).to_have_text("白班 带班王建国 值班李明", timeout=WAIT_MS)
    page.screenshot(path=str(SHOTS / "duty-01-roster.png"))
    page.fill("#duty-week", "2026-07-13")
    page.dispatch_event("#duty-week", "change")
    page.locator("#duty-roster-body tr[data-day='2026-07-13']").first.wait_for(timeout=WAIT_MS)
    page.click("#duty-roster-copy")
    expect(page.locator("#duty-roster-status")).to_have_text("已复制上周值班表。", timeout=WAIT_MS)
    copied = page.locator("#duty-roster-body tr[data-day='2026-07-13'][data-code='day']")
    expect(copied.locator("[name=leader-name]")).to_have_value("王建国", timeout=WAIT_MS)


def test_a_handover_is_opened_pre_filled_and_confirmed(page: Any) -> None:
    page.click("#duty-tab-handover")
    form = page.locator("#duty-handover-form")
    form.locator("[name=outgoing]").fill("李明")
    form.locator("[name=notes]").fill("青石镇滑坡仍在处置，注意续报")
    form.locator("button[type=submit]").click()
    record = page.locator("#duty-handover-list li.duty-record").first
    expect(record).to_contain_text("待接班确认", timeout=WAIT_MS)
    expect(record).to_contain_text("未结事件 1")
    expect(record).to_contain_text("青石镇滑坡仍在处置")
    expect(record).to_contain_text("待审批 2")
    approvals = record.locator(".duty-approvals li")
    expect(approvals).to_have_text(
        ["暴雨橙色预警第1版（首发）：安河县暴雨橙色预警", "建议发布地质灾害黄色预警"]
    )
    page.screenshot(path=str(SHOTS / "duty-02-handover-open.png"))
    record.locator("[name=incoming]").fill("赵强")
    record.get_by_role("button", name="确认接班").click()
    confirmed = page.locator("#duty-handover-list li.duty-record").first
    expect(confirmed).to_contain_text("已确认", timeout=WAIT_MS)
    expect(confirmed).to_contain_text("接班：赵强")
    assert confirmed.locator("[name=incoming]").count() == 0
    page.screenshot(path=str(SHOTS / "duty-03-handover-confirmed.png"))


def test_a_spot_check_counts_in_the_months_score(page: Any, console_stack: Stack) -> None:
    page.click("#duty-tab-spot")
    expect(page.locator("#duty-score")).to_contain_text("本月值班得分", timeout=WAIT_MS)
    form = page.locator("#duty-spot-form")
    form.locator("[name=caller_unit]").fill("市应急管理局")
    form.locator("[name=caller]").fill("陈处长")
    form.locator("[name=result]").select_option("absent")
    form.locator("button[type=submit]").click()
    item = page.locator("#duty-spot-list li.duty-record").first
    expect(item).to_contain_text("脱岗", timeout=WAIT_MS)
    expect(item).to_contain_text("陈处长")
    month = ok(console_stack.call("GET", "/v1/duty/monthly", params={"month": "2026-07"}))
    assert month["tally"]["absent"] == 1
    score = f"本月值班得分 {month['score']:g}（"
    expect(page.locator("#duty-score")).to_contain_text(score, timeout=WAIT_MS)
    page.screenshot(path=str(SHOTS / "duty-04-spot-checks.png"))


def test_the_upward_tab_says_when_no_city_is_configured(page: Any) -> None:
    page.click("#duty-tab-upward")
    expect(page.locator("#duty-upward-state")).to_contain_text(
        "未配置市级平台地址", timeout=WAIT_MS
    )
    expect(page.locator("#duty-upward-list")).to_contain_text("暂无上报记录")
    page.screenshot(path=str(SHOTS / "duty-05-upward.png"))
    page.click("#duty-close")
