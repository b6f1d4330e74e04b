"""Zero reports (零报告) for the 12-township demo county over three days."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import REGISTRY

from libs.common.county import load_county
from libs.common.signatures import SAME_PERSON_REASON
from services.reporting import service as reporting_service
from services.reporting.service import SPEC
from tests.reporting.support import (
    emit,
    events_of,
    incident_reported,
    local,
    publish,
    zero_body,
)
from tests.support.errors import refusal
from tests.support.stack import TOWNSHIP_A, TOWNSHIP_B, Stack, running_stack


def file(stack: Stack, code: str, day: date, who: str = "operator", **body: object) -> Any:
    payload = zero_body(code, day, **body)
    return stack.call("POST", "/v1/zero-reports", who=who, json=payload)


def filed_on(stack: Stack, day: date) -> dict[str, tuple[bool, list[str]]]:
    """What each township filed for a day: ``nothing_to_report`` and the incident ids."""
    response = stack.call("GET", "/v1/zero-reports", params={"date": day.isoformat()})
    assert response.status_code == 200, response.text
    return {
        r["township_code"]: (r["nothing_to_report"], r["incident_ids"])
        for r in response.json()["filed"]
    }


def next_morning(stack: Stack) -> None:
    """07:00 on 07-07: 07-06 (the stack's first day) is over and its cut-off not yet passed."""
    stack.clock.set(local(2026, 7, 7, 7))


def missed_scan(stack: Stack) -> int:
    raised = reporting_service.scan_zero_reports(stack.ctx("reporting"))
    stack.settle()
    return raised


def missed_after_scan(rstack: Stack) -> int:
    """Run the missed-report scan, then count every ``zero_report_missed`` raised so far.

    The stack's own timer may run the same scan as soon as the clock moves, so the test counts
    what was raised (each once), not which caller raised it.
    """
    missed_scan(rstack)
    rstack.settle()
    return len(events_of(rstack, "zero_report_missed"))


def test_three_days_of_zero_reports_and_missed_alerts(rstack: Stack) -> None:
    codes = [t.code for t in rstack.ctx("reporting").county.townships]
    assert len(codes) == 12
    missed_series = "yingji_reporting_zero_reports_missed_total"
    silent = {"service": "reporting", "township_code": codes[11]}
    # Counters live as long as the test process: count what this test adds.
    missed_before = REGISTRY.get_sample_value(missed_series, silent) or 0.0
    days = [date(2026, 7, 6), date(2026, 7, 7), date(2026, 7, 8)]
    # Day 1: everyone but the last two files before the cut-off.
    next_morning(rstack)
    for code in codes[:10]:
        assert file(rstack, code, days[0]).status_code == 201
    rstack.clock.set(local(2026, 7, 7, 7, 59))
    assert missed_after_scan(rstack) == 0
    rstack.clock.set(local(2026, 7, 7, 8, 0))
    assert missed_after_scan(rstack) == 2
    assert missed_after_scan(rstack) == 2
    # One of them files late; the alert stays raised once.
    rstack.clock.set(local(2026, 7, 7, 9))
    late = file(rstack, codes[10], days[0])
    assert late.status_code == 201 and late.json()["late"] is True
    status = rstack.call("GET", "/v1/zero-reports", params={"date": "2026-07-06"}).json()
    assert len(status["filed"]) == 11 and [m["township_code"] for m in status["missing"]] == [
        codes[11]
    ]
    assert status["missing"][0]["missed_alert_raised"] is True
    assert [r["township_code"] for r in status["late"]] == [codes[10]]
    # Day 2: nobody files; day 3: all file on time. Scans run late, once for two days.
    rstack.clock.set(local(2026, 7, 9, 7))
    for code in codes:
        assert file(rstack, code, days[2], nothing_to_report=True).status_code == 201
    rstack.clock.set(local(2026, 7, 9, 8, 30))
    assert missed_after_scan(rstack) == 14
    assert missed_after_scan(rstack) == 14
    missed = events_of(rstack, "zero_report_missed")
    assert len(missed) == 14
    assert len({(e["payload"]["township_code"], e["payload"]["date"]) for e in missed}) == 14
    day3 = rstack.call("GET", "/v1/zero-reports", params={"date": "2026-07-08"}).json()
    assert len(day3["filed"]) == 12 and day3["missing"] == [] and day3["late"] == []
    metrics = rstack.client.get("/metrics").text
    assert 'yingji_reporting_zero_reports_filed_today{service="reporting"} 12.0' in metrics
    assert REGISTRY.get_sample_value(missed_series, silent) == missed_before + 2


def test_a_fresh_install_does_not_alert_for_the_past(rstack: Stack) -> None:
    # The stack starts on 2026-07-06 10:00: 07-05's cut-off had passed before the service ran.
    assert missed_scan(rstack) == 0
    rstack.clock.advance(timedelta(days=1))
    assert missed_scan(rstack) == 12


def test_filing_is_idempotent_and_scoped_to_the_township(rstack: Stack) -> None:
    day = date(2026, 7, 6)
    next_morning(rstack)
    first = file(rstack, TOWNSHIP_A, day, who="township_a")
    again = file(rstack, TOWNSHIP_A, day, who="township_a")
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    # An incident of the day, reported after the township's 「无事件」 (flagged elsewhere).
    evening = local(2026, 7, 6, 20)
    iid = incident_reported(
        rstack, township_code=TOWNSHIP_A, occurred_at=evening, discovered_at=evening
    ).payload["incident_id"]
    changed = file(
        rstack, TOWNSHIP_A, day, who="township_a", nothing_to_report=False, incident_ids=[iid]
    )
    assert refusal(changed) == (409, "zero_report_exists", ["date"])
    assert filed_on(rstack, day) == {TOWNSHIP_A: (True, [])}
    other = file(rstack, TOWNSHIP_B, day, who="township_a")
    assert refusal(other) == (403, "forbidden_township", ["township_code"])
    future = file(rstack, TOWNSHIP_B, day + timedelta(days=1), who="township_b")
    assert refusal(future) == (422, "invalid_zero_report", ["date"])
    listed = file(
        rstack,
        TOWNSHIP_B,
        day,
        who="township_b",
        nothing_to_report=False,
        incident_ids=[iid],
    )
    assert refusal(listed) == (422, "invalid_zero_report", ["incident_ids.0"])
    empty = file(rstack, TOWNSHIP_B, day, nothing_to_report=False)
    assert refusal(empty) == (422, "invalid_zero_report", ["incident_ids"])
    assert "nothing_to_report" in empty.json()["error"]["fields"][0]["reason"]
    # No refused filing left a row behind: only the first filing of township A is kept.
    assert filed_on(rstack, day - timedelta(days=1)) == {}
    assert filed_on(rstack, day) == {TOWNSHIP_A: (True, [])}
    own = rstack.call("GET", "/v1/zero-reports", who="township_b", params={"date": "2026-07-06"})
    assert {r["township_code"] for r in own.json()["missing"]} == {TOWNSHIP_B}
    assert rstack.call("GET", "/v1/zero-reports", params={"date": "07/06"}).status_code == 422


def test_filing_raises_one_zero_report_filed_event(rstack: Stack) -> None:
    day = date(2026, 7, 6)
    next_morning(rstack)
    assert file(rstack, TOWNSHIP_A, day, who="township_a").status_code == 201
    assert file(rstack, TOWNSHIP_A, day, who="township_a").status_code == 201
    rstack.settle()
    rstack.settle()
    filed = events_of(rstack, "zero_report_filed")
    assert len(filed) == 1
    assert filed[0]["source"] == "reporting"


def test_drill_zero_report_is_kept_apart_from_the_real_filing(rstack: Stack) -> None:
    day = date(2026, 7, 6)
    rstack.clock.set(local(2026, 7, 7, 9))  # after the cut-off: a real filing now is late
    drill = file(rstack, TOWNSHIP_A, day, who="township_a", exercise=True)
    assert drill.status_code == 201, drill.text
    assert drill.json()["exercise"] is True
    status = rstack.call("GET", "/v1/zero-reports", params={"date": day.isoformat()}).json()
    # The drill is not the township's filing: it is missing, not late, and its alert stands.
    assert TOWNSHIP_A in [m["township_code"] for m in status["missing"]]
    assert status["filed"] == [] and status["late"] == []
    assert [r["township_code"] for r in status["exercise_filed"]] == [TOWNSHIP_A]
    assert missed_scan(rstack) == 12
    # The real filing is still possible and is the one that counts.
    real = file(rstack, TOWNSHIP_A, day, who="township_a")
    assert real.status_code == 201, real.text
    assert real.json()["exercise"] is False
    status = rstack.call("GET", "/v1/zero-reports", params={"date": day.isoformat()}).json()
    assert [r["township_code"] for r in status["filed"]] == [TOWNSHIP_A]
    rstack.settle()
    filed = events_of(rstack, "zero_report_filed")
    assert sorted(e["payload"]["exercise"] for e in filed) == [False, True]


def test_drill_zero_report_cannot_cite_a_real_incident(rstack: Stack) -> None:
    real = incident_reported(rstack).payload["incident_id"]
    next_morning(rstack)
    refused = file(
        rstack,
        TOWNSHIP_A,
        date(2026, 7, 6),
        nothing_to_report=False,
        incident_ids=[real],
        exercise=True,
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["fields"][0]["path"] == "incident_ids.0"


def test_zero_reports_carry_two_different_signatures(rstack: Stack) -> None:
    """篇6: a zero report names its reporter and its approver (审签), two different people."""
    day = date(2026, 7, 6)
    next_morning(rstack)
    unsigned = {"township_code": TOWNSHIP_A, "date": day.isoformat(), "nothing_to_report": True}
    response = rstack.call("POST", "/v1/zero-reports", json=unsigned)
    assert response.status_code == 422
    assert {f["path"] for f in response.json()["error"]["fields"]} == {"reporter", "approver"}
    same = zero_body(TOWNSHIP_A, day, approver={"name": "李华", "phone": "13900000009"})
    refused = rstack.call("POST", "/v1/zero-reports", json=same)
    assert refused.status_code == 422
    assert refused.json()["error"]["fields"] == [{"path": "approver", "reason": SAME_PERSON_REASON}]
    filed = file(rstack, TOWNSHIP_A, day)
    assert filed.status_code == 201
    assert filed.json()["reporter"] == {"name": "李华", "phone": "13900000001"}
    assert filed.json()["approver"] == {"name": "王镇长", "phone": "13900000002"}


def test_nothing_to_report_on_a_day_with_incidents_is_refused_as_possible_concealment(
    rstack: Stack,
) -> None:
    day = date(2026, 7, 6)
    iid = incident_reported(rstack, township_code=TOWNSHIP_A).payload["incident_id"]
    incident_reported(rstack, township_code=TOWNSHIP_B, exercise=True)
    next_morning(rstack)
    refused = file(rstack, TOWNSHIP_A, day, who="township_a")
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "zero_report_contradicts_incidents" and iid in error["message"]
    assert [f["path"] for f in error["fields"]] == ["nothing_to_report"]
    assert file(rstack, TOWNSHIP_A, day, who="township_a").status_code == 409
    # The duty office sees the attempt: once in the day's status, once on the bus and audit.
    status = rstack.call("GET", "/v1/zero-reports", params={"date": day.isoformat()}).json()
    assert [(c["township_code"], c["incident_ids"]) for c in status["contradictions"]] == [
        (TOWNSHIP_A, [iid])
    ]
    assert "瞒报" in status["contradictions"][0]["label"]
    rstack.settle()
    raised = events_of(rstack, "zero_report_contradicted")
    assert [(e["payload"]["township_code"], e["payload"]["incident_ids"]) for e in raised] == [
        (TOWNSHIP_A, [iid])
    ]
    audit = rstack.call("GET", "/v1/audit", params={"event_type": "zero_report_contradicted"})
    assert [row["summary"] for row in audit.json()["items"]] == [
        "城关镇 2026年7月6日 已报送事件却报「无事件」，疑似瞒报"
    ]
    other = rstack.call("GET", "/v1/zero-reports", who="township_b", params={"date": "2026-07-06"})
    assert other.json()["contradictions"] == []
    # The summary (日报) of the day of the attempt lists it too, in JSON and on the page.
    daily = rstack.call("GET", "/v1/summaries/daily", params={"date": "2026-07-07"}).json()
    assert [(c["township_code"], c["incident_ids"]) for c in daily["concealment"]] == [
        (TOWNSHIP_A, [iid])
    ]
    page = rstack.call(
        "GET", "/v1/summaries/daily", params={"date": "2026-07-07", "format": "html"}
    ).text
    section = page.split("八、疑似瞒报", 1)[1]
    assert "城关镇" in section and "2026-07-06" in section and f"flood {iid}" in section
    # Listing the incident is accepted; a drill does not make 「无事件」 false for B.
    listed = file(rstack, TOWNSHIP_A, day, nothing_to_report=False, incident_ids=[iid])
    assert listed.status_code == 201
    assert file(rstack, TOWNSHIP_B, day).status_code == 201


def test_days_before_the_start_owe_nothing(rstack: Stack) -> None:
    """The stack first started on 2026-07-06: 07-05 is before the platform ran."""
    before = date(2026, 7, 5)
    refused = file(rstack, TOWNSHIP_A, before)
    assert refused.status_code == 422
    assert [f["path"] for f in refused.json()["error"]["fields"]] == ["date"]
    status = rstack.call("GET", "/v1/zero-reports", params={"date": before.isoformat()}).json()
    assert status["before_start"] is True and status["missing"] == []
    daily = rstack.call("GET", "/v1/summaries/daily", params={"date": "2026-07-06"}).json()
    assert daily["zero_reports_due_today"]["expected"] == 0
    assert daily["zero_reports_due_today"]["missed"] == 0
    assert "zero_report_compliance" not in {r["rule"] for r in daily["recommendations"]}
    # The week before the start, as a situation pack: nothing owed, no rate, no criticism.
    span = {"from": "2026-06-29T00:00:00+08:00", "to": "2026-07-06T00:00:00+08:00"}
    pack = rstack.call("GET", "/v1/summaries/situation", params=span).json()
    assert (pack["zero_reports"]["expected"], pack["zero_reports"]["missed"]) == (0, 0)
    assert pack["zero_reports"]["compliance_percent"] == 100.0
    assert "zero_report_compliance" not in {r["rule"] for r in pack["recommendations"]}


def test_the_county_file_sets_the_start_date(tmp_path: Path) -> None:
    """A county that went live on 07-08 while the service first ran on 07-06: nothing is
    missed for 07-06 and 07-07, and 07-08 is the first day owed."""
    county = load_county()
    county_file = tmp_path / "county.yaml"
    raw = county.model_dump(mode="json", exclude={"start_date"})
    county_file.write_text(
        yaml.safe_dump({**raw, "start_date": "2026-07-08"}, allow_unicode=True), encoding="utf-8"
    )
    with running_stack(tmp_path, specs=[SPEC], county_file=county_file) as stack:
        stack.clock.set(local(2026, 7, 9, 7, 59))  # 07-06 and 07-07 closed, before the start
        assert missed_scan(stack) == 0
        stack.clock.set(local(2026, 7, 9, 8, 30))
        assert missed_scan(stack) == 12
        assert {e["payload"]["date"] for e in events_of(stack, "zero_report_missed")} == {
            "2026-07-08"
        }
        early = file(stack, TOWNSHIP_A, date(2026, 7, 7))
        assert early.status_code == 422
        assert "2026-07-08" in early.json()["error"]["fields"][0]["reason"]


def contradictions(stack: Stack, who: str = "operator", **query: str) -> Any:
    """``GET /v1/zero-reports/contradictions`` as ``who``."""
    return stack.call("GET", "/v1/zero-reports/contradictions", who=who, params=query)


def test_refused_nothing_to_report_attempts_are_listed_for_the_duty_office(rstack: Stack) -> None:
    """疑似瞒报 over several days: who tried, when, for which day, and the incidents that
    contradict it; township keys see their own; drills never appear; the window is checked."""
    rstack.clock.set(local(2026, 7, 6, 10))
    iid = incident_reported(rstack, township_code=TOWNSHIP_A).payload["incident_id"]
    drill = incident_reported(rstack, township_code=TOWNSHIP_B, exercise=True)
    rstack.clock.set(local(2026, 7, 7, 7, 15))
    assert file(rstack, TOWNSHIP_A, date(2026, 7, 6), who="township_a").status_code == 409
    # A drill's 「无事件」 on the day of a drill incident is a rehearsal, never 瞒报.
    assert drill.payload["exercise"] is True
    drill_zero = file(rstack, TOWNSHIP_B, date(2026, 7, 6), who="township_b", exercise=True)
    assert drill_zero.status_code == 201, drill_zero.text
    response = contradictions(rstack)
    assert response.status_code == 200
    listed = response.json()
    assert (listed["from"], listed["to"]) == ("2026-07-01", "2026-07-07")
    [item] = listed["items"]
    assert (item["township_code"], item["name"], item["date"]) == (
        TOWNSHIP_A,
        "城关镇",
        "2026-07-06",
    )
    assert item["attempted_at"].startswith("2026-07-06T23:15")  # 07-07 07:15 in Asia/Shanghai
    assert item["attempted_by"] and item["label"].startswith("疑似瞒报")
    assert [(i["id"], i["title"], i["grade"]) for i in item["incidents"]] == [
        (iid, f"flood {iid}", 4)
    ]
    assert [i["id"] for i in contradictions(rstack, "township_a").json()["items"]] == [item["id"]]
    assert contradictions(rstack, "township_b").json()["items"] == []
    foreign = contradictions(rstack, "township_b", township_code=TOWNSHIP_A)
    assert refusal(foreign) == (403, "forbidden_township", ["query.township_code"])
    # A week later the attempt has left the default window; asked for, it is still there.
    rstack.clock.set(local(2026, 7, 13, 9))
    assert contradictions(rstack).json()["items"] == []
    asked = contradictions(rstack, **{"from": "2026-07-06", "to": "2026-07-06"})
    assert [i["id"] for i in asked.json()["items"]] == [item["id"]]
    backwards = contradictions(rstack, **{"from": "2026-07-07", "to": "2026-07-06"})
    assert refusal(backwards) == (422, "invalid", ["query.from"])
    too_long = contradictions(rstack, **{"from": "2026-01-01", "to": "2026-07-06"})
    assert refusal(too_long) == (422, "invalid", ["query.from"])
    assert refusal(contradictions(rstack, to="07/06")) == (422, "validation_failed", ["query.to"])
    for day in ("0001-01-01", "9999-12-31"):
        assert refusal(contradictions(rstack, to=day)) == (422, "validation_failed", ["query.to"])
        far = contradictions(rstack, **{"from": day})
        assert refusal(far) == (422, "validation_failed", ["query.from"])


def test_zero_reports_missed_during_a_downtime_are_raised_on_restart(rstack: Stack) -> None:
    """Up on 07-06 (A filed for that day), down until 07-09 09:00: the first scan raises every
    township and day whose cut-off passed meanwhile, each once; 07-09 is not closed yet."""
    codes = [t.code for t in rstack.ctx("reporting").county.townships]
    next_morning(rstack)
    assert file(rstack, TOWNSHIP_A, date(2026, 7, 6)).status_code == 201
    assert missed_scan(rstack) == 0
    rstack.clock.set(local(2026, 7, 9, 9))
    assert missed_scan(rstack) == 11 + 12 + 12
    assert missed_scan(rstack) == 0
    raised = sorted(
        (e["payload"]["date"], e["payload"]["township_code"])
        for e in events_of(rstack, "zero_report_missed")
    )
    expected = [("2026-07-06", c) for c in codes if c != TOWNSHIP_A] + [
        (day, c) for day in ("2026-07-07", "2026-07-08") for c in codes
    ]
    assert raised == sorted(expected)


def test_a_zero_report_for_a_day_not_yet_over_is_refused(rstack: Stack) -> None:
    """At 01:33 on 07-07 in the county (UTC still says 07-06) 07-07 has hardly begun: its
    「无事件」 could not be true yet; 07-06 is over and may be filed."""
    rstack.clock.set(local(2026, 7, 7, 1, 33))
    for drill in (False, True):
        early = file(rstack, TOWNSHIP_A, date(2026, 7, 7), who="township_a", exercise=drill)
        assert refusal(early) == (422, "invalid_zero_report", ["date"])
        assert "尚未结束" in early.json()["error"]["fields"][0]["reason"]
    assert filed_on(rstack, date(2026, 7, 7)) == {}
    assert file(rstack, TOWNSHIP_A, date(2026, 7, 6), who="township_a").status_code == 201


def test_an_incident_arriving_after_nothing_to_report_is_flagged(rstack: Stack) -> None:
    """「无事件」 for 07-06 stands; an incident of 07-06 reported the next morning contradicts it
    as the refused attempt does (疑似瞒报), once however often it is delivered; incidents of
    another day, another township or a drill do not."""
    next_morning(rstack)
    assert file(rstack, TOWNSHIP_A, date(2026, 7, 6), who="township_a").status_code == 201
    night = local(2026, 7, 6, 23)
    late = incident_reported(rstack, township_code=TOWNSHIP_A, occurred_at=night)
    publish(rstack, late)  # delivered again
    incident_reported(rstack, township_code=TOWNSHIP_A)  # occurred on 07-07
    incident_reported(rstack, township_code=TOWNSHIP_B, occurred_at=night)
    incident_reported(rstack, township_code=TOWNSHIP_A, occurred_at=night, exercise=True)
    iid = late.payload["incident_id"]
    status = rstack.call("GET", "/v1/zero-reports", params={"date": "2026-07-06"}).json()
    assert [(c["township_code"], c["incident_ids"]) for c in status["contradictions"]] == [
        (TOWNSHIP_A, [iid])
    ]
    assert "瞒报" in status["contradictions"][0]["label"]
    assert [r["township_code"] for r in status["filed"]] == [TOWNSHIP_A]  # it still stands
    raised = events_of(rstack, "zero_report_contradicted")
    assert [(e["payload"]["date"], e["payload"]["incident_ids"]) for e in raised] == [
        ("2026-07-06", [iid])
    ]


def test_a_listing_names_exactly_the_townships_incidents_of_its_day(rstack: Stack) -> None:
    """不漏报、不谎报: an incident of another day is refused by its place in the list, and an
    incident of the day left out is named; a merged duplicate need not be listed."""
    day = date(2026, 7, 6)
    first = incident_reported(rstack, township_code=TOWNSHIP_A).payload["incident_id"]
    second = incident_reported(rstack, township_code=TOWNSHIP_A).payload["incident_id"]
    duplicate = incident_reported(rstack, township_code=TOWNSHIP_A).payload["incident_id"]
    emit(
        rstack,
        "intake",
        "incident_merged",
        {
            "incident_id": duplicate,
            "primary_id": first,
            "township_code": TOWNSHIP_A,
            "merged_by": "operator",
        },
        correlation_id=duplicate,
    )
    next_morning(rstack)
    later = incident_reported(rstack, township_code=TOWNSHIP_A).payload["incident_id"]
    rstack.clock.set(local(2026, 7, 7, 7, 30))
    left_out = file(rstack, TOWNSHIP_A, day, nothing_to_report=False, incident_ids=[first])
    assert refusal(left_out) == (422, "invalid_zero_report", ["incident_ids"])
    reason = left_out.json()["error"]["fields"][0]["reason"]
    assert reason == f"漏列 2026-07-06 已报送的事件：{second}"
    wrong_day = file(
        rstack, TOWNSHIP_A, day, nothing_to_report=False, incident_ids=[first, later, second]
    )
    assert refusal(wrong_day) == (422, "invalid_zero_report", ["incident_ids.1"])
    assert filed_on(rstack, day) == {}
    exact = file(rstack, TOWNSHIP_A, day, nothing_to_report=False, incident_ids=[second, first])
    assert exact.status_code == 201, exact.text
    assert filed_on(rstack, day) == {TOWNSHIP_A: (False, sorted([first, second]))}
