"""The console hides drills (演练) by default; a toggle shows them, marked 演练; tiles never
count them. Headless Chromium against the embedded stack; screenshots go to
``$CONSOLE_SCREENSHOTS``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.console.support import LiveServer, warning_body
from tests.console.test_console_browser import SHOTS, WAIT_MS, chromium, expect, ok
from tests.support.bodies import incident_body
from tests.support.stack import TOWNSHIP_A, TOWNSHIP_B, Stack

pytestmark = pytest.mark.browser
__all__ = ["chromium"]  # the browser fixture, shared with the main console tests


@pytest.fixture(scope="module")
def drills(console_stack: Stack) -> dict[str, Any]:
    """One real incident; a drill incident with a drill order and a drill warning."""
    stack = console_stack
    now = stack.clock.now()
    real = ok(
        stack.call("POST", "/v1/incidents", who="township_a", json=incident_body(now, TOWNSHIP_A))
    )
    drill_body = incident_body(now, TOWNSHIP_B, title="演练：洪涝灾害", exercise=True)
    drill = ok(stack.call("POST", "/v1/incidents", who="township_b", json=drill_body))
    warning = ok(
        stack.call(
            "POST",
            "/v1/warnings",
            who="department",
            json=warning_body(now, [TOWNSHIP_B], headline="演练：暴雨黄色预警", exercise=True),
        )
    )
    stack.settle()
    order = ok(
        stack.call(
            "POST",
            "/v1/dispatches",
            json={"incident_id": drill["id"], "team_ids": ["T04"], "exercise": True},
        )
    )
    stack.settle()
    return {"real": real, "drill": drill, "warning": warning, "order": order}


@pytest.fixture(scope="module")
def board(chromium: Any, server: LiveServer, console_stack: Stack, drills: Any) -> Iterator[Any]:
    """A tab signed in as the duty operator."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    context = chromium.new_context(viewport={"width": 1366, "height": 900}, locale="zh-CN")
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.goto(f"{server.url}/console")
    tab.wait_for_selector("#login-form")
    tab.fill("#key-input", console_stack.keys["operator"])
    tab.click("#login-form button[type=submit]")
    tab.wait_for_selector("#board:not([hidden])", timeout=WAIT_MS)
    tab.wait_for_selector(f"#list-incidents li[data-id='{drills['real']['id']}']", timeout=WAIT_MS)
    yield tab
    assert errors == [], errors
    context.close()


def tiles(board: Any) -> None:
    """The tiles count the one real incident, and no drill warning or drill order."""
    expect(board.locator("#n-incidents")).to_have_text("1", timeout=WAIT_MS)
    expect(board.locator("#n-warnings")).to_have_text("0", timeout=WAIT_MS)
    expect(board.locator("#n-dispatches")).to_have_text("0", timeout=WAIT_MS)


def test_drills_are_hidden_and_never_counted(board: Any, drills: dict[str, Any]) -> None:
    tiles(board)
    assert board.locator(f"#list-incidents li[data-id='{drills['drill']['id']}']").count() == 0
    assert board.locator(f"#list-warnings li[data-id='{drills['warning']['id']}']").count() == 0
    assert board.locator(f"#list-dispatches li[data-id='{drills['order']['id']}']").count() == 0
    assert not board.is_checked("#exercise-input")
    board.screenshot(path=str(SHOTS / "20-drills-hidden.png"))


def test_the_toggle_shows_drills_marked_and_still_uncounted(
    board: Any, drills: dict[str, Any]
) -> None:
    board.check("#exercise-input")
    drill = board.locator(f"#list-incidents li[data-id='{drills['drill']['id']}']")
    drill.wait_for(timeout=WAIT_MS)
    assert drill.locator(".marker-exercise").text_content() == "演练"
    assert "演练：洪涝灾害" in drill.text_content()
    warning = board.locator(f"#list-warnings li[data-id='{drills['warning']['id']}']")
    warning.wait_for(timeout=WAIT_MS)
    assert warning.locator(".marker-exercise").text_content() == "演练"
    order = board.locator(f"#list-dispatches li[data-id='{drills['order']['id']}']")
    order.wait_for(timeout=WAIT_MS)
    assert order.locator(".marker-exercise").text_content() == "演练"
    tiles(board)
    board.screenshot(path=str(SHOTS / "21-drills-shown.png"), full_page=True)
    board.uncheck("#exercise-input")
    drill.wait_for(state="detached", timeout=WAIT_MS)
    assert board.evaluate("localStorage.getItem('yingji.console.exercise')") == "0"
