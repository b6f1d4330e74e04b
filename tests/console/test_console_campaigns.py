"""The console's 专项行动 dialog: the chosen campaign's period, rhythm and stages, and per
participant its reports filed of those owed, late and overdue, with the next one due; live
while open; overdue campaign reports in the 超时未报 panel under the campaign's name; a township
key sees its own row only. Headless Chromium against the embedded stack; screenshots go to
``$CONSOLE_SCREENSHOTS``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from tests.console.support import LiveServer
from tests.console.test_console_browser import SHOTS, WAIT_MS, chromium, expect, ok
from tests.console.test_console_concealment import sign_in
from tests.support.stack import TOWNSHIP_A, TOWNSHIP_B, Stack

pytestmark = pytest.mark.browser
__all__ = ["chromium"]  # the browser fixture, shared with the main console tests

NAME = "社会矛盾纠纷大排查"


@pytest.fixture(scope="module")
def campaign(console_stack: Stack) -> dict[str, Any]:
    """A campaign registered on its first day, a week before the stack's (so two periodic
    reports are overdue by now), two townships and the water bureau; 城关镇 filed its first
    report late."""
    body = {
        "name": NAME,
        "starts_on": "2026-06-29",
        "ends_on": "2026-07-20",
        "stages": [
            {"name": "组织动员", "ends_on": "2026-07-01"},
            {"name": "全面排查", "ends_on": "2026-07-20"},
        ],
        "participants": [TOWNSHIP_A, TOWNSHIP_B, "water"],
    }
    now = console_stack.clock.now()
    console_stack.clock.set(now - timedelta(days=7))
    started = ok(console_stack.call("POST", "/v1/campaigns", json=body))
    console_stack.clock.set(now)
    console_stack.ctx("reporting").resources["usecases"].scan_deadlines()
    report = {"participant": TOWNSHIP_A, "kind": "campaign_report", "content": "排查纠纷12起"}
    path = f"/v1/campaigns/{started['id']}/reports"
    ok(console_stack.call("POST", path, who="township_a", json=report))
    console_stack.settle()
    return started


@pytest.fixture(scope="module")
def board(
    chromium: Any, server: LiveServer, console_stack: Stack, campaign: dict[str, Any]
) -> Iterator[Any]:
    """A tab signed in as the duty operator, the dialog open on the campaign."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    context, tab, errors = sign_in(chromium, server, console_stack.keys["operator"])
    tab.click("#campaign-btn")
    tab.wait_for_selector("#campaign-dialog[open] #campaign-participants", timeout=WAIT_MS)
    tab.select_option("#campaign-pick", campaign["id"])
    expect(tab.locator("#campaign-period")).to_contain_text("2026-06-29", timeout=WAIT_MS)
    yield tab
    assert errors == [], errors
    context.close()


def row(tab: Any, name: str) -> list[str]:
    """The cells of a participant's row."""
    cells = tab.locator("#campaign-participants tbody tr", has_text=name).first.locator("td")
    return [cells.nth(i).text_content() or "" for i in range(cells.count())]


def test_each_participant_shows_its_reports_owed_and_overdue(board: Any) -> None:
    expect(board.locator("#campaign-title")).to_have_text("专项行动")
    assert "2026-06-29 至 2026-07-20 · 进行中" in board.text_content("#campaign-period")
    rhythm = board.text_content("#campaign-rhythm")
    assert "每3天报告一次" in rhythm and "2天内报送阶段报告" in rhythm
    assert "第1阶段 组织动员（2026-07-01 结束）" in board.text_content("#campaign-stages")
    town_a = row(board, "城关镇")
    assert town_a[1].startswith("已报 1/7") and "迟报 1" in town_a[1] and "逾期未报 1" in town_a[1]
    assert "逾期未报 1" in town_a[2]  # the first stage's report was due on 3 July
    water = row(board, "县水利局")
    assert "逾期未报 2" in water[1]
    assert "349901" not in board.text_content("#campaign-body")  # names, never raw codes
    board.screenshot(path=str(SHOTS / "45-campaigns.png"))


def test_a_new_report_appears_live(
    board: Any, console_stack: Stack, campaign: dict[str, Any]
) -> None:
    """The stream's ``campaign_report_filed`` refreshes the open dialog without a click."""
    report = {"participant": TOWNSHIP_B, "kind": "campaign_report", "content": "排查纠纷3起"}
    path = f"/v1/campaigns/{campaign['id']}/reports"
    ok(console_stack.call("POST", path, who="township_b", json=report))
    expect(
        board.locator("#campaign-participants tbody tr", has_text="青石镇").first
    ).to_contain_text("已报 1/7", timeout=WAIT_MS)
    board.click("#campaign-close")
    assert board.locator("#campaign-dialog[open]").count() == 0


def test_overdue_campaign_reports_are_named_by_their_campaign(board: Any) -> None:
    panel = board.locator("#list-deadlines")
    expect(panel).to_contain_text(f"专项行动「{NAME}」", timeout=WAIT_MS)
    expect(panel).to_contain_text("县水利局")


def test_a_township_sees_its_own_part_of_the_campaign(
    chromium: Any, server: LiveServer, console_stack: Stack, campaign: dict[str, Any]
) -> None:
    context, tab, errors = sign_in(chromium, server, console_stack.keys["township_a"])
    tab.wait_for_selector("#list-deadlines", timeout=WAIT_MS)
    tab.click("#campaign-btn")
    expect(tab.locator("#campaign-participants tbody tr", has_text="城关镇")).to_have_count(
        1, timeout=WAIT_MS
    )
    assert tab.locator("#campaign-participants tbody tr").count() == 1
    assert "青石镇" not in tab.text_content("#campaign-participants")
    assert "县水利局" not in tab.text_content("#campaign-participants")
    tab.screenshot(path=str(SHOTS / "45-campaigns-township.png"))
    context.close()
    assert errors == [], errors
