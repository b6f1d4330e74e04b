"""Timeline and audit across services, daily and situation summaries, and monthly scores."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from libs.common.clock import as_utc
from libs.common.events import registered_event_types
from services.reporting import service as reporting_service
from services.reporting.usecases import summaries
from tests.reporting.support import (
    emit,
    events_of,
    incident_reported,
    local,
    report_body,
    scan,
    zero_body,
)
from tests.support.ci import unavailable
from tests.support.stack import TOWNSHIP_A, TOWNSHIP_B, Stack
from yingji.platform import SERVICE_NAMES

WARNING_BASE = {"hazard": "rainstorm", "areas": [TOWNSHIP_A], "exercise": False}


def seed(stack: Stack) -> dict[str, str]:
    """A seeded day (2026-07-06, Shanghai): 4 incidents, warnings, a dispatch, a stock alert."""
    ids = {}
    stack.clock.set(local(2026, 7, 6, 9))
    ids["flood"] = incident_reported(
        stack,
        grade=2,
        category="flood",
        deaths=12,
        occurred_at=local(2026, 7, 6, 8),
        discovered_at=local(2026, 7, 6, 8, 50),
    ).payload["incident_id"]
    ids["late"] = incident_reported(
        stack,
        grade=4,
        category="fire",
        occurred_at=local(2026, 7, 6, 1),
        discovered_at=local(2026, 7, 6, 2),
    ).payload["incident_id"]
    ids["b"] = incident_reported(
        stack,
        grade=4,
        township_code=TOWNSHIP_B,
        category="traffic_accident",
        occurred_at=local(2026, 7, 6, 7),
        discovered_at=local(2026, 7, 6, 8, 55),
    ).payload["incident_id"]
    ids["drill"] = incident_reported(
        stack,
        grade=3,
        exercise=True,
        occurred_at=local(2026, 7, 6, 8, 30),
        discovered_at=local(2026, 7, 6, 8, 55),
    ).payload["incident_id"]
    stack.clock.set(local(2026, 7, 6, 10))
    emit(
        stack,
        "warning",
        "warning_issued",
        {
            **WARNING_BASE,
            "warning_id": "W-red",
            "version": 1,
            "level": 1,
            "color": "red",
            "headline": "暴雨红色预警",
            "effective": stack.clock.now(),
            "expires": stack.clock.now() + timedelta(days=1),
            "incident_ids": [ids["flood"]],
        },
        correlation_id="W-red",
        settle=False,
    )
    emit(
        stack,
        "warning",
        "warning_issued",
        {
            **WARNING_BASE,
            "warning_id": "W-blue",
            "version": 1,
            "level": 4,
            "color": "blue",
            "headline": "大风蓝色预警",
            "effective": stack.clock.now(),
            "expires": stack.clock.now() + timedelta(days=1),
        },
        correlation_id="W-blue",
        settle=False,
    )
    emit(
        stack,
        "dispatch",
        "dispatch_ordered",
        {
            "dispatch_id": "D1",
            "incident_id": ids["flood"],
            "team_ids": ["T03", "T04"],
            "resources": [{"warehouse_id": "W01", "item_code": "tent", "quantity": 50}],
        },
        correlation_id=ids["flood"],
        settle=False,
    )
    emit(
        stack,
        "dispatch",
        "plan_activated",
        {
            "plan_id": "P1",
            "level": 2,
            "trigger_kind": "incident",
            "trigger_id": ids["flood"],
            "township_codes": [TOWNSHIP_A],
            "incident_id": ids["flood"],
        },
        correlation_id=ids["flood"],
        settle=False,
    )
    emit(
        stack,
        "dispatch",
        "stock_low",
        {
            "warehouse_id": "W01",
            "item_code": "tent",
            "quantity": 60,
            "min_level": 80,
        },
        settle=False,
    )
    stack.settle()
    stack.clock.set(local(2026, 7, 6, 11))
    emit(
        stack,
        "warning",
        "warning_lifted",
        {
            **WARNING_BASE,
            "warning_id": "W-blue",
            "version": 2,
            "level": 4,
            "color": "blue",
            "reason": "风力减弱",
        },
        correlation_id="W-blue",
        settle=False,
    )
    emit(
        stack,
        "dispatch",
        "dispatch_status_changed",
        {
            "dispatch_id": "D1",
            "incident_id": ids["flood"],
            "old_status": "ordered",
            "status": "on_scene",
        },
        correlation_id=ids["flood"],
    )
    stack.clock.set(local(2026, 7, 6, 12))
    assert (
        stack.call(
            "POST",
            "/v1/reports",
            json=report_body(
                ids["flood"],
                casualties={"deaths": 13, "injured": 2, "missing": 0, "trapped": 0},
            ),
        ).status_code
        == 201
    )
    stack.settle()
    return ids


def test_timeline_shows_events_of_several_services_in_order(rstack: Stack) -> None:
    ids = seed(rstack)
    items = rstack.call("GET", f"/v1/timeline/{ids['flood']}").json()["items"]
    kinds = [(i["source"], i["event_type"]) for i in items]
    # The three published at 10:00 in one batch may arrive in any order; time orders the rest.
    assert kinds[0] == ("intake", "incident_reported")
    assert sorted(kinds[1:4]) == [
        ("dispatch", "dispatch_ordered"),
        ("dispatch", "plan_activated"),
        ("warning", "warning_issued"),
    ]
    assert kinds[4:] == [
        ("dispatch", "dispatch_status_changed"),
        ("reporting", "followup_filed"),
    ]
    times = [i["occurred_at"] for i in items]
    assert times == sorted(times)
    red = next(i for i in items if i["event_type"] == "warning_issued")
    assert red["summary"] == "发布红色预警：暴雨红色预警"
    assert items[0]["summary"].startswith("首报：城关镇")
    audit = rstack.call(
        "GET",
        "/v1/audit",
        params={
            "source": "warning",
            "from": "2026-07-06T10:30:00+08:00",
            "to": "2026-07-06T12:00:00+08:00",
        },
    ).json()["items"]
    assert [a["event_type"] for a in audit] == ["warning_lifted"]
    assert rstack.call("GET", "/v1/audit", who="township_a").status_code == 403
    naive = rstack.call("GET", "/v1/audit", params={"from": "2026-07-06T10:30:00"})
    assert naive.status_code == 422
    assert rstack.call("GET", "/v1/timeline/unknown").status_code == 404


def test_daily_summary_numbers_and_publication(rstack: Stack) -> None:
    ids = seed(rstack)
    daily = rstack.call("GET", "/v1/summaries/daily", params={"date": "2026-07-06"}).json()
    incidents = daily["incidents"]
    assert incidents["total"] == 3  # the drill is left out
    assert [g["count"] for g in incidents["by_grade"]] == [0, 1, 0, 2]
    assert incidents["casualties"]["deaths"] == 13  # the follow-up's latest figure
    assert {r["township_code"]: r["count"] for r in incidents["by_township"]} == {
        TOWNSHIP_A: 2,
        TOWNSHIP_B: 1,
    }
    assert [b["count"] for b in daily["time_bands"]] == [1, 2, 0, 0]
    assert daily["warnings"]["active_total"] == 1
    assert daily["warnings"]["by_level"][0]["count"] == 1
    assert daily["dispatches"] == {"total": 1, "by_status": {"on_scene": 1}}
    assert daily["stock_alerts"]["total"] == 1
    assert daily["plans"]["active_total"] == 1
    assert [r["incident_id"] for r in daily["reporting"]["late_items"]] == [ids["late"]]
    # The drill's initial report is not counted (演练 stays out of every count).
    assert daily["reports_filed"] == {"initial": 3, "followup": 1, "final": 0}
    rules = {r["rule"] for r in daily["recommendations"]}
    assert {"severe_incidents", "high_warnings", "stock_alerts"} <= rules
    html = rstack.call(
        "GET", "/v1/summaries/daily", params={"date": "2026-07-06", "format": "html"}
    )
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert "突发事件信息日报" in html.text and "<svg" in html.text
    assert "<script" not in html.text and "http://" not in html.text.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )
    # Publishing: by the operator once the 17:00 cut-off has passed, then the timer does not
    # publish again.
    rstack.clock.set(local(2026, 7, 6, 17))
    first = rstack.call("POST", "/v1/summaries/daily/publish", params={"date": "2026-07-06"})
    again = rstack.call("POST", "/v1/summaries/daily/publish", params={"date": "2026-07-06"})
    assert (first.status_code, again.status_code) == (201, 200)
    ctx = rstack.ctx("reporting")
    assert reporting_service.publish_daily_summary(ctx) is False
    rstack.clock.set(local(2026, 7, 7, 16, 59))
    assert reporting_service.publish_daily_summary(ctx) is False
    rstack.clock.set(local(2026, 7, 7, 17))
    assert reporting_service.publish_daily_summary(ctx) is True
    rstack.settle()
    published = events_of(rstack, "summary_published")
    assert [e["payload"]["summary_id"] for e in published] == [
        "daily:2026-07-06",
        "daily:2026-07-07",
    ]


def publish_daily(stack: Stack, day: str) -> Any:
    """The operator's 发布 of a day's report."""
    return stack.call("POST", "/v1/summaries/daily/publish", params={"date": day})


def daily_of(stack: Stack, day: str) -> dict[str, Any]:
    """The daily report of a day as JSON."""
    response = stack.call("GET", "/v1/summaries/daily", params={"date": day})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_an_early_publication_is_refused_and_the_publication_freezes_the_report(
    rstack: Stack,
) -> None:
    """Before 17:00 the report is 暂定 and cannot be published (409 naming the cut-off); the
    report published at the cut-off is what the day then reads, whatever comes later."""
    rstack.clock.set(local(2026, 7, 6, 1, 38))
    incident_reported(rstack, deaths=1)
    early = publish_daily(rstack, "2026-07-06")
    assert early.status_code == 409, early.text
    assert early.json()["error"]["fields"][0]["path"] == "query.date"
    assert "17:00" in early.json()["error"]["message"]
    assert daily_of(rstack, "2026-07-06")["provisional"] is True
    rstack.clock.set(local(2026, 7, 6, 17))
    assert reporting_service.publish_daily_summary(rstack.ctx("reporting")) is True
    rstack.settle()
    assert [e["payload"]["summary_id"] for e in events_of(rstack, "summary_published")] == [
        "daily:2026-07-06"
    ]
    rstack.clock.set(local(2026, 7, 6, 20))
    incident_reported(rstack, deaths=5)
    frozen = daily_of(rstack, "2026-07-06")
    assert frozen["provisional"] is False and frozen["published_at"] is not None
    assert frozen["incidents"]["total"] == 1 and frozen["incidents"]["casualties"]["deaths"] == 1
    document = rstack.call(
        "GET", "/v1/summaries/daily", params={"date": "2026-07-06", "format": "html"}
    )
    assert "暂定" not in document.text
    assert publish_daily(rstack, "2026-07-06").status_code == 200
    # What came after the cut-off is the next day's report (17:00 to 17:00), not lost.
    rstack.clock.set(local(2026, 7, 7, 9))
    next_day = daily_of(rstack, "2026-07-07")
    assert next_day["incidents"]["total"] == 1
    assert next_day["incidents"]["casualties"]["deaths"] == 5
    assert next_day["period"]["from"] == local(2026, 7, 6, 17).isoformat().replace("+00:00", "Z")


def test_no_daily_report_for_a_day_to_come_or_before_the_start(rstack: Stack) -> None:
    """A future day and a day before the county's first day have no report (422 on date),
    so the first issue's 第1期 belongs to the start day alone."""
    rstack.clock.set(local(2026, 7, 7, 1, 38))
    for day in ("2026-07-08", "2026-12-25", "2026-07-05", "1999-01-01"):
        for response in (
            rstack.call("GET", "/v1/summaries/daily", params={"date": day, "format": "html"}),
            publish_daily(rstack, day),
        ):
            assert response.status_code == 422, (day, response.text)
            field = response.json()["error"]["fields"][0]
            assert field["path"] == "query.date" and day in field["reason"]
    assert daily_of(rstack, "2026-07-06")["issue_number"] == 1
    assert daily_of(rstack, "2026-07-07")["issue_number"] == 2
    to_come = rstack.call(
        "GET", "/v1/summaries/situation", params={"from": "2026-07-08", "to": "2026-07-08"}
    )
    assert to_come.status_code == 422
    assert to_come.json()["error"]["fields"][0]["path"] == "query.from"
    today = rstack.call(
        "GET", "/v1/summaries/situation", params={"from": "2026-07-07", "to": "2026-07-07"}
    )
    assert today.status_code == 200


def merged(duplicate: str, primary: str) -> dict[str, Any]:
    """The payload of ``incident_merged`` as intake emits it."""
    return {
        "incident_id": duplicate,
        "primary_id": primary,
        "township_code": TOWNSHIP_A,
        "merged_by": "operator",
        "reason": "同一地点重复报告",
    }


def merge(stack: Stack, duplicate: str, primary: str, *, settle: bool = True) -> None:
    """``incident_merged`` as intake emits it."""
    emit(
        stack,
        "intake",
        "incident_merged",
        merged(duplicate, primary),
        correlation_id=duplicate,
        settle=settle,
    )


@pytest.mark.parametrize("merge_first", [False, True], ids=["merge-after", "merge-before"])
def test_a_merged_duplicate_is_counted_once(rstack: Stack, merge_first: bool) -> None:
    """Two reports of one event, the second merged into the first: the daily report and the
    day's situation pack count one event and its deaths once, whether the merge reaches
    reporting after the duplicate's reports or before them (parked until the first comes)."""
    rstack.clock.set(local(2026, 7, 6, 9))
    primary = incident_reported(rstack, grade=3, deaths=2).payload["incident_id"]
    if merge_first:
        merge(rstack, "inc-dup", primary)
    rstack.clock.set(local(2026, 7, 6, 9, 5))
    incident_reported(rstack, incident_id="inc-dup", grade=3, township_code=TOWNSHIP_B, deaths=2)
    if not merge_first:
        # The duplicate's own follow-up before the merge goes with it: neither counted nor summed.
        deaths = {"deaths": 3, "injured": 0, "missing": 0, "trapped": 0}
        followup = report_body("inc-dup", casualties=deaths)
        assert rstack.call("POST", "/v1/reports", json=followup).status_code == 201
        rstack.settle()
        merge(rstack, "inc-dup", primary)
    daily = daily_of(rstack, "2026-07-06")
    pack = rstack.call(
        "GET", "/v1/summaries/situation", params={"from": "2026-07-06", "to": "2026-07-06"}
    ).json()
    for summary in (daily, pack):
        incidents = summary["incidents"]
        assert incidents["total"] == 1 and incidents["casualties"]["deaths"] == 2
        assert {r["township_code"]: r["count"] for r in incidents["by_township"]} == {TOWNSHIP_A: 1}
        assert [g["count"] for g in incidents["by_grade"]] == [0, 0, 1, 0]
        assert [r["id"] for r in summary["incident_list"]] == [primary]
    assert daily["reports_filed"] == {"initial": 1, "followup": 0, "final": 0}
    assert [r["id"] for r in daily["open_incidents"]] == [primary]


def test_situation_pack_trend_hot_spots_and_overdue(rstack: Stack) -> None:
    ids = seed(rstack)
    rstack.clock.set(local(2026, 7, 8, 9))
    scan(rstack)
    pack = rstack.call(
        "GET",
        "/v1/summaries/situation",
        params={"from": "2026-07-06T00:00:00+08:00", "to": "2026-07-07T00:00:00+08:00"},
    ).json()
    assert pack["trend"]["current"] == 3 and pack["trend"]["previous"] == 0
    assert pack["hot_spots"][0]["township_code"] == TOWNSHIP_A
    assert pack["hot_spots"][0]["share_percent"] == pytest.approx(66.7)
    overdue_incidents = {d["incident_id"] for d in pack["reporting"]["overdue_items"]}
    # Due within the period and still unfiled: the 17:00 follow-ups of the two grade IV
    # incidents; the flood's 17:00 slot was met by its follow-up at 12:00.
    assert {ids["late"], ids["b"]} <= overdue_incidents and ids["flood"] not in overdue_incidents
    assert "overdue_reports" in {r["rule"] for r in pack["recommendations"]}
    html = rstack.call(
        "GET",
        "/v1/summaries/situation",
        params={
            "from": "2026-07-06T00:00:00+08:00",
            "to": "2026-07-07T00:00:00+08:00",
            "format": "html",
        },
    ).text
    assert "突发事件会商研判材料" in html and "研判建议" in html
    bad = rstack.call(
        "GET",
        "/v1/summaries/situation",
        params={"from": "2026-07-07T00:00:00+08:00", "to": "2026-07-06T00:00:00+08:00"},
    )
    assert bad.status_code == 422 and bad.json()["error"]["fields"][0]["path"] == "query.to"
    assert (
        rstack.call(
            "GET",
            "/v1/summaries/situation",
            who="township_a",
            params={"from": "2026-07-06T00:00:00+08:00", "to": "2026-07-07T00:00:00+08:00"},
        ).status_code
        == 403
    )


def test_scores_for_a_month_provisional_then_published(rstack: Stack) -> None:
    ids = seed(rstack)
    codes = [t.code for t in rstack.ctx("reporting").county.townships]
    # On the seeded day A and B list their incidents; 「无事件」 would be refused (409).
    listed = {TOWNSHIP_A: [ids["flood"], ids["late"]], TOWNSHIP_B: [ids["b"]]}
    for day in range(6, 31):
        rstack.clock.set(local(2026, 7, day + 1, 7))  # each day's zero report the next morning
        for code in codes[:-1]:
            body = zero_body(code, date(2026, 7, day))
            if day == 6 and code in listed:
                body.update(nothing_to_report=False, incident_ids=listed[code])
            assert rstack.call("POST", "/v1/zero-reports", json=body).status_code == 201
    rstack.clock.set(local(2026, 8, 1, 9))
    scan(rstack)
    provisional = rstack.call("GET", "/v1/scores", params={"month": "2026-07"}).json()
    assert provisional["status"] == "provisional"
    rows = {r["township_code"]: r for r in provisional["items"]}
    silent = rows[codes[-1]]
    # The platform first started on 07-06: the five days before it owed nothing.
    assert silent["components"]["zero_report"] == 0.0 and silent["basis"]["zero_report_days"] == 26
    assert silent["total"] == 0.0 and silent["rank"] == len(codes)
    a = rows[TOWNSHIP_A]
    # Township A: two initial reports (one late), one follow-up; the flood's follow-up slots
    # after the report went unfiled, so timeliness and completeness fall.
    assert a["basis"]["reports_filed"] == 3
    assert a["basis"]["deadlines_late"] >= 1
    assert a["components"]["completeness"] < 100
    assert a["components"]["zero_report"] == pytest.approx(round(100 * 25 / 26, 1))
    ranks = [r["rank"] for r in provisional["items"]]
    assert ranks[0] == 1 and ranks == sorted(ranks)
    quiet_and_diligent = rows[codes[5]]  # no incidents, every zero report on time
    assert quiet_and_diligent["components"]["zero_report"] == pytest.approx(round(100 * 25 / 26, 1))
    assert quiet_and_diligent["total"] > silent["total"]
    own = rstack.call("GET", "/v1/scores", who="township_b", params={"month": "2026-07"}).json()
    assert [r["township_code"] for r in own["items"]] == [TOWNSHIP_B]
    assert rstack.call("GET", "/v1/scores", params={"month": "2026-13"}).status_code == 422
    assert rstack.call("GET", "/v1/scores", params={"month": "2026-09"}).status_code == 422
    ctx = rstack.ctx("reporting")
    rstack.clock.set(local(2026, 8, 14, 23))
    assert reporting_service.publish_scores(ctx) is False
    rstack.clock.set(local(2026, 8, 15, 0, 5))
    assert reporting_service.publish_scores(ctx) is True
    assert reporting_service.publish_scores(ctx) is False
    rstack.settle()
    published = rstack.call("GET", "/v1/scores", params={"month": "2026-07"}).json()
    assert published["status"] == "published"
    assert [r["total"] for r in published["items"]] == [r["total"] for r in provisional["items"]]
    # Late data after publication does not change published scores.
    rstack.call("POST", "/v1/reports", json=report_body(ids["b"], "final"))
    again = rstack.call("GET", "/v1/scores", params={"month": "2026-07"}).json()
    assert again["items"] == published["items"]
    assert any(
        e["payload"]["kind"] == "monthly_scores" for e in events_of(rstack, "summary_published")
    )


def test_daily_summaries_missed_during_a_downtime_are_published_on_restart(
    rstack: Stack,
) -> None:
    """The service first ran on 07-06 and was down until 07-10 18:00: the timer's first run
    publishes the summaries of 07-06 to 07-10, each once, in date order."""
    ctx = rstack.ctx("reporting")
    rstack.clock.set(local(2026, 7, 10, 18))
    # The stack's own timer may run first once the clock moved; either run is the catch-up.
    reporting_service.publish_daily_summary(ctx)
    assert reporting_service.publish_daily_summary(ctx) is False
    rstack.settle()
    published = [e["payload"]["summary_id"] for e in events_of(rstack, "summary_published")]
    assert published == [f"daily:2026-07-{day:02d}" for day in range(6, 11)]


@pytest.mark.browser
def test_summaries_render_in_a_real_browser(rstack: Stack, tmp_path: Path) -> None:
    """Screenshots go to $YINGJI_TEST_ARTIFACTS (or the test's tmp dir); they are not committed."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        unavailable("Debian chromium is not installed", "scripts/install-browser installs it")
        return
    seed(rstack)
    out = Path(os.environ.get("YINGJI_TEST_ARTIFACTS", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    pages = {
        "daily": ("/v1/summaries/daily", {"date": "2026-07-06", "format": "html"}),
        "situation": (
            "/v1/summaries/situation",
            {
                "from": "2026-07-06T00:00:00+08:00",
                "to": "2026-07-07T00:00:00+08:00",
                "format": "html",
            },
        ),
    }
    for name, (path, params) in pages.items():
        html = rstack.call("GET", path, params=params).text
        page = tmp_path / f"{name}.html"
        page.write_text(html, encoding="utf-8")
        shot = out / f"reporting-{name}.png"
        dom = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        assert dom.count("<svg") >= 4 and 'class="bar"' in dom
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--screenshot={shot}",
                "--window-size=1000,2400",
                page.as_uri(),
            ],
            capture_output=True,
            timeout=60,
            check=True,
        )
        assert shot.exists() and shot.stat().st_size > 10_000
        print(f"screenshot: {shot}")


def platform_event_types() -> set[str]:
    """Every event type the four services publish (test services register their own too)."""
    return {t for source, t in registered_event_types() if source in SERVICE_NAMES}


def _every_event(
    primary: str, duplicate: str, now: datetime
) -> list[tuple[str, str, dict[str, Any]]]:
    """One event of every registered type, with codes and ids as the services send them; the
    user's own texts (titles, reasons, headlines) are Chinese, so any ASCII is the platform's."""
    tomorrow = now + timedelta(days=1)
    warning = {"warning_id": "W-7f3a", "hazard": "rainstorm", "areas": [TOWNSHIP_A]}
    dispatch = {"dispatch_id": "D-9c1e", "incident_id": primary}
    assignment = {"assignment_id": "A-5b2d", "incident_id": primary}
    day = now.date().isoformat()
    return [
        (
            "intake",
            "incident_regraded",
            {
                "incident_id": primary,
                "township_code": TOWNSHIP_A,
                "category": "flood",
                "old_grade": 3,
                "new_grade": 2,
                "reason": "续报第1次：死亡12人，升为Ⅱ级（重大）",
            },
        ),
        (
            "intake",
            "incident_merged",
            merged(duplicate, primary),
        ),
        (
            "intake",
            "incident_closed",
            {
                "incident_id": duplicate,
                "township_code": TOWNSHIP_A,
                "closed_by": "leader",
                "reason": "处置完毕",
            },
        ),
        (
            "warning",
            "warning_issued",
            {
                **warning,
                "version": 1,
                "level": 2,
                "color": "orange",
                "headline": "暴雨橙色预警",
                "villages": 6,
                "people": 77410,
                "effective": now,
                "expires": tomorrow,
            },
        ),
        (
            "warning",
            "warning_adjusted",
            {
                **warning,
                "version": 2,
                "level": 1,
                "color": "red",
                "old_level": 2,
                "reason": "雨势加大",
            },
        ),
        (
            "warning",
            "warning_delivery_failed",
            {
                "warning_id": "W-7f3a",
                "version": 2,
                "township_code": TOWNSHIP_A,
                "channel": "sms",
                "attempts": 4,
                "error": "HTTP 503 from gateway",
            },
        ),
        (
            "warning",
            "warning_delivery_failed",
            {
                "warning_id": "W-7f3a",
                "version": 2,
                "township_code": TOWNSHIP_B,
                "channel": "pager-gw",
                "attempts": 4,
                "error": "timeout",
            },
        ),
        (
            "warning",
            "warning_acknowledged",
            {"warning_id": "W-7f3a", "version": 2, "township_code": TOWNSHIP_A},
        ),
        (
            "warning",
            "warning_unacknowledged",
            {"warning_id": "W-7f3a", "version": 2, "level": 1, "township_code": TOWNSHIP_B},
        ),
        (
            "warning",
            "warning_village_acknowledged",
            {
                "warning_id": "W-7f3a",
                "version": 2,
                "township_code": TOWNSHIP_A,
                "village_code": "349901001001",
                "village_name": "东街社区",
                "via": "link",
            },
        ),
        (
            "warning",
            "warning_village_unacknowledged",
            {
                "warning_id": "W-7f3a",
                "version": 2,
                "level": 1,
                "township_code": TOWNSHIP_B,
                "village_code": "349901101202",
            },
        ),
        (
            "warning",
            "warning_suggested",
            {
                "suggestion_id": "S-11aa",
                "incident_id": primary,
                "hazard": "geological",
                "level": 3,
                "areas": [TOWNSHIP_A],
            },
        ),
        (
            "warning",
            "warning_lifted",
            {**warning, "version": 3, "level": 1, "color": "red", "reason": "降雨结束"},
        ),
        ("warning", "warning_expired", {**warning, "version": 4, "level": 1, "color": "red"}),
        (
            "warning",
            "warning_approval_requested",
            {
                **warning,
                "version": 5,
                "level": 2,
                "color": "orange",
                "msg_type": "Update",
                "old_level": 1,
                "headline": "县暴雨橙色预警",
                "requested_by": "operator",
                "requested_at": now.isoformat(),
            },
        ),
        (
            "warning",
            "warning_approval_decided",
            {
                "warning_id": "W-7f3a",
                "version": 5,
                "decision": "rejected",
                "decided_by": "leader",
                "decided_at": now.isoformat(),
                "note": "尚未达到橙色标准",
            },
        ),
        (
            "dispatch",
            "dispatch_ordered",
            {
                **dispatch,
                "team_ids": ["T03", "T-unknown"],
                "resources": [
                    {"warehouse_id": "W01", "item_code": "tent", "quantity": 50},
                    {"warehouse_id": "W99", "item_code": "pump", "quantity": 2},
                ],
            },
        ),
        (
            "dispatch",
            "dispatch_status_changed",
            {**dispatch, "old_status": "ordered", "status": "en_route"},
        ),
        (
            "dispatch",
            "stock_low",
            {"warehouse_id": "W01", "item_code": "tent", "quantity": 60, "min_level": 80},
        ),
        (
            "dispatch",
            "stock_low",
            {"warehouse_id": "W99", "item_code": "pump", "quantity": 1, "min_level": 5},
        ),
        (
            "dispatch",
            "plan_activated",
            {
                "plan_id": "P-3e3e",
                "level": 1,
                "trigger_kind": "incident",
                "trigger_id": primary,
                "township_codes": [TOWNSHIP_A],
                "incident_id": primary,
                "hazard": "flood",
                "reason": "incident grade 1",
                "reason_label": "事件定为Ⅰ级，启动预案",
            },
        ),
        (
            "dispatch",
            "plan_changed",
            {
                "plan_id": "P-3e3e",
                "old_level": 1,
                "level": 2,
                "reason": "incident grade 2",
                "reason_label": "事件调整为Ⅱ级",
            },
        ),
        (
            "dispatch",
            "plan_ended",
            {
                "plan_id": "P-3e3e",
                "reason": "incident closed",
                "reason_label": "事件已结案",
                "incident_id": primary,
            },
        ),
        (
            "dispatch",
            "assignment_created",
            {**assignment, "level": "village", "due_at": tomorrow},
        ),
        (
            "dispatch",
            "assignment_escalated",
            {**assignment, "from_level": "village", "to_level": "township"},
        ),
        ("dispatch", "assignment_overdue", {**assignment, "due_at": tomorrow}),
        (
            "reporting",
            "followup_filed",
            {
                "report_id": "R-0a0a",
                "incident_id": primary,
                "township_code": TOWNSHIP_A,
                "number": 1,
                "casualties": {},
                "affected": {},
            },
        ),
        (
            "reporting",
            "final_report_filed",
            {
                "report_id": "R-0b0b",
                "incident_id": primary,
                "township_code": TOWNSHIP_A,
                "casualties": {},
                "affected": {},
            },
        ),
        (
            "reporting",
            "report_overdue",
            {
                "deadline_id": f"{primary}:followup:1",
                "kind": "followup",
                "township_code": TOWNSHIP_A,
                "due_at": now,
                "escalation": 2,
                "incident_id": primary,
            },
        ),
        ("reporting", "zero_report_missed", {"township_code": TOWNSHIP_B, "date": day}),
        (
            "reporting",
            "zero_report_filed",
            {"township_code": TOWNSHIP_A, "date": day, "nothing_to_report": True},
        ),
        (
            "reporting",
            "zero_report_contradicted",
            {
                "township_code": TOWNSHIP_A,
                "date": day,
                "incident_ids": [primary],
                "attempted_by": "township_a",
            },
        ),
        (
            "reporting",
            "epidemic_report_filed",
            {
                "unit_id": "H04",
                "unit_kind": "health_unit",
                "township_code": TOWNSHIP_A,
                "date": day,
                "disease_code": "measles",
                "cases": 2,
            },
        ),
        (
            "reporting",
            "epidemic_report_missed",
            {
                "unit_id": TOWNSHIP_B,
                "unit_kind": "township",
                "township_code": TOWNSHIP_B,
                "date": day,
                "disease_codes": ["cholera", "measles"],
            },
        ),
        (
            "dispatch",
            "enterprise_registered",
            {
                "enterprise_id": "E-3c4d",
                "revision": 1,
                "name": "青石化工有限公司",
                "township_code": TOWNSHIP_A,
                "risk_level": "major",
                "responsible": {"name": "赵厂长", "phone": "13800000001"},
                "safety_officer": {"name": "钱安全", "phone": "13800000002"},
            },
        ),
        (
            "dispatch",
            "enterprise_rectification_overdue",
            {
                "enterprise_id": "E-3c4d",
                "inspection_id": "I-5e6f",
                "name": "青石化工有限公司",
                "township_code": TOWNSHIP_A,
                "risk_level": "major",
                "deadline": day,
                "findings": 2,
            },
        ),
        (
            "dispatch",
            "assignment_supervised",
            {
                **assignment,
                "supervision_id": "S-1",
                "form": "meeting",
                "on": day,
                "by": "县综治办",
                "summary": "县综治办对纠纷化解会议督办（" + day + "）",
            },
        ),
        (
            "dispatch",
            "joint_meeting_held",
            {
                "meeting_id": "M-1",
                "held_on": day,
                "convener": "县矛盾纠纷大调解协调中心",
                "attendees": ["县司法局", "县公安局"],
                "decisions": ["司法所牵头调解"],
                "assignment_ids": ["A-5b2d"],
                "incident_ids": [primary],
                "summary": "县矛盾纠纷大调解协调中心召开联席会议（"
                + day
                + "），2个单位参加，议定1项",
            },
        ),
        # The special campaigns' events carry the sentence their use cases wrote.
        (
            "reporting",
            "campaign_started",
            {
                "campaign_id": "C-1",
                "name": "矛盾纠纷大排查",
                "starts_on": day,
                "ends_on": day,
                "participants": [TOWNSHIP_A],
                "report_every_days": 3,
                "stage_report_days": 2,
                "summary": "启动专项行动「矛盾纠纷大排查」：每3天报告一次",
            },
        ),
        (
            "reporting",
            "campaign_report_filed",
            {
                "campaign_id": "C-1",
                "report_id": "CR-1",
                "participant": TOWNSHIP_A,
                "kind": "campaign_report",
                "summary": "专项行动「矛盾纠纷大排查」：青石镇报送定期报告",
            },
        ),
        (
            "reporting",
            "campaign_ended",
            {
                "campaign_id": "C-1",
                "name": "矛盾纠纷大排查",
                "ended_at": now,
                "summary": "专项行动「矛盾纠纷大排查」结束，此后的报告不再要求（撤销 2 项时限）",
            },
        ),
        # The duty office's events carry the sentence its use case wrote.
        (
            "reporting",
            "duty_shift_unstaffed",
            {
                "shift_id": f"{day}:night",
                "day": day,
                "code": "night",
                "starts_at": tomorrow,
                "summary": "夜班无人值守，请排班",
            },
        ),
        (
            "reporting",
            "duty_handover_confirmed",
            {
                "handover_id": "H-1",
                "shift_id": f"{day}:day",
                "outgoing_officer": "王值班",
                "incoming_officer": "李值班",
                "confirmed_at": now,
                "summary": "王值班与李值班完成交接班",
            },
        ),
        (
            "reporting",
            "duty_handover_missing",
            {"shift_id": f"{day}:day", "ended_at": now, "summary": "白班结束未完成交接班"},
        ),
        (
            "reporting",
            "upward_report_sent",
            {
                "push_id": "P-1",
                "message_id": "M-1",
                "kind": "initial",
                "received_at": now,
                "incident_id": primary,
                "township_code": TOWNSHIP_A,
                "summary": "已上报市：首报",
            },
        ),
        (
            "reporting",
            "upward_report_failed",
            {
                "push_id": "P-2",
                "message_id": "M-2",
                "kind": "followup",
                "reason": "市平台无应答",
                "attempts": 2,
                "next_attempt_at": tomorrow,
                "incident_id": primary,
                "township_code": TOWNSHIP_A,
                "summary": "上报失败：市平台无应答（第2次）",
            },
        ),
        (
            "reporting",
            "upstream_request_received",
            {
                "request_id": "R-1",
                "incident_id": primary,
                "kind": "instruction",
                "text": "请核实伤亡人数",
                "due_at": tomorrow,
                "township_code": TOWNSHIP_A,
                "summary": "市领导批示：请核实伤亡人数",
            },
        ),
        # Information work's events carry the sentence its use case wrote.
        (
            "reporting",
            "information_item_submitted",
            {
                "item_id": "I-1",
                "unit_kind": "department",
                "unit_code": "water",
                "kind": "info",
                "title": "青石河水位上涨",
                "week": day,
                "month": day[:7],
                "summary": "县水利局报送信息「青石河水位上涨」",
            },
        ),
        (
            "reporting",
            "information_adopted",
            {
                "feedback_id": "item:I-1:adoption:city",
                "target_kind": "item",
                "target_id": "I-1",
                "unit_kind": "department",
                "unit_code": "water",
                "adopted_level": "city",
                "adopted_by": "市政府办公室",
                "date": day,
                "summary": "县水利局「青石河水位上涨」获市级采用（市政府办公室）",
            },
        ),
        (
            "reporting",
            "information_instructed",
            {
                "feedback_id": "item:I-1:instruction:1",
                "target_kind": "item",
                "target_id": "I-1",
                "unit_kind": "department",
                "unit_code": "water",
                "leader": "县长",
                "leader_level": "county",
                "date": day,
                "summary": "县水利局「青石河水位上涨」获县长（县级）批示",
            },
        ),
        (
            "reporting",
            "information_noticed",
            {
                "feedback_id": "notice:1",
                "unit_kind": "township",
                "unit_code": TOWNSHIP_B,
                "reason": "late",
                "date": day,
                "summary": "青石镇被通报批评（迟报）",
            },
        ),
        (
            "reporting",
            "information_quota_missed",
            {
                "unit_kind": "department",
                "unit_code": "meteorology",
                "quota": "items",
                "period": day,
                "period_start": day,
                "period_end": day,
                "required": 5,
                "submitted": 2,
                "summary": "县气象局本周信息报送未完成：应报5条，实报2条",
            },
        ),
        (
            "reporting",
            "summary_published",
            {
                "summary_id": f"daily:{day}",
                "kind": "daily",
                "period_start": now - timedelta(days=1),
                "period_end": now,
            },
        ),
    ]


# A letter of the Latin alphabet anywhere (a code, an id, an English word), or a level written
# with an Arabic numeral (3级) instead of Ⅲ级.
NOT_CHINESE = re.compile(r"[A-Za-z]|\d\s*级")


def test_every_event_type_reads_as_a_chinese_sentence(rstack: Stack) -> None:
    """Each registered event type, as the services send it, becomes a sentence with names
    instead of codes and ids, and levels as Ⅰ–Ⅳ级."""
    rstack.clock.set(local(2026, 7, 6, 9))
    primary, duplicate = "6f1d2c3b4a5e", "9e8d7c6b5a4f"
    now = rstack.clock.now()
    for ident, title in ((primary, "青石河堤漫顶"), (duplicate, "青石河堤漫顶（重复）")):
        incident = {
            "incident_id": ident,
            "township_code": TOWNSHIP_A,
            "category": "flood",
            "title": title,
            "grade": 3,
            "occurred_at": now - timedelta(minutes=30),
            "discovered_at": now - timedelta(minutes=20),
            "reported_at": now,
        }
        emit(rstack, "intake", "incident_reported", incident, correlation_id=ident, settle=False)
    rstack.settle()
    scenario = _every_event(primary, duplicate, rstack.clock.now())
    assert {t for _, t, _ in scenario} | {"incident_reported"} == platform_event_types(), (
        "every event type is in the scenario"
    )
    for source, event_type, payload in scenario:
        emit(rstack, source, event_type, payload, correlation_id=primary, settle=False)
    rstack.settle()
    items = rstack.call("GET", "/v1/audit", params={"limit": 200}).json()["items"]
    summaries = {(i["event_type"], i["summary"]) for i in items}
    ids = [primary, duplicate, "W-7f3a", "D-9c1e", "A-5b2d", "P-3e3e", "W01", "W99", "T03"]
    wrong = [
        s
        for _, s in summaries
        if NOT_CHINESE.search(s) or any(i in s for i in ids) or "—" in s or "其他事件" in s
    ]
    assert wrong == []
    assert {t for t, _ in summaries} == platform_event_types()
    sentences = {s for _, s in summaries}
    expected = {
        "事件定级由Ⅲ级调整为Ⅱ级：续报第1次：死亡12人，升为Ⅱ级（重大）",
        "重复事件并入「青石河堤漫顶」",
        "事件结案（值班领导）：处置完毕",
        "预警送达失败：城关镇（短信）",
        "发布橙色预警：暴雨橙色预警，覆盖6个村、约77410人",
        "城关镇东街社区 确认收到预警（信息员点击短信链接）",
        "青石镇上湾村 未按时确认预警，已向乡镇催办",
        "预警送达失败：青石镇（发布渠道）",
        "建议发布黄色预警（地质灾害）",
        "橙色预警（暴雨）第5版调整待审批",
        "预警第5版被驳回",
        "调派救援力量：县应急救援队及其他队伍1支，调运物资：救灾帐篷50顶、物资2",
        "调度状态由「已下达」转为「在途」",
        "物资低于下限：县应急物资储备库 救灾帐篷 余60顶",
        "物资低于下限：储备库 物资 余1",
        "启动应急预案（Ⅰ级响应）",
        "预案响应级别 Ⅰ级 → Ⅱ级：事件调整为Ⅱ级",
        "纠纷上交：村级 → 乡镇级",
        "续报逾期未报（第2次催报）",
        "青石镇 2026年7月6日 零报告缺报",
        "发布突发事件信息日报",
        "县水利局「青石河水位上涨」获市级采用（市政府办公室）",
        "县气象局本周信息报送未完成：应报5条，实报2条",
    }
    assert expected <= sentences, sorted(expected - sentences)


def test_overdue_and_late_lists_and_publication_read_as_whole_documents_would(
    rstack: Stack,
) -> None:
    """The pack's overdue and late lists (titles read in one query, deadlines projected) and the
    daily summary's publication (read without its content) say what the whole documents say."""
    ids = seed(rstack)
    rstack.clock.set(local(2026, 7, 8, 9))
    scan(rstack)
    # The 7th's report (17:00 on the 6th to 17:00 on the 7th) lists what was overdue by then.
    assert rstack.call("POST", "/v1/summaries/daily/publish", params={"date": "2026-07-07"})
    ctx = rstack.ctx("reporting")
    repo = reporting_service.open_repository(ctx)
    names = {t.code: t.name for t in ctx.county.townships}
    daily = reporting_service.use_cases(ctx).daily_summary(date(2026, 7, 7))
    overdue = daily["reporting"]["overdue_items"]
    assert {ids["late"], ids["b"]} <= {row["incident_id"] for row in overdue}
    for row in overdue:
        whole = repo.deadline_by_id(row["id"]) or {}
        incident = repo.incident_view(whole["incident_id"]) or {}
        title = incident.get("title") or "（事件标题未收到）"
        assert row == {**summaries._deadline_row(whole, names), "incident_title": title}
    late_items = reporting_service.use_cases(ctx).daily_summary(date(2026, 7, 6))["reporting"][
        "late_items"
    ]
    assert late_items
    for row in late_items:
        title = (repo.incident_view(row["incident_id"]) or {}).get("title")
        assert row["incident_title"] == (title or "（事件标题未收到）")
    published = repo.summary_by_id("daily:2026-07-07") or {}
    assert daily["published_at"] == published["published_at"]
    assert daily["issue_number"] == published["content"]["issue_number"]


@pytest.mark.parametrize("adjusted_first", [False, True], ids=["in-order", "adjustment-first"])
def test_an_adjusted_warning_is_listed_with_its_new_headline(
    rstack: Stack, adjusted_first: bool
) -> None:
    """Summaries and documents print a warning's current headline beside its current level,
    whichever of its two versions reaches reporting first."""
    now = rstack.clock.now()
    common = {
        "warning_id": "W-adj",
        "hazard": "rainstorm",
        "areas": [TOWNSHIP_A],
        "exercise": False,
    }
    issued = (
        "warning_issued",
        {
            **common,
            "version": 1,
            "level": 3,
            "color": "yellow",
            "headline": "城关镇暴雨黄色预警",
            "effective": now,
            "expires": now + timedelta(hours=12),
        },
    )
    adjusted = (
        "warning_adjusted",
        {
            **common,
            "version": 2,
            "level": 2,
            "color": "orange",
            "old_level": 3,
            "reason": "雨势加大",
            "headline": "城关镇暴雨橙色预警",
            "expires": now + timedelta(hours=24),
        },
    )
    for event_type, payload in [adjusted, issued] if adjusted_first else [issued, adjusted]:
        emit(rstack, "warning", event_type, payload, correlation_id="W-adj")
    repo = rstack.ctx("reporting").resources["repository"]
    [active] = repo.warnings_active_at(now + timedelta(hours=1))
    assert (active["level"], active["headline"]) == (2, "城关镇暴雨橙色预警")
    assert as_utc(active["expires"]) == as_utc(now + timedelta(hours=24))
