"""Information work (信息报送, 篇6) over HTTP on the reporting service: departments and townships
submit items and research items, the county office records adoption, instructions and notices,
quotas show 未完成 and the timer flags missed ones at the period's end, monthly scores rank
departments and townships apart, and drills count nowhere."""

from __future__ import annotations

from typing import Any

import pytest

from services.reporting import service as reporting_service
from tests.reporting.support import events_of, incident_reported, report_body
from tests.support.errors import refusal
from tests.support.stack import TOWNSHIP_A, TOWNSHIP_B, Stack

pytestmark = pytest.mark.e2e

MONTH = "2026-07"  # the stack starts on Monday 2026-07-06, 10:00 local
WATER = "water"
WEATHER = "meteorology"


def item(unit_code: str, unit_kind: str = "department", **extra: Any) -> dict[str, Any]:
    """An information item body."""
    body = {
        "unit_kind": unit_kind,
        "unit_code": unit_code,
        "kind": "info",
        "title": "城关镇河段水位上涨",
        "body": "受上游来水影响，城关镇河段水位较昨日上涨0.8米，已安排专人巡查。",
    }
    return {**body, **extra}


def submit(stack: Stack, body: dict[str, Any], who: str = "water_department", **kw: Any) -> Any:
    return stack.call("POST", "/v1/information/items", who=who, json=body, **kw)


def submit_many(
    stack: Stack, n: int, unit: str = WATER, who: str = "water_department"
) -> list[str]:
    ids = []
    for number in range(n):
        response = submit(stack, item(unit, title=f"水情信息第{number + 1}条"), who=who)
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


def quota_row(stack: Stack, code: str, who: str = "operator", **params: str) -> dict[str, Any]:
    response = stack.call("GET", "/v1/information/quotas", who=who, params=params)
    assert response.status_code == 200, response.text
    return next(r for r in response.json()["items"] if r["unit_code"] == code)


def scores(stack: Stack, month: str = MONTH, who: str = "operator") -> dict[str, Any]:
    response = stack.call("GET", "/v1/information/scores", who=who, params={"month": month})
    assert response.status_code == 200, response.text
    return dict(response.json())


def row_of(result: dict[str, Any], code: str) -> dict[str, Any]:
    rows = result["departments"] + result["townships"]
    return next(r for r in rows if r["unit_code"] == code)


def scan(stack: Stack) -> int:
    info = reporting_service.information_work(stack.ctx("reporting"))
    raised = info.scan_missed()
    stack.settle()
    return raised


def feedback(stack: Stack, path: str, body: dict[str, Any], who: str = "operator") -> Any:
    return stack.call("POST", f"/v1/information/{path}", who=who, json=body)


def adoption(target_id: str, level: str = "city", **extra: Any) -> dict[str, Any]:
    body = {"target_kind": "item", "target_id": target_id, "level": level}
    return {**body, "by": "市政府办公室《政务信息》", "date": "2026-07-06", **extra}


def instruction(target_id: str, **extra: Any) -> dict[str, Any]:
    body = {"target_kind": "item", "target_id": target_id, "level": "county"}
    return {**body, "leader": "县长", "text": "请水利局加强巡查。", "date": "2026-07-06", **extra}


def test_a_department_fills_its_weekly_quota(rstack: Stack) -> None:
    row = quota_row(rstack, WATER)
    assert (row["items"]["required"], row["items"]["submitted"]) == (5, 0)
    assert row["items"]["status_label"] == "未完成" and row["unfinished"]
    submit_many(rstack, 4)
    assert quota_row(rstack, WATER)["items"]["shortfall"] == 1
    submit_many(rstack, 1)
    row = quota_row(rstack, WATER)
    assert (row["items"]["status"], row["items"]["period_kind"]) == ("done", "week")
    assert row["research"]["unfinished"]  # two research items a month are still owed
    rstack.settle()
    assert len(events_of(rstack, "information_item_submitted")) == 5


def test_a_key_speaks_only_for_its_own_unit(rstack: Stack) -> None:
    assert refusal(submit(rstack, item(WEATHER))) == (403, "forbidden_unit", ["unit_code"])
    other = item(TOWNSHIP_B, "township")
    assert refusal(submit(rstack, other, who="township_a"))[:2] == (403, "forbidden_township")
    assert submit(rstack, item(TOWNSHIP_A, "township"), who="township_a").status_code == 201
    assert submit(rstack, item(WEATHER), who="operator").status_code == 201  # 代录
    assert refusal(submit(rstack, item("nowhere"), who="operator")) == (
        422,
        "invalid",
        ["unit_code"],
    )
    bad = submit(rstack, item(WATER, title="水位\u0007上涨"))
    assert refusal(bad)[0] == 422 and refusal(bad)[2] == ["title"]
    leader = submit(rstack, item(WATER), who="leader")
    assert refusal(leader)[:2] == (403, "forbidden_role")
    mine = rstack.call(
        "GET", "/v1/information/items", who="township_a", params={"month": MONTH}
    ).json()["items"]
    assert [i["unit_code"] for i in mine] == [TOWNSHIP_A]


def test_a_retry_with_the_same_key_returns_the_stored_item(rstack: Stack) -> None:
    headers = {"Idempotency-Key": "water-0706-1"}
    first = submit(rstack, item(WATER), headers=headers)
    again = submit(rstack, item(WATER), headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    changed = submit(rstack, item(WATER, title="另一条信息"), headers=headers)
    assert refusal(changed)[:2] == (409, "idempotency_conflict")
    assert quota_row(rstack, WATER)["items"]["submitted"] == 1


def test_adoption_and_instructions_are_recorded_once_and_scored(rstack: Stack) -> None:
    [first, second] = submit_many(rstack, 2)
    created = feedback(rstack, "adoptions", adoption(first))
    assert created.status_code == 201, created.text
    adopted = "县水利局「水情信息第1条」获市级采用（市政府办公室《政务信息》）"
    assert created.json()["summary"] == adopted
    assert feedback(rstack, "adoptions", adoption(first)).status_code == 200
    other = feedback(rstack, "adoptions", adoption(first, by="市应急管理局简报"))
    assert refusal(other)[:2] == (409, "feedback_conflict")
    assert feedback(rstack, "adoptions", adoption(first, level="province")).status_code == 201
    assert feedback(rstack, "instructions", instruction(second)).status_code == 201
    assert feedback(rstack, "instructions", instruction(second)).status_code == 200
    viewed = rstack.call("GET", f"/v1/information/items/{first}").json()
    assert [f["label"] for f in viewed["feedback"]] == ["市级", "省级"]
    water = row_of(scores(rstack), WATER)
    # 2 items × 1 + city 4 + province 8 + county instruction 3 (rules.yaml).
    assert water["parts"] == {
        "items": 2.0,
        "research": 0.0,
        "adoption": 12.0,
        "instruction": 3.0,
        "quota_deduction": 0.0,
        "notice_deduction": 0.0,
    }
    assert (water["total"], water["rank"]) == (17.0, 1)
    rstack.settle()
    assert len(events_of(rstack, "information_adopted")) == 2
    assert len(events_of(rstack, "information_instructed")) == 1


def test_feedback_is_validated(rstack: Stack) -> None:
    [first] = submit_many(rstack, 1)
    assert refusal(feedback(rstack, "adoptions", adoption(first), who="township_a"))[:2] == (
        403,
        "forbidden_role",
    )
    assert refusal(feedback(rstack, "adoptions", adoption("nope"))) == (
        404,
        "target_unknown",
        ["target_id"],
    )
    future = feedback(rstack, "adoptions", adoption(first, date="2026-07-07"))
    assert refusal(future) == (422, "invalid", ["date"])
    early = feedback(rstack, "instructions", instruction(first, date="2026-07-05"))
    assert refusal(early) == (422, "invalid", ["date"])
    drill = feedback(rstack, "adoptions", adoption(first, exercise=True))
    assert refusal(drill) == (422, "invalid", ["exercise"])
    level = feedback(rstack, "adoptions", adoption(first, level="town"))
    assert refusal(level)[0] == 422
    stranger = {"unit_kind": "department", "unit_code": "navy", "reason": "late"}
    notice = feedback(rstack, "notices", {**stranger, "text": "迟报", "date": "2026-07-06"})
    assert refusal(notice) == (422, "invalid", ["unit_code"])
    day = rstack.call("GET", "/v1/information/quotas", params={"date": "2026-7-6"})
    month = rstack.call("GET", "/v1/information/scores", params={"month": "2026-13"})
    assert (day.status_code, month.status_code) == (422, 422)
    ahead = rstack.call("GET", "/v1/information/scores", params={"month": "2026-08"})
    assert refusal(ahead) == (422, "invalid", ["query.month"])


def test_a_quota_day_outside_1900_to_2999_is_refused_on_the_field(rstack: Stack) -> None:
    for day in ("9999-12-31", "0001-01-01"):
        answer = rstack.call("GET", "/v1/information/quotas", params={"date": day})
        assert refusal(answer) == (422, "validation_failed", ["query.date"]), day


def test_feedback_on_an_incident_report_counts_for_its_township(rstack: Stack) -> None:
    incident_id = incident_reported(rstack).payload["incident_id"]
    filed = rstack.call("POST", "/v1/reports", who="township_a", json=report_body(incident_id))
    assert filed.status_code == 201, filed.text
    report = {"target_kind": "report", "target_id": filed.json()["id"]}
    assert feedback(rstack, "adoptions", {**adoption("x"), **report}).status_code == 201
    initial = {"target_kind": "incident", "target_id": incident_id}
    assert feedback(rstack, "instructions", {**instruction("x"), **initial}).status_code == 201
    township = row_of(scores(rstack), TOWNSHIP_A)
    assert (township["parts"]["adoption"], township["parts"]["instruction"]) == (4.0, 3.0)
    mine = scores(rstack, who="township_a")
    assert [r["unit_code"] for r in mine["townships"]] == [TOWNSHIP_A]


def test_notices_deduct_points(rstack: Stack) -> None:
    body = {
        "unit_kind": "township",
        "unit_code": TOWNSHIP_B,
        "reason": "concealed",
        "text": "7月6日山体滑坡信息未及时上报，经核实属瞒报。",
        "date": "2026-07-06",
    }
    assert feedback(rstack, "notices", body).status_code == 201
    assert feedback(rstack, "notices", body).status_code == 200
    township = row_of(scores(rstack), TOWNSHIP_B)
    assert township["parts"]["notice_deduction"] == -10.0
    assert township["basis"]["notices"] == {"concealed": 1}
    rstack.settle()
    [noticed] = events_of(rstack, "information_noticed")
    assert "被通报批评（瞒报）" in noticed["summary"]


def test_the_week_end_flags_departments_below_quota_once(rstack: Stack) -> None:
    submit_many(rstack, 5)
    submit_many(rstack, 2, WEATHER, "department")
    assert scan(rstack) == 0  # the week is still running
    rstack.clock.advance(7 * 86400)
    raised = scan(rstack)
    assert raised == 9  # every department but the water bureau
    assert scan(rstack) == 0
    flagged = events_of(rstack, "information_quota_missed")
    weather = next(e for e in flagged if e["payload"]["unit_code"] == WEATHER)
    assert (weather["payload"]["required"], weather["payload"]["submitted"]) == (5, 2)
    assert weather["summary"] == "县气象局2026-07-06至2026-07-12信息报送未完成：应报5条，实报2条"
    last_week = quota_row(rstack, WEATHER, date="2026-07-08")["items"]
    assert (last_week["status"], last_week["flag_raised"]) == ("missed", True)
    weather_july = row_of(scores(rstack), WEATHER)  # the week ends in July: July's deduction
    assert (weather_july["basis"]["items_periods_missed"], weather_july["parts"]["items"]) == (1, 2)
    assert weather_july["parts"]["quota_deduction"] == -5.0


def test_the_month_end_flags_townships_and_research(rstack: Stack) -> None:
    for _ in range(2):
        body = item(WATER, kind="research", title="汛期山塘水库安全调研")
        assert submit(rstack, body).status_code == 201
    rstack.clock.advance(26 * 86400)  # 2026-08-01
    scan(rstack)
    missed = events_of(rstack, "information_quota_missed")
    research = {e["payload"]["unit_code"] for e in missed if e["payload"]["quota"] == "research"}
    assert WATER not in research and WEATHER in research and TOWNSHIP_A in research
    towns = [e for e in missed if e["payload"]["quota"] == "items"]
    assert {e["payload"]["unit_kind"] for e in towns} >= {"township"}
    july = row_of(scores(rstack), TOWNSHIP_A)
    # Township: month below 20 items (−5) and below 2 research items (−3).
    assert july["parts"]["quota_deduction"] == -8.0
    water = row_of(scores(rstack), WATER)
    assert water["parts"]["research"] == 6.0
    assert water["basis"]["research_missed"] == 0


def test_drills_count_nowhere(rstack: Stack) -> None:
    drill = submit(rstack, item(WATER, exercise=True))
    assert drill.status_code == 201 and drill.json()["exercise"] is True
    assert feedback(rstack, "adoptions", adoption(drill.json()["id"])).status_code == 201
    assert quota_row(rstack, WATER)["items"]["submitted"] == 0
    water = row_of(scores(rstack), WATER)
    assert (water["total"], water["basis"]["adoptions"]) == (0.0, {})
    drills = rstack.call(
        "GET", "/v1/information/items", params={"month": MONTH, "exercise": "true"}
    ).json()["items"]
    assert [d["exercise"] for d in drills] == [True]
    assert drills[0]["feedback"][0]["exercise"] is True


def test_a_published_month_takes_no_more_real_feedback(rstack: Stack) -> None:
    [first] = submit_many(rstack, 1)
    rstack.clock.advance(41 * 86400)  # 2026-08-16: July's scores published on the 15th
    assert scores(rstack)["status"] == "published"
    late = feedback(rstack, "adoptions", adoption(first))
    assert refusal(late) == (422, "invalid", ["date"])
    assert feedback(rstack, "adoptions", adoption(first, date="2026-08-16")).status_code == 201
    assert row_of(scores(rstack, "2026-08"), WATER)["parts"]["adoption"] == 4.0


def test_the_monthly_scores_publication_lists_the_ranking(rstack: Stack) -> None:
    [first] = submit_many(rstack, 1)
    assert feedback(rstack, "adoptions", adoption(first)).status_code == 201
    submit(rstack, item(TOWNSHIP_A, "township"), who="township_a")
    rstack.clock.advance(41 * 86400)  # 2026-08-16
    assert reporting_service.publish_scores(rstack.ctx("reporting"))
    published = rstack.call("GET", "/v1/scores", params={"month": MONTH}).json()
    ranking = published["information_ranking"]
    assert ranking["departments"][0] == {
        "unit_code": WATER,
        "name": "县水利局",
        "total": row_of(scores(rstack), WATER)["total"],
        "rank": 1,
    }
    mine = rstack.call("GET", "/v1/scores", who="township_a", params={"month": MONTH}).json()
    assert [r["unit_code"] for r in mine["information_ranking"]["townships"]] == [TOWNSHIP_A]
