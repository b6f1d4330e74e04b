"""The console's 矛盾纠纷 (督办台账) dialog: open dispute assignments overdue first (逾期 in red),
with level, township, incident, 稳控责任人, attempts at the level and the form the next
supervision must take; a row's attempts, supervisions and joint meetings; a supervision of the
required form recorded, a weaker one refused with the server's message, a joint meeting recorded
and listed on the assignment; a township key sees its own township's only. Headless Chromium
against the embedded stack; screenshots go to ``$CONSOLE_SCREENSHOTS``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from tests.console.support import LiveServer
from tests.console.test_console_browser import SHOTS, WAIT_MS, chromium, expect, ok
from tests.console.test_console_concealment import sign_in
from tests.support.bodies import incident_body
from tests.support.stack import TOWNSHIP_A, TOWNSHIP_B, Stack

pytestmark = pytest.mark.browser
__all__ = ["chromium"]  # the browser fixture, shared with the main console tests

LATE = "城关镇土地承包纠纷"
LATER = "青石镇山林权属纠纷"
DRILL = "演练：邻里宅基地纠纷"


def dispute(
    stack: Stack, who: str, code: str, title: str, hours: float, **extra: Any
) -> dict[str, Any]:
    """A dispute incident of ``code`` assigned by the duty office, due in ``hours``."""
    body = incident_body(stack.clock.now(), code, title=title, category="dispute", **extra)
    incident = ok(stack.call("POST", "/v1/incidents", who=who, json=body))
    stack.settle()
    assignment = {
        "incident_id": incident["id"],
        "responsible_leader": "李副镇长",
        "responsible_unit": "镇综治办",
        "due_at": (stack.clock.now() + timedelta(hours=hours)).isoformat(),
        "stability_contact": {"name": "王稳控", "phone": "13800000001", "unit": "镇派出所"},
    }
    return ok(stack.call("POST", "/v1/assignments", json=assignment))


@pytest.fixture(scope="module")
def assignments(console_stack: Stack) -> dict[str, dict[str, Any]]:
    """城关镇's dispute is overdue and mediated three times at group level (社) (so the next
    supervision must be 会议); 青石镇's is due later, listed after it; a drill is hidden until
    显示演练 is on."""
    dispute(console_stack, "township_a", TOWNSHIP_A, DRILL, hours=48, exercise=True)
    later = dispute(console_stack, "township_b", TOWNSHIP_B, LATER, hours=72)
    late = dispute(console_stack, "township_a", TOWNSHIP_A, LATE, hours=1)
    path = f"/v1/assignments/{late['id']}/attempts"
    for _ in range(3):
        attempt = {"level": late["level"], "outcome": "unresolved", "note": "调解未果"}
        ok(console_stack.call("POST", path, json=attempt))
    console_stack.clock.advance(2 * 3600)
    console_stack.ctx("dispatch").resources["dispute_usecases"].scan_overdue()
    console_stack.settle()
    return {"late": late, "later": later}


@pytest.fixture(scope="module")
def board(
    chromium: Any, server: LiveServer, console_stack: Stack, assignments: dict[str, Any]
) -> Iterator[Any]:
    """A tab signed in as the duty operator, the dialog open."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    context, tab, errors = sign_in(chromium, server, console_stack.keys["operator"])
    tab.locator("#h-incidents").screenshot(path=str(SHOTS / "47-disputes-link.png"))
    tab.click("#dispute-btn")
    tab.wait_for_selector("#dispute-dialog[open] #dispute-list", timeout=WAIT_MS)
    yield tab
    assert errors == [], errors
    context.close()


def rows(tab: Any) -> Any:
    return tab.locator("#dispute-list tbody tr")


def test_the_overdue_dispute_comes_first_in_red(board: Any) -> None:
    expect(board.locator("#dispute-title")).to_have_text("矛盾纠纷督办台账")
    expect(rows(board)).to_have_count(2, timeout=WAIT_MS)
    heads = board.locator("#dispute-list thead th").all_text_contents()
    assert heads == [
        *("层级", "乡镇", "纠纷事件", "稳控责任人"),
        *("本级调处/应调处", "化解时限", "下次督办"),
    ]
    first = rows(board).nth(0)
    expect(first).to_contain_text(LATE)
    cells = [first.locator("td").nth(i).text_content() or "" for i in range(7)]
    assert cells[0] == "社级" and cells[1] == "城关镇"
    assert cells[3] == "王稳控（13800000001）" and cells[4] == "3/3"
    assert "逾期" in cells[5] and cells[6] == "会议"
    color = first.locator(".dispute-overdue").evaluate("el => getComputedStyle(el).color")
    assert color == board.locator(".chip-missing").first.evaluate(
        "el => getComputedStyle(el).color"
    )
    second = rows(board).nth(1)
    expect(second).to_contain_text(LATER)
    assert "逾期" not in (second.text_content() or "")
    assert "349901" not in (board.text_content("#dispute-body") or "")


def test_a_weaker_form_is_refused_and_the_required_one_recorded(
    board: Any, assignments: dict[str, Any]
) -> None:
    rows(board).nth(0).click()
    detail = board.locator(f"#dispute-detail[data-assignment='{assignments['late']['id']}']")
    expect(detail).to_contain_text("调处记录（3）", timeout=WAIT_MS)
    options = board.locator("#dispute-supervise-form select[name=form] option")
    assert options.all_text_contents() == ["会议", "现场", "通报"]  # 发函 is too weak
    # The server refuses a form weaker than due: force one past the select to see its message.
    # In one step: a live refresh between forcing and sending would rebuild the select.
    board.evaluate(
        """() => { const f = document.querySelector('#dispute-supervise-form');
        const s = f.querySelector('select[name=form]');
        s.append(new Option('发函', 'letter')); s.value = 'letter';
        f.querySelector('input[name=by]').value = '县综治办'; f.requestSubmit(); }"""
    )
    expect(board.locator("#dispute-result")).to_contain_text("本次督办须采用「会议」或更高形式")
    board.select_option("#dispute-supervise-form select[name=form]", "meeting")
    board.fill("#dispute-supervise-form input[name=by]", "县综治办")
    board.fill("#dispute-supervise-form input[name=note]", "召开督办会")
    board.click("#dispute-supervise-form button[type=submit]")
    expect(board.locator("#dispute-result")).to_have_text("已记录会议督办。", timeout=WAIT_MS)
    supervisions = board.locator("#dispute-supervisions")
    expect(supervisions).to_contain_text("会议督办 · 县综治办：召开督办会")


def test_a_joint_meeting_is_listed_on_its_assignment(
    board: Any, console_stack: Stack, assignments: dict[str, Any]
) -> None:
    rows(board).nth(0).click()
    # Fill the form of the assignment chosen, once its record is shown (choosing one refreshes
    # the dialog, and a live refresh may come in between).
    chosen = board.locator(f"#dispute-forms[data-assignment='{assignments['late']['id']}']")
    expect(chosen).to_be_visible(timeout=WAIT_MS)
    form = chosen.locator("#dispute-meeting-form")
    form.locator("input[name=convener]").fill("县委政法委")
    form.locator("textarea[name=attendees]").fill("县司法局\n县信访局\n城关镇")
    form.locator("textarea[name=decisions]").fill("由城关镇牵头重新丈量\n十日内再次调解")
    form.locator("button[type=submit]").click()
    expect(board.locator("#dispute-result")).to_contain_text(
        "已记录联席会议（涉及 1 件纠纷）", timeout=WAIT_MS
    )
    meetings = board.locator("#dispute-meetings")
    expect(meetings).to_contain_text("联席会议（1）", timeout=WAIT_MS)
    expect(meetings).to_contain_text("县委政法委召集")
    expect(meetings).to_contain_text("县司法局、县信访局、城关镇")
    aid = assignments["late"]["id"]
    listed = console_stack.call("GET", f"/v1/assignments/{aid}").json()["joint_meetings"]
    assert [m["convener"] for m in listed] == ["县委政法委"]
    board.screenshot(path=str(SHOTS / "47-disputes.png"), full_page=False)


def test_a_new_supervision_appears_live(
    board: Any, console_stack: Stack, assignments: dict[str, Any]
) -> None:
    """The stream's ``assignment_supervised`` refreshes the open dialog without a click."""
    aid = assignments["late"]["id"]
    body = {"form": "onsite", "on": console_stack.clock.now().date().isoformat(), "by": "县政府"}
    # Someone is typing into the meeting form when the event arrives.
    convener = board.locator("#dispute-meeting-form input[name=convener]")
    convener.click()
    board.keyboard.type("县委")
    ok(console_stack.call("POST", f"/v1/assignments/{aid}/supervisions", json=body))
    supervisions = board.locator("#dispute-supervisions")
    expect(supervisions).to_contain_text("现场督办 · 县政府", timeout=WAIT_MS)
    # The refresh left the form where it was: the field kept the focus and the typing goes on.
    board.keyboard.type("政法委")
    assert convener.input_value() == "县委政法委"
    assert board.evaluate("document.activeElement.name") == "convener"
    convener.fill("")
    board.click("#dispute-close")
    assert board.locator("#dispute-dialog[open]").count() == 0


def test_a_township_sees_only_its_own(
    chromium: Any, server: LiveServer, console_stack: Stack, assignments: dict[str, Any]
) -> None:
    context, tab, errors = sign_in(chromium, server, console_stack.keys["township_b"])
    tab.click("#dispute-btn")
    tab.wait_for_selector("#dispute-dialog[open] #dispute-list", timeout=WAIT_MS)
    expect(rows(tab)).to_have_count(1, timeout=WAIT_MS)
    expect(rows(tab).first).to_contain_text(LATER)
    assert LATE not in (tab.text_content("#dispute-body") or "")
    covers = tab.locator("#dispute-meeting-form .dispute-covers input")
    assert covers.count() == 1  # a meeting may cover only its own township's disputes
    context.close()
    assert errors == [], errors


def test_keys_the_api_does_not_serve_have_no_link(
    chromium: Any, server: LiveServer, console_stack: Stack
) -> None:
    context, tab, errors = sign_in(chromium, server, console_stack.keys["department"])
    assert tab.locator("#dispute-btn").is_hidden()
    context.close()
    assert errors == [], errors


def test_drills_show_only_with_the_switch(
    chromium: Any, server: LiveServer, console_stack: Stack, assignments: dict[str, Any]
) -> None:
    context, tab, errors = sign_in(chromium, server, console_stack.keys["leader"])
    tab.click("#exercise-input")
    tab.click("#dispute-btn")
    tab.wait_for_selector("#dispute-dialog[open] #dispute-list", timeout=WAIT_MS)
    drill = rows(tab).filter(has_text=DRILL)
    expect(drill).to_have_count(1, timeout=WAIT_MS)
    expect(drill.locator(".chip-exercise")).to_have_text("演练")
    context.close()
    assert errors == [], errors
