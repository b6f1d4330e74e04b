"""The console's 预警覆盖 dialog: a warning's reach (townships and villages reached and
acknowledged, people covered) and each village's state in a compact table, escalated villages
first in red. Headless Chromium against the embedded stack; screenshots go to
``$CONSOLE_SCREENSHOTS``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from services.warning.service import use_cases
from tests.console.support import LiveServer
from tests.console.test_console_browser import SHOTS, WAIT_MS, chromium, expect, ok
from tests.console.test_console_concealment import sign_in
from tests.support.stack import TOWNSHIP_A, Stack

pytestmark = pytest.mark.browser
__all__ = ["chromium"]  # the browser fixture, shared with the main console tests


@pytest.fixture(scope="module")
def warning(console_stack: Stack) -> dict[str, Any]:
    """An orange warning over 城关镇: one village acknowledged by the township, the rest silent
    past the limit (escalated)."""
    stack = console_stack
    body = {
        "hazard": "rainstorm",
        "level": 2,
        "headline": "城关镇暴雨橙色预警",
        "description": "预计未来3小时城关镇有短时强降雨。",
        "instruction": "信息员立即入户通知低洼地带群众。",
        "areas": [TOWNSHIP_A],
        "expires": (stack.clock.now() + timedelta(hours=6)).isoformat(),
    }
    issued = ok(stack.call("POST", "/v1/warnings", who="leader", json=body))
    service = use_cases(stack.ctx("warning"))
    service.run_deliveries()
    village = stack.runtime.county.villages(TOWNSHIP_A)[0][1]
    ack = {"village_code": village.code}
    ok(stack.call("POST", f"/v1/warnings/{issued['id']}/ack", who="township_a", json=ack))
    stack.clock.advance(61 * 60)
    service.run_ack_scan()
    stack.settle()
    return {"id": issued["id"], "acked": village.name}


@pytest.fixture(scope="module")
def board(
    chromium: Any, server: LiveServer, console_stack: Stack, warning: dict[str, Any]
) -> Iterator[Any]:
    """A tab signed in as the duty operator, the reach dialog open on the warning."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    context, tab, errors = sign_in(chromium, server, console_stack.keys["operator"])
    item = tab.locator(f"#list-warnings li[data-id='{warning['id']}']")
    item.locator(".btn-reach").click()
    tab.wait_for_selector("#reach-dialog[open] #reach-villages", timeout=WAIT_MS)
    yield tab
    assert errors == [], errors
    context.close()


def test_reach_lines_and_villages_escalated_first(board: Any, warning: dict[str, Any]) -> None:
    expect(board.locator("#reach-title")).to_have_text("预警覆盖")
    lines = board.locator("#reach-lines li")
    expect(lines.nth(0)).to_have_text("乡镇 送达 1/1，签收 0")
    expect(lines.nth(1)).to_contain_text("确认 1，催办 5")
    expect(lines.nth(2)).to_contain_text("覆盖约")
    expect(board.locator("#reach-body")).not_to_contain_text("null")
    rows = board.locator("#reach-villages tbody tr")
    expect(rows).to_have_count(6)
    expect(rows.first).to_have_class("vr vr-escalated")
    expect(rows.first.locator(".vr-state")).to_have_text("已催办乡镇")
    expect(rows.last).to_have_class("vr vr-acked")
    expect(rows.last.locator("td").first).to_have_text(warning["acked"])
    expect(rows.last.locator(".vr-state")).to_have_text("乡镇代签")
    board.screenshot(path=str(SHOTS / "warning-reach.png"))
