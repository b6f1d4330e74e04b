"""The console's 信息报送 dialog: each unit's quota with 未完成 flags, the month's rankings of
departments and townships, the month's items, and the county office recording adoption and a
leader's instruction; a township key sees its own township. Headless Chromium against the
embedded stack; screenshots go to ``$CONSOLE_SCREENSHOTS``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.console.support import LiveServer
from tests.console.test_console_browser import SHOTS, WAIT_MS, chromium, expect, ok
from tests.console.test_console_concealment import sign_in
from tests.support.stack import TOWNSHIP_A, Stack

pytestmark = pytest.mark.browser
__all__ = ["chromium"]  # the browser fixture, shared with the main console tests


def submit(stack: Stack, who: str, kind: str, code: str, title: str, **extra: Any) -> Any:
    body = {
        "unit_kind": kind,
        "unit_code": code,
        "kind": "info",
        "title": title,
        "body": "受上游来水影响，河段水位较昨日上涨0.8米，已安排专人巡查。",
        **extra,
    }
    return ok(stack.call("POST", "/v1/information/items", who=who, json=body))


@pytest.fixture(scope="module")
def seeded(console_stack: Stack) -> None:
    """The water bureau's week filled (5 items), the weather bureau's 2, 城关镇's one; a drill."""
    for number in range(5):
        submit(
            console_stack, "water_department", "department", "water", f"水情信息第{number + 1}条"
        )
    for number in range(2):
        submit(
            console_stack, "department", "department", "meteorology", f"气象信息第{number + 1}条"
        )
    submit(console_stack, "township_a", "township", TOWNSHIP_A, "城关镇汛情")
    submit(console_stack, "water_department", "department", "water", "演练信息", exercise=True)
    console_stack.settle()


@pytest.fixture(scope="module")
def board(chromium: Any, server: LiveServer, console_stack: Stack, seeded: None) -> Iterator[Any]:
    """A tab signed in as the duty leader, the dialog open."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    context, tab, errors = sign_in(chromium, server, console_stack.keys["leader"])
    tab.screenshot(path=str(SHOTS / "43-information-link.png"))  # the link in 今日零报告
    tab.click("#info-btn")
    tab.wait_for_selector("#info-dialog[open] #info-quotas", timeout=WAIT_MS)
    yield tab
    assert errors == [], errors
    context.close()


def cells(tab: Any, table: str, name: str) -> list[str]:
    """The cells of a unit's row in one of the dialog's tables."""
    row = tab.locator(f"#{table} tbody tr", has_text=name).first.locator("td")
    return [row.nth(i).text_content() for i in range(row.count())]


def test_quotas_flag_the_units_behind(board: Any) -> None:
    expect(board.locator("#info-title")).to_have_text("信息报送")
    board.screenshot(path=str(SHOTS / "44-information-quotas.png"))
    departments, townships = "info-quotas-department", "info-quotas-township"
    assert cells(board, departments, "县水利局") == ["县水利局", "5/5 已完成", "0/2 未完成"]
    assert cells(board, departments, "县气象局")[1] == "2/5 未完成"
    assert cells(board, townships, "城关镇")[1] == "1/17 未完成"  # 26 of July's 31 days owed
    assert "未完成" in board.text_content("#info-unfinished")
    assert "演练信息" not in board.text_content("#info-body")  # drills apart


def test_the_ranking_and_recording_an_adoption(board: Any) -> None:
    assert cells(board, "info-rank-departments", "县水利局")[:3] == ["1", "县水利局", "5"]
    form = board.locator("#info-feedback-form")
    form.locator("select[name=target_id]").select_option(label="县水利局：水情信息第1条")
    form.locator("select[name=level]").select_option("city")
    form.locator("input[name=by]").fill("市政府办公室《政务信息》")
    form.locator("button[type=submit]").click()
    water = board.locator("#info-rank-departments tbody tr", has_text="县水利局").first
    expect(water.locator("td").nth(2)).to_have_text("9", timeout=WAIT_MS)  # 5 items + 市级 4
    assert cells(board, "info-rank-departments", "县水利局")[2:4] == ["9", "4"]
    expect(board.locator("#info-items")).to_contain_text("市级采用")
    board.locator("#info-rank-departments").scroll_into_view_if_needed()
    board.screenshot(path=str(SHOTS / "45-information.png"))


def test_recording_an_instruction(board: Any, console_stack: Stack) -> None:
    # A live event re-renders the dialog while the form is being filled: the form stays as typed.
    submit(console_stack, "township_a", "township", TOWNSHIP_A, "城关镇汛情续")
    form = board.locator("#info-feedback-form")
    form.locator("select[name=target_id]").select_option(label="县气象局：气象信息第1条")
    form.locator("select[name=type]").select_option("instruction")
    form.locator("select[name=level]").select_option("county")  # the form kept 市级 from before
    form.locator("input[name=leader]").fill("县长")
    form.locator("input[name=text]").fill("请气象局加密监测。")
    form.locator("button[type=submit]").click()
    expect(board.locator("#info-feedback-result")).to_contain_text(
        "获县长（县级）批示", timeout=WAIT_MS
    )
    weather = board.locator("#info-rank-departments tbody tr", has_text="县气象局").first
    expect(weather.locator("td").nth(2)).to_have_text("5", timeout=WAIT_MS)  # 2 items + 批示 3
    assert cells(board, "info-rank-departments", "县气象局")[2:5] == ["5", "0", "3"]
    board.locator("#info-feedback-form").scroll_into_view_if_needed()
    board.screenshot(path=str(SHOTS / "46-information-feedback.png"))


def test_a_township_sees_its_own_row_and_records_nothing(
    chromium: Any, server: LiveServer, console_stack: Stack, board: Any
) -> None:
    context, tab, errors = sign_in(chromium, server, console_stack.keys["township_a"])
    tab.click("#info-btn")
    tab.wait_for_selector("#info-dialog[open] #info-quotas", timeout=WAIT_MS)
    assert tab.locator("#info-rank-townships tbody tr").count() == 1
    assert "青石镇" not in tab.text_content("#info-body")
    assert tab.locator("#info-feedback-form").count() == 0
    context.close()
    assert errors == [], errors
