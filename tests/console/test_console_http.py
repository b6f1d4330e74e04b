"""The console router over HTTP: page and static files, headers, and the live event stream."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from libs.common.clock import ManualClock
from services.reporting.console import CONSOLE_DIR, HEARTBEAT_SECONDS, OPEN_STREAMS, TimelineFeed
from tests.console.support import (
    LiveServer,
    ManualTicker,
    Timeline,
    live_server,
    messages_until,
    open_stream,
    reopen,
    reporting_timeline,
    separate_timeline,
)
from tests.support.bodies import incident_body
from tests.support.stack import TOWNSHIP_A, TOWNSHIP_B, Stack

FORBIDDEN_CSP = ("'unsafe-inline'", "'unsafe-eval'", "*", "http:", "https:")


# ------------------------------------------------------------------ page and static files


def test_console_page_is_served_with_a_strict_csp(console_stack: Stack) -> None:
    response = console_stack.client.get("/console")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"
    for token in FORBIDDEN_CSP:
        assert token not in csp.split(), token
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    html = response.text
    # No inline script or style anywhere: every <script> has a src, no style attributes.
    assert all("src=" in tag for tag in re.findall(r"<script[^>]*>", html))
    assert "<style" not in html and " style=" not in html and "javascript:" not in html
    assert 'lang="zh-CN"' in html


@pytest.mark.parametrize(
    ("name", "media_type"),
    [("app.js", "text/javascript"), ("i18n.js", "text/javascript"), ("app.css", "text/css")],
)
def test_static_files_are_served_with_their_types(
    console_stack: Stack, name: str, media_type: str
) -> None:
    response = console_stack.client.get(f"/console/static/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media_type)
    assert "content-security-policy" in response.headers
    assert response.content == (CONSOLE_DIR / name).read_bytes()


@pytest.mark.parametrize(
    "path",
    [
        "/console/static/nothing.js",
        "/console/static/index.html",
        "/console/static/..%2Fconsole.py",
        "/console/static/%2e%2e%2fstore.py",
    ],
)
def test_unknown_and_traversing_static_paths_are_404(console_stack: Stack, path: str) -> None:
    assert console_stack.client.get(path).status_code == 404


def test_console_works_offline() -> None:
    """Nothing is loaded from another origin: no CDN, no web fonts, no eval."""
    for path in CONSOLE_DIR.iterdir():
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text), path.name
        assert "@import" not in text and "url(" not in text, path.name
        assert "eval(" not in text and "new Function" not in text, path.name
        assert ".innerHTML" not in text and "insertAdjacentHTML" not in text, path.name


def test_cross_origin_requests_get_no_cors_grant(console_stack: Stack) -> None:
    evil = {"Origin": "https://evil.example"}
    page = console_stack.client.get("/console", headers=evil)
    assert "access-control-allow-origin" not in page.headers
    me = console_stack.call("GET", "/v1/me", headers=evil)
    assert "access-control-allow-origin" not in me.headers
    preflight = console_stack.client.options(
        "/v1/stream",
        headers={
            **evil,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.status_code >= 400
    assert "access-control-allow-origin" not in preflight.headers


def test_context_needs_a_key_and_gives_the_county_day(console_stack: Stack) -> None:
    assert console_stack.client.get("/console/context").status_code == 401
    body = console_stack.call("GET", "/console/context", who="township_a").json()
    assert body["timezone"] == "Asia/Shanghai"
    # The stack starts on 2026-07-06 10:00 in Shanghai.
    assert body["today"] == "2026-07-06"
    assert body["county"]["name"]


# ------------------------------------------------------------------ stream authentication


def test_stream_refuses_missing_bad_and_url_keys(console_stack: Stack) -> None:
    client = console_stack.client
    assert client.get("/v1/stream").status_code == 401
    bad = client.get("/v1/stream", headers={"Authorization": "Bearer yj_nope_nothing"})
    assert bad.status_code == 401
    assert bad.json()["error"]["code"] == "unauthenticated"
    # A key in the URL is not accepted: keys must never end up in access logs.
    in_url = client.get("/v1/stream", params={"key": console_stack.keys["operator"]})
    assert in_url.status_code == 401


def test_stream_answers_406_to_clients_that_do_not_ask_for_a_stream(console_stack: Stack) -> None:
    response = console_stack.call("GET", "/v1/stream", headers={"Accept": "application/json"})
    assert response.status_code == 406
    assert response.json()["error"]["fields"][0]["path"] == "header.Accept"


# ------------------------------------------------------------------ stream delivery


def timeline_doc(stack: Stack, event_type: str, payload: dict[str, Any], **extra: Any) -> dict:
    """A timeline entry shaped as reporting stores it (services/reporting/usecases/incoming.py)."""
    event_id = str(uuid.uuid4())
    occurred = extra.pop("occurred_at", stack.clock.now())
    return {
        "_id": event_id,
        "event_type": event_type,
        "schema_version": 1,
        "source": extra.pop("source", "intake"),
        "occurred_at": occurred,
        "order_key": f"{occurred.isoformat()}|{time.time_ns():020d}",
        "correlation_id": payload.get("incident_id"),
        "causation_id": None,
        "incident_ids": [payload["incident_id"]] if "incident_id" in payload else [],
        "township_code": payload.get("township_code"),
        "summary": "test",
        "payload": payload,
        **extra,
    }


def test_stream_delivers_a_newly_stored_event_and_not_older_ones(
    console_stack: Stack, server: LiveServer
) -> None:
    timeline = reporting_timeline(console_stack)
    old = timeline_doc(console_stack, "incident_closed", {"incident_id": "old-1"})
    timeline.record(old)
    with open_stream(server, console_stack.keys["operator"]) as reader:
        new = timeline_doc(
            console_stack,
            "incident_reported",
            {"incident_id": "inc-new", "township_code": TOWNSHIP_A, "title": "新事件"},
        )
        timeline.record(new)
        message = reader.next()
        assert message["event"] == "incident_reported"
        data = message["data"]
        assert data["event_id"] == new["_id"]
        assert data["payload"]["title"] == "新事件"
        assert data["incident_ids"] == ["inc-new"]
        assert data["occurred_at"].startswith("2026-")
        assert "_id" not in data
        # Delivered once, and the event stored before the stream opened never comes: nothing
        # arrives before a marker stored after both and a second later.
        marker = timeline_doc(
            console_stack,
            "stock_low",
            {"warehouse_id": "W1", "item_code": "tent"},
            occurred_at=console_stack.clock.now() + timedelta(seconds=1),
        )
        timeline.record(marker)
        assert messages_until(reader, marker["_id"]) == []


def test_stream_delivers_an_incident_posted_through_the_api(
    console_stack: Stack, server: LiveServer
) -> None:
    """End to end: intake's outbox, the bus, reporting's timeline handler, the stream."""
    with open_stream(server, console_stack.keys["leader"]) as reader:
        body = incident_body(console_stack.clock.now(), TOWNSHIP_B, title="流式推送测试")
        created = console_stack.call("POST", "/v1/incidents", who="operator", json=body)
        assert created.status_code == 201, created.text
        incident_id = created.json()["id"]
        deadline = time.monotonic() + 10
        while True:
            message = reader.next(timeout=max(0.1, deadline - time.monotonic()))
            if message["event"] == "incident_reported":
                break
        assert message["data"]["payload"]["incident_id"] == incident_id
        assert message["data"]["source"] == "intake"


def test_township_keys_receive_only_their_own_townships_events(
    console_stack: Stack, server: LiveServer
) -> None:
    timeline = reporting_timeline(console_stack)
    console_stack.settle()  # nothing of an earlier test is still on its way to the timeline
    with open_stream(server, console_stack.keys["township_a"]) as reader:
        other = timeline_doc(
            console_stack, "incident_reported", {"incident_id": "b-1", "township_code": TOWNSHIP_B}
        )
        own = timeline_doc(
            console_stack, "incident_reported", {"incident_id": "a-1", "township_code": TOWNSHIP_A}
        )
        warned = timeline_doc(
            console_stack,
            "warning_issued",
            {"warning_id": "w-1", "areas": [TOWNSHIP_B, TOWNSHIP_A]},
            source="warning",
        )
        not_warned = timeline_doc(
            console_stack,
            "warning_issued",
            {"warning_id": "w-2", "areas": [TOWNSHIP_B]},
            source="warning",
        )
        countywide = timeline_doc(
            console_stack, "stock_low", {"warehouse_id": "W1", "item_code": "sandbag"}
        )
        timeline.record(other, own, warned, not_warned, countywide)
        marker = record_marker(console_stack, timeline)
        got = [m["data"]["event_id"] for m in messages_until(reader, marker["_id"])]
        assert sorted(got) == sorted([own["_id"], warned["_id"]])


def record_marker(stack: Stack, timeline: Any) -> dict[str, Any]:
    """An event of township A's incident stored after the others and a second later: a poll
    that finds it has found every event before it, so what came before it is all the stream
    will ever send."""
    marker = timeline_doc(
        stack,
        "followup_filed",
        {"incident_id": "a-1", "township_code": TOWNSHIP_A},
        occurred_at=stack.clock.now() + timedelta(seconds=1),
        source="reporting",
    )
    timeline.record(marker)
    return marker


def test_township_keys_receive_issued_warnings_only_never_drafts(
    console_stack: Stack, server: LiveServer
) -> None:
    """A warning version waiting for a leader (and its approval or rejection, and a suggestion
    drawn from an incident) is the county's drafting: over REST a township gets 404 for it, and
    its stream carries none of it, its headline least of all. The issued version comes through;
    the duty office sees everything."""
    timeline = reporting_timeline(console_stack)
    console_stack.settle()
    draft = {
        "warning_id": "w-draft",
        "version": 1,
        "level": 2,
        "color": "orange",
        "hazard": "rainstorm",
        "areas": [TOWNSHIP_A],
        "msg_type": "Alert",
        "headline": "草稿：城关镇暴雨橙色预警",
        "incident_ids": ["a-1"],
    }
    with (
        open_stream(server, console_stack.keys["township_a"]) as township,
        open_stream(server, console_stack.keys["operator"]) as operator,
    ):
        county_only = [
            timeline_doc(console_stack, "warning_approval_requested", draft, source="warning"),
            timeline_doc(
                console_stack,
                "warning_approval_decided",
                {**draft, "decision": "rejected", "note": "草稿有误"},
                source="warning",
            ),
            timeline_doc(
                console_stack,
                "warning_suggested",
                {"suggestion_id": "s-1", "incident_id": "a-1", "areas": [TOWNSHIP_A]},
                source="warning",
            ),
        ]
        issued = timeline_doc(
            console_stack,
            "warning_issued",
            {**draft, "warning_id": "w-issued", "headline": "城关镇暴雨橙色预警"},
            source="warning",
        )
        timeline.record(*county_only, issued)
        marker = record_marker(console_stack, timeline)
        got = messages_until(township, marker["_id"])
        assert [m["data"]["event_id"] for m in got] == [issued["_id"]]
        assert "草稿" not in str(got)
        seen = {m["data"]["event_id"] for m in messages_until(operator, marker["_id"])}
        assert {d["_id"] for d in [*county_only, issued]} <= seen


def test_stream_sends_heartbeats(
    console_stack: Stack, server: LiveServer, ticker: ManualTicker
) -> None:
    """A heartbeat once per interval of silence, on the clock the test moves."""
    timeline = reporting_timeline(console_stack)

    def marker() -> list[dict]:
        doc = timeline_doc(console_stack, "stock_low", {"warehouse_id": "W1", "item_code": "tent"})
        timeline.record(doc)
        return messages_until(reader, doc["_id"])

    console_stack.settle()  # nothing of an earlier test is still on its way to the timeline
    with open_stream(server, console_stack.keys["operator"]) as reader:
        # However long this took in real time, the interval has not passed on the ticker.
        assert marker() == [] and reader.comments == 0
        ticker.advance(HEARTBEAT_SECONDS - 0.5)
        assert marker() == [] and reader.comments == 0
        # A message resets the interval: the silence starts after the marker.
        ticker.advance(HEARTBEAT_SECONDS)
        assert wait_for(lambda: reader.comments == 1)
        # One beat per interval: a poll later (the marker came through) there is no second.
        assert marker() == [] and reader.comments == 1
        ticker.advance(HEARTBEAT_SECONDS)
        assert wait_for(lambda: reader.comments == 2)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def open_streams_settle_at(value: float, ticker: ManualTicker, timeout: float = 5.0) -> bool:
    """Wait until the open-streams gauge reads ``value``, a heartbeat interval per look.

    A stream learns that its client left when it next writes to the connection, so every
    look moves the heartbeat clock on: each open stream writes a heartbeat within a poll.
    """
    deadline = time.monotonic() + timeout
    while OPEN_STREAMS._value.get() != value:
        if time.monotonic() > deadline:
            return False
        ticker.advance(HEARTBEAT_SECONDS)
        time.sleep(0.05)
    return True


def test_stream_closes_when_the_client_goes(
    console_stack: Stack, server: LiveServer, ticker: ManualTicker
) -> None:
    # Streams of earlier tests end at their first write after their clients left.
    assert open_streams_settle_at(0, ticker)
    with open_stream(server, console_stack.keys["operator"]):
        assert OPEN_STREAMS._value.get() == 1
    assert open_streams_settle_at(0, ticker)


def test_open_streams_do_not_hold_up_server_shutdown(console_stack: Stack) -> None:
    with (
        live_server(console_stack.client.app) as extra,
        open_stream(extra, console_stack.keys["operator"]) as reader,
    ):
        took = extra.stop(timeout=15)
        assert not extra.thread.is_alive()
        assert took < 5, f"shutdown waited {took:.1f}s for the stream"
        assert reader.ended.wait(5)
    # The flag is per app: the module's stack keeps serving (for the other tests).
    reopen(console_stack)


# ------------------------------------------------------------------ the feed's cursor


def test_feed_picks_up_late_arrivals_once_and_ignores_what_was_there(
    console_stack: Stack, tmp_path: Path
) -> None:
    with separate_timeline(tmp_path) as coll:
        _feed_picks_up_late_arrivals(console_stack, coll)


def _feed_picks_up_late_arrivals(console_stack: Stack, coll: Timeline) -> None:
    clock = ManualClock(console_stack.clock.now())
    feed = TimelineFeed(coll.repo, lambda doc: True, clock.now, lookback=timedelta(minutes=5))
    before = timeline_doc(console_stack, "incident_reported", {"incident_id": "x"})
    coll.record(before)
    feed.prime()
    assert feed.poll() == []
    clock.advance(60)
    now_doc = timeline_doc(
        console_stack, "incident_regraded", {"incident_id": "x"}, occurred_at=clock.now()
    )
    # An event whose relay was held up arrives with an older occurred_at, still in the window.
    late_doc = timeline_doc(
        console_stack,
        "warning_issued",
        {"warning_id": "w"},
        occurred_at=clock.now() - timedelta(minutes=3),
    )
    coll.record(now_doc, late_doc)
    assert [d["_id"] for d in feed.poll()] == [late_doc["_id"], now_doc["_id"]]
    assert feed.poll() == []
    # Many events of one instant (a manual clock) are paged through, each once.
    burst = [
        timeline_doc(console_stack, "stock_low", {"item_code": str(i)}, occurred_at=clock.now())
        for i in range(7)
    ]
    coll.record(*burst)
    feed.batch = 3
    assert sorted(d["_id"] for d in feed.poll()) == sorted(d["_id"] for d in burst)
    assert feed.poll() == []


def test_feed_tells_a_units_epidemic_filing_once_not_once_per_disease(
    console_stack: Stack, tmp_path: Path
) -> None:
    with separate_timeline(tmp_path) as coll:
        _feed_tells_epidemic_filings_once(console_stack, coll)


def _epidemic_filed(stack: Stack, unit: str, disease: str, **payload: Any) -> dict:
    base = {"unit_id": unit, "date": "2026-07-06", "disease_code": disease, "version": 1}
    return timeline_doc(
        stack, "epidemic_report_filed", {**base, "exercise": False, **payload}, source="reporting"
    )


def _feed_tells_epidemic_filings_once(console_stack: Stack, coll: Timeline) -> None:
    clock = ManualClock(console_stack.clock.now())
    feed = TimelineFeed(coll.repo, lambda doc: True, clock.now, lookback=timedelta(minutes=5))
    feed.prime()
    diseases = ["plague", "cholera", "measles", "hfmd"]
    coll.record(*[_epidemic_filed(console_stack, "H02", d) for d in diseases])
    coll.record(*[_epidemic_filed(console_stack, "H03", d) for d in diseases])
    told = feed.poll()
    assert sorted(d["payload"]["unit_id"] for d in told) == ["H02", "H03"]
    # The timeline keeps every disease (the audit trail reads it); only the feed is quieter.
    assert len(coll.repo.timeline_since(clock.now() - timedelta(minutes=1), None, 100)) == 8
    # A correction round, and a drill filing of the same unit and day, are told once more each.
    coll.record(
        _epidemic_filed(console_stack, "H02", "hfmd", version=2),
        _epidemic_filed(console_stack, "H02", "measles", version=2),
        *[_epidemic_filed(console_stack, "H02", d, exercise=True) for d in diseases],
    )
    told = feed.poll()
    assert sorted((d["payload"]["version"], d["payload"]["exercise"]) for d in told) == [
        (1, True),
        (2, False),
    ]
    assert feed.poll() == []


def test_feed_window_is_not_pushed_ahead_by_a_fast_producer_clock(
    console_stack: Stack, tmp_path: Path
) -> None:
    with separate_timeline(tmp_path) as coll:
        _feed_window_holds(console_stack, coll)


def _feed_window_holds(console_stack: Stack, coll: Timeline) -> None:
    clock = ManualClock(console_stack.clock.now())
    feed = TimelineFeed(coll.repo, lambda doc: True, clock.now, lookback=timedelta(minutes=5))
    feed.prime()
    ahead = timeline_doc(
        console_stack, "stock_low", {"item_code": "a"}, occurred_at=clock.now() + timedelta(hours=2)
    )
    coll.record(ahead)
    assert [d["_id"] for d in feed.poll()] == [ahead["_id"]]
    normal = timeline_doc(console_stack, "stock_low", {"item_code": "b"}, occurred_at=clock.now())
    coll.record(normal)
    assert [d["_id"] for d in feed.poll()] == [normal["_id"]]
