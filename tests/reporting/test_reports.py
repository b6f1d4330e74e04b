"""The report chain over HTTP: follow-ups, final report, elements, falling figures, access."""

from __future__ import annotations

from pathlib import Path

from libs.common.events import make_event
from tests.reporting.support import (
    emit,
    events_of,
    incident_reported,
    publish,
    report_body,
)
from tests.support.errors import refusal
from tests.support.stack import TOWNSHIP_A, TOWNSHIP_B, Stack


def casualties(deaths: int = 0, injured: int = 0) -> dict[str, int]:
    return {"deaths": deaths, "injured": injured, "missing": 0, "trapped": 0}


def test_chain_numbers_followups_and_shows_changes(rstack: Stack) -> None:
    iid = incident_reported(rstack, grade=3, injured=2).payload["incident_id"]
    first = rstack.call(
        "POST",
        "/v1/reports",
        who="township_a",
        json=report_body(iid, casualties=casualties(injured=4), change_note="新增伤员2人"),
    )
    assert first.status_code == 201, first.text
    assert first.json()["number"] == 1
    assert first.json()["changes"] == [
        {
            "field": "casualties.injured",
            "label": "受伤人数",
            "previous": 2,
            "current": 4,
            "delta": 2,
        }
    ]
    rstack.clock.advance(3600)
    second = rstack.call(
        "POST", "/v1/reports", json=report_body(iid, casualties=casualties(deaths=1, injured=4))
    )
    assert second.status_code == 201 and second.json()["number"] == 2
    final = rstack.call(
        "POST", "/v1/reports", json=report_body(iid, "final", casualties=casualties(1, 4))
    )
    assert final.status_code == 201 and final.json()["number"] is None
    rstack.settle()
    chain = rstack.call("GET", "/v1/reports", params={"incident_id": iid}).json()
    assert [(r["kind"], r["number"]) for r in chain["items"]] == [
        ("initial", None),
        ("followup", 1),
        ("followup", 2),
        ("final", None),
    ]
    assert chain["items"][1]["change_note"] == "新增伤员2人"
    assert chain["items"][2]["changes"][0]["field"] == "casualties.deaths"
    assert chain["finalised"] is True
    followups = events_of(rstack, "followup_filed")
    assert [e["payload"]["number"] for e in followups] == [1, 2]
    assert followups[1]["payload"]["casualties"]["deaths"] == 1
    assert len(events_of(rstack, "final_report_filed")) == 1
    again = rstack.call("POST", "/v1/reports", json=report_body(iid, casualties=casualties(1, 4)))
    assert again.status_code == 409 and again.json()["error"]["code"] == "chain_finalised"


def test_missing_elements_are_listed_and_nothing_is_stored(rstack: Stack) -> None:
    iid = incident_reported(rstack).payload["incident_id"]
    body = report_body(iid, progress="", needs="   ", approver=None)
    del body["affected"]
    response = rstack.call("POST", "/v1/reports", json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "incomplete_report"
    assert [f["path"] for f in error["fields"]] == [
        "progress",
        "needs",
        "approver.name",
        "approver.phone",
        "affected",
    ]
    too_long = rstack.call("POST", "/v1/reports", json=report_body(iid, progress="情" * 501))
    assert too_long.status_code == 422
    assert too_long.json()["error"]["fields"][0]["path"] == "progress"
    bad_phone = rstack.call(
        "POST", "/v1/reports", json=report_body(iid, reporter={"name": "李", "phone": "abc"})
    )
    assert bad_phone.status_code == 422
    assert bad_phone.json()["error"]["fields"][0]["path"] == "reporter.phone"
    chain = rstack.call("GET", "/v1/reports", params={"incident_id": iid}).json()
    assert len(chain["items"]) == 1


def test_falling_figures_need_a_correction_for_each(rstack: Stack) -> None:
    iid = incident_reported(rstack, grade=3).payload["incident_id"]
    ok = rstack.call(
        "POST",
        "/v1/reports",
        json=report_body(
            iid,
            casualties=casualties(deaths=3, injured=5),
            affected={"people_affected": 200, "people_evacuated": 50},
        ),
    )
    assert ok.status_code == 201
    lower = report_body(
        iid,
        casualties=casualties(deaths=2, injured=5),
        affected={"people_affected": 150, "people_evacuated": 50},
    )
    # An explanation in progress is not a correction: one rule in code, 422 and docs/api.md.
    lower["progress"] = "经核实，死亡1人系重复统计，受影响人数重新核对为150人。"
    refused = rstack.call("POST", "/v1/reports", json=lower)
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["code"] == "figures_fell"
    assert "corrections[]" in error["message"] and "progress" in error["message"]
    api_doc = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text("utf-8")
    assert "corrections[] {field, reason}, text in progress is not enough" in api_doc
    assert [f["path"] for f in error["fields"]] == [
        "casualties.deaths",
        "affected.people_affected",
    ]
    lower["corrections"] = [
        {"field": "casualties.deaths", "reason": "经公安核实，1人为重复统计"},
        {"field": "affected.people_affected", "reason": "村组重新核对户籍"},
    ]
    accepted = rstack.call("POST", "/v1/reports", json=lower)
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["number"] == 2
    assert accepted.json()["corrections"][0]["reason"].startswith("经公安核实")


def test_township_keys_report_only_on_their_own_incidents(rstack: Stack) -> None:
    """Another township's incident is as if unknown (404): see test_township_reach.py."""
    iid = incident_reported(rstack, township_code=TOWNSHIP_A).payload["incident_id"]
    other = rstack.call("POST", "/v1/reports", who="township_b", json=report_body(iid))
    assert refusal(other) == (404, "incident_unknown", ["incident_id"])
    assert (
        rstack.call("GET", "/v1/reports", who="township_b", params={"incident_id": iid}).status_code
        == 404
    )
    own = rstack.call("POST", "/v1/reports", who="township_a", json=report_body(iid))
    assert own.status_code == 201
    assert rstack.call("GET", f"/v1/timeline/{iid}", who="township_b").status_code == 404


def test_a_report_read_by_id_is_found_only_by_its_own_township(rstack: Stack) -> None:
    """Another township asking for a report by its id learns nothing: 404, as for no report."""
    iid = incident_reported(rstack, township_code=TOWNSHIP_A).payload["incident_id"]
    filed = rstack.call("POST", "/v1/reports", who="township_a", json=report_body(iid))
    assert filed.status_code == 201, filed.text
    report_id = filed.json()["id"]
    own = rstack.call("GET", f"/v1/reports/{report_id}", who="township_a")
    assert own.status_code == 200
    assert own.json()["incident_id"] == iid and own.json()["township_code"] == TOWNSHIP_A
    other = rstack.call("GET", f"/v1/reports/{report_id}", who="township_b")
    assert other.status_code == 404
    assert other.json()["error"]["code"] == "not_found"
    assert iid not in other.text
    absent = rstack.call("GET", "/v1/reports/no-such-report", who="township_b")
    assert (absent.status_code, absent.json()["error"]["code"]) == (404, "not_found")
    for role in ("operator", "leader", "department", "admin"):
        assert rstack.call("GET", f"/v1/reports/{report_id}", who=role).status_code == 200


def test_unknown_closed_and_merged_incidents(rstack: Stack) -> None:
    unknown = rstack.call("POST", "/v1/reports", json=report_body("nope"))
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "incident_unknown"
    iid = incident_reported(rstack).payload["incident_id"]
    emit(
        rstack,
        "intake",
        "incident_closed",
        {
            "incident_id": iid,
            "township_code": TOWNSHIP_A,
            "closed_by": "leader",
            "reason": "处置完毕",
        },
        correlation_id=iid,
    )
    followup = rstack.call("POST", "/v1/reports", json=report_body(iid))
    assert followup.status_code == 409 and followup.json()["error"]["code"] == "incident_closed"
    final = rstack.call("POST", "/v1/reports", json=report_body(iid, "final"))
    assert final.status_code == 201
    dup = incident_reported(rstack, township_code=TOWNSHIP_B).payload["incident_id"]
    emit(
        rstack,
        "intake",
        "incident_merged",
        {"incident_id": dup, "primary_id": iid, "township_code": TOWNSHIP_B, "merged_by": "op"},
        correlation_id=dup,
    )
    merged = rstack.call("POST", "/v1/reports", json=report_body(dup))
    assert merged.status_code == 409 and merged.json()["error"]["code"] == "incident_merged"


def test_idempotency_key_replays_and_refuses_another_body(rstack: Stack) -> None:
    iid = incident_reported(rstack).payload["incident_id"]
    headers = {"Idempotency-Key": "followup-1"}
    first = rstack.call("POST", "/v1/reports", json=report_body(iid), headers=headers)
    again = rstack.call("POST", "/v1/reports", json=report_body(iid), headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    other = rstack.call(
        "POST", "/v1/reports", json=report_body(iid, needs="需要帐篷"), headers=headers
    )
    assert other.status_code == 409
    rstack.settle()
    assert len(events_of(rstack, "followup_filed")) == 1


def test_incident_events_delivered_twice_change_nothing(rstack: Stack) -> None:
    reported = incident_reported(rstack, grade=4)
    iid = reported.payload["incident_id"]
    regraded = make_event(
        rstack.clock,
        "intake",
        "incident_regraded",
        {
            "incident_id": iid,
            "township_code": TOWNSHIP_A,
            "category": "flood",
            "old_grade": 4,
            "new_grade": 2,
            "reason": "死亡人数上升",
            "skipped_grades": True,
        },
        correlation_id=iid,
    )
    publish(rstack, regraded)
    before = rstack.call("GET", "/v1/deadlines", params={"incident_id": iid}).json()["items"]
    timeline_before = rstack.call("GET", f"/v1/timeline/{iid}").json()["items"]
    publish(rstack, reported, regraded, reported)
    after = rstack.call("GET", "/v1/deadlines", params={"incident_id": iid}).json()["items"]
    assert after == before
    assert rstack.call("GET", f"/v1/timeline/{iid}").json()["items"] == timeline_before
    chain = rstack.call("GET", "/v1/reports", params={"incident_id": iid}).json()
    assert chain["grade"] == 2 and len(chain["items"]) == 1
