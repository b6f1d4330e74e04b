"""Expiry on the fake clock, the open-incident lift guard, suggestions from incidents, the feed."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import timedelta

from tests.warning.capschema import assert_conforms
from tests.warning.conftest import TOWNSHIP_A, TOWNSHIP_B, WarningStack

ATOM = "{http://www.w3.org/2005/Atom}"


def test_expiry_at_expires_on_the_fake_clock(wstack: WarningStack) -> None:
    expires = wstack.now() + timedelta(hours=1)
    wid = wstack.issue(level=3, expires=expires.isoformat()).json()["id"]
    draft = wstack.issue(level=2, expires=expires.isoformat()).json()["id"]
    svc = wstack.service
    wstack.clock.advance(timedelta(minutes=59))
    assert svc.run_expiry() == 0
    assert wstack.call("GET", f"/v1/warnings/{wid}").json()["status"] == "active"
    wstack.clock.advance(timedelta(minutes=1))
    assert svc.run_expiry() == 1
    assert svc.run_expiry() == 0
    body = wstack.call("GET", f"/v1/warnings/{wid}").json()
    assert body["status"] == "expired" and body["expired_at"] is not None
    assert wstack.call("GET", f"/v1/warnings/{draft}").json()["status"] == "expired"
    assert (
        wstack.call("POST", f"/v1/warnings/{draft}/approve", who="leader", json={}).status_code
        == 409
    )
    assert wstack.call("POST", f"/v1/warnings/{wid}/lift", json={"reason": "x"}).status_code == 409
    assert wstack.call("POST", f"/v1/warnings/{wid}/ack", who="township_a").status_code == 409
    assert wstack.call("GET", "/v1/warnings/feed").json()["items"] == []
    wstack.clock.advance(timedelta(hours=2))
    assert svc.run_ack_scan() == 0  # receipts of an expired warning are no longer chased
    wstack.settle()
    expired = wstack.probe.of("warning_expired")
    assert [(e["warning_id"], e["version"]) for e in expired] == [(wid, 1)]


def test_adjusting_expires_moves_the_expiry(wstack: WarningStack) -> None:
    wid = wstack.issue(level=3, expires=(wstack.now() + timedelta(hours=1)).isoformat()).json()[
        "id"
    ]
    later = (wstack.now() + timedelta(hours=3)).isoformat()
    adjusted = wstack.call(
        "POST", f"/v1/warnings/{wid}/adjust", json={"level": 3, "reason": "延长", "expires": later}
    )
    assert adjusted.status_code == 200
    wstack.clock.advance(timedelta(hours=2))
    assert wstack.service.run_expiry() == 0
    wstack.clock.advance(timedelta(hours=1))
    assert wstack.service.run_expiry() == 1
    past = wstack.call(
        "POST",
        f"/v1/warnings/{wstack.issue().json()['id']}/adjust",
        json={"level": 3, "reason": "x", "expires": (wstack.now()).isoformat()},
    )
    assert past.status_code == 422 and past.json()["error"]["fields"][0]["path"] == "expires"


def test_lift_guard_refuses_while_linked_incidents_are_open(wstack: WarningStack) -> None:
    wstack.report_incident("inc-1", category="flood", grade=3)
    wstack.report_incident("inc-2", category="flood", grade=4)
    wid = wstack.issue(
        "water_department", hazard="flood", level=3, incident_ids=["inc-1", "inc-2"]
    ).json()["id"]
    refused = wstack.call(
        "POST", f"/v1/warnings/{wid}/lift", who="water_department", json={"reason": "水位回落"}
    )
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "open_incidents"
    assert "inc-1" in error["message"] and "inc-2" in error["message"]
    assert error["fields"][0]["path"] == "override_reason"
    svc = wstack.service
    closed = wstack.incident_event(
        "incident_closed",
        incident_id="inc-1",
        township_code=TOWNSHIP_A,
        closed_by="leader",
        reason="处置完毕",
    )
    svc.on_incident_status(closed, closed.payload)
    svc.on_incident_status(closed, closed.payload)  # redelivered: no harm
    still = wstack.call("POST", f"/v1/warnings/{wid}/lift", json={"reason": "水位回落"})
    assert still.status_code == 409 and "inc-1" not in still.json()["error"]["message"]
    forced = wstack.call(
        "POST",
        f"/v1/warnings/{wid}/lift",
        json={"reason": "水位回落", "override_reason": "inc-2 为一般险情，不影响解除"},
    )
    assert forced.status_code == 200, forced.text
    body = forced.json()
    assert body["status"] == "lifted"
    assert body["override_reason"] == "inc-2 为一般险情，不影响解除"
    assert body["versions"][-1]["open_incidents"] == ["inc-2"]


def test_lift_guard_follows_merged_incidents(wstack: WarningStack) -> None:
    wstack.report_incident("dup", category="flood", grade=4)
    wstack.report_incident("primary", category="flood", grade=4)
    wid = wstack.issue(hazard="flood", incident_ids=["dup"]).json()["id"]
    merged = wstack.incident_event(
        "incident_merged",
        incident_id="dup",
        primary_id="primary",
        township_code=TOWNSHIP_A,
        merged_by="operator",
    )
    wstack.service.on_incident_status(merged, merged.payload)
    assert wstack.call("POST", f"/v1/warnings/{wid}/lift", json={"reason": "x"}).status_code == 409
    closed = wstack.incident_event(
        "incident_closed",
        incident_id="primary",
        township_code=TOWNSHIP_A,
        closed_by="leader",
        reason="done",
    )
    wstack.service.on_incident_status(closed, closed.payload)
    assert wstack.call("POST", f"/v1/warnings/{wid}/lift", json={"reason": "x"}).status_code == 200


def test_incidents_suggest_warnings_for_township_and_neighbours(wstack: WarningStack) -> None:
    report = wstack.report_incident("inc-9", category="flood", grade=2)
    assert wstack.service.on_incident(report, report.payload) is False  # duplicate
    wstack.report_incident("inc-10", category="flood", grade=4)  # grade IV: no suggestion
    wstack.report_incident("inc-11", category="dispute", grade=1)  # not a hazard
    listed = wstack.call("GET", "/v1/warnings/suggestions").json()["items"]
    assert len(listed) == 1
    suggestion = listed[0]
    assert suggestion["incident_id"] == "inc-9"
    assert (suggestion["hazard"], suggestion["level"], suggestion["status"]) == (
        "flood",
        2,
        "pending",
    )
    # 城关镇 and the townships within 10 km of it (河西街道 ≈ 4 km); 青石镇 (≈ 13 km) is not.
    assert suggestion["areas"][0] == TOWNSHIP_A
    assert "349901002" in suggestion["areas"] and TOWNSHIP_B not in suggestion["areas"]
    assert wstack.call("GET", "/v1/warnings/suggestions", who="township_a").status_code == 403
    wstack.settle()
    suggested = wstack.probe.of("warning_suggested")
    assert [(s["incident_id"], s["level"]) for s in suggested] == [("inc-9", 2)]

    regrade = wstack.incident_event(
        "incident_regraded",
        incident_id="inc-9",
        township_code=TOWNSHIP_A,
        category="flood",
        old_grade=2,
        new_grade=1,
        reason="死亡人数上升",
    )
    wstack.service.on_incident(regrade, regrade.payload)
    rows = wstack.call("GET", "/v1/warnings/suggestions?incident_id=inc-9").json()["items"]
    assert sorted((r["level"], r["status"]) for r in rows) == [(1, "pending"), (2, "superseded")]
    newest = next(r for r in rows if r["status"] == "pending")

    assert (
        wstack.call(
            "POST", f"/v1/warnings/suggestions/{newest['id']}/accept", who="department", json={}
        ).status_code
        == 403
    )  # flood is outside the weather department's hazards
    accepted = wstack.call(
        "POST",
        f"/v1/warnings/suggestions/{newest['id']}/accept",
        json={"level": 3, "headline": "城关镇洪水黄色预警", "areas": [TOWNSHIP_A]},
    )
    assert accepted.status_code == 201, accepted.text
    warning = accepted.json()
    assert (warning["status"], warning["level"], warning["areas"]) == ("active", 3, [TOWNSHIP_A])
    assert warning["incident_ids"] == ["inc-9"] and warning["suggestion_id"] == newest["id"]
    again = wstack.call("POST", f"/v1/warnings/suggestions/{newest['id']}/accept", json={})
    assert again.status_code == 409 and warning["id"] in again.json()["error"]["message"]
    after = wstack.call("GET", f"/v1/warnings/suggestions/{newest['id']}").json()
    assert after["status"] == "accepted" and after["warning_id"] == warning["id"]


def test_suggestion_dismissal_and_red_suggestions_wait_for_approval(wstack: WarningStack) -> None:
    wstack.report_incident("g-1", category="geological", grade=1, township=TOWNSHIP_B)
    wstack.report_incident("g-2", category="geological", grade=3, township=TOWNSHIP_B)
    rows = {
        r["incident_id"]: r for r in wstack.call("GET", "/v1/warnings/suggestions").json()["items"]
    }
    dismissed = wstack.call(
        "POST", f"/v1/warnings/suggestions/{rows['g-2']['id']}/dismiss", json={"reason": "已核实"}
    )
    assert dismissed.status_code == 200 and dismissed.json()["status"] == "dismissed"
    assert (
        wstack.call(
            "POST", f"/v1/warnings/suggestions/{rows['g-2']['id']}/dismiss", json={"reason": "x"}
        ).status_code
        == 409
    )
    red = wstack.call("POST", f"/v1/warnings/suggestions/{rows['g-1']['id']}/accept", json={})
    assert red.status_code == 201 and red.json()["status"] == "pending_approval"
    assert wstack.call("POST", "/v1/warnings/suggestions/nope/accept", json={}).status_code == 404


def test_public_feed_lists_active_public_warnings(wstack: WarningStack) -> None:
    public = wstack.issue(level=3).json()["id"]
    wstack.issue(level=4, exercise=True)
    wstack.issue(level=2)  # pending approval
    lifted = wstack.issue(level=4).json()["id"]
    wstack.call("POST", f"/v1/warnings/{lifted}/lift", json={"reason": "结束"})
    response = wstack.client.get("/v1/warnings/feed")  # no key
    assert response.status_code == 200
    items = response.json()["items"]
    assert [i["id"] for i in items] == [public]
    assert items[0]["areas"][0] == {"code": TOWNSHIP_A, "name": "城关镇"}
    atom = wstack.client.get("/v1/warnings/feed?format=atom")
    assert atom.headers["content-type"].startswith("application/atom+xml")
    entries = ET.fromstring(atom.content).findall(f"{ATOM}entry")
    assert len(entries) == 1
    link = entries[0].find(f"{ATOM}link")
    assert link is not None and link.get("type") == "application/cap+xml"
    cap = wstack.client.get(items[0]["cap_path"])
    assert cap.status_code == 200
    assert_conforms(cap.content)
    assert wstack.client.get(f"/v1/warnings/feed/{lifted}/cap").status_code == 200  # Cancel
    drill = wstack.call("GET", "/v1/warnings?exercise=true").json()["items"][0]["id"]
    assert wstack.client.get(f"/v1/warnings/feed/{drill}/cap").status_code == 404
    assert wstack.client.get(f"/v1/warnings/{public}/cap").status_code == 401


def _nothing_written(stack: WarningStack) -> None:
    """No warning and no warning event came of a refused request."""
    assert stack.call("GET", "/v1/warnings").json()["items"] == []
    stack.settle()
    assert stack.probe.of("warning_issued") == []
    assert stack.probe.of("warning_approval_requested") == []


def test_a_drill_suggestion_is_accepted_only_as_a_drill_warning(wstack: WarningStack) -> None:
    wstack.report_incident("drill-1", category="flood", grade=2, exercise=True)
    (drill,) = wstack.call("GET", "/v1/warnings/suggestions?incident_id=drill-1").json()["items"]
    assert drill["exercise"] is True
    path = f"/v1/warnings/suggestions/{drill['id']}/accept"
    refused = wstack.call("POST", path, json={"exercise": False, "level": 2})
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["fields"] == [
        {"path": "exercise", "reason": "该建议来自演练事件，只能发布演练预警"}
    ]
    _nothing_written(wstack)
    after = wstack.call("GET", f"/v1/warnings/suggestions/{drill['id']}").json()
    assert (after["status"], after["warning_id"]) == ("pending", None)
    accepted = wstack.call("POST", path, json={"exercise": True, "level": 3})
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["exercise"] is True


def test_a_real_suggestion_is_not_accepted_as_a_drill(wstack: WarningStack) -> None:
    wstack.report_incident("real-1", category="flood", grade=2)
    (real,) = wstack.call("GET", "/v1/warnings/suggestions").json()["items"]
    refused = wstack.call(
        "POST", f"/v1/warnings/suggestions/{real['id']}/accept", json={"exercise": True}
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["fields"] == [
        {"path": "exercise", "reason": "该建议来自真实事件，不能发布为演练预警"}
    ]
    _nothing_written(wstack)
    assert wstack.call("GET", f"/v1/warnings/suggestions/{real['id']}").json()["status"] == (
        "pending"
    )


def test_a_warning_links_only_incidents_of_its_own_kind(wstack: WarningStack) -> None:
    wstack.report_incident("real-1", category="flood", grade=3)
    wstack.report_incident("drill-1", category="flood", grade=3, exercise=True)
    regrade = wstack.incident_event(
        "incident_regraded",
        incident_id="early-1",
        township_code=TOWNSHIP_A,
        category="flood",
        old_grade=3,
        new_grade=2,
        reason="x",
    )
    wstack.service.on_incident(regrade, regrade.payload)  # its report has not arrived yet
    drill = wstack.issue(exercise=True, incident_ids=["drill-1", "real-1", "early-1"])
    assert drill.status_code == 422, drill.text
    assert drill.json()["error"]["fields"] == [
        {"path": "incident_ids.1", "reason": "该事件是真实事件，演练预警只能关联演练事件"},
        {
            "path": "incident_ids.2",
            "reason": "预警服务尚未收到事件 early-1 的初报，无法确认是否演练事件",
        },
    ]
    real = wstack.issue(incident_ids=["real-1", "drill-1"])
    assert real.status_code == 422, real.text
    assert real.json()["error"]["fields"] == [
        {"path": "incident_ids.1", "reason": "该事件是演练事件，演练事件只能关联演练预警"}
    ]
    _nothing_written(wstack)
    assert wstack.issue(incident_ids=["real-1"]).status_code == 201
    assert wstack.issue(exercise=True, incident_ids=["drill-1"]).status_code == 201
