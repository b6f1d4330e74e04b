"""The console shows possible concealment (疑似瞒报): a township that reported incidents on a
day and then tried to file 「无事件」 for it. Headless Chromium against the embedded stack;
screenshots go to ``$CONSOLE_SCREENSHOTS``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.console.support import LiveServer
from tests.console.test_console_browser import SHOTS, WAIT_MS, chromium, expect, ok
from tests.support.bodies import incident_body, zero_report_body
from tests.support.stack import TOWNSHIP_A, TOWNSHIP_B, Stack

pytestmark = pytest.mark.browser
__all__ = ["chromium"]  # the browser fixture, shared with the main console tests

LOCAL = ZoneInfo("Asia/Shanghai")


def conceal(stack: Stack, who: str, code: str, title: str) -> dict[str, Any]:
    """A real incident of ``code`` now, then a day later (a zero report covers a day that is
    over) its 「无事件」 for that day: refused (409)."""
    now = stack.clock.now()
    incident = ok(
        stack.call("POST", "/v1/incidents", who=who, json=incident_body(now, code, title=title))
    )
    stack.settle()
    stack.clock.advance(timedelta(days=1))
    day = now.astimezone(LOCAL).date()
    refused = stack.call("POST", "/v1/zero-reports", who=who, json=zero_report_body(code, day))
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "zero_report_contradicts_incidents"
    return incident


def hhmm(stamp: str) -> str:
    """``MM-DD HH:MM`` in the county's time zone, as the console writes times."""
    return datetime.fromisoformat(stamp).astimezone(LOCAL).strftime("%m-%d %H:%M")


@pytest.fixture(scope="module")
def first(console_stack: Stack) -> dict[str, Any]:
    """城关镇 reports a flood, then says nothing happened today; a drill of 青石镇 is no 瞒报."""
    drill = incident_body(console_stack.clock.now(), TOWNSHIP_B, title="演练：山洪", exercise=True)
    ok(console_stack.call("POST", "/v1/incidents", who="township_b", json=drill))
    return conceal(console_stack, "township_a", TOWNSHIP_A, "城关镇河堤漫溢")


def sign_in(chromium: Any, server: LiveServer, key: str) -> tuple[Any, Any, list[str]]:
    """A context and a tab signed in with ``key``, and the page errors it collects."""
    context = chromium.new_context(viewport={"width": 1366, "height": 900}, locale="zh-CN")
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.goto(f"{server.url}/console")
    tab.wait_for_selector("#login-form")
    tab.fill("#key-input", key)
    tab.click("#login-form button[type=submit]")
    tab.wait_for_selector("#board:not([hidden])", timeout=WAIT_MS)
    tab.wait_for_selector("#live.on", timeout=WAIT_MS)
    return context, tab, errors


@pytest.fixture(scope="module")
def board(
    chromium: Any, server: LiveServer, console_stack: Stack, first: dict[str, Any]
) -> Iterator[Any]:
    """A tab signed in as the duty operator."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    context, tab, errors = sign_in(chromium, server, console_stack.keys["operator"])
    yield tab
    assert errors == [], errors
    context.close()


def attempts(stack: Stack) -> dict[str, dict[str, Any]]:
    """The refused attempts the API lists, by township code."""
    listed = ok(stack.call("GET", "/v1/zero-reports/contradictions"))["items"]
    return {row["township_code"]: row for row in listed}


def test_the_duty_office_sees_the_attempt_with_its_incidents(
    board: Any, console_stack: Stack, first: dict[str, Any]
) -> None:
    attempt = attempts(console_stack)[TOWNSHIP_A]
    item = board.locator(f"#list-concealment li[data-id='{attempt['id']}']")
    item.wait_for(timeout=WAIT_MS)
    expect(board.locator("#badge-concealment")).to_have_text("疑似瞒报 1")
    assert board.is_visible("#concealment")
    assert board.text_content("#h-concealment").startswith("疑似瞒报")
    assert item.locator(".marker-concealment").text_content() == "疑似瞒报"
    assert item.locator(".item-title").text_content() == "城关镇"
    assert item.locator(".concealment-day").text_content() == f"报告日 {attempt['date']}"
    when = hhmm(attempt["attempted_at"])
    assert item.locator(".concealment-attempt").text_content() == f"{when} 报「无事件」被拒"
    incident = item.locator(f".concealment-incidents li[data-id='{first['id']}']")
    assert "城关镇河堤漫溢" in incident.text_content()
    assert incident.locator(f".grade-{first['grade']}").count() == 1
    text = board.text_content("#concealment")
    assert "演练" not in text and "349901" not in text, text  # no drill, no raw codes
    board.screenshot(path=str(SHOTS / "30-concealment.png"))
    incident.locator("button").click()
    expect(board.locator("#detail-title")).to_contain_text("城关镇河堤漫溢", timeout=WAIT_MS)
    board.click("#detail-close")


def test_a_new_attempt_appears_live(board: Any, console_stack: Stack) -> None:
    """The stream's ``zero_report_contradicted`` refreshes the list without a reload."""
    console_stack.clock.advance(25 * 60)
    conceal(console_stack, "township_b", TOWNSHIP_B, "青石镇山体滑坡")
    attempt = attempts(console_stack)[TOWNSHIP_B]
    item = board.locator(f"#list-concealment li[data-id='{attempt['id']}']")
    item.wait_for(timeout=WAIT_MS)
    assert item.locator(".item-title").text_content() == "青石镇"
    expect(board.locator("#badge-concealment")).to_have_text("疑似瞒报 2")
    # The latest attempt first.
    assert board.locator("#list-concealment > li").first.get_attribute("data-id") == attempt["id"]
    board.screenshot(path=str(SHOTS / "31-concealment-live.png"), full_page=True)


def test_a_township_sees_only_its_own_attempt(
    chromium: Any, server: LiveServer, console_stack: Stack, board: Any
) -> None:
    context, tab, errors = sign_in(chromium, server, console_stack.keys["township_b"])
    own = attempts(console_stack)[TOWNSHIP_B]["id"]
    tab.locator(f"#list-concealment li[data-id='{own}']").wait_for(timeout=WAIT_MS)
    expect(tab.locator("#badge-concealment")).to_have_text("疑似瞒报 1")
    assert "城关镇" not in tab.text_content("#concealment")
    context.close()
    assert errors == [], errors
