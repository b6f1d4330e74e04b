"""The console's 传染病日报 dialog: one day's epidemic reports per township (units filed in full
of units due, cases, who is missing) and the diseases with cases; live while open; a township
key sees its own township. Headless Chromium against the embedded stack; screenshots go to
``$CONSOLE_SCREENSHOTS``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.console.support import LiveServer
from tests.console.test_console_browser import SHOTS, WAIT_MS, chromium, expect, ok
from tests.console.test_console_concealment import sign_in
from tests.support.stack import TOWNSHIP_A, TOWNSHIP_B, Stack

pytestmark = pytest.mark.browser
__all__ = ["chromium"]  # the browser fixture, shared with the main console tests

DAY = "2026-07-06"  # the stack's first day
REPORTER = {"name": "钱玉兰", "phone": "13900001002"}
HFMD = {"disease_code": "hfmd", "cases": 2, "case_report": "东街幼儿园2例，已隔离治疗"}


def file(stack: Stack, unit: str, who: str = "operator", **extra: Any) -> dict[str, Any]:
    """A unit's report for the day: zero for every watched disease but what ``extra`` says."""
    body = {"unit_id": unit, "date": DAY, "zero_for_rest": True, "reporter": REPORTER, **extra}
    return ok(stack.call("POST", "/v1/epidemic/reports", who=who, json=body))


@pytest.fixture(scope="module")
def seeded(console_stack: Stack) -> None:
    """城关镇 and its community health centre filed (2 cases of 手足口病); a drill apart."""
    file(console_stack, TOWNSHIP_A, who="township_a")
    file(console_stack, "H02", entries=[HFMD])
    file(console_stack, "H04", exercise=True, entries=[{**HFMD, "cases": 9}])
    console_stack.settle()


@pytest.fixture(scope="module")
def board(chromium: Any, server: LiveServer, console_stack: Stack, seeded: None) -> Iterator[Any]:
    """A tab signed in as the duty operator, the dialog open."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    context, tab, errors = sign_in(chromium, server, console_stack.keys["operator"])
    tab.click("#epidemic-btn")
    tab.wait_for_selector("#epidemic-dialog[open] #epidemic-townships", timeout=WAIT_MS)
    yield tab
    assert errors == [], errors
    context.close()


def row(tab: Any, township: str) -> list[str]:
    """The cells of a township's row."""
    cells = tab.locator("#epidemic-townships tbody tr", has_text=township).first.locator("td")
    return [cells.nth(i).text_content() for i in range(cells.count())]


def test_the_day_per_township_with_cases_and_who_is_missing(board: Any) -> None:
    expect(board.locator("#epidemic-title")).to_have_text("传染病日报")
    totals = board.text_content("#epidemic-totals")
    assert "应报单位 25" in totals and "已报齐 2" in totals and "未报齐 23" in totals
    assert "病例 2" in totals
    assert board.text_content("#epidemic-diseases") == "手足口病（丙类） 2例"
    assert row(board, "城关镇") == ["城关镇", "2/3", "2", "县人民医院"]
    assert row(board, "青石镇") == ["青石镇", "0/2", "0", "青石镇、青石镇卫生院"]
    assert "演练报告 10 份（不计入）" in board.text_content("#epidemic-body")
    assert "349901" not in board.text_content("#epidemic-body")  # names, never raw codes
    board.screenshot(path=str(SHOTS / "40-epidemic.png"))


def test_a_new_filing_appears_live(board: Any, console_stack: Stack) -> None:
    """The stream's ``epidemic_report_filed`` refreshes the open dialog without a click."""
    file(console_stack, TOWNSHIP_B, who="township_b")
    expect(board.locator("#epidemic-totals")).to_contain_text("已报齐 3", timeout=WAIT_MS)
    assert row(board, "青石镇") == ["青石镇", "1/2", "0", "青石镇卫生院"]


def test_another_day_is_chosen_with_the_date_picker(board: Any) -> None:
    board.fill("#epidemic-day", "2026-07-05")
    board.dispatch_event("#epidemic-day", "change")
    expect(board.locator("#epidemic-date")).to_contain_text("2026-07-05", timeout=WAIT_MS)
    assert "早于平台启用日期" in board.text_content("#epidemic-date")
    board.fill("#epidemic-day", DAY)
    board.dispatch_event("#epidemic-day", "change")
    expect(board.locator("#epidemic-date")).to_contain_text(DAY, timeout=WAIT_MS)
    board.click("#epidemic-close")
    assert board.locator("#epidemic-dialog[open]").count() == 0


def test_a_township_sees_only_its_own_units(
    chromium: Any, server: LiveServer, console_stack: Stack, board: Any
) -> None:
    context, tab, errors = sign_in(chromium, server, console_stack.keys["township_a"])
    tab.click("#epidemic-btn")
    tab.wait_for_selector("#epidemic-dialog[open] #epidemic-townships", timeout=WAIT_MS)
    assert tab.locator("#epidemic-townships tbody tr").count() == 1
    assert row(tab, "城关镇")[:2] == ["城关镇", "2/3"]
    assert "青石镇" not in tab.text_content("#epidemic-body")
    context.close()
    assert errors == [], errors
