"""The console's 企业台账 dialog: the register by township and risk level, 重大 in red first, with
inspections and rectifications overdue (整改逾期); live while open; a township key sees its own
township. Headless Chromium against the embedded stack; screenshots go to
``$CONSOLE_SCREENSHOTS``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from services.dispatch.enterprises.domain import with_check
from services.dispatch.enterprises.service import use_cases
from tests.console.support import LiveServer
from tests.console.test_console_browser import SHOTS, WAIT_MS, chromium, expect, ok
from tests.console.test_console_concealment import sign_in
from tests.support.stack import TOWNSHIP_A, Stack

pytestmark = pytest.mark.browser
__all__ = ["chromium"]  # the browser fixture, shared with the main console tests


def inspect(stack: Stack, enterprise_id: str, days_ago: int, due_in: int, *findings: str) -> Any:
    """An inspection ``days_ago`` days back; with findings, due ``due_in`` days from today."""
    today = stack.clock.now().date()
    body: dict[str, Any] = {
        "date": (today - timedelta(days=days_ago)).isoformat(),
        "inspector": "县应急局检查组",
        "findings": list(findings),
    }
    if findings:
        body["deadline"] = (today + timedelta(days=due_in)).isoformat()
    return ok(stack.call("POST", f"/v1/enterprises/{enterprise_id}/inspections", json=body))


@pytest.fixture(scope="module")
def seeded(console_stack: Stack) -> None:
    """城关燃气 (E01) overdue on a finding, 东方商贸 (E02) with one open, 冷链 (E03) clean."""
    inspect(console_stack, "E01", 10, -3, "调压站可燃气体报警器失效", "应急预案未演练")
    inspect(console_stack, "E02", 2, 20, "欠薪台账不全")
    inspect(console_stack, "E03", 1, 0)
    use_cases(console_stack.ctx("dispatch")).scan_overdue()
    console_stack.settle()


@pytest.fixture(scope="module")
def board(chromium: Any, server: LiveServer, console_stack: Stack, seeded: None) -> Iterator[Any]:
    """A tab signed in as the duty operator, the dialog open."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    context, tab, errors = sign_in(chromium, server, console_stack.keys["operator"])
    tab.locator("#panel-dispatches").screenshot(path=str(SHOTS / "44-enterprises-button.png"))
    tab.click("#enterprises-btn")
    tab.wait_for_selector("#enterprises-dialog[open] #enterprises-table", timeout=WAIT_MS)
    yield tab
    assert errors == [], errors
    context.close()


def test_the_register_lists_major_in_red_first_with_overdue_rectification(board: Any) -> None:
    expect(board.locator("#enterprises-title")).to_have_text("企业台账")
    totals = board.text_content("#enterprises-totals")
    assert "在册 28 家" in totals and "重大 6" in totals and "整改逾期 1 家" in totals
    levels = board.locator("#enterprises-table tbody tr td:first-child .level")
    assert levels.first.text_content() == "重大"
    assert "level-1" in (levels.first.get_attribute("class") or "")
    texts = [levels.nth(i).text_content() for i in range(levels.count())]
    order = ["重大", "较大", "一般", "低"]
    assert [order.index(t) for t in texts] == sorted(order.index(t) for t in texts)
    gas = board.locator("#enterprises-table tr[data-id=E01]")
    assert "ent-overdue" in (gas.get_attribute("class") or "")
    assert "整改逾期" in gas.text_content() and "调压站可燃气体报警器失效" in gas.text_content()
    assert "整改中" in board.text_content("#enterprises-table tr[data-id=E02]")
    assert "未发现问题" in board.text_content("#enterprises-table tr[data-id=E03]")
    assert "349901" not in board.text_content("#enterprises-body")  # names, never raw codes
    board.screenshot(path=str(SHOTS / "45-enterprises.png"))


def test_filters_by_township_level_and_overdue(board: Any) -> None:
    board.select_option("#enterprises-township", TOWNSHIP_A)
    expect(board.locator("#enterprises-totals")).to_contain_text("在册 3 家", timeout=WAIT_MS)
    board.select_option("#enterprises-level", "major")
    expect(board.locator("#enterprises-totals")).to_contain_text("在册 1 家", timeout=WAIT_MS)
    board.select_option("#enterprises-level", "")
    board.check("#enterprises-overdue")
    expect(board.locator("#enterprises-table tbody tr")).to_have_count(1, timeout=WAIT_MS)
    board.uncheck("#enterprises-overdue")
    board.select_option("#enterprises-township", "")
    expect(board.locator("#enterprises-totals")).to_contain_text("在册 28 家", timeout=WAIT_MS)


def test_a_new_enterprise_appears_live(board: Any, console_stack: Stack) -> None:
    """The stream's ``enterprise_registered`` refreshes the open dialog without a click."""
    body = {
        "name": "安河县城关新能源有限公司",
        "credit_code": with_check("91349901MA00000" + "12"),
        "township_code": TOWNSHIP_A,
        "risk_level": "large",
        "hazard_types": ["危险化学品"],
        "lat": 31.52,
        "lon": 116.49,
        "responsible": {"name": "吴志强", "phone": "13955550001"},
        "safety_officer": {"name": "郑丽华", "phone": "13955550002"},
    }
    ok(console_stack.call("POST", "/v1/enterprises", json=body))
    expect(board.locator("#enterprises-totals")).to_contain_text("在册 29 家", timeout=WAIT_MS)
    expect(board.locator("#enterprises-table")).to_contain_text("安河县城关新能源有限公司")


def test_a_township_sees_its_own_register(
    chromium: Any, server: LiveServer, console_stack: Stack, seeded: None
) -> None:
    context, tab, errors = sign_in(chromium, server, console_stack.keys["township_a"])
    tab.click("#enterprises-btn")
    tab.wait_for_selector("#enterprises-dialog[open] #enterprises-table", timeout=WAIT_MS)
    assert tab.locator("#enterprises-township option").count() == 1
    towns = tab.locator("#enterprises-table tbody tr td:nth-child(3)")
    assert {towns.nth(i).text_content() for i in range(towns.count())} == {"城关镇"}
    assert errors == [], errors
    context.close()
