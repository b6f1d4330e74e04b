"""Issuing and approving, validation, idempotency and version history over HTTP."""

from __future__ import annotations

from datetime import timedelta

from tests.warning.conftest import TOWNSHIP_A, TOWNSHIP_B, WarningStack


def test_leader_approves_a_pending_warning(wstack: WarningStack) -> None:
    created = wstack.issue("department", level=2).json()
    assert created["status"] == "pending_approval"
    wstack.settle()
    assert wstack.probe.of("warning_issued") == []
    assert wstack.call("GET", "/v1/warnings/feed").json()["items"] == []
    approved = wstack.call(
        "POST",
        f"/v1/warnings/{created['id']}/approve",
        who="leader",
        json={"note": "同意发布", "version": 1},
    )
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert body["status"] == "active"
    assert body["versions"][0]["approved_by"]["name"] == "leader"
    assert body["versions"][0]["approval_note"] == "同意发布"
    again = wstack.call("POST", f"/v1/warnings/{created['id']}/approve", who="leader", json={})
    assert again.status_code == 409
    wstack.settle()
    issued = wstack.probe.of("warning_issued")
    assert len(issued) == 1
    assert issued[0]["warning_id"] == created["id"]
    assert issued[0]["level"] == 2 and issued[0]["approved_by"] == "leader"
    assert [i["id"] for i in wstack.call("GET", "/v1/warnings/feed").json()["items"]] == [
        created["id"]
    ]


def test_rejection_needs_a_reason_and_ends_a_draft(wstack: WarningStack) -> None:
    created = wstack.issue("operator", level=1).json()
    missing = wstack.call("POST", f"/v1/warnings/{created['id']}/reject", who="leader", json={})
    assert missing.status_code == 422
    assert missing.json()["error"]["fields"][0]["path"] == "reason"
    wrong = wstack.call(
        "POST",
        f"/v1/warnings/{created['id']}/reject",
        who="leader",
        json={"reason": "x", "version": 2},
    )
    assert wrong.status_code == 409
    rejected = wstack.call(
        "POST",
        f"/v1/warnings/{created['id']}/reject",
        who="leader",
        json={"reason": "证据不足"},
    ).json()
    assert rejected["status"] == "rejected"
    assert rejected["rejection_reason"] == "证据不足"
    assert rejected["versions"][0]["state"] == "rejected"
    assert (
        wstack.call(
            "POST", f"/v1/warnings/{created['id']}/approve", who="leader", json={}
        ).status_code
        == 409
    )
    cap = wstack.call("GET", f"/v1/warnings/{created['id']}/cap")
    assert cap.status_code == 409
    wstack.settle()
    assert wstack.probe.of("warning_issued") == []
    assert wstack.service.repo.pending_deliveries(wstack.now(), 100) == []
    assert wstack.service.repo.count_pending_deliveries() == 0


def test_invalid_input_names_fields_and_writes_nothing(wstack: WarningStack) -> None:
    now = wstack.now()
    cases = [
        ({"hazard": "volcano"}, "hazard"),
        ({"level": 5}, "level"),
        ({"level": 0}, "level"),
        ({"areas": []}, "areas"),
        ({"areas": ["123"]}, "areas.0"),
        ({"areas": [TOWNSHIP_A, "349901999"]}, "areas.1"),
        ({"areas": [TOWNSHIP_A, TOWNSHIP_A]}, "areas.1"),
        ({"expires": (now - timedelta(hours=1)).isoformat()}, "expires"),
        ({"expires": "2026-07-06T12:00:00"}, "expires"),
        ({"effective": (now + timedelta(hours=7)).isoformat()}, "expires"),
        ({"expires": (now + timedelta(days=30)).isoformat()}, "expires"),
        ({"incident_ids": ["never-seen"]}, "incident_ids.0"),
        ({"headline": ""}, "headline"),
        ({"description": "长" * 1501}, "description"),
        ({"colour": "red"}, "colour"),
    ]
    for overrides, path in cases:
        response = wstack.issue("operator", **overrides)
        assert response.status_code == 422, (overrides, response.text)
        paths = [f["path"] for f in response.json()["error"]["fields"]]
        assert path in paths, (overrides, paths)
    assert wstack.call("GET", "/v1/warnings").json()["items"] == []
    malformed = wstack.client.post(
        "/v1/warnings",
        content=b"{not json",
        headers={**wstack.headers("operator"), "content-type": "application/json"},
    )
    assert malformed.status_code == 400
    assert wstack.client.post("/v1/warnings", json=wstack.warning_body()).status_code == 401


def test_idempotency_key_replays_and_refuses_another_body(wstack: WarningStack) -> None:
    body = wstack.warning_body()
    headers = {"Idempotency-Key": "warn-2026-07-06-001"}
    first = wstack.call("POST", "/v1/warnings", json=body, headers=headers)
    second = wstack.call("POST", "/v1/warnings", json=body, headers=headers)
    assert first.status_code == 201 and second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    other = wstack.call("POST", "/v1/warnings", json={**body, "level": 4}, headers=headers)
    assert other.status_code == 409
    assert len(wstack.call("GET", "/v1/warnings").json()["items"]) == 1
    wstack.settle()
    assert len(wstack.probe.of("warning_issued")) == 1


def test_versions_are_kept_in_full(wstack: WarningStack) -> None:
    wid = wstack.issue("operator", level=3).json()["id"]
    down = wstack.call(
        "POST", f"/v1/warnings/{wid}/adjust", json={"level": 4, "reason": "雨势减弱"}
    ).json()
    assert (down["version"], down["level"], down["color"]) == (2, 4, "blue")
    up = wstack.call(
        "POST",
        f"/v1/warnings/{wid}/adjust",
        json={"level": 2, "reason": "雨势加强", "headline": "安河县暴雨橙色预警"},
    ).json()
    # Adjusting to level 2 waits for a leader; the warning stays at its issued version.
    assert (up["status"], up["version"], up["pending_version"], up["level"]) == (
        "active",
        2,
        3,
        4,
    )
    blocked = wstack.call(
        "POST", f"/v1/warnings/{wid}/adjust", json={"level": 3, "reason": "again"}
    )
    assert blocked.status_code == 409
    assert blocked.json()["error"]["code"] == "approval_pending"
    approved = wstack.call("POST", f"/v1/warnings/{wid}/approve", who="leader", json={}).json()
    assert (approved["version"], approved["level"], approved["headline"]) == (
        3,
        2,
        "【暴雨预警由四级（蓝色）调整为二级（橙色）预警】安河县暴雨橙色预警",
    )
    refused = wstack.call(
        "POST", f"/v1/warnings/{wid}/adjust", json={"level": 1, "reason": "特大暴雨"}
    ).json()
    assert refused["pending_version"] == 4
    rejected = wstack.call(
        "POST", f"/v1/warnings/{wid}/reject", who="leader", json={"reason": "尚未达到红色标准"}
    ).json()
    assert (rejected["status"], rejected["version"], rejected["level"]) == ("active", 3, 2)
    states = [(v["number"], v["msg_type"], v["level"], v["state"]) for v in rejected["versions"]]
    assert states == [
        (1, "Alert", 3, "issued"),
        (2, "Update", 4, "issued"),
        (3, "Update", 2, "issued"),
        (4, "Update", 1, "rejected"),
    ]
    v2 = rejected["versions"][1]
    assert v2["reason"] == "雨势减弱" and v2["old_level"] == 3
    assert v2["description"] == wstack.warning_body()["description"]
    assert rejected["versions"][0]["level"] == 3  # the first version is unchanged
    wstack.settle()
    adjusted = wstack.probe.of("warning_adjusted")
    assert [(a["version"], a["old_level"], a["level"]) for a in adjusted] == [(2, 3, 4), (3, 4, 2)]


def test_adjust_and_lift_permissions(wstack: WarningStack) -> None:
    wid = wstack.issue("water_department", hazard="flood", level=4).json()["id"]
    weather = wstack.call(
        "POST", f"/v1/warnings/{wid}/adjust", who="department", json={"level": 3, "reason": "x"}
    )
    assert weather.status_code == 403
    assert (
        wstack.call(
            "POST", f"/v1/warnings/{wid}/adjust", who="township_a", json={"level": 3, "reason": "x"}
        ).status_code
        == 403
    )
    own = wstack.call(
        "POST",
        f"/v1/warnings/{wid}/adjust",
        who="water_department",
        json={"level": 3, "reason": "水位上涨"},
    )
    assert own.status_code == 200 and own.json()["status"] == "active"
    assert (
        wstack.call(
            "POST", f"/v1/warnings/{wid}/lift", who="department", json={"reason": "x"}
        ).status_code
        == 403
    )
    lifted = wstack.call(
        "POST", f"/v1/warnings/{wid}/lift", who="water_department", json={"reason": "水位回落"}
    )
    assert lifted.status_code == 200 and lifted.json()["status"] == "lifted"
    assert (
        wstack.call(
            "POST", f"/v1/warnings/{wid}/adjust", json={"level": 3, "reason": "x"}
        ).status_code
        == 409
    )
    assert wstack.call("POST", f"/v1/warnings/{wid}/lift", json={"reason": "x"}).status_code == 409


def test_township_reads_only_its_own_issued_warnings(wstack: WarningStack) -> None:
    mine = wstack.issue(areas=[TOWNSHIP_A]).json()["id"]
    theirs = wstack.issue(areas=[TOWNSHIP_B]).json()["id"]
    draft = wstack.issue(areas=[TOWNSHIP_A], level=2).json()["id"]
    listed = wstack.call("GET", "/v1/warnings", who="township_a").json()["items"]
    assert [w["id"] for w in listed] == [mine]
    assert wstack.call("GET", f"/v1/warnings/{theirs}", who="township_a").status_code == 403
    assert wstack.call("GET", f"/v1/warnings/{draft}", who="township_a").status_code == 404
    assert (
        wstack.call("GET", f"/v1/warnings?township_code={TOWNSHIP_B}", who="township_a").status_code
        == 403
    )
    everything = wstack.call("GET", "/v1/warnings").json()["items"]
    assert len(everything) == 3
    filtered = wstack.call("GET", "/v1/warnings?status=pending_approval").json()["items"]
    assert [w["id"] for w in filtered] == [draft]
    by_area = wstack.call("GET", f"/v1/warnings?township_code={TOWNSHIP_B}").json()["items"]
    assert [w["id"] for w in by_area] == [theirs]
    assert wstack.call("GET", "/v1/warnings?level=9").status_code == 422
    page1 = wstack.call("GET", "/v1/warnings?limit=2").json()
    page2 = wstack.call("GET", f"/v1/warnings?limit=2&cursor={page1['next_cursor']}").json()
    assert len(page1["items"]) == 2 and len(page2["items"]) == 1
    assert wstack.call("GET", "/v1/warnings/nope").status_code == 404


def test_a_lift_retried_after_a_lost_answer_gets_the_same_result(wstack: WarningStack) -> None:
    wid = wstack.issue(level=3).json()["id"]
    first = wstack.call("POST", f"/v1/warnings/{wid}/lift", json={"reason": "降雨结束"})
    assert first.status_code == 200, first.text
    retry = wstack.call("POST", f"/v1/warnings/{wid}/lift", json={"reason": "降雨结束"})
    assert retry.status_code == 200, retry.text
    assert retry.json() == first.json()
    # Another reason, or another caller, is not a retry: the warning is no longer active.
    other = wstack.call("POST", f"/v1/warnings/{wid}/lift", json={"reason": "另一个原因"})
    assert (other.status_code, other.json()["error"]["code"]) == (409, "not_active")
    by_leader = wstack.call(
        "POST", f"/v1/warnings/{wid}/lift", who="leader", json={"reason": "降雨结束"}
    )
    assert by_leader.status_code == 409


def test_adjust_approve_and_reject_accept_an_idempotency_key(wstack: WarningStack) -> None:
    wid = wstack.issue(level=3).json()["id"]
    change = {"level": 2, "reason": "雨势加强"}
    key = {"Idempotency-Key": "adjust-1"}
    first = wstack.call("POST", f"/v1/warnings/{wid}/adjust", json=change, headers=key)
    again = wstack.call("POST", f"/v1/warnings/{wid}/adjust", json=change, headers=key)
    assert (first.status_code, again.status_code) == (200, 200), again.text
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == first.json() and first.json()["pending_version"] == 2
    assert len(first.json()["versions"]) == 2
    other = wstack.call(
        "POST", f"/v1/warnings/{wid}/adjust", json={**change, "reason": "别的"}, headers=key
    )
    assert (other.status_code, other.json()["error"]["code"]) == (409, "idempotency_conflict")
    approve_key = {"Idempotency-Key": "approve-1"}
    approved = wstack.call(
        "POST", f"/v1/warnings/{wid}/approve", who="leader", json={}, headers=approve_key
    )
    replayed = wstack.call(
        "POST", f"/v1/warnings/{wid}/approve", who="leader", json={}, headers=approve_key
    )
    assert (approved.status_code, replayed.status_code) == (200, 200), replayed.text
    assert replayed.json() == approved.json() and approved.json()["level"] == 2
    # Without the key a second approval is refused: nothing is pending any more.
    bare = wstack.call("POST", f"/v1/warnings/{wid}/approve", who="leader", json={})
    assert bare.status_code == 409
    wstack.call("POST", f"/v1/warnings/{wid}/adjust", json={"level": 1, "reason": "红色"})
    reject_key = {"Idempotency-Key": "reject-1"}
    body = {"reason": "证据不足"}
    rejected = wstack.call(
        "POST", f"/v1/warnings/{wid}/reject", who="leader", json=body, headers=reject_key
    )
    again_rejected = wstack.call(
        "POST", f"/v1/warnings/{wid}/reject", who="leader", json=body, headers=reject_key
    )
    assert (rejected.status_code, again_rejected.status_code) == (200, 200)
    assert again_rejected.json() == rejected.json()
    assert [v["state"] for v in rejected.json()["versions"]] == ["issued", "issued", "rejected"]
