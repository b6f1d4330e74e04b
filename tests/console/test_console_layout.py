"""The console's layout at the sizes a duty officer meets: a phone (390×844) with every top-bar
button inside the screen and no sideways scrolling; the duty room's 1366×768 with the top bar on
one line under a long on-duty line (cut short with …, whole in its title); and the zero-report
panel keeping its township chips in view beside a 疑似瞒报 entry. Headless Chromium against the
embedded stack; screenshots go to ``$CONSOLE_SCREENSHOTS`` (``layout-*.png``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest

from tests.console.support import LiveServer
from tests.console.test_console_browser import SHOTS, WAIT_MS, chromium, expect, ok
from tests.support.bodies import incident_body, zero_report_body
from tests.support.stack import TOWNSHIP_A, Stack

pytestmark = pytest.mark.browser
__all__ = ["chromium"]  # the browser fixture, shared with the main console tests

WEEK = "2026-07-06"  # the stack's Monday (10:00 on it when the stack starts)
ROSTER_LINE = "夜班 带班王建国 值班李明、欧阳思远"
TOP_BUTTONS = ["phone-btn", "warn-btn", "epidemic-btn", "summary-btn", "lang-btn", "logout-btn"]


def conceal_the_first_day(stack: Stack) -> None:
    """城关镇 reports a flood on the first day, then (at 02:00 the next night, before the zero
    reports' 08:00 cut-off) files 「无事件」 for that day: refused as 疑似瞒报 (409)."""
    flood = incident_body(stack.clock.now(), TOWNSHIP_A, title="城关镇河堤漫溢")
    ok(stack.call("POST", "/v1/incidents", who="township_a", json=flood))
    stack.settle()
    stack.clock.advance(timedelta(hours=16))
    body = zero_report_body(TOWNSHIP_A, date.fromisoformat(WEEK))
    refused = stack.call("POST", "/v1/zero-reports", who="township_a", json=body)
    assert refused.status_code == 409, refused.text


@pytest.fixture(scope="module")
def seeded(console_stack: Stack) -> None:
    """The first night shift fully staffed (a long header line; it is in force at 02:00) and one
    疑似瞒报 of 城关镇."""
    shift = {
        "day": WEEK,
        "code": "night",
        "leader": {"name": "王建国", "phone": "13800000001"},
        "officers": [
            {"name": "李明", "phone": "13800000002"},
            {"name": "欧阳思远", "phone": "13800000003"},
        ],
    }
    ok(console_stack.call("PUT", f"/v1/duty/roster/{WEEK}", json={"shifts": [shift]}))
    conceal_the_first_day(console_stack)
    console_stack.settle()


def signed_in(chromium: Any, server: LiveServer, key: str, width: int, height: int) -> Any:
    """A context at ``width``×``height`` and its tab signed in with ``key`` (board loaded)."""
    context = chromium.new_context(viewport={"width": width, "height": height}, locale="zh-CN")
    tab = context.new_page()
    tab.on("pageerror", lambda exc: pytest.fail(str(exc)))
    tab.goto(f"{server.url}/console")
    tab.fill("#key-input", key)
    tab.click("#login-form button[type=submit]")
    tab.wait_for_selector("#board:not([hidden])", timeout=WAIT_MS)
    tab.wait_for_selector("#live.on", timeout=WAIT_MS)
    expect(tab.locator("#on-duty")).to_have_text(ROSTER_LINE, timeout=WAIT_MS)
    return context, tab


@pytest.fixture(scope="module")
def phone(chromium: Any, server: LiveServer, console_stack: Stack, seeded: None) -> Iterator[Any]:
    """The operator's board on a 390×844 phone."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    context, tab = signed_in(chromium, server, console_stack.keys["operator"], 390, 844)
    yield tab
    context.close()


@pytest.fixture(scope="module")
def duty_room(
    chromium: Any, server: LiveServer, console_stack: Stack, seeded: None
) -> Iterator[Any]:
    """The operator's board on the duty room's 1366×768 screen."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    context, tab = signed_in(chromium, server, console_stack.keys["operator"], 1366, 768)
    yield tab
    context.close()


def box(tab: Any, selector: str) -> dict[str, float]:
    """The element's box in the viewport."""
    found: dict[str, float] = tab.eval_on_selector(
        selector,
        "el => { const r = el.getBoundingClientRect();"
        " return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, height: r.height}; }",
    )
    return found


def test_a_phone_scrolls_no_sideways_and_reaches_every_top_bar_button(phone: Any) -> None:
    phone.screenshot(path=str(SHOTS / "layout-390-board.png"))
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    assert phone.evaluate("document.body.scrollWidth") <= 390
    header = box(phone, "header")
    assert header["right"] <= 390
    for button in TOP_BUTTONS:
        place = box(phone, f"#{button}")
        assert place["left"] >= 0 and place["right"] <= 390, (button, place)
        assert place["bottom"] <= header["bottom"], (button, place)  # on the navy bar
        # Clickable: the button itself is what a tap at its centre reaches.
        x, y = (place["left"] + place["right"]) / 2, (place["top"] + place["bottom"]) / 2
        hit = phone.evaluate(f"document.elementFromPoint({x}, {y})?.id")
        assert hit == button, (button, hit)
    assert header["height"] < 240  # not a screenful of navy before the board


def test_a_phone_shows_tiles_readable_and_panels_stacked(phone: Any) -> None:
    label = box(phone, "[data-tile=zero] .tile-l")
    assert label["height"] < 30  # 零报告未报 on one line, not a character per line
    incidents, warnings = box(phone, "#panel-incidents"), box(phone, "#panel-warnings")
    assert warnings["top"] >= incidents["bottom"]  # stacked, one panel under the other


def test_a_phone_opens_the_phone_report_form_inside_the_screen(phone: Any) -> None:
    phone.click("#phone-btn")
    dialog = phone.locator("#incident-dialog")
    expect(dialog).to_be_visible()
    place = box(phone, "#incident-dialog")
    assert place["left"] >= 0 and place["right"] <= 390
    assert box(phone, "#incident-form [name=title]")["right"] <= place["right"]
    phone.screenshot(path=str(SHOTS / "layout-390-phone-form.png"))
    phone.click("#incident-form .form-cancel")
    expect(dialog).to_be_hidden()


def test_a_phone_shows_the_roster_with_its_tabs_and_shifts_in_view(phone: Any) -> None:
    """Only the roster table scrolls sideways; the tabs keep their words on one line and the
    shift column stays in view while the officers' columns scroll."""
    phone.click("#duty-btn")
    first = phone.locator("#duty-roster-body tr").first
    first.wait_for(timeout=WAIT_MS)
    dialog = box(phone, ".duty-dialog")
    assert dialog["left"] >= 0 and dialog["right"] <= 390
    assert phone.eval_on_selector(".duty-dialog", "el => el.scrollWidth <= el.clientWidth + 1")
    assert box(phone, "#duty-tab-roster")["height"] < 40  # 值班表 on one line
    shift = box(phone, "#duty-roster-body tr:first-child td:first-child")
    phone.eval_on_selector(".duty-table", "el => { el.scrollLeft = el.scrollWidth; }")
    assert box(phone, "#duty-roster-body tr:first-child td:first-child")["left"] == shift["left"]
    phone.screenshot(path=str(SHOTS / "layout-390-duty.png"))
    phone.click("#duty-close")


def test_the_duty_room_keeps_one_top_bar_line_under_a_long_roster(duty_room: Any) -> None:
    duty_room.screenshot(path=str(SHOTS / "layout-1366-long-roster.png"))
    header = box(duty_room, "header")
    assert header["height"] <= 56, header
    top = box(duty_room, "#phone-btn")["top"]
    for button in ["lang-btn", "logout-btn"]:
        assert abs(box(duty_room, f"#{button}")["top"] - top) < 4, button  # same line
        assert box(duty_room, f"#{button}")["right"] <= 1366
    on_duty = duty_room.locator("#on-duty")
    assert on_duty.get_attribute("title") == ROSTER_LINE
    cut = duty_room.eval_on_selector("#on-duty", "el => el.scrollWidth > el.clientWidth")
    overflow = duty_room.eval_on_selector("#on-duty", "el => getComputedStyle(el).textOverflow")
    assert cut and overflow == "ellipsis"


def test_the_zero_panel_keeps_the_township_chips_beside_a_concealment(duty_room: Any) -> None:
    expect(duty_room.locator("#concealment")).to_be_visible(timeout=WAIT_MS)
    duty_room.locator("#zero-body .chip").first.wait_for(timeout=WAIT_MS)
    body = box(duty_room, "#zero-body")
    assert body["height"] >= 60, body
    chip = box(duty_room, "#zero-body .chip")
    assert body["top"] <= chip["top"] and chip["bottom"] <= body["bottom"], (body, chip)
    assert box(duty_room, "#panel-zero")["bottom"] <= 768
    duty_room.locator("#panel-zero").screenshot(path=str(SHOTS / "layout-1366-zero-panel.png"))
