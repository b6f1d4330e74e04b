"""Dissemination to a real local HTTP receiver, retries with back-off, acknowledgements,
unacknowledged escalation."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from prometheus_client import REGISTRY

from services.warning.domain import delivery_id, township_target
from tests.warning.capschema import CAP_NS, assert_conforms
from tests.warning.conftest import (
    TOWNSHIP_A,
    TOWNSHIP_B,
    TOWNSHIP_C,
    WarningStack,
    county_with_channels,
)


class Receiver:
    """An SMS/broadcast gateway stand-in: fails the first ``fail_first`` tries of each message."""

    def __init__(self, fail_first: int, status: int = 503) -> None:
        self.fail_first = fail_first
        self.status = status
        self.requests: list[dict[str, Any]] = []
        self.tries: dict[str, int] = {}
        self.lock = threading.Lock()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        """The request handler class bound to this receiver."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length))
                key = self.headers.get("Idempotency-Key", "")
                with receiver.lock:
                    receiver.tries[key] = receiver.tries.get(key, 0) + 1
                    failing = receiver.tries[key] <= receiver.fail_first
                    if not failing:
                        receiver.requests.append({"key": key, "body": body})
                self.send_response(receiver.status if failing else 200)
                self.end_headers()
                self.wfile.write(b"busy" if failing else b"ok")

            def log_message(self, *args: Any) -> None:
                return

        return Handler


@contextmanager
def serving(receiver: Receiver) -> Iterator[str]:
    """Run the receiver on 127.0.0.1 on a free port; yields its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), receiver.handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/gateway"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def metric(name: str, **labels: str) -> float:
    """Current value of a sample (0 when absent)."""
    return REGISTRY.get_sample_value(name, {"service": "warning", **labels}) or 0.0


def deliveries(stack: WarningStack, wid: str, who: str = "operator") -> dict[str, Any]:
    """GET the deliveries view."""
    response = stack.call("GET", f"/v1/warnings/{wid}/deliveries", who=who)
    assert response.status_code == 200, response.text
    return response.json()


def states(view: dict[str, Any], channel: str) -> dict[str, tuple[str, int]]:
    """Township → (state, attempts) of the current version on one channel."""
    found = {}
    for row in view["townships"]:
        for delivery in row["deliveries"]:
            if delivery["channel"] == channel and delivery["version"] == view["version"]:
                found[row["township_code"]] = (delivery["state"], delivery["attempts"])
    return found


def test_webhook_retries_with_backoff_until_delivered(
    make_stack: Callable[..., Any],
) -> None:
    receiver = Receiver(fail_first=2)
    with serving(receiver) as url:
        county = county_with_channels(
            [
                {"type": "log", "name": "值班日志"},
                {
                    "type": "webhook",
                    "name": "短信网关",
                    "url": url,
                    "max_attempts": 4,
                    "timeout_seconds": 2,
                    "backoff_base_seconds": 10,
                    "backoff_factor": 2,
                },
            ],
            villages=False,
        )
        with make_stack(county=county) as stack:
            stack.without_enterprises()
            before = metric(
                "yingji_warning_delivery_attempts_total",
                channel="短信网关",
                outcome="error",
                exercise="false",
            )
            wid = stack.issue(level=3).json()["id"]
            svc = stack.service
            assert svc.run_deliveries() == 4  # 2 townships × 2 channels
            view = deliveries(stack, wid)
            assert states(view, "值班日志") == {
                TOWNSHIP_A: ("delivered", 1),
                TOWNSHIP_B: ("delivered", 1),
            }
            assert states(view, "短信网关") == {
                TOWNSHIP_A: ("pending", 1),
                TOWNSHIP_B: ("pending", 1),
            }
            sms = [d for d in view["townships"][0]["deliveries"] if d["channel"] == "短信网关"]
            assert sms[0]["last_error"].startswith("HTTP 503")
            stack.clock.advance(9)
            assert svc.run_deliveries() == 0  # back-off: not due before 10 s
            stack.clock.advance(1)
            assert svc.run_deliveries() == 2  # second try fails again; next after 20 s
            stack.clock.advance(19)
            assert svc.run_deliveries() == 0
            stack.clock.advance(1)
            assert svc.run_deliveries() == 2
            view = deliveries(stack, wid)
            assert states(view, "短信网关") == {
                TOWNSHIP_A: ("delivered", 3),
                TOWNSHIP_B: ("delivered", 3),
            }
            assert (
                metric(
                    "yingji_warning_delivery_attempts_total",
                    channel="短信网关",
                    outcome="error",
                    exercise="false",
                )
                - before
                == 4
            )
            assert len(receiver.requests) == 2
            received = {r["body"]["township_code"]: r for r in receiver.requests}
            message = received[TOWNSHIP_B]["body"]
            assert unquote(received[TOWNSHIP_B]["key"]) == f"{wid}:v1:{TOWNSHIP_B}:短信网关"
            assert message["township_name"] == "青石镇"
            assert message["msg_type"] == "Alert" and message["level"] == 3
            assert message["text"].startswith("【安河县】安河县暴雨黄色预警")
            assert_conforms(message["cap"].encode())
            stack.settle()
            assert stack.probe.of("warning_delivery_failed") == []


def test_webhook_gives_up_after_max_attempts(make_stack: Callable[..., Any]) -> None:
    receiver = Receiver(fail_first=99, status=500)
    with serving(receiver) as url:
        county = county_with_channels(
            [
                {
                    "type": "webhook",
                    "name": "广播",
                    "url": url,
                    "max_attempts": 3,
                    "backoff_base_seconds": 5,
                    "backoff_factor": 1,
                }
            ],
            villages=False,
        )
        with make_stack(county=county) as stack:
            stack.without_enterprises()
            failures = metric(
                "yingji_warning_delivery_failures_total", channel="广播", exercise="false"
            )
            wid = stack.issue(level=3, areas=[TOWNSHIP_A]).json()["id"]
            for _ in range(3):
                assert stack.service.run_deliveries() == 1
                stack.clock.advance(5)
            assert stack.service.run_deliveries() == 0
            view = deliveries(stack, wid)
            assert states(view, "广播") == {TOWNSHIP_A: ("failed", 3)}
            assert view["summary"]["deliveries"]["failed"] == 1
            assert (
                metric("yingji_warning_delivery_failures_total", channel="广播", exercise="false")
                - failures
                == 1
            )
            stack.settle()
            failed = stack.probe.of("warning_delivery_failed")
            assert len(failed) == 1
            assert failed[0]["township_code"] == TOWNSHIP_A and failed[0]["attempts"] == 3
            assert failed[0]["channel"] == "广播" and "HTTP 500" in failed[0]["error"]


def test_unreachable_gateway_counts_as_a_failed_try(make_stack: Callable[..., Any]) -> None:
    county = county_with_channels(
        [
            {
                "type": "webhook",
                "name": "显示屏",
                "url": "http://127.0.0.1:9/screen",
                "max_attempts": 2,
                "timeout_seconds": 1,
            }
        ]
    )
    with make_stack(county=county) as stack:
        wid = stack.issue(level=4, areas=[TOWNSHIP_A]).json()["id"]
        stack.service.run_deliveries()
        row = deliveries(stack, wid)["townships"][0]["deliveries"][0]
        assert row["state"] == "pending" and row["attempts"] == 1
        assert "ConnectError" in row["last_error"]


def test_a_newer_version_supersedes_pending_deliveries(make_stack: Callable[..., Any]) -> None:
    receiver = Receiver(fail_first=1)
    with serving(receiver) as url:
        county = county_with_channels(
            [{"type": "webhook", "name": "短信", "url": url}], villages=False
        )
        with make_stack(county=county) as stack:
            stack.without_enterprises()
            wid = stack.issue(level=3, areas=[TOWNSHIP_A]).json()["id"]
            stack.service.run_deliveries()  # v1 fails once, stays pending
            stack.call("POST", f"/v1/warnings/{wid}/adjust", json={"level": 4, "reason": "减弱"})
            stack.clock.advance(60)
            stack.service.run_deliveries()  # v2 fails once too
            stack.clock.advance(60)
            stack.service.run_deliveries()
            rows = deliveries(stack, wid)["townships"][0]["deliveries"]
            assert [(r["version"], r["state"]) for r in rows] == [
                (1, "superseded"),
                (2, "delivered"),
            ]
            assert [r["body"]["version"] for r in receiver.requests] == [2]


def test_acknowledgement_by_townships_in_the_areas(wstack: WarningStack) -> None:
    wid = wstack.issue(level=3, areas=[TOWNSHIP_A, TOWNSHIP_C]).json()["id"]
    assert wstack.call("POST", f"/v1/warnings/{wid}/ack", who="township_b").status_code == 403
    assert wstack.call("POST", f"/v1/warnings/{wid}/ack", who="operator").status_code == 403
    stale = wstack.call("POST", f"/v1/warnings/{wid}/ack", who="township_a", json={"version": 2})
    assert stale.status_code == 409
    wstack.clock.advance(120)
    acked = wstack.call(
        "POST", f"/v1/warnings/{wid}/ack", who="township_a", json={"note": "已通知各村"}
    )
    assert acked.status_code == 200, acked.text
    body = acked.json()
    assert body["state"] == "acked" and body["version"] == 1 and not body["late"]
    assert body["acked_by"] == "township_a"
    again = wstack.call("POST", f"/v1/warnings/{wid}/ack", who="township_a")
    assert again.status_code == 200 and again.json()["acked_at"] == body["acked_at"]
    view = deliveries(wstack, wid)
    ack_of = {t["township_code"]: t["acknowledged"] for t in view["townships"]}
    assert ack_of == {TOWNSHIP_A: True, TOWNSHIP_C: False}
    assert view["summary"]["acknowledgements"] == {"acked": 1, "pending": 1, "overdue": 0}
    own = deliveries(wstack, wid, who="township_a")
    assert [t["township_code"] for t in own["townships"]] == [TOWNSHIP_A]
    assert wstack.call("GET", f"/v1/warnings/{wid}/deliveries", who="township_b").status_code == 403
    wstack.settle()
    events = wstack.probe.of("warning_acknowledged")
    assert len(events) == 1 and events[0]["township_code"] == TOWNSHIP_A


def test_unacknowledged_escalates_once_per_township_and_version(wstack: WarningStack) -> None:
    before = metric("yingji_warning_unacknowledged_total", level="1")
    wid = wstack.issue("leader", level=1).json()["id"]  # red: 15 minutes to acknowledge
    wstack.clock.advance(5 * 60)
    wstack.call("POST", f"/v1/warnings/{wid}/ack", who="township_a")
    svc = wstack.service
    wstack.clock.advance(9 * 60)
    assert svc.run_ack_scan() == 0
    wstack.clock.advance(61)
    assert svc.run_ack_scan() == 1
    assert svc.run_ack_scan() == 0
    assert metric("yingji_warning_unacknowledged_total", level="1") - before == 1
    wstack.settle()
    raised = wstack.probe.of("warning_unacknowledged")
    assert [(e["township_code"], e["version"], e["level"]) for e in raised] == [(TOWNSHIP_B, 1, 1)]
    view = deliveries(wstack, wid)
    b = next(t for t in view["townships"] if t["township_code"] == TOWNSHIP_B)
    assert b["acknowledgement"]["state"] == "overdue"
    late = wstack.call("POST", f"/v1/warnings/{wid}/ack", who="township_b").json()
    assert late["state"] == "acked" and late["late"] is True
    # A new version asks again; the old overdue record stays as history.
    wstack.call(
        "POST", f"/v1/warnings/{wid}/adjust", who="leader", json={"level": 1, "reason": "范围扩大"}
    )
    wstack.clock.advance(16 * 60)
    assert svc.run_ack_scan() == 2
    wstack.settle()
    assert len(wstack.probe.of("warning_unacknowledged")) == 3


def test_a_red_warning_that_ran_out_during_a_downtime_still_raises_its_alarm(
    wstack: WarningStack,
) -> None:
    """The service was down from issue until after expiry: on restart the expiry runs, then the
    ack scan, and the townships that never acknowledged within 15 minutes are still reported."""
    expires = (wstack.now() + timedelta(minutes=30)).isoformat()
    wid = wstack.issue("leader", level=1, expires=expires).json()["id"]
    wstack.clock.advance(2 * 3600)  # down: no timer ran
    svc = wstack.service
    assert svc.run_expiry() == 1
    assert svc.run_ack_scan() == 2
    assert svc.run_ack_scan() == 0
    wstack.settle()
    raised = wstack.probe.of("warning_unacknowledged")
    assert sorted(e["township_code"] for e in raised) == [TOWNSHIP_A, TOWNSHIP_B]
    assert {e["warning_id"] for e in raised} == {wid}


def test_exercise_unacknowledged_does_not_page(wstack: WarningStack) -> None:
    before = metric("yingji_warning_unacknowledged_total", level="1")
    wstack.issue("leader", level=1, exercise=True)
    wstack.clock.advance(16 * 60)
    villages = len(wstack.runtime.county.villages(TOWNSHIP_A)) + len(
        wstack.runtime.county.villages(TOWNSHIP_B)
    )
    # Both townships, and every village of theirs (a drill's villages escalate after 30 s).
    assert wstack.service.run_ack_scan() == 2 + villages
    assert metric("yingji_warning_unacknowledged_total", level="1") == before
    wstack.settle()
    assert len(wstack.probe.of("warning_unacknowledged")) == 2
    assert all(e["exercise"] for e in wstack.probe.of("warning_unacknowledged"))


def test_first_delivery_and_ack_latency_are_measured(wstack: WarningStack) -> None:
    def count(name: str) -> float:
        return metric(f"{name}_count", level="4")

    deliveries_before = count("yingji_warning_issue_to_first_delivery_seconds")
    acks_before = count("yingji_warning_issue_to_ack_seconds")
    wid = wstack.issue(level=4).json()["id"]
    wstack.service.run_deliveries()
    wstack.service.run_deliveries()
    wstack.call("POST", f"/v1/warnings/{wid}/ack", who="township_a")
    assert count("yingji_warning_issue_to_first_delivery_seconds") - deliveries_before == 2
    assert count("yingji_warning_issue_to_ack_seconds") - acks_before == 1
    text = wstack.client.get("/metrics").text
    assert 'yingji_warning_active{color="blue",level="4",service="warning"} 1.0' in text


def test_the_cap_in_a_message_is_parseable(wstack: WarningStack) -> None:
    wid = wstack.issue(level=3, areas=[TOWNSHIP_A]).json()["id"]
    ident = delivery_id(wid, 1, township_target(TOWNSHIP_A), "值班日志")
    row = wstack.service.repo.delivery_by_id(ident)
    assert row is not None
    message = row["message"]
    document = message["cap"]
    root = assert_conforms(document.encode() if isinstance(document, str) else document)
    ns = {"cap": CAP_NS}
    assert root.findtext("cap:identifier", namespaces=ns) == message["identifier"]
    assert root.findtext("cap:msgType", namespaces=ns) == "Alert"
    assert root.findtext("cap:status", namespaces=ns) == "Actual"
    geocodes = root.findall("cap:info/cap:area/cap:geocode/cap:value", ns)
    assert TOWNSHIP_A in {g.text for g in geocodes}


def test_the_delivery_timer_runs_on_its_own(make_stack: Callable[..., Any]) -> None:
    from services.warning.rules import load_rules

    rules = load_rules().with_changes(delivery={"worker_interval_seconds": 0.2})
    with make_stack(rules=rules) as stack:
        wid = stack.issue(level=4, areas=[TOWNSHIP_A]).json()["id"]
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            view = deliveries(stack, wid)
            if states(view, "值班日志") == {TOWNSHIP_A: ("delivered", 1)}:
                break
            time.sleep(0.1)
        assert states(view, "值班日志") == {TOWNSHIP_A: ("delivered", 1)}


def test_an_issued_warning_wakes_the_delivery_worker(make_stack: Callable[..., Any]) -> None:
    """The worker's interval is an hour: only the wake on issue can deliver within the test."""
    with make_stack(wake_on_issue=True) as stack:
        wid = stack.issue(level=4, areas=[TOWNSHIP_A]).json()["id"]
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            view = deliveries(stack, wid)
            if states(view, "值班日志") == {TOWNSHIP_A: ("delivered", 1)}:
                break
            time.sleep(0.05)
        assert states(view, "值班日志") == {TOWNSHIP_A: ("delivered", 1)}
        assert stack.service.rules.delivery.worker_interval_seconds == 3600


def test_drill_deliveries_are_counted_apart_from_real_ones(wstack: WarningStack) -> None:
    """A drill's deliveries raise only exercise="true"; both series exist at 0 from the start."""
    labels = {"channel": "值班日志", "outcome": "delivered"}
    for exercise in ("false", "true"):
        series = {"service": "warning", **labels, "exercise": exercise}
        assert (
            REGISTRY.get_sample_value("yingji_warning_delivery_attempts_total", series) is not None
        )
    real, drill = (
        metric("yingji_warning_delivery_attempts_total", **labels, exercise=e)
        for e in ("false", "true")
    )
    wstack.issue(exercise=True)
    drill_attempts = wstack.service.run_deliveries()
    assert drill_attempts > 0
    assert metric("yingji_warning_delivery_attempts_total", **labels, exercise="true") - drill == (
        drill_attempts
    )
    assert metric("yingji_warning_delivery_attempts_total", **labels, exercise="false") == real
    wstack.issue()
    real_attempts = wstack.service.run_deliveries()
    assert metric("yingji_warning_delivery_attempts_total", **labels, exercise="false") - real == (
        real_attempts
    )
