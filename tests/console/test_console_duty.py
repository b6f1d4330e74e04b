"""A console a duty officer can work from: the incident detail with everything a 信息专报 needs,
Chinese timeline sentences with names instead of ids, per-township acknowledgements of each
warning, approval only after reading the whole warning, and a board with a Beijing clock, the
recent backlog, a neutral zero-report tile before the cut-off, any day's summary and six warnings
on a 1366×768 screen. Headless Chromium against the embedded stack; screenshots go to
``$CONSOLE_SCREENSHOTS``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse
from zoneinfo import ZoneInfo

import pytest

from tests.console.support import LiveServer, warning_body
from tests.console.test_console_browser import SHOTS, WAIT_MS, chromium, expect, ok
from tests.support.bodies import incident_body
from tests.support.stack import TOWNSHIP_A, TOWNSHIP_B, Stack

pytestmark = pytest.mark.browser
__all__ = ["chromium"]  # the browser fixture, shared with the main console tests

LOCAL = ZoneInfo("Asia/Shanghai")
HEX_ID = re.compile(r"[0-9a-f]{32}")
LATIN = re.compile(r"[A-Za-z]")
ARABIC_LEVEL = re.compile(r"(?<!催报)[0-9０-９]+\s*级")


@pytest.fixture(scope="module")
def seeded(console_stack: Stack) -> dict[str, Any]:
    """A late, escalated landslide with a dispatch of a team and supplies under way; seven
    active warnings (one red, approved) and a red one awaiting approval."""
    stack = console_stack
    now = stack.clock.now()
    body = incident_body(
        now,
        TOWNSHIP_B,
        title="青石镇山体滑坡",
        category="geological",
        casualties={"deaths": 4, "injured": 2, "missing": 1, "trapped": 3},
        occurred_ago=timedelta(hours=3),
        discovered_ago=timedelta(hours=3),
        people_involved=12,
        trend="坡体仍有位移，险情可能扩大。",
        scope="青石镇石门村一组、二组",
    )
    slide = ok(stack.call("POST", "/v1/incidents", who="operator", json=body))
    assert slide["late"] and slide["escalated"], slide
    stack.settle()
    team = ok(stack.call("GET", f"/v1/dispatches/suggest?incident_id={slide['id']}"))["items"][0]
    line = ok(stack.call("GET", "/v1/stock"))["items"][0]
    order = {
        "incident_id": slide["id"],
        "team_ids": [team["team"]["id"]],
        "resources": [
            {"warehouse_id": line["warehouse_id"], "item_code": line["item_code"], "quantity": 1}
        ],
        "note": "增援",
    }
    dispatch = ok(stack.call("POST", "/v1/dispatches", json=order))
    ok(stack.call("POST", f"/v1/dispatches/{dispatch['id']}/status", json={"status": "en_route"}))
    towns = [t["code"] for t in ok(stack.call("GET", "/v1/townships"))["items"]]
    red = ok(
        stack.call(
            "POST",
            "/v1/warnings",
            who="department",
            json=warning_body(now, [TOWNSHIP_A, TOWNSHIP_B], level=1, headline="暴雨红色预警"),
        )
    )
    ok(stack.call("POST", f"/v1/warnings/{red['id']}/approve", who="leader", json={}))
    others = [
        ok(
            stack.call(
                "POST",
                "/v1/warnings",
                who="department",
                json=warning_body(
                    now, [towns[i % len(towns)]], level=3 + i % 2, headline=f"大风预警{i + 1}号"
                ),
            )
        )
        for i in range(6)
    ]
    pending = ok(
        stack.call(
            "POST",
            "/v1/warnings",
            who="department",
            json=warning_body(
                now,
                [TOWNSHIP_B],
                level=1,
                headline="雷电红色预警",
                description="未来3小时青石镇将出现强雷电，局地伴有10级以上雷暴大风。",
                instruction="停止户外作业，人员转移至安全场所，切断危险电源。",
            ),
        )
    )
    assert pending["status"] == "pending_approval", pending
    stack.settle()
    return {
        "slide": slide,
        "team": team["team"],
        "line": line,
        "dispatch": dispatch,
        "red": red,
        "others": others,
        "pending": pending,
    }


@pytest.fixture(scope="module")
def board(
    chromium: Any, server: LiveServer, console_stack: Stack, seeded: dict[str, Any]
) -> Iterator[Any]:
    """The duty leader's tab on a 1366×768 screen."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    context = chromium.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN")
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.goto(f"{server.url}/console")
    tab.fill("#key-input", console_stack.keys["leader"])
    tab.press("#key-input", "Enter")
    tab.wait_for_selector("#live.on", timeout=WAIT_MS)
    yield tab
    assert errors == [], errors
    context.close()


def test_the_incident_detail_shows_what_goes_upward(
    board: Any, console_stack: Stack, seeded: dict[str, Any]
) -> None:
    slide = ok(console_stack.call("GET", f"/v1/incidents/{seeded['slide']['id']}"))
    board.click(f"#list-incidents li[data-id='{slide['id']}'] button")
    board.wait_for_selector("#detail-timeline li.tl", timeout=WAIT_MS)
    expect(board.locator("#detail-facts")).to_contain_text("报告链", timeout=WAIT_MS)
    facts = dict(
        zip(
            board.locator("#detail-facts dt").all_text_contents(),
            board.locator("#detail-facts dd").all_text_contents(),
            strict=True,
        )
    )
    assert facts["已采取措施"] == slide["measures_taken"]
    assert facts["困难和需求"] == slide["needs"]
    assert facts["发展态势"] == "坡体仍有位移，险情可能扩大。"
    assert facts["影响范围"] == "青石镇石门村一组、二组"
    assert facts["涉及人数"] == "12 人"
    assert facts["报送人"] == "张伟（电话 13800001111）"
    assert facts["审签人"] == "李娜（电话 13900002222）"
    assert facts["报告方式"] == slide["source"]
    assert facts["升级原因"] == slide["escalation_details"][0]["text"]
    delay, limit = round(slide["report_delay_minutes"]), slide["late_limit_minutes"]
    roman = "ⅠⅡⅢⅣ"[slide["grade"] - 1]
    assert facts["迟报原因"] == (
        f"发现后 {delay} 分钟才首报，超过{roman}级事件首报时限 {limit} 分钟"
        f"（超出 {delay - limit} 分钟）"
    )
    assert facts["报告链"].startswith("首报")
    assert "迟报" in facts["报告链"]
    assert "续报 应报" in facts["报告时限"]
    assert "直接经济损失 15.0 万元" in facts["受灾"]

    sentences = board.locator("#detail-timeline .tl-summary").all_text_contents()
    joined = "\n".join(sentences)
    assert not LATIN.search(joined), joined  # no English, no codes
    assert "→" not in joined and "（geological）" not in joined
    assert f"启动{roman}级应急响应" in joined
    # Response levels and grades read Ⅰ–Ⅳ级, never 1级 or 「1级响应」 (催报N级 counts reminders).
    assert not ARABIC_LEVEL.search(joined), ARABIC_LEVEL.search(joined)
    assert f"调派{seeded['team']['name']}" in joined
    assert f"{seeded['team']['name']}由「已下令」转为「途中」" in joined
    assert "青石镇报告「青石镇山体滑坡」" in joined
    board.screenshot(path=str(SHOTS / "40-incident-detail.png"), full_page=True)
    board.keyboard.press("Escape")


def test_teams_warehouses_and_incidents_appear_by_name(board: Any, seeded: dict[str, Any]) -> None:
    row = board.locator(f"#list-dispatches li[data-id='{seeded['dispatch']['id']}']")
    text = row.text_content()
    assert seeded["team"]["name"] in text and "青石镇山体滑坡" in text
    assert seeded["line"]["name"] in text
    assert seeded["team"]["id"] not in text and seeded["line"]["warehouse_id"] not in text
    board_text = board.text_content("#board")
    assert not HEX_ID.search(board_text), HEX_ID.search(board_text)
    assert not re.search(r"\b[TW]\d{2}\b", board_text), board_text
    feed = board.text_content("#list-feed")
    assert seeded["team"]["name"] in feed and seeded["team"]["id"] not in feed


def test_the_warnings_panel_shows_who_has_signed_for_each_warning(
    board: Any, console_stack: Stack, seeded: dict[str, Any]
) -> None:
    red = seeded["red"]["id"]
    ok(console_stack.call("POST", f"/v1/warnings/{red}/ack", who="township_a", json={}))
    item = board.locator(f"#list-warnings li[data-id='{red}']")
    signed = item.locator(f".ack[data-code='{TOWNSHIP_A}']")
    expect(signed).to_have_attribute("aria-label", "城关镇已签收", timeout=WAIT_MS)
    assert signed.text_content() == "✓城关镇"
    waiting = item.locator(f".ack[data-code='{TOWNSHIP_B}']")
    assert waiting.get_attribute("aria-label") == "青石镇未签收"
    assert waiting.text_content() == "✗青石镇"
    assert item.locator(".ack-summary").text_content() == "签收 1/2"
    # Red first.
    assert board.locator("#list-warnings > li").first.get_attribute("data-id") == red
    board.screenshot(path=str(SHOTS / "41-acknowledgements.png"))


def test_six_warnings_fit_on_a_1366_by_768_screen(board: Any) -> None:
    box = board.locator("#list-warnings").bounding_box()
    items = board.locator("#list-warnings > li")
    assert items.count() >= 7
    for i in range(6):
        item = items.nth(i).bounding_box()
        assert item["y"] >= box["y"] - 1, i
        assert item["y"] + item["height"] <= box["y"] + box["height"] + 1, (i, item, box)


def test_a_red_warning_goes_out_only_after_its_full_text_was_confirmed(
    board: Any, console_stack: Stack, seeded: dict[str, Any]
) -> None:
    pending = seeded["pending"]
    button = board.get_by_role("button", name="批准: 雷电红色预警")
    button.click()
    dialog = board.locator("#approve-dialog")
    expect(dialog).to_be_visible()
    assert board.text_content("#approve-description") == pending["description"]
    assert board.text_content("#approve-instruction") == pending["instruction"]
    assert board.text_content("#approve-areas") == "青石镇"
    assert "防御指南" in dialog.text_content()
    board.screenshot(path=str(SHOTS / "42-approve-dialog.png"))
    board.click("#approve-cancel")
    expect(dialog).to_be_hidden()
    warning = ok(console_stack.call("GET", f"/v1/warnings/{pending['id']}"))
    assert warning["status"] == "pending_approval"  # nothing went out on the first click
    button.click()
    board.click("#approve-submit")
    board.wait_for_selector(
        f"#list-pending li[data-id='{pending['id']}']", state="detached", timeout=WAIT_MS
    )
    assert ok(console_stack.call("GET", f"/v1/warnings/{pending['id']}"))["status"] == "active"


def test_the_board_has_a_beijing_clock_and_the_recent_backlog(
    board: Any, console_stack: Stack, seeded: dict[str, Any]
) -> None:
    local = console_stack.clock.now().astimezone(LOCAL)
    expect(board.locator("#clock")).to_contain_text("北京时间")
    assert board.text_content("#clock-time").startswith(local.strftime("%H:%M"))
    # Signed in after the seeding: the feed already shows what happened before.
    feed = board.text_content("#list-feed")
    assert "青石镇报告「青石镇山体滑坡」" in feed
    assert "发布暴雨红色预警「暴雨红色预警」" in feed


def test_any_days_summary_can_be_printed(board: Any, console_stack: Stack) -> None:
    """A day after the county's first (the stack's), so the clock moves on a day meanwhile."""
    first_day = console_stack.clock.now()
    console_stack.clock.set(first_day + timedelta(days=1))
    try:
        yesterday = first_day.astimezone(LOCAL).date()
        board.fill("#summary-date", yesterday.isoformat())
        with (
            board.expect_request(lambda r: "/v1/summaries/daily" in r.url) as request,
            board.expect_popup() as popup_info,
        ):
            board.click("#summary-btn")
        assert parse_qs(urlparse(request.value.url).query)["date"] == [yesterday.isoformat()]
        popup = popup_info.value
        popup.wait_for_selector("h1", timeout=WAIT_MS)
        assert "日报" in popup.text_content("h1")
        popup.screenshot(path=str(SHOTS / "43-summary-yesterday.png"), full_page=True)
        popup.close()
    finally:
        console_stack.clock.set(first_day)


CALLER = {
    "caller_name": "陈刚",
    "caller_phone": "13700003333",
    "approver_name": "周敏",
    "approver_phone": "13600004444",
}


def phone_form(board: Any, **fields: str) -> Any:
    """The 电话报告 form opened and filled for 城关镇, a flood, with the caller and approver."""
    board.click("#phone-btn")
    form = board.locator("#incident-form")
    expect(form).to_be_visible()
    form.locator("select[name=township_code]").select_option(TOWNSHIP_A)
    form.locator("select[name=category]").select_option(label="洪涝")
    for name, value in {**fields, **CALLER}.items():
        form.locator(f"[name={name}]").fill(value)
    return form


def test_a_phoned_in_incident_is_entered_on_a_townships_behalf(
    board: Any, console_stack: Stack
) -> None:
    form = phone_form(
        board,
        title="城关镇东门桥被冲毁",
        description="山洪冲毁东门桥，两岸交通中断。",
        address="城关镇东门村",
        trapped="2",
        measures_taken="已封闭道路，设置警示。",
        needs="需要冲锋舟1艘。",
        trend="水位仍在上涨。",
    )
    assert form.locator("[name=taker]").input_value() == "leader"  # the signed-in officer
    board.screenshot(path=str(SHOTS / "46-phone-form.png"))
    form.locator("button[type=submit]").click()
    expect(board.locator("#detail-title")).to_have_text("城关镇东门桥被冲毁", timeout=WAIT_MS)
    listed = ok(console_stack.call("GET", "/v1/incidents?status=open"))["items"]
    created = next(i for i in listed if i["title"] == "城关镇东门桥被冲毁")
    assert created["township_code"] == TOWNSHIP_A
    assert created["source"] == "电话报告（接听人：leader）"
    assert created["received_by"] == {"name": "leader", "phone": None}  # 接听人
    assert created["reporter"] == {"name": "陈刚", "phone": "13700003333"}
    assert created["approver"] == {"name": "周敏", "phone": "13600004444"}
    assert created["casualties"]["trapped"] == 2 and created["trend"] == "水位仍在上涨。"
    assert created["reported_by"]["role"] == "leader"
    expect(board.locator("#detail-facts")).to_contain_text("电话报告（接听人：leader）")
    board.keyboard.press("Escape")


def test_a_report_sent_again_after_a_lost_answer_is_entered_once(
    board: Any, console_stack: Stack
) -> None:
    keys: list[str] = []
    lost: list[int] = []

    def lose_the_first_answer(route: Any) -> None:
        keys.append(route.request.headers.get("idempotency-key", ""))
        if lost:
            route.continue_()
            return
        lost.append(route.fetch().status)  # the server takes the report ...
        route.abort()  # ... and its answer never reaches the console

    board.route("**/v1/incidents", lose_the_first_answer)
    form = phone_form(
        board,
        title="城关镇南河堤坝渗水",
        description="南河堤坝背水坡渗水，已组织巡堤。",
        address="城关镇南河村",
        measures_taken="已设置警戒，组织巡堤。",
        needs="需要编织袋500条。",
    )
    form.locator("button[type=submit]").click()
    # The console says the action failed and keeps the form as it was.
    expect(form.locator(".form-error")).not_to_be_empty(timeout=WAIT_MS)
    expect(board.locator("#incident-dialog")).to_be_visible()
    form.locator("button[type=submit]").click()  # the officer sends it again
    expect(board.locator("#detail-title")).to_have_text("城关镇南河堤坝渗水", timeout=WAIT_MS)
    board.unroute("**/v1/incidents")
    assert lost == [201] and len(keys) == 2
    assert keys[0] and keys[0] == keys[1], keys
    listed = ok(console_stack.call("GET", "/v1/incidents?status=open&limit=200"))["items"]
    assert [i["title"] for i in listed].count("城关镇南河堤坝渗水") == 1
    board.keyboard.press("Escape")


def test_a_warning_is_issued_from_the_form(board: Any, console_stack: Stack) -> None:
    board.click("#warn-btn")
    form = board.locator("#warning-form")
    expect(form).to_be_visible()
    form.locator("select[name=hazard]").select_option(label="大风")
    form.locator("select[name=level]").select_option("3")
    form.locator("[name=headline]").fill("青石镇大风黄色预警")
    form.locator("[name=description]").fill("预计今天夜间青石镇有8级以上大风。")
    form.locator("[name=instruction]").fill("加固搭建物，停止高空作业。")
    form.locator(f"input[name=area][value='{TOWNSHIP_B}']").check()
    form.locator("button[type=submit]").click()
    expect(form).to_be_hidden(timeout=WAIT_MS)
    listed = ok(console_stack.call("GET", "/v1/warnings?status=active"))["items"]
    issued = next(w for w in listed if w["headline"] == "青石镇大风黄色预警")
    assert issued["hazard"] == "wind" and issued["level"] == 3
    assert issued["areas"] == [TOWNSHIP_B]
    board.locator(f"#list-warnings li[data-id='{issued['id']}']").wait_for(timeout=WAIT_MS)


def test_a_dispatch_is_ordered_from_the_incident_detail(
    board: Any, console_stack: Stack, seeded: dict[str, Any]
) -> None:
    slide = seeded["slide"]["id"]
    board.click(f"#list-incidents li[data-id='{slide}'] button")
    board.click("#dispatch-btn")
    form = board.locator("#dispatch-form")
    first = form.locator("input[name=team]").first
    first.wait_for(timeout=WAIT_MS)
    team = first.get_attribute("value")
    assert team not in form.text_content()  # teams by name
    first.check()
    line = seeded["line"]
    form.locator("select[name=stock]").select_option(f"{line['warehouse_id']}/{line['item_code']}")
    form.locator("[name=quantity]").fill("2")
    board.screenshot(path=str(SHOTS / "47-dispatch-form.png"))
    form.locator("button[type=submit]").click()
    expect(form).to_be_hidden(timeout=WAIT_MS)
    orders = ok(console_stack.call("GET", f"/v1/dispatches?incident_id={slide}"))["items"]
    ordered = [o for o in orders if o["id"] != seeded["dispatch"]["id"]]
    assert len(ordered) == 1, orders
    assert ordered[0]["team_ids"] == [team]
    assert ordered[0]["resources"][0]["quantity"] == 2
    board.locator(f"#list-dispatches li[data-id='{ordered[0]['id']}']").wait_for(timeout=WAIT_MS)
    board.keyboard.press("Escape")


def test_the_english_toggle_translates_the_new_texts(
    board: Any, console_stack: Stack, seeded: dict[str, Any]
) -> None:
    slide = ok(console_stack.call("GET", f"/v1/incidents/{seeded['slide']['id']}"))
    board.click("#lang-btn")
    try:
        board.click(f"#list-incidents li[data-id='{slide['id']}'] button")
        expect(board.locator("#detail-facts")).to_contain_text("Why late", timeout=WAIT_MS)
        facts = board.text_content("#detail-facts")
        assert "Measures taken" in facts and "Difficulties and needs" in facts
        delay = round(slide["report_delay_minutes"])
        assert f"First reported {delay} min after discovery" in facts
        sentences = board.locator("#detail-timeline .tl-summary").all_text_contents()
        assert any(s.startswith("Dispatched ") for s in sentences), sentences
        assert any(s.startswith("Response at level III activated") for s in sentences), sentences
        assert board.text_content("#clock").startswith("Beijing time")
        expect(board.locator("#zero-body .zero-provisional")).to_contain_text("(not yet due)")
        board.screenshot(path=str(SHOTS / "48-english-detail.png"))
        board.keyboard.press("Escape")
    finally:
        board.click("#lang-btn")
    expect(board.locator("html")).to_have_attribute("lang", "zh-CN")


def test_the_zero_report_tile_stays_neutral_until_the_cut_off(
    board: Any, console_stack: Stack
) -> None:
    now = console_stack.clock.now().astimezone(LOCAL)
    assert now.hour < 17  # the stack's day starts in the morning
    today = now.date()
    yesterday = today - timedelta(days=1)
    missed = ok(console_stack.call("GET", f"/v1/zero-reports?date={yesterday}"))
    todays = ok(console_stack.call("GET", f"/v1/zero-reports?date={today}"))
    assert missed["past_cutoff"] and not todays["past_cutoff"]
    # Only a day whose cut-off has passed counts as missed: yesterday's, not today's.
    expect(board.locator("#zero-due")).to_have_text(f"{yesterday:%m-%d} 已截止")
    assert board.text_content("#n-zero") == str(len(missed["missing"]))
    # Today's progress in the panel carries the provisional mark.
    cutoff = datetime.fromisoformat(todays["cutoff_at"]).astimezone(LOCAL)
    expect(board.locator("#zero-body .zero-provisional")).to_have_text(
        f" · {cutoff:%m-%d %H:%M} 截止（未到截止时间）"
    )
    board.screenshot(path=str(SHOTS / "44-zero-tile.png"))
    # Once today's cut-off passes, the tile moves on to today.
    console_stack.clock.advance((cutoff - now).total_seconds() + 300)
    console_stack.settle()
    board.click("#lang-btn")  # any full refresh
    board.click("#lang-btn")
    expect(board.locator("#zero-due")).to_have_text(f"{today:%m-%d} 已截止", timeout=WAIT_MS)
    assert board.text_content("#n-zero") == str(len(todays["missing"]))
    tile = board.locator("li[data-tile='zero']")
    expect(tile).to_have_class(re.compile(r"\bnonzero\b"))
