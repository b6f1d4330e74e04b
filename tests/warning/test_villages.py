"""The last mile end to end in-process: a warning reaches every village's information officer
with a link that acknowledges only its own delivery, a township acknowledges for its villages,
a silent village escalates, enterprises of 重大/较大 risk are reached, and each warning shows its
reach."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from libs.common.bus import Publisher
from libs.common.events import make_event
from tests.warning.conftest import (
    TOWNSHIP_A,
    TOWNSHIP_B,
    WarningStack,
    county_with_channels,
)
from tests.warning.test_dissemination import Receiver, metric, serving

pytestmark = pytest.mark.e2e
LINK = re.compile(r"/v1/warnings/ack/([A-Za-z0-9_\-]+)")


@contextmanager
def sms_stack(make_stack: Callable[..., Any]) -> Iterator[tuple[WarningStack, Receiver]]:
    """The demo county with the duty log and an SMS gateway that carries officers' messages."""
    receiver = Receiver(fail_first=0)
    with serving(receiver) as url:
        channels = [
            {"type": "log", "name": "值班日志"},
            {"type": "webhook", "name": "短信平台", "url": url, "carries": ["sms", "webhook"]},
        ]
        with make_stack(county=county_with_channels(channels)) as stack:
            yield stack, receiver


def villages_of(stack: WarningStack, township: str) -> list[Any]:
    """The county file's villages of one township."""
    return [v for _, v in stack.runtime.county.villages(township)]


def sent_to(receiver: Receiver, village_code: str) -> dict[str, Any]:
    """The message the gateway took for one village."""
    found = [
        r["body"]
        for r in receiver.requests
        if (r["body"].get("target") or {}).get("code") == village_code
    ]
    assert len(found) == 1, found
    return found[0]


def token_of(message: dict[str, Any]) -> str:
    """The token in a village message's link (also in its text)."""
    match = LINK.search(message["ack_url"])
    assert match and match.group(0) in message["text"]
    return match.group(1)


def detail(stack: WarningStack, wid: str, who: str = "operator") -> dict[str, Any]:
    """GET one warning."""
    response = stack.call("GET", f"/v1/warnings/{wid}", who=who)
    assert response.status_code == 200, response.text
    return response.json()


def test_villages_are_reached_and_a_link_acknowledges_only_its_delivery(
    make_stack: Callable[..., Any],
) -> None:
    with sms_stack(make_stack) as (stack, receiver):
        planned = metric("yingji_warning_deliveries_planned_total", kind="village")
        wid = stack.issue(level=3, areas=[TOWNSHIP_A]).json()["id"]
        stack.service.run_deliveries()
        villages = villages_of(stack, TOWNSHIP_A)
        assert metric("yingji_warning_deliveries_planned_total", kind="village") - planned == len(
            villages
        )
        first, second = villages[0], villages[1]
        message = sent_to(receiver, first.code)
        assert message["recipient"]["phone"] == first.officer.phone
        assert "cap" not in message  # an officer's phone gets the text
        token = token_of(message)

        page = stack.client.get(f"/v1/warnings/ack/{token}")
        assert page.status_code == 200 and "确认收到" in page.text and 'method="post"' in page.text
        assert page.headers["referrer-policy"] == "no-referrer"  # the URL is the credential
        assert "default-src 'none'" in page.headers["content-security-policy"]
        reach = detail(stack, wid)["reach"]
        assert reach["villages"] == {
            "total": len(villages),
            "reached": len(villages),
            "acknowledged": 0,  # the GET (a chat app's preview) acknowledged nothing
            "escalated": 0,
        }
        assert reach["people"]["covered"] == sum(v.population for v in villages)
        assert reach["townships"] == {
            "total": 1,
            "reached": 1,
            "acknowledged": 0,
            "acknowledged_codes": [],
        }

        done = stack.client.post(f"/v1/warnings/ack/{token}")
        assert done.status_code == 200 and "已确认收到" in done.text
        again = stack.client.post(f"/v1/warnings/ack/{token}")
        assert again.status_code == 200 and "已确认收到" in again.text
        body = detail(stack, wid)
        assert body["reach"]["villages"]["acknowledged"] == 1
        assert body["reach"]["townships"]["acknowledged"] == 0  # a village is not its township
        assert body["reach"]["townships"]["acknowledged_codes"] == []
        states = {v["code"]: v for v in body["reach"]["village_states"]}
        assert states[first.code]["acked_via"] == "link"
        assert states[second.code]["acked_at"] is None
        stack.settle()
        acked = stack.probe.of("warning_village_acknowledged")
        assert [(a["village_code"], a["via"]) for a in acked] == [(first.code, "link")]


def test_wrong_stale_and_ended_links_answer_in_chinese(make_stack: Callable[..., Any]) -> None:
    with sms_stack(make_stack) as (stack, receiver):
        wid = stack.issue(level=3, areas=[TOWNSHIP_A]).json()["id"]
        stack.service.run_deliveries()
        token = token_of(sent_to(receiver, villages_of(stack, TOWNSHIP_A)[0].code))
        wrong = stack.client.post("/v1/warnings/ack/not-a-token-at-all")
        assert wrong.status_code == 404 and "链接无效" in wrong.text
        lifted = stack.call("POST", f"/v1/warnings/{wid}/lift", json={"reason": "降雨结束"})
        assert lifted.status_code == 200, lifted.text
        for method in ("GET", "POST"):
            gone = stack.client.request(method, f"/v1/warnings/ack/{token}")
            assert gone.status_code == 410 and "已解除" in gone.text
        assert detail(stack, wid)["reach"]["villages"]["acknowledged"] == 0


def test_a_township_acknowledges_for_its_own_villages_only(wstack: WarningStack) -> None:
    stack = wstack
    wid = stack.issue(level=3).json()["id"]
    mine, theirs = villages_of(stack, TOWNSHIP_A)[0], villages_of(stack, TOWNSHIP_B)[0]
    path = f"/v1/warnings/{wid}/ack"
    ok = stack.call("POST", path, who="township_a", json={"village_code": mine.code})
    assert ok.status_code == 200, ok.text
    assert (ok.json()["village_code"], ok.json()["via"]) == (mine.code, "township")
    repeat = stack.call("POST", path, who="township_a", json={"village_code": mine.code})
    assert repeat.status_code == 200 and repeat.json()["acked_at"] == ok.json()["acked_at"]
    other = stack.call("POST", path, who="township_a", json={"village_code": theirs.code})
    assert other.status_code == 403 and "不能代为签收" in other.json()["error"]["message"]
    unknown = stack.call("POST", path, who="township_a", json={"village_code": "349901001999"})
    assert unknown.status_code == 422
    bad = stack.call("POST", path, who="township_a", json={"village_code": "12"})
    assert bad.status_code == 422
    body = detail(stack, wid, who="township_a")
    assert body["reach"]["villages"]["acknowledged"] == 1
    assert {v["township_code"] for v in body["reach"]["village_states"]} == {TOWNSHIP_A}


def test_a_silent_village_escalates_to_its_township_once(wstack: WarningStack) -> None:
    stack = wstack
    escalations = metric("yingji_warning_village_escalations_total", level="2")
    wid = stack.issue("leader", level=2, areas=[TOWNSHIP_A]).json()["id"]
    stack.service.run_deliveries()
    villages = villages_of(stack, TOWNSHIP_A)
    answered = villages[0]
    stack.call(
        "POST", f"/v1/warnings/{wid}/ack", who="township_a", json={"village_code": answered.code}
    )
    stack.clock.advance(59 * 60)
    stack.service.run_ack_scan()
    stack.settle()
    assert stack.probe.of("warning_village_unacknowledged") == []  # orange: 60 minutes
    stack.clock.advance(2 * 60)
    stack.service.run_ack_scan()
    stack.service.run_ack_scan()  # a second scan raises nothing new
    stack.settle()
    raised = stack.probe.of("warning_village_unacknowledged")
    assert sorted(r["village_code"] for r in raised) == sorted(v.code for v in villages[1:])
    assert {r["township_code"] for r in raised} == {TOWNSHIP_A}
    assert (
        metric("yingji_warning_village_escalations_total", level="2") - escalations
        == len(villages) - 1
    )
    repeats = [
        d
        for row in stack.call("GET", f"/v1/warnings/{wid}/deliveries").json()["townships"]
        for d in row["village_deliveries"]
        if d["escalation_of"]
    ]
    assert sorted(d["escalation_of"] for d in repeats) == sorted(v.code for v in villages[1:])
    assert stack.service.run_deliveries() == len(repeats)
    reach = detail(stack, wid)["reach"]
    assert reach["villages"]["escalated"] == len(villages) - 1
    assert reach["village_states"][0]["escalated"] is True  # escalated ones first


def test_a_yellow_warning_never_escalates_a_village(wstack: WarningStack) -> None:
    stack = wstack
    stack.issue(level=3, areas=[TOWNSHIP_A])
    stack.clock.advance(24 * 3600)
    stack.service.run_ack_scan()
    stack.settle()
    assert stack.probe.of("warning_village_unacknowledged") == []


def publish_enterprise(stack: WarningStack, **payload: Any) -> None:
    """Put an ``enterprise_registered`` on the bus as dispatch's relay would."""
    base = {
        "township_code": TOWNSHIP_A,
        "responsible": {"name": "赵厂长", "phone": "13800000001"},
        "safety_officer": {"name": "钱安全", "phone": "13800000002"},
    }
    envelope = make_event(
        stack.clock,
        "dispatch",
        "enterprise_registered",
        {**base, **payload},
        correlation_id=str(payload["enterprise_id"]),
    )
    publisher = Publisher(stack.runtime.settings, "dispatch")
    try:
        publisher.publish([envelope])
    finally:
        publisher.close()
    stack.settle()


def test_enterprises_of_major_and_large_risk_are_reached(make_stack: Callable[..., Any]) -> None:
    with sms_stack(make_stack) as (stack, receiver):
        common = {"revision": 1, "risk_level": "major"}
        publish_enterprise(
            stack, enterprise_id="E1", name="城关化工", revision=2, risk_level="large"
        )
        publish_enterprise(stack, enterprise_id="E1", name="城关化工旧名", **common)  # older
        publish_enterprise(stack, enterprise_id="E2", name="城关烟花厂", **common)
        publish_enterprise(
            stack, enterprise_id="E3", name="城关面粉厂", revision=1, risk_level="low"
        )
        publish_enterprise(stack, enterprise_id="E4", name="已关停厂", status="closed", **common)
        publish_enterprise(stack, enterprise_id="E5", name="演练企业", exercise=True, **common)
        publish_enterprise(
            stack, enterprise_id="E6", name="青石矿业", township_code=TOWNSHIP_B, **common
        )
        wid = stack.issue(level=3, areas=[TOWNSHIP_A]).json()["id"]
        stack.service.run_deliveries()
        body = detail(stack, wid)
        # Those published here; the demo county's own register (seeded by dispatch) is beside them.
        published = [e for e in body["enterprises"] if e["id"] in {"E1", "E2", "E3", "E4", "E5"}]
        assert [(e["id"], e["risk_level"], e["in_fanout"]) for e in published] == [
            ("E2", "major", True),
            ("E1", "large", True),
            ("E3", "low", False),
        ]
        assert published[1]["name"] == "城关化工"
        assert {e["township_name"] for e in body["enterprises"]} == {"城关镇"}
        # With 城关燃气 (重大) and 城关食品冷链 (较大) of the demo register: four in the fan-out.
        assert body["reach"]["enterprises"] == {"reached": 4, "planned": 4}
        message = sent_to(receiver, "E2")
        assert [p["phone"] for p in message["recipient"]["people"]] == [
            "13800000001",
            "13800000002",
        ]
        stack.settle()
        (issued,) = stack.probe.of("warning_issued")
        assert issued["enterprises"] == 4
        assert issued["villages"] == len(villages_of(stack, TOWNSHIP_A))
        # A page of warnings reads the register once, and each names what its detail names:
        # only a drill names the drill enterprise, only a warning over 青石 names 青石矿业.
        drill = stack.issue(level=3, areas=[TOWNSHIP_A], exercise=True).json()["id"]
        other = stack.issue(level=3, areas=[TOWNSHIP_B]).json()["id"]
        page = stack.call("GET", "/v1/warnings").json()["items"]
        assert {item["id"] for item in page} == {wid, drill, other}
        for item in page:
            assert item["enterprises"] == detail(stack, item["id"])["enterprises"]
        named = {item["id"]: {e["id"] for e in item["enterprises"]} for item in page}
        assert "E5" in named[drill] and "E5" not in named[wid]
        assert "E6" in named[other] and "E6" not in named[wid] | named[drill]


def test_last_mile_metrics_exist_at_zero(wstack: WarningStack) -> None:
    text = wstack.client.get("/metrics").text
    for kind in ("township", "village", "enterprise", "escalation"):
        assert f'yingji_warning_deliveries_planned_total{{kind="{kind}",service="warning"}}' in text
    for level in ("1", "2", "3", "4"):
        assert (
            f'yingji_warning_village_escalations_total{{level="{level}",service="warning"}}' in text
        )


def test_exercise_deliveries_are_left_out_of_the_counts(wstack: WarningStack) -> None:
    before = metric("yingji_warning_deliveries_planned_total", kind="village")
    wstack.issue(level=3, areas=[TOWNSHIP_A], exercise=True)
    wstack.service.run_deliveries()
    assert metric("yingji_warning_deliveries_planned_total", kind="village") == before


def test_list_answers_carry_reach(wstack: WarningStack) -> None:
    wstack.issue(level=3, areas=[TOWNSHIP_A])
    wstack.service.run_deliveries()
    (item,) = wstack.call("GET", "/v1/warnings").json()["items"]
    assert item["reach"]["villages"]["reached"] == len(villages_of(wstack, TOWNSHIP_A))
    assert "village_states" not in item["reach"]
    assert item["reach"]["people"]["villages_without_population"] == 0
    assert item["reach"]["townships"]["acknowledged_codes"] == []
    signed = wstack.call("POST", f"/v1/warnings/{item['id']}/ack", who="township_a", json={})
    assert signed.status_code == 200, signed.text
    (item,) = wstack.call("GET", "/v1/warnings").json()["items"]
    # The console's 签收 line reads this: no request a warning for who has signed.
    assert item["reach"]["townships"]["acknowledged_codes"] == [TOWNSHIP_A]


def test_deliveries_after_a_new_version_supersede_village_ones(wstack: WarningStack) -> None:
    stack = wstack
    wid = stack.issue(level=3, areas=[TOWNSHIP_A]).json()["id"]
    adjusted = stack.call(
        "POST", f"/v1/warnings/{wid}/adjust", json={"level": 4, "reason": "雨势减弱"}
    )
    assert adjusted.status_code == 200, adjusted.text
    stack.service.run_deliveries()
    stack.clock.advance(timedelta(minutes=1).total_seconds())
    reach = detail(stack, wid)["reach"]
    assert reach["version"] == 2
    assert reach["villages"]["reached"] == len(villages_of(stack, TOWNSHIP_A))


def test_a_drill_shows_its_links_and_escalates_within_the_drill(wstack: WarningStack) -> None:
    stack = wstack
    real = stack.issue(level=3, areas=[TOWNSHIP_A]).json()["id"]
    drill = stack.issue("leader", level=2, areas=[TOWNSHIP_A], exercise=True).json()["id"]
    stack.service.run_deliveries()

    def links(wid: str) -> list[str]:
        rows = stack.call("GET", f"/v1/warnings/{wid}/deliveries").json()["townships"]
        # Villages only: the demo county's enterprises of 重大/较大 risk are reached beside them.
        return [
            d["exercise_ack_url"]
            for r in rows
            for d in r["village_deliveries"]
            if d["target"]["kind"] == "village"
        ]

    assert set(links(real)) == {None}  # a real link exists only in the officer's message
    drill_links = links(drill)
    assert len(drill_links) == len(villages_of(stack, TOWNSHIP_A)) and None not in drill_links
    token = LINK.search(drill_links[0])
    assert token is not None
    assert stack.client.post(token.group(0)).status_code == 200
    stack.clock.advance(31)  # a drill's villages escalate after half a minute
    escalations = metric("yingji_warning_village_escalations_total", level="2")
    stack.service.run_ack_scan()
    stack.settle()
    raised = stack.probe.of("warning_village_unacknowledged")
    assert len(raised) == len(drill_links) - 1 and all(r["exercise"] for r in raised)
    # Drills are left out of the count.
    assert metric("yingji_warning_village_escalations_total", level="2") == escalations


def test_a_township_reads_whether_it_signed_not_which_others_did(wstack: WarningStack) -> None:
    wid = wstack.issue(level=3, areas=[TOWNSHIP_A, TOWNSHIP_B]).json()["id"]
    wstack.service.run_deliveries()
    signed = wstack.call("POST", f"/v1/warnings/{wid}/ack", who="township_a", json={})
    assert signed.status_code == 200, signed.text

    def codes(who: str) -> tuple[list[str], list[str]]:
        (item,) = wstack.call("GET", "/v1/warnings", who=who).json()["items"]
        one = wstack.call("GET", f"/v1/warnings/{wid}", who=who).json()
        return (
            item["reach"]["townships"]["acknowledged_codes"],
            one["reach"]["townships"]["acknowledged_codes"],
        )

    assert codes("operator") == ([TOWNSHIP_A], [TOWNSHIP_A])
    assert codes("township_a") == ([TOWNSHIP_A], [TOWNSHIP_A])
    assert codes("township_b") == ([], [])


def test_a_township_sees_only_its_own_enterprises(wstack: WarningStack) -> None:
    stack = wstack
    common = {"revision": 1, "risk_level": "major"}
    publish_enterprise(stack, enterprise_id="EA", name="城关化工", **common)
    publish_enterprise(
        stack, enterprise_id="EB", name="青石矿业", township_code=TOWNSHIP_B, **common
    )
    wid = stack.issue(level=3, areas=[TOWNSHIP_A, TOWNSHIP_B]).json()["id"]
    stack.service.run_deliveries()

    def townships(who: str) -> tuple[set[str], set[str], set[str]]:
        (item,) = stack.call("GET", "/v1/warnings", who=who).json()["items"]
        one = detail(stack, wid, who)
        ids = {e["id"] for e in one["enterprises"]}
        assert ids == {e["id"] for e in item["enterprises"]}
        listed = {e["township_code"] for e in item["enterprises"]}
        return ids & {"EA", "EB"}, listed, {e["township_code"] for e in one["enterprises"]}

    assert townships("operator") == (
        {"EA", "EB"},
        {TOWNSHIP_A, TOWNSHIP_B},
        {TOWNSHIP_A, TOWNSHIP_B},
    )
    assert townships("township_a") == ({"EA"}, {TOWNSHIP_A}, {TOWNSHIP_A})
    assert townships("township_b") == ({"EB"}, {TOWNSHIP_B}, {TOWNSHIP_B})


def test_the_link_page_shows_the_county_s_local_time(wstack: WarningStack) -> None:
    stack = wstack
    stack.clock.set(datetime(2026, 12, 4, 15, 20, tzinfo=UTC))  # 23:20 in Asia/Shanghai
    wid = stack.issue("leader", level=2, areas=[TOWNSHIP_A], exercise=True).json()["id"]
    stack.service.run_deliveries()
    rows = stack.call("GET", f"/v1/warnings/{wid}/deliveries").json()["townships"]
    link = next(
        d["exercise_ack_url"]
        for r in rows
        for d in r["village_deliveries"]
        if d["target"]["kind"] == "village"
    )
    found = LINK.search(link)
    assert found is not None
    stack.clock.advance(3 * 60)
    done = stack.client.post(found.group(0))
    assert done.status_code == 200, done.text
    assert "（2026年12月4日 23:23）" in done.text and "+00:00" not in done.text
    again = stack.client.get(found.group(0))  # a later visit shows the same time
    assert "（2026年12月4日 23:23）" in again.text
