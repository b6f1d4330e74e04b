"""The duty day over HTTP: the roster entered and copied, who is on duty now, a vacancy raised a
day ahead, a handover pre-filled with the open work, confirmed and then immutable, printed as
.docx and PDF, a shift that ended without handover flagged, and spot checks in the month's
score (drills left out)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from libs.common.sqlite import loads
from services.reporting.duty.usecases import DutyUseCases
from tests.reporting.support import events_of, incident_reported, local, scan
from tests.reporting.test_documents import docx_text, pdf_text
from tests.support.errors import refusal
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

WEEK = "2026-07-06"  # a Monday; the stack starts at 10:00 that day (Beijing)
LEADER = {"name": "王建国", "phone": "13800000001"}
OFFICER = {"name": "李明", "phone": "13800000002"}
NIGHT_OFFICER = {"name": "赵强", "phone": "13800000003"}


def duty(stack: Stack) -> DutyUseCases:
    """The stack's duty office use cases (the timers call the same)."""
    found: DutyUseCases = stack.ctx("reporting").resources["duty_usecases"]
    return found


def ok(response: Any, status: int = 200) -> Any:
    """The JSON of a response that must have ``status``."""
    assert response.status_code == status, response.text
    return response.json()


def enter_today(stack: Stack, night: bool = True) -> dict[str, Any]:
    """Monday's day shift (and night shift) staffed."""
    shifts = [{"day": WEEK, "code": "day", "leader": LEADER, "officers": [OFFICER]}]
    if night:
        shifts.append({"day": WEEK, "code": "night", "leader": LEADER, "officers": [NIGHT_OFFICER]})
    return ok(stack.call("PUT", f"/v1/duty/roster/{WEEK}", json={"shifts": shifts}))


def test_the_week_is_entered_shown_now_and_copied_to_the_next_week(dstack: Stack) -> None:
    week = enter_today(dstack)
    assert len(week["shifts"]) == 14  # day and night, seven days
    monday_day = week["shifts"][0]
    assert monday_day["label"] == "白班" and monday_day["starts_at"] == "2026-07-06T00:00:00Z"
    assert monday_day["entered_by"] == "operator"
    now = ok(dstack.call("GET", "/v1/duty/now", who="township_a"))
    assert now["current"]["leader"] == LEADER and now["current"]["officers"] == [OFFICER]
    assert now["next"]["label"] == "夜班" and now["next"]["ends_at"] == "2026-07-07T00:00:00Z"
    copied = ok(dstack.call("POST", "/v1/duty/roster/2026-07-13/copy-last-week"))
    staffed = [s for s in copied["shifts"] if s["staffed"]]
    assert [(s["day"], s["code"]) for s in staffed] == [
        ("2026-07-13", "day"),
        ("2026-07-13", "night"),
    ]
    empty = dstack.call("POST", "/v1/duty/roster/2026-07-27/copy-last-week")
    assert empty.status_code == 409


def test_roster_input_is_checked_and_only_the_office_enters_it(dstack: Stack) -> None:
    bad_code = {"shifts": [{"day": WEEK, "code": "noon", "officers": [OFFICER]}]}
    answer = dstack.call("PUT", f"/v1/duty/roster/{WEEK}", json=bad_code)
    assert answer.status_code == 422 and answer.json()["error"]["fields"][0]["path"] == (
        "shifts.0.code"
    )
    other_week = {"shifts": [{"day": "2026-07-20", "code": "day", "officers": [OFFICER]}]}
    answer = dstack.call("PUT", f"/v1/duty/roster/{WEEK}", json=other_week)
    assert answer.json()["error"]["fields"][0]["path"] == "shifts.0.day"
    # Any day names its week: Tuesday's path enters Monday's week.
    tuesday = ok(dstack.call("PUT", "/v1/duty/roster/2026-07-07", json={"shifts": []}))
    assert tuesday["week"] == WEEK
    bad_phone = {
        "shifts": [{"day": WEEK, "code": "day", "officers": [{"name": "李", "phone": "x"}]}]
    }
    assert dstack.call("PUT", f"/v1/duty/roster/{WEEK}", json=bad_phone).status_code == 422
    forbidden = dstack.call("PUT", f"/v1/duty/roster/{WEEK}", who="township_a", json={"shifts": []})
    assert forbidden.status_code == 403


def test_a_roster_week_outside_1900_to_2999_is_refused_on_the_field(dstack: Stack) -> None:
    for week in ("0001-01-01", "9999-12-31"):
        answer = dstack.call("GET", "/v1/duty/roster", params={"week": week})
        assert refusal(answer) == (422, "validation_failed", ["query.week"]), week
    for week in ("9999-12-27", "0001-01-01"):
        answer = dstack.call("PUT", f"/v1/duty/roster/{week}", json={"shifts": []})
        assert refusal(answer) == (422, "validation_failed", ["path.week"]), week
    copied = dstack.call("POST", "/v1/duty/roster/0001-01-01/copy-last-week")
    assert refusal(copied) == (422, "validation_failed", ["path.week"])


def test_a_shift_entered_twice_in_one_week_is_refused(dstack: Stack) -> None:
    first = {"day": WEEK, "code": "day", "leader": LEADER, "officers": [OFFICER]}
    twice = {"shifts": [first, {**first, "officers": [NIGHT_OFFICER]}]}
    answer = dstack.call("PUT", f"/v1/duty/roster/{WEEK}", json=twice)
    assert refusal(answer) == (422, "invalid", ["shifts.1"])
    week = ok(dstack.call("GET", "/v1/duty/roster", params={"week": WEEK}))
    assert not any(s["staffed"] for s in week["shifts"])  # nothing of the refused week written


def test_a_shift_with_nobody_on_it_is_announced_a_day_ahead_once(dstack: Stack) -> None:
    enter_today(dstack, night=False)
    duty(dstack).scan_vacancies()  # the service's timer may have run this scan already
    assert duty(dstack).scan_vacancies() == 0
    dstack.settle()
    announced = [e["payload"]["shift_id"] for e in events_of(dstack, "duty_shift_unstaffed")]
    # Tonight and tomorrow's day shift start within 24 hours; today's day shift is staffed.
    assert sorted(announced) == ["2026-07-06/night", "2026-07-07/day"]


def test_the_handover_lists_the_open_work_is_confirmed_and_then_immutable(dstack: Stack) -> None:
    enter_today(dstack)
    incident_id = incident_reported(dstack, grade=2, category="flood").payload["incident_id"]
    dstack.clock.set(local(2026, 7, 6, 19, 30))
    scan(dstack)  # the 17:00 follow-up of the grade Ⅱ incident is now overdue
    opened = ok(
        dstack.call(
            "POST", "/v1/duty/handovers", json={"outgoing_officer": "李明", "notes": "雨情持续"}
        ),
        201,
    )
    snapshot = opened["snapshot"]
    assert [i["incident_id"] for i in snapshot["open_incidents_by_grade"]["2"]] == [incident_id]
    assert [d["incident_id"] for d in snapshot["overdue_deadlines"]] == [incident_id]
    assert snapshot["zero_reports_today"]["date"] == WEEK
    assert opened["duty_stamp"]["shift_id"] == "2026-07-06/day"
    again = dstack.call("POST", "/v1/duty/handovers", json={"outgoing_officer": "李明"})
    assert again.status_code == 409
    hid = opened["id"]
    ok(dstack.call("PATCH", f"/v1/duty/handovers/{hid}", json={"notes": "雨情持续，注意水库"}))
    dstack.clock.set(local(2026, 7, 6, 20, 5))
    confirmed = ok(
        dstack.call("POST", f"/v1/duty/handovers/{hid}/confirm", json={"incoming_officer": "赵强"})
    )
    assert confirmed["incoming_officer"] == "赵强" and confirmed["outgoing_officer"] == "李明"
    assert confirmed["confirmed_at"] == "2026-07-06T12:05:00Z"
    assert confirmed["notes"] == "雨情持续，注意水库"
    change = dstack.call("PATCH", f"/v1/duty/handovers/{hid}", json={"notes": "改"})
    assert change.status_code == 409 and change.json()["error"]["code"] == "handover_confirmed"
    twice = dstack.call(
        "POST", f"/v1/duty/handovers/{hid}/confirm", json={"incoming_officer": "某"}
    )
    assert twice.status_code == 409
    assert duty(dstack).scan_missing_handovers() == 0  # handed over: nothing to flag
    docx_bytes = dstack.call("GET", f"/v1/duty/handovers/{hid}/document", params={"format": "docx"})
    text = docx_text(docx_bytes.content)
    for expected in (
        "值班交接班记录",
        "交班人：李明",
        "接班人：赵强",
        "雨情持续，注意水库",
        "重大（Ⅱ级）",
    ):
        assert expected in text
    # A record kept in the office, not a 公文: its people by their parts, and no 版记.
    assert "签发人" not in text and "审核人" not in text and "印发" not in text
    pdf = dstack.call("GET", f"/v1/duty/handovers/{hid}/document", params={"format": "pdf"})
    assert pdf.headers["content-type"] == "application/pdf"
    assert "交班人：李明" in pdf_text(pdf.content).replace(" ", "")


def test_the_outgoing_officer_cannot_confirm_his_own_handover(dstack: Stack) -> None:
    enter_today(dstack)
    opened = dstack.call("POST", "/v1/duty/handovers", json={"outgoing_officer": "李明"})
    hid = ok(opened, 201)["id"]
    for himself in ("李明", " 李 明 "):
        answer = dstack.call(
            "POST", f"/v1/duty/handovers/{hid}/confirm", json={"incoming_officer": himself}
        )
        assert refusal(answer) == (422, "invalid", ["incoming_officer"])
        assert "接班人不能与交班人相同" in answer.json()["error"]["fields"][0]["reason"]
    assert ok(dstack.call("GET", f"/v1/duty/handovers/{hid}"))["confirmed_at"] is None
    confirmed = dstack.call(
        "POST", f"/v1/duty/handovers/{hid}/confirm", json={"incoming_officer": "赵强"}
    )
    assert ok(confirmed)["incoming_officer"] == "赵强"


def test_a_shift_that_ends_without_a_confirmed_handover_is_flagged(dstack: Stack) -> None:
    enter_today(dstack)
    ok(dstack.call("POST", "/v1/duty/handovers", json={"outgoing_officer": "李明"}), 201)
    dstack.clock.set(local(2026, 7, 6, 20, 30))
    assert duty(dstack).scan_missing_handovers() == 1
    assert duty(dstack).scan_missing_handovers() == 0
    dstack.settle()
    (flag,) = events_of(dstack, "duty_handover_missing")
    assert flag["payload"]["shift_id"] == "2026-07-06/day"
    week = ok(dstack.call("GET", "/v1/duty/roster", params={"week": WEEK}))
    assert week["shifts"][0]["handover_missing"] is True
    again = enter_today(dstack)  # re-entering the people does not clear the flag
    assert again["shifts"][0]["handover_missing"] is True
    tally = ok(dstack.call("GET", "/v1/duty/monthly", params={"month": "2026-07"}))["tally"]
    assert tally["missed_handovers"] == 1


def spot(stack: Stack, who: str = "operator", **fields: Any) -> Any:
    """Record a spot check made ten minutes ago."""
    body = {
        "called_at": (stack.clock.now() - timedelta(minutes=10)).isoformat(),
        "caller": "陈处长",
        "caller_unit": "市应急管理局",
        "answerer": "李明",
        "rings": 2,
        "result": "on_duty",
        **fields,
    }
    return stack.call("POST", "/v1/duty/spot-checks", who=who, json=body)


def test_spot_checks_are_listed_and_scored_and_drills_count_for_nothing(dstack: Stack) -> None:
    ok(spot(dstack, who="leader"), 201)
    ok(spot(dstack, rings=6), 201)
    ok(spot(dstack, answerer="", rings=None, minutes=15, result="absent"), 201)
    ok(spot(dstack, result="absent", answerer="", exercise=True), 201)
    assert spot(dstack, who="township_a").status_code == 403
    for closed in ("/v1/duty/monthly", "/v1/duty/spot-checks"):
        refused = dstack.call("GET", closed, who="township_a", params={"month": "2026-07"})
        assert refused.status_code == 403
    bad_month = dstack.call("GET", "/v1/duty/monthly", params={"month": "2026-13"})
    assert bad_month.status_code == 422
    missing = spot(dstack, answerer="")
    assert missing.status_code == 422 and missing.json()["error"]["fields"][0]["path"] == "answerer"
    assert spot(dstack, result="maybe").status_code == 422
    future = spot(dstack, called_at=(dstack.clock.now() + timedelta(hours=1)).isoformat())
    assert future.json()["error"]["fields"][0]["path"] == "called_at"
    month = ok(dstack.call("GET", "/v1/duty/monthly", params={"month": "2026-07"}))
    assert sorted(c["result_label"] for c in month["spot_checks"]) == ["在岗", "在岗", "脱岗"]
    assert month["tally"]["absent"] == 1 and month["tally"]["slow"] == 1
    # Nobody is on the roster: the shifts of the next day were announced empty (5 each).
    assert month["score"] == 100 - 10 - 2 - 5 * month["tally"]["unstaffed_shifts"]
    drills = ok(
        dstack.call("GET", "/v1/duty/spot-checks", params={"month": "2026-07", "exercise": "true"})
    )
    assert [c["result"] for c in drills["items"]] == ["absent"]
    assert month["spot_checks"][0]["shift_id"] == "2026-07-06/day"


def test_every_duty_write_carries_the_shift_in_force(dstack: Stack) -> None:
    enter_today(dstack)
    check = ok(spot(dstack), 201)
    assert check["duty_stamp"] == {
        "shift_id": "2026-07-06/day",
        "leader": "王建国",
        "officers": ["李明"],
    }
    stored = loads(
        duty(dstack).repo.db.query(  # type: ignore[attr-defined]
            "SELECT doc FROM shifts WHERE id = ?", ("2026-07-06/day",)
        )[0][0]
    )
    assert "duty_stamp" in stored
