"""What the console must not do silently: write "null" into a dialog, claim 零报告 for a day on
which nobody filed, open the 专项行动 dialog on a drill while drills are hidden, send an order
without the supply that was chosen, drop a roster entry without a name, make up a rejection
reason, or show an admin key a board of 403s and a report button it may not use. Headless
Chromium against the embedded stack; screenshots go to ``$CONSOLE_SCREENSHOTS``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.console.support import LiveServer, warning_body
from tests.console.test_console_browser import SHOTS, WAIT_MS, chromium, expect, ok
from tests.console.test_console_concealment import sign_in
from tests.support.bodies import incident_body
from tests.support.stack import TOWNSHIP_A, TOWNSHIP_B, Stack

pytestmark = pytest.mark.browser
__all__ = ["chromium"]  # the browser fixture, shared with the main console tests

WEEK = "2026-07-06"  # the stack's Monday and first day: nothing filed yet
REPORTER = {"name": "钱玉兰", "phone": "13900001002"}


@pytest.fixture(autouse=True)
def closed_dialogs(board: Any) -> Iterator[None]:
    """Each test starts on the bare board, whatever the one before left open."""
    yield
    board.evaluate("document.querySelectorAll('dialog[open]').forEach((d) => d.close())")
    board.keyboard.press("Escape")  # the incident detail


def campaign(stack: Stack, name: str, exercise: bool) -> dict[str, Any]:
    """A campaign of 城关镇 without stages, begun on the stack's first day."""
    body = {
        "name": name,
        "starts_on": WEEK,
        "ends_on": "2026-07-20",
        "participants": [TOWNSHIP_A],
        "exercise": exercise,
    }
    return ok(stack.call("POST", "/v1/campaigns", json=body))


@pytest.fixture(scope="module")
def seeded(console_stack: Stack) -> dict[str, Any]:
    """A flood with one team sent to it, an orange warning awaiting a leader, a real campaign
    and a newer drill one (both without stages)."""
    stack = console_stack
    now = stack.clock.now()
    flood = ok(stack.call("POST", "/v1/incidents", json=incident_body(now, TOWNSHIP_B)))
    stack.settle()
    suggested = ok(stack.call("GET", f"/v1/dispatches/suggest?incident_id={flood['id']}"))
    team = suggested["items"][0]["team"]["id"]
    order = {"incident_id": flood["id"], "team_ids": [team], "resources": [], "note": ""}
    ok(stack.call("POST", "/v1/dispatches", json=order))
    orange = warning_body(now, [TOWNSHIP_A], level=2, headline="暴雨橙色预警")
    pending = ok(stack.call("POST", "/v1/warnings", who="department", json=orange))
    real = campaign(stack, "安全生产大排查", exercise=False)
    stack.clock.advance(60)  # the drill is the newer one, not by the luck of two equal times
    drill = campaign(stack, "防汛演练专项", exercise=True)
    stack.settle()
    return {"flood": flood, "pending": pending, "real": real, "drill": drill}


@pytest.fixture(scope="module")
def board(
    chromium: Any, server: LiveServer, console_stack: Stack, seeded: dict[str, Any]
) -> Iterator[Any]:
    """A tab signed in as the duty operator (drills hidden, the default)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    context, tab, errors = sign_in(chromium, server, console_stack.keys["operator"])
    yield tab
    assert errors == [], errors
    context.close()


def test_the_epidemic_dialog_claims_no_zero_reports_before_everyone_filed(
    board: Any, console_stack: Stack
) -> None:
    board.click("#epidemic-btn")
    board.wait_for_selector("#epidemic-dialog[open] #epidemic-townships", timeout=WAIT_MS)
    text = board.text_content("#epidemic-body")
    assert "null" not in text  # no drill reports: nothing written in their place
    assert "已报齐 0" in board.text_content("#epidemic-totals")
    assert board.text_content("#epidemic-diseases") == "尚无单位报送"
    assert "零报告" not in text
    board.screenshot(path=str(SHOTS / "guards-epidemic-nothing-filed.png"))
    # One unit files zeros: what is said is what was filed, not the whole county's 零报告.
    zeros = {"unit_id": "H02", "date": WEEK, "zero_for_rest": True, "reporter": REPORTER}
    ok(console_stack.call("POST", "/v1/epidemic/reports", json=zeros))
    expect(board.locator("#epidemic-diseases")).to_have_text(
        "已报单位均未报告病例（尚有 24 个单位未报齐）", timeout=WAIT_MS
    )
    board.click("#epidemic-close")


def test_the_campaign_dialog_opens_on_the_newest_real_campaign_while_drills_are_hidden(
    board: Any, seeded: dict[str, Any]
) -> None:
    board.click("#campaign-btn")
    board.wait_for_selector("#campaign-dialog[open] #campaign-participants", timeout=WAIT_MS)
    assert board.input_value("#campaign-pick") == seeded["real"]["id"]
    assert "null" not in board.text_content("#campaign-body")  # no stages: no stage line
    assert board.locator("#campaign-stages").count() == 0
    board.select_option("#campaign-pick", seeded["drill"]["id"])
    expect(board.locator("#campaign-drill")).to_have_text("演练", timeout=WAIT_MS)
    period = board.text_content("#campaign-period")
    assert period.endswith("进行中 · 演练"), period  # the drill marker stands apart
    board.screenshot(path=str(SHOTS / "guards-campaign-drill.png"))
    board.click("#campaign-close")


def open_dispatch_form(board: Any, incident: str) -> Any:
    """The dispatch form of ``incident``, its suggested teams loaded."""
    board.click(f"#list-incidents li[data-id='{incident}'] button")
    board.click("#dispatch-btn")
    form = board.locator("#dispatch-form")
    form.locator("input[name=team]").first.wait_for(timeout=WAIT_MS)
    return form


def close_dispatch_form(board: Any, form: Any) -> None:
    """Cancel the form and close the incident detail."""
    form.locator(".form-cancel").click()
    board.keyboard.press("Escape")


def test_a_chosen_supply_without_a_quantity_is_flagged_not_dropped(
    board: Any, console_stack: Stack, seeded: dict[str, Any]
) -> None:
    flood = seeded["flood"]["id"]
    before = ok(console_stack.call("GET", f"/v1/dispatches?incident_id={flood}"))["items"]
    form = open_dispatch_form(board, flood)
    form.locator("input[name=team]").first.check()
    stock = form.locator("select[name=stock] option").nth(1).get_attribute("value")
    form.locator("select[name=stock]").select_option(stock)
    form.locator("button[type=submit]").click()  # 数量 left at 0
    error = form.locator(".form-error")
    expect(error).to_contain_text("已选物资，请填写调派数量")
    assert form.locator("[name=quantity]").get_attribute("aria-invalid") is not None
    board.screenshot(path=str(SHOTS / "guards-dispatch-quantity.png"))
    after = ok(console_stack.call("GET", f"/v1/dispatches?incident_id={flood}"))["items"]
    assert len(after) == len(before)  # nothing sent without the supply
    form.locator("[name=quantity]").fill("2")
    expect(error).to_have_text("")
    close_dispatch_form(board, form)


def test_the_empty_order_message_goes_once_the_form_is_valid(
    board: Any, seeded: dict[str, Any]
) -> None:
    form = open_dispatch_form(board, seeded["flood"]["id"])
    form.locator("button[type=submit]").click()
    error = form.locator(".form-error")
    expect(error).to_contain_text("请至少选择一支队伍或一项物资")
    form.locator("input[name=team]").first.check()
    expect(error).to_have_text("")
    close_dispatch_form(board, form)


def test_a_roster_phone_without_a_name_is_flagged_not_dropped(
    board: Any, console_stack: Stack
) -> None:
    board.click("#duty-btn")
    row = board.locator(f"#duty-roster-body tr[data-day='{WEEK}'][data-code='day']")
    row.wait_for(timeout=WAIT_MS)
    row.locator("[name=o1-name]").fill("李明")
    row.locator("[name=o1-phone]").fill("13800000002")
    row.locator("[name=o2-phone]").fill("13800000003")
    board.click("#duty-roster-save")
    expect(board.locator("#duty-roster-error")).to_contain_text("请填写姓名")
    assert row.locator("[name=o2-name]").get_attribute("aria-invalid") is not None
    board.screenshot(path=str(SHOTS / "guards-roster-name.png"))
    week = ok(console_stack.call("GET", f"/v1/duty/roster?week={WEEK}"))
    assert all(not s["officers"] for s in week["shifts"])  # nothing saved without the name
    row.locator("[name=o2-name]").fill("赵强")
    board.click("#duty-roster-save")
    expect(board.locator("#duty-roster-status")).to_have_text("值班表已保存。", timeout=WAIT_MS)
    assert board.text_content("#duty-roster-error") == ""
    week = ok(console_stack.call("GET", f"/v1/duty/roster?week={WEEK}"))
    shift = next(s for s in week["shifts"] if s["day"] == WEEK and s["code"] == "day")
    assert [o["name"] for o in shift["officers"]] == ["李明", "赵强"]


def test_roster_typing_survives_a_look_at_another_tab(board: Any) -> None:
    board.click("#duty-btn")
    night = board.locator(f"#duty-roster-body tr[data-day='{WEEK}'][data-code='night']")
    night.wait_for(timeout=WAIT_MS)
    night.locator("[name=o1-name]").fill("孙丽")
    board.click("#duty-tab-spot")
    board.click("#duty-tab-roster")
    expect(night.locator("[name=o1-name]")).to_have_value("孙丽")
    board.click("#duty-close")


def test_a_rejection_needs_a_reason_that_is_not_blank(
    chromium: Any, server: LiveServer, console_stack: Stack, seeded: dict[str, Any]
) -> None:
    context, tab, errors = sign_in(chromium, server, console_stack.keys["leader"])
    pending = seeded["pending"]
    tab.get_by_role("button", name="驳回: 暴雨橙色预警").click()
    tab.fill("#reject-reason", "   ")
    tab.click("#reject-form button[type=submit]")
    expect(tab.locator("#reject-error")).to_have_text("请填写驳回理由（将告知发布单位）。")
    expect(tab.locator("#reject-dialog")).to_be_visible()
    tab.screenshot(path=str(SHOTS / "guards-reject-blank.png"))
    warning = ok(console_stack.call("GET", f"/v1/warnings/{pending['id']}"))
    assert warning["status"] == "pending_approval"  # nothing sent
    tab.fill("#reject-reason", "范围有误，请重新研判")
    tab.click("#reject-form button[type=submit]")
    expect(tab.locator("#reject-dialog")).to_be_hidden()
    expect(tab.locator(f"#list-pending li[data-id='{pending['id']}']")).to_have_count(
        0, timeout=WAIT_MS
    )
    warning = ok(console_stack.call("GET", f"/v1/warnings/{pending['id']}"))
    assert warning["status"] == "rejected"
    # The feed tells which draft was rejected, by whom and why (the issuer learns it there).
    feed = tab.locator("#list-feed")
    expect(feed).to_contain_text("预警「暴雨橙色预警」第1版", timeout=WAIT_MS)
    expect(feed).to_contain_text("范围有误，请重新研判")
    context.close()
    assert errors == [], errors


def test_an_admin_key_is_told_once_that_incidents_are_not_its_to_read(
    chromium: Any, server: LiveServer, console_stack: Stack, seeded: dict[str, Any]
) -> None:
    context, tab, errors = sign_in(chromium, server, console_stack.keys["admin"])
    failed: list[str] = []
    tab.on("response", lambda r: failed.append(r.url) if r.status == 403 else None)
    tab.locator("#list-dispatches li").first.wait_for(timeout=WAIT_MS)
    expect(tab.locator("#list-incidents")).to_have_text(
        "管理员账号不查看业务数据：事件由值班员、值班领导、部门和乡镇查看。"
    )
    assert tab.locator("#panel-incidents .panel-error").is_hidden()
    assert tab.locator("[data-tile=incidents]").is_hidden()
    assert tab.locator("[data-tile=major]").is_hidden()
    assert "–" not in tab.inner_text("#tiles")  # no tile without a number
    assert tab.locator("#phone-btn").is_hidden()  # intake takes no report from an admin
    entry = tab.locator("#list-dispatches li").first
    assert "（事件）" not in entry.text_content()
    assert entry.locator(".item-title").text_content() == "调度单"
    tab.screenshot(path=str(SHOTS / "guards-admin-board.png"))
    tab.click("#lang-btn")  # a full refresh, watched for 403s
    expect(tab.locator("#list-incidents")).to_contain_text("Admin keys do not read case data")
    tab.click("#lang-btn")
    assert not [u for u in failed if "/v1/incidents" in u], failed
    context.close()
    assert errors == [], errors
