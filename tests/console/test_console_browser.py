"""The operator console in headless Chromium against the real embedded stack.

Screenshots go to ``$CONSOLE_SCREENSHOTS`` (default ``/tmp/yingji-console``) to be looked at;
they are not committed. Without Playwright or Chromium these tests skip locally and fail in CI.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # reported by the chromium fixture: a failure in CI, a skip locally
    expect = None  # type: ignore[assignment]

from tests.console.support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    LiveServer,
    browser_required,
    live_server,
    reopen,
    warning_body,
)
from tests.support.bodies import incident_body
from tests.support.stack import TOWNSHIP_A, TOWNSHIP_B, Stack

pytestmark = pytest.mark.browser

SHOTS = Path(os.environ.get("CONSOLE_SCREENSHOTS", "/tmp/yingji-console"))
WAIT_MS = 10_000


def _unavailable(reason: str) -> None:
    if browser_required():
        pytest.fail(f"{reason} (CI=true: browser tests must run; see scripts/install-browser)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (never a downloaded browser)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed")
    if not Path(CHROMIUM).exists():
        _unavailable(f"{CHROMIUM} is missing")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def ok(response: Any) -> dict[str, Any]:
    """The JSON of a successful response."""
    assert response.status_code < 300, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture(scope="module")
def seeded(console_stack: Stack) -> dict[str, Any]:
    """Incidents (one late and of grade III), an active and a pending warning, a dispatch."""
    stack = console_stack
    now = stack.clock.now()
    flood = ok(
        stack.call("POST", "/v1/incidents", who="township_a", json=incident_body(now, TOWNSHIP_A))
    )
    slide_body = incident_body(
        now,
        TOWNSHIP_B,
        title="青石镇山体滑坡",
        category="geological",
        casualties={"deaths": 4, "injured": 2, "missing": 1, "trapped": 3},
        occurred_at=(now - timedelta(hours=3)).isoformat(),
        discovered_at=(now - timedelta(hours=3)).isoformat(),
    )
    slide = ok(stack.call("POST", "/v1/incidents", who="operator", json=slide_body))
    active = ok(
        stack.call(
            "POST",
            "/v1/warnings",
            who="department",
            json=warning_body(now, [TOWNSHIP_A, TOWNSHIP_B]),
        )
    )
    pending = ok(
        stack.call(
            "POST",
            "/v1/warnings",
            who="department",
            json=warning_body(now, [TOWNSHIP_A], level=2, headline="暴雨橙色预警"),
        )
    )
    assert active["status"] == "active" and pending["status"] == "pending_approval"
    stack.settle()
    suggestions = ok(stack.call("GET", f"/v1/dispatches/suggest?incident_id={slide['id']}"))
    team = suggestions["items"][0]["team"]["id"]
    team_name = suggestions["items"][0]["team"]["name"]
    dispatch = ok(
        stack.call(
            "POST",
            "/v1/dispatches",
            json={"incident_id": slide["id"], "team_ids": [team], "resources": [], "note": "增援"},
        )
    )
    stack.settle()
    return {
        "flood": flood,
        "slide": slide,
        "active": active,
        "pending": pending,
        "dispatch": dispatch,
        "team": team,
        "team_name": team_name,
    }


@pytest.fixture(scope="module")
def page(
    chromium: Any, server: LiveServer, console_stack: Stack, seeded: dict[str, Any]
) -> Iterator[Any]:
    """One tab signed in as the duty leader, at 1366x768, shared by the tests in order."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    context = chromium.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN")
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on(
        "console",
        lambda msg: (
            errors.append(f"{msg.text} @ {msg.location}")
            if "Content Security Policy" in msg.text
            else None
        ),
    )
    tab.goto(f"{server.url}/console")
    tab.wait_for_selector("#login-form")
    tab.screenshot(path=str(SHOTS / "01-login.png"))
    tab.fill("#key-input", "yj_nobody_wrongkey")
    tab.click("#login-form button[type=submit]")
    expect(tab.locator("#login-error")).to_contain_text("无效")
    assert tab.is_visible("#login") and not tab.is_visible("#board")
    tab.fill("#key-input", console_stack.keys["leader"])
    tab.click("#login-form button[type=submit]")
    tab.wait_for_selector("#board:not([hidden])", timeout=WAIT_MS)
    tab.wait_for_selector("#live.on", timeout=WAIT_MS)
    yield tab
    assert errors == [], errors
    context.close()


def test_the_key_is_kept_out_of_urls_and_storage_beyond_the_tab(
    page: Any, console_stack: Stack
) -> None:
    key = console_stack.keys["leader"]
    assert key not in page.url
    assert page.evaluate("sessionStorage.getItem('yingji.console.key')") == key
    assert page.evaluate("JSON.stringify(localStorage)").find(key) < 0
    assert page.text_content("#who").startswith("leader")


def test_board_shows_the_seeded_situation(page: Any, seeded: dict[str, Any]) -> None:
    slide = page.locator(f"#list-incidents li[data-id='{seeded['slide']['id']}']")
    slide.wait_for(timeout=WAIT_MS)
    assert "青石镇山体滑坡" in slide.text_content()
    grade = seeded["slide"]["grade"]
    assert slide.locator(f".grade-{grade}").count() == 1
    assert slide.locator(".marker-late").text_content() == "迟报"
    flood = page.locator(f"#list-incidents li[data-id='{seeded['flood']['id']}']")
    assert flood.locator(".marker-late").count() == 0
    # Grade order: the more severe incident is listed first.
    first = page.locator("#list-incidents li").first.get_attribute("data-id")
    assert first == min(seeded["slide"], seeded["flood"], key=lambda i: i["grade"])["id"]

    active = page.locator(f"#list-warnings li[data-id='{seeded['active']['id']}']")
    assert active.locator(".level-3").text_content().startswith("黄色")
    assert "城关镇" in active.text_content()  # township codes shown by name
    pending = page.locator(f"#list-pending li[data-id='{seeded['pending']['id']}']")
    assert pending.locator(".level-2").count() == 1
    assert pending.get_by_role("button", name="批准: 暴雨橙色预警").is_visible()

    dispatch = page.locator(f"#list-dispatches li[data-id='{seeded['dispatch']['id']}']")
    assert "青石镇山体滑坡" in dispatch.text_content()
    # Teams by name, never by id.
    assert seeded["team_name"] in dispatch.text_content()
    assert seeded["team"] not in dispatch.text_content()
    expect(page.locator("#zero-body")).to_contain_text("未报")
    assert page.text_content("#n-incidents") == "2"
    assert page.text_content("#n-warnings") == "1"
    page.screenshot(path=str(SHOTS / "02-board.png"))


def test_an_incident_opens_with_its_timeline(page: Any, seeded: dict[str, Any]) -> None:
    page.click(f"#list-incidents li[data-id='{seeded['slide']['id']}'] button")
    page.wait_for_selector("#detail-timeline li.tl", timeout=WAIT_MS)
    assert page.text_content("#detail-title") == "青石镇山体滑坡"
    facts = page.text_content("#detail-facts")
    assert "死亡 4" in facts and "迟报" in facts
    types = page.locator("#detail-timeline .tl-type").all_text_contents()
    assert types[0] == "事件接报"
    assert "下达调度" in types
    page.screenshot(path=str(SHOTS / "03-detail.png"))
    page.keyboard.press("Escape")
    assert page.is_hidden("#detail")


def test_the_leader_approves_a_pending_warning(
    page: Any, console_stack: Stack, seeded: dict[str, Any]
) -> None:
    warning_id = seeded["pending"]["id"]
    page.get_by_role("button", name="批准: 暴雨橙色预警").click()
    # The first click only opens the full text for checking; 确认批准发布 sends it.
    expect(page.locator("#approve-dialog")).to_be_visible()
    page.click("#approve-submit")
    page.wait_for_selector(f"#list-warnings li[data-id='{warning_id}'] .level-2", timeout=WAIT_MS)
    page.wait_for_selector(
        f"#list-pending li[data-id='{warning_id}']", state="detached", timeout=WAIT_MS
    )
    assert ok(console_stack.call("GET", f"/v1/warnings/{warning_id}"))["status"] == "active"
    # Red/orange first: the approved orange warning now heads the list.
    assert page.locator("#list-warnings li").first.get_attribute("data-id") == warning_id
    page.screenshot(path=str(SHOTS / "04-approved.png"))


def test_a_new_incident_arrives_without_a_reload(page: Any, console_stack: Stack) -> None:
    page.evaluate("window.__notReloaded = true")
    body = incident_body(
        console_stack.clock.now(),
        TOWNSHIP_A,
        title="城关镇民房倒塌",
        category="geological",
        casualties={"deaths": 0, "injured": 1, "missing": 0, "trapped": 2},
    )
    created = ok(console_stack.call("POST", "/v1/incidents", who="township_a", json=body))
    row = f"#list-incidents li[data-id='{created['id']}']"
    page.wait_for_selector(row, timeout=WAIT_MS)
    assert "城关镇民房倒塌" in page.text_content(row)
    page.wait_for_selector("#list-feed .feed-item", timeout=WAIT_MS)
    assert "事件接报" in page.text_content("#list-feed")
    assert page.evaluate("window.__notReloaded") is True
    page.wait_for_selector("#panel-incidents.flash", timeout=WAIT_MS)
    page.screenshot(path=str(SHOTS / "05-live-update.png"))


def test_the_language_toggles_to_english_and_back(page: Any) -> None:
    page.click("#lang-btn")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    assert page.text_content("#h-incidents").startswith("Open incidents")
    expect(page.locator("#list-incidents .marker-late").first).to_have_text("Late")
    expect(page.locator("#zero-body")).to_contain_text("Missing")
    expect(page.locator("#list-dispatches")).to_contain_text("Teams")
    page.screenshot(path=str(SHOTS / "06-english.png"))
    page.click("#lang-btn")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    assert page.text_content("#h-incidents").startswith("未结事件")


def test_the_daily_summary_opens_printable(page: Any) -> None:
    with page.expect_popup() as popup_info:
        page.click("#summary-btn")
    popup = popup_info.value
    popup.wait_for_selector("h1", timeout=WAIT_MS)
    assert "日报" in popup.text_content("h1")
    # The summary's own stylesheet applies although the pop-up shares the console's CSP.
    assert popup.locator("h1").evaluate("e => getComputedStyle(e).textAlign") == "center"
    assert popup.locator("script").count() == 0
    popup.screenshot(path=str(SHOTS / "07-summary.png"), full_page=True)
    popup.close()


def test_a_duty_room_screen_shows_the_board(
    chromium: Any, server: LiveServer, console_stack: Stack
) -> None:
    context = chromium.new_context(viewport={"width": 2560, "height": 1440})
    tab = context.new_page()
    tab.goto(f"{server.url}/console")
    tab.fill("#key-input", console_stack.keys["operator"])
    tab.press("#key-input", "Enter")
    tab.wait_for_selector("#list-incidents .item", timeout=WAIT_MS)
    # Operators see what awaits approval but have no approve buttons.
    assert tab.locator("#panel-pending").is_visible()
    assert tab.locator("#list-pending button").count() == 0
    tab.screenshot(path=str(SHOTS / "08-wall-screen.png"))
    context.close()


def test_a_township_key_sees_only_its_township(
    chromium: Any, server: LiveServer, console_stack: Stack, seeded: dict[str, Any]
) -> None:
    context = chromium.new_context(viewport={"width": 1366, "height": 768})
    tab = context.new_page()
    tab.goto(f"{server.url}/console")
    tab.fill("#key-input", console_stack.keys["township_a"])
    tab.press("#key-input", "Enter")
    tab.wait_for_selector(f"#list-incidents li[data-id='{seeded['flood']['id']}']", timeout=WAIT_MS)
    assert tab.locator(f"#list-incidents li[data-id='{seeded['slide']['id']}']").count() == 0
    assert tab.locator("#panel-pending").is_hidden()
    assert tab.locator("#summary-btn").is_hidden()
    # A warning over two townships: the 签收 line of a township key names its own only.
    warning = tab.locator(f"#list-warnings li[data-id='{seeded['active']['id']}']")
    expect(warning.locator(f".ack[data-code='{TOWNSHIP_A}']")).to_have_count(1, timeout=WAIT_MS)
    assert warning.locator(f".ack[data-code='{TOWNSHIP_B}']").count() == 0
    assert warning.locator(".ack-summary").text_content() in ("签收 0/1", "签收 1/1")
    tab.screenshot(path=str(SHOTS / "09-township.png"))
    context.close()


def test_a_revoked_key_returns_to_the_login_screen(page: Any, console_stack: Stack) -> None:
    me = ok(console_stack.call("GET", "/v1/me", who="leader"))
    assert (
        console_stack.call("DELETE", f"/v1/admin/keys/{me['id']}", who="admin").status_code == 204
    )
    page.click("#lang-btn")  # any request now meets a 401
    page.wait_for_selector("#login:not([hidden])", timeout=WAIT_MS)
    assert page.is_hidden("#board")
    assert page.evaluate("sessionStorage.getItem('yingji.console.key')") is None
    assert page.locator("#list-incidents li").count() == 0
    page.click("#lang-btn")


@pytest.fixture(scope="module")
def restarts() -> Iterator[ExitStack]:
    """Servers started by a test that must outlive it (stopped at the end of the module)."""
    with ExitStack() as stack:
        yield stack


def test_losing_the_server_shows_reconnecting_and_recovers(
    chromium: Any,
    server: LiveServer,
    console_stack: Stack,
    restarts: ExitStack,
) -> None:
    context = chromium.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    page.goto(f"{server.url}/console")
    page.fill("#key-input", console_stack.keys["operator"])
    page.press("#key-input", "Enter")
    page.wait_for_selector("#live.on", timeout=WAIT_MS)
    port = int(server.url.rsplit(":", 1)[1])
    server.stop()
    page.wait_for_selector("#banner:not([hidden])", timeout=WAIT_MS)
    assert "重新连接中" in page.text_content("#banner")
    assert not page.locator("#live.on").count()
    page.screenshot(path=str(SHOTS / "10-reconnecting.png"))
    reopen(console_stack)
    restarts.enter_context(live_server(console_stack.client.app, port=port))
    page.wait_for_selector("#live.on", timeout=30_000)
    page.wait_for_selector("#banner", state="hidden", timeout=WAIT_MS)
    # Still live after the reconnect: a new incident shows up.
    body = incident_body(console_stack.clock.now(), TOWNSHIP_B, title="重连后新事件")
    created = ok(console_stack.call("POST", "/v1/incidents", who="operator", json=body))
    page.wait_for_selector(f"#list-incidents li[data-id='{created['id']}']", timeout=WAIT_MS)
    context.close()
