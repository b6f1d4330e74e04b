"""End to end on the embedded stack: an orange warning approved, adjusted to red (approved
again), acknowledged by one township, lifted; the CAP documents of all three versions."""

from __future__ import annotations

import pytest

from libs.common.bus import Publisher
from tests.warning.capschema import CAP_NS, assert_conforms
from tests.warning.conftest import TOWNSHIP_A, TOWNSHIP_B, WarningStack

pytestmark = pytest.mark.e2e
NS = {"cap": CAP_NS}


def publish_from_intake(stack: WarningStack, event_type: str, **payload: object) -> None:
    """Put an intake event on the bus exactly as intake's relay would."""
    publisher = Publisher(stack.runtime.settings, "intake")
    try:
        publisher.publish([stack.incident_event(event_type, **payload)])
    finally:
        publisher.close()
    stack.settle()


def test_orange_approved_adjusted_to_red_acknowledged_lifted(wstack: WarningStack) -> None:
    stack = wstack
    now = stack.now()
    publish_from_intake(
        stack,
        "incident_reported",
        incident_id="inc-e2e",
        township_code=TOWNSHIP_B,
        category="flood",
        title="青石河堤管涌",
        grade=2,
        occurred_at=now,
        discovered_at=now,
        reported_at=now,
    )
    suggestions = stack.call("GET", "/v1/warnings/suggestions?incident_id=inc-e2e").json()
    assert suggestions["items"][0]["level"] == 2  # the incident suggested an orange warning

    # The water department drafts an orange flood warning; a leader approves it.
    created = stack.call(
        "POST",
        "/v1/warnings",
        who="water_department",
        json=stack.warning_body(
            hazard="flood",
            level=2,
            headline="安河县洪水橙色预警",
            description="青石河水位持续上涨，预计超警戒水位0.5米。",
            instruction="沿河低洼地带群众立即转移。",
            incident_ids=["inc-e2e"],
        ),
        headers={"Idempotency-Key": "e2e-orange"},
    )
    assert created.status_code == 201, created.text
    wid = created.json()["id"]
    assert created.json()["status"] == "pending_approval"
    approved = stack.call("POST", f"/v1/warnings/{wid}/approve", who="leader", json={"version": 1})
    assert approved.json()["status"] == "active"
    stack.service.run_deliveries()

    # Adjusted to red: it waits for the leader again, then becomes version 2.
    stack.clock.advance(30 * 60)
    pending = stack.call(
        "POST",
        f"/v1/warnings/{wid}/adjust",
        who="water_department",
        json={"level": 1, "reason": "水位超保证水位", "headline": "安河县洪水红色预警"},
    ).json()
    assert (pending["version"], pending["pending_version"]) == (1, 2)
    red = stack.call("POST", f"/v1/warnings/{wid}/approve", who="leader", json={}).json()
    assert (red["level"], red["color"], red["version"]) == (1, "red", 2)
    stack.service.run_deliveries()

    # One township acknowledges; the other does not and is escalated after 15 minutes.
    ack = stack.call("POST", f"/v1/warnings/{wid}/ack", who="township_b")
    assert ack.status_code == 200 and ack.json()["version"] == 2
    stack.clock.advance(16 * 60)
    assert stack.service.run_ack_scan() == 1
    view = stack.call("GET", f"/v1/warnings/{wid}/deliveries").json()
    by_code = {t["township_code"]: t for t in view["townships"]}
    assert by_code[TOWNSHIP_B]["acknowledged"] and not by_code[TOWNSHIP_A]["acknowledged"]
    assert all(
        d["state"] in ("delivered", "superseded")
        for t in view["townships"]
        for d in t["deliveries"]
    )

    # The incident is still open: lifting needs it closed (or an override).
    assert (
        stack.call(
            "POST", f"/v1/warnings/{wid}/lift", who="water_department", json={"reason": "退水"}
        ).status_code
        == 409
    )
    publish_from_intake(
        stack,
        "incident_closed",
        incident_id="inc-e2e",
        township_code=TOWNSHIP_B,
        closed_by="leader",
        reason="险情排除",
    )
    stack.clock.advance(60 * 60)
    lifted = stack.call(
        "POST", f"/v1/warnings/{wid}/lift", who="water_department", json={"reason": "洪水退去"}
    )
    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["status"] == "lifted" and lifted.json()["version"] == 3
    stack.service.run_deliveries()

    documents = {}
    for version in (1, 2, 3):
        response = stack.call("GET", f"/v1/warnings/{wid}/cap?version={version}", who="township_a")
        assert response.status_code == 200
        documents[version] = assert_conforms(response.content)
    alert, update, cancel = documents[1], documents[2], documents[3]
    assert [d.findtext("cap:msgType", namespaces=NS) for d in (alert, update, cancel)] == [
        "Alert",
        "Update",
        "Cancel",
    ]
    assert alert.findtext("cap:info/cap:severity", namespaces=NS) == "Severe"
    assert update.findtext("cap:info/cap:severity", namespaces=NS) == "Extreme"
    assert update.findtext("cap:info/cap:headline", namespaces=NS) == (
        "【洪水预警由二级（橙色）调整为一级（红色）预警】安河县洪水红色预警"
    )
    assert update.findtext("cap:info/cap:senderName", namespaces=NS) == "县水利局"
    cite = [
        f"{d.findtext('cap:sender', namespaces=NS)},{d.findtext('cap:identifier', namespaces=NS)},"
        f"{d.findtext('cap:sent', namespaces=NS)}"
        for d in (alert, update)
    ]
    assert update.findtext("cap:references", namespaces=NS) == cite[0]
    assert cancel.findtext("cap:references", namespaces=NS) == " ".join(cite)
    assert cancel.findtext("cap:incidents", namespaces=NS) == "inc-e2e"

    stack.settle()
    assert [e["version"] for e in stack.probe.of("warning_issued")] == [1]
    assert [(e["old_level"], e["level"]) for e in stack.probe.of("warning_adjusted")] == [(2, 1)]
    assert [e["township_code"] for e in stack.probe.of("warning_acknowledged")] == [TOWNSHIP_B]
    assert [e["township_code"] for e in stack.probe.of("warning_unacknowledged")] == [TOWNSHIP_A]
    assert [e["version"] for e in stack.probe.of("warning_lifted")] == [3]
    issued = stack.probe.envelopes("warning_issued")[0]
    assert issued.correlation_id == "inc-e2e"
    assert stack.call("GET", "/v1/warnings/feed").json()["items"] == []
    history = stack.call("GET", f"/v1/warnings/{wid}").json()["versions"]
    assert [(v["msg_type"], v["level"], v["state"]) for v in history] == [
        ("Alert", 2, "issued"),
        ("Update", 1, "issued"),
        ("Cancel", 1, "issued"),
    ]
