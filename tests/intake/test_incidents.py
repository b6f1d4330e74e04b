"""Intake over HTTP: grading, flags, idempotency, queries, duplicates, merge, close, events."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from services.intake.service import SPEC, refresh_open_gauge
from tests.intake.helpers import casualties, created, iso, post, report, sent_events
from tests.support.errors import refusal
from tests.support.stack import TOWNSHIP_A, TOWNSHIP_B, Stack, running_stack


def test_incident_reported_event_carries_the_facts(intake: Stack) -> None:
    dispute = {
        "nature": "relocation",
        "stability_impact": "medium",
        "escalation_risk": "high",
        "key_persons": True,
    }
    body = report(
        intake.clock.now(),
        category="mass_incident",
        people_involved=25,
        dispute=dispute,
        exercise=True,
        location={"address": "城關鎮政府門口", "lat": 31.52, "lon": 116.48},
    )
    result = created(intake, body)
    [event] = sent_events(intake, "incident_reported", result["id"])
    payload = event["payload"]
    assert event["source"] == "intake"
    assert event["correlation_id"] == result["id"]
    assert payload["grade"] == 4
    assert payload["exercise"] is True
    assert payload["escalated"] is True
    assert payload["escalation_reasons"] == [
        "people_involved",
        "key_persons",
        "high_escalation_risk",
    ]
    assert payload["people_involved"] == 25
    assert (payload["lat"], payload["lon"], payload["address"]) == (31.52, 116.48, "城關鎮政府門口")
    assert payload["dispute"]["key_persons"] is True
    assert result["exercise"] is True


def test_late_limit_follows_the_active_deadline_profile(tmp_path: Path) -> None:
    with running_stack(tmp_path, specs=[SPEC], deadline_profile="national") as stack:
        now = stack.clock.now()
        body = report(
            now,
            occurred_at=iso(now - timedelta(minutes=70)),
            discovered_at=iso(now - timedelta(minutes=61)),
        )
        result = created(stack, body)
        assert (result["grade"], result["late_limit_minutes"], result["late"]) == (4, 60, True)


# --- idempotency ------------------------------------------------------------------------------


def test_retry_with_the_same_key_returns_the_original(intake: Stack) -> None:
    body = report(intake.clock.now())
    first = post(intake, body, headers={"Idempotency-Key": "tw-a-0001"})
    assert first.status_code == 201
    intake.clock.advance(90)
    again = post(intake, body, headers={"Idempotency-Key": "tw-a-0001"})
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["reported_at"] == first.json()["reported_at"]
    assert intake.ctx("intake").resources["repository"].count_incidents() == 1
    assert len(sent_events(intake, "incident_reported")) == 1


def test_same_key_with_another_body_is_a_conflict(intake: Stack) -> None:
    body = report(intake.clock.now())
    assert post(intake, body, headers={"Idempotency-Key": "k1"}).status_code == 201
    other = dict(body, title="另一起事件")
    response = post(intake, other, headers={"Idempotency-Key": "k1"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_conflict"


def test_keys_are_per_caller_and_optional(intake: Stack) -> None:
    body = report(intake.clock.now(), township_code=TOWNSHIP_B)
    a = post(intake, body, "operator", headers={"Idempotency-Key": "k"}).json()["id"]
    b = post(intake, body, "leader", headers={"Idempotency-Key": "k"}).json()["id"]
    c = post(intake, body, "operator").json()["id"]
    d = post(intake, body, "operator").json()["id"]
    assert len({a, b, c, d}) == 4


def test_bad_idempotency_key_is_refused(intake: Stack) -> None:
    response = post(intake, report(intake.clock.now()), headers={"Idempotency-Key": "x" * 201})
    assert response.status_code == 400
    assert response.json()["error"]["fields"][0]["path"] == "header.Idempotency-Key"


# --- queries ----------------------------------------------------------------------------------


@pytest.fixture
def populated(intake: Stack) -> Iterator[tuple[Stack, dict[str, str]]]:
    """Five incidents in two townships with different grades and categories."""
    now = intake.clock.now()
    ids = {}
    ids["a_flood"] = created(intake, report(now, casualties=casualties(deaths=12)))["id"]
    intake.clock.advance(60)
    ids["a_fire"] = created(intake, report(intake.clock.now(), category="fire"))["id"]
    intake.clock.advance(60)
    body_b = report(intake.clock.now(), township_code=TOWNSHIP_B, category="geological")
    ids["b_geo"] = created(intake, body_b, "township_b")["id"]
    intake.clock.advance(60)
    body_b2 = report(intake.clock.now(), township_code=TOWNSHIP_B, category="traffic_accident")
    ids["b_traffic"] = created(intake, body_b2, "township_b")["id"]
    intake.clock.advance(60)
    ids["a_drill"] = created(intake, report(intake.clock.now(), category="other", exercise=True))[
        "id"
    ]
    yield intake, ids


def listed(stack: Stack, who: str = "operator", **params: Any) -> list[str]:
    response = stack.call("GET", "/v1/incidents", who=who, params=params)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def test_list_newest_first_with_filters(populated: tuple[Stack, dict[str, str]]) -> None:
    stack, ids = populated
    assert listed(stack) == [
        ids["a_drill"],
        ids["b_traffic"],
        ids["b_geo"],
        ids["a_fire"],
        ids["a_flood"],
    ]
    assert listed(stack, township_code=TOWNSHIP_B) == [ids["b_traffic"], ids["b_geo"]]
    assert listed(stack, category="fire") == [ids["a_fire"]]
    assert listed(stack, grade=2) == [ids["a_flood"]]
    assert listed(stack, escalated="true") == [ids["a_flood"]]
    assert listed(stack, exercise="true") == [ids["a_drill"]]
    assert listed(stack, status="closed") == []
    assert listed(stack, late="true") == []
    start = stack.clock.now() - timedelta(seconds=90)
    assert listed(stack, reported_after=iso(start)) == [ids["a_drill"], ids["b_traffic"]]
    assert listed(stack, reported_before=iso(start)) == [
        ids["b_geo"],
        ids["a_fire"],
        ids["a_flood"],
    ]


def test_cursor_pagination(populated: tuple[Stack, dict[str, str]]) -> None:
    stack, _ = populated
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        body = stack.call("GET", "/v1/incidents", params=params).json()
        seen.extend(item["id"] for item in body["items"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == listed(stack)
    bad = stack.call("GET", "/v1/incidents", params={"cursor": "nonsense"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_cursor"
    assert bad.json()["error"]["fields"][0]["path"] == "query.cursor"


def test_townships_see_only_their_own(populated: tuple[Stack, dict[str, str]]) -> None:
    stack, ids = populated
    assert listed(stack, "township_b") == [ids["b_traffic"], ids["b_geo"]]
    assert set(listed(stack, "township_a")) == {ids["a_drill"], ids["a_fire"], ids["a_flood"]}
    forbidden = stack.call(
        "GET", "/v1/incidents", who="township_b", params={"township_code": TOWNSHIP_A}
    )
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["fields"][0]["path"] == "query.township_code"
    assert stack.call("GET", f"/v1/incidents/{ids['a_flood']}", who="township_b").status_code == 404
    own = stack.call("GET", f"/v1/incidents/{ids['b_geo']}", who="township_b")
    assert own.status_code == 200
    assert own.json()["history"][0]["kind"] == "reported"


def test_get_unknown_and_bad_filters(intake: Stack) -> None:
    assert intake.call("GET", "/v1/incidents/nope").status_code == 404
    for params in ({"grade": 5}, {"category": "volcano"}, {"status": "lost"}, {"limit": 0}):
        response = intake.call("GET", "/v1/incidents", params=params)
        assert response.status_code == 422, params
    assert intake.call("GET", "/v1/incidents", who="admin").status_code == 403


def test_open_gauge_counts_real_open_incidents_by_grade(
    populated: tuple[Stack, dict[str, str]],
) -> None:
    stack, _ = populated
    counts = refresh_open_gauge(stack.ctx("intake"))()
    assert counts == {1: 0, 2: 1, 3: 0, 4: 3}
    assert REGISTRY.get_sample_value("yingji_intake_incidents_open", {"grade": "4"}) == 3


# --- duplicates, merge, close -----------------------------------------------------------------


def test_possible_duplicates_same_township_within_window(intake: Stack) -> None:
    now = intake.clock.now()
    first = created(intake, report(now))
    assert first["possible_duplicates"] == []
    second = created(intake, report(now, title="河堤漫溢（村委會再報）"))
    assert second["possible_duplicates"] == [first["id"]]
    other_category = created(intake, report(now, category="fire"))
    assert other_category["possible_duplicates"] == []
    other_township = created(intake, report(now, township_code=TOWNSHIP_B), "township_b")
    assert other_township["possible_duplicates"] == []
    drill = created(intake, report(now, exercise=True))
    assert drill["possible_duplicates"] == []
    dupes = intake.call("GET", f"/v1/incidents/{first['id']}/duplicates").json()["items"]
    assert [d["id"] for d in dupes] == [second["id"]]


def test_duplicate_window_edges_and_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("YINGJI_INTAKE_DUPLICATE_WINDOW_MINUTES", "60")
    with running_stack(tmp_path, specs=[SPEC]) as stack:
        first = created(stack, report(stack.clock.now()))
        occurred = stack.clock.now() - timedelta(minutes=30)
        stack.clock.advance(timedelta(hours=3))
        now = stack.clock.now()

        def at(offset: timedelta) -> dict[str, Any]:
            return report(now, occurred_at=iso(occurred + offset), discovered_at=iso(now))

        assert created(stack, at(timedelta(minutes=60)))["possible_duplicates"] == [first["id"]]
        assert created(stack, at(timedelta(minutes=-60)))["possible_duplicates"] == [first["id"]]
        later = created(stack, at(timedelta(minutes=61)))
        assert first["id"] not in later["possible_duplicates"]


def test_duplicates_across_townships_by_distance(intake: Stack) -> None:
    now = intake.clock.now()
    at_border = {"address": "兩鎮交界橋頭", "lat": 31.560, "lon": 116.430}
    near = {"address": "青石鎮南橋", "lat": 31.570, "lon": 116.430}  # ~1.1 km
    far = {"address": "青石鎮北村", "lat": 31.610, "lon": 116.390}  # ~6.6 km
    first = created(intake, report(now, location=at_border))
    near_report = report(now, township_code=TOWNSHIP_B, location=near)
    assert created(intake, near_report, "township_b")["possible_duplicates"] == []
    # township_b does not see township_a's incident id; the operator does.
    near_by_operator = created(intake, near_report, "operator")
    assert first["id"] in near_by_operator["possible_duplicates"]
    far_report = report(now, township_code=TOWNSHIP_B, location=far)
    assert first["id"] not in created(intake, far_report, "operator")["possible_duplicates"]
    as_b = intake.call(
        "GET", f"/v1/incidents/{near_by_operator['id']}/duplicates", who="township_b"
    ).json()["items"]
    assert all(d["township_code"] == TOWNSHIP_B for d in as_b)


@pytest.fixture
def pair(intake: Stack) -> tuple[Stack, dict[str, Any], dict[str, Any]]:
    """A primary and its duplicate, both open."""
    now = intake.clock.now()
    primary = created(intake, report(now))
    duplicate = created(intake, report(now, title="重複報告"))
    assert duplicate["possible_duplicates"] == [primary["id"]]
    return intake, primary, duplicate


def merge(stack: Stack, incident_id: str, primary_id: str, who: str = "operator") -> Any:
    body = {"primary_id": primary_id, "reason": "同一河段漫溢，村委會與鎮政府各報一次"}
    return stack.call("POST", f"/v1/incidents/{incident_id}/merge", who=who, json=body)


def test_merge_keeps_both_histories_and_emits_once(
    pair: tuple[Stack, dict[str, Any], dict[str, Any]],
) -> None:
    stack, primary, duplicate = pair
    response = merge(stack, duplicate["id"], primary["id"])
    assert response.status_code == 200, response.text
    merged = response.json()
    assert (merged["status"], merged["merged_into"]) == ("merged", primary["id"])
    assert [h["kind"] for h in merged["history"]] == ["reported", "merged"]
    kept = stack.call("GET", f"/v1/incidents/{primary['id']}").json()
    assert kept["status"] == "open"
    assert kept["merged_ids"] == [duplicate["id"]]
    assert [h["kind"] for h in kept["history"]] == ["reported", "merged"]
    assert kept["history"][1]["duplicate_id"] == duplicate["id"]
    # A retry (bad network) changes nothing and emits nothing more.
    again = merge(stack, duplicate["id"], primary["id"])
    assert again.status_code == 200
    assert again.json()["version"] == merged["version"]
    [event] = sent_events(stack, "incident_merged", duplicate["id"])
    assert event["payload"]["primary_id"] == primary["id"]
    assert event["payload"]["reason"].startswith("同一河段")
    # Who merged it reads in Chinese, the role as a word (值班员), not a code.
    assert event["payload"]["merged_by"].endswith("（值班员）"), event["payload"]
    assert merged["history"][1]["by"] == event["payload"]["merged_by"]
    # A merged incident is no longer anyone's duplicate.
    dupes = stack.call("GET", f"/v1/incidents/{primary['id']}/duplicates").json()["items"]
    assert dupes == []
    assert listed(stack, status="merged") == [duplicate["id"]]


def test_merge_refusals(pair: tuple[Stack, dict[str, Any], dict[str, Any]]) -> None:
    stack, primary, duplicate = pair
    forbidden = (403, "forbidden_role", [])
    assert refusal(merge(stack, duplicate["id"], primary["id"], "township_a")) == forbidden
    assert refusal(merge(stack, duplicate["id"], primary["id"], "department")) == forbidden
    assert refusal(merge(stack, "nope", primary["id"])) == (404, "not_found", [])
    unknown = merge(stack, duplicate["id"], "nope")
    assert refusal(unknown) == (422, "invalid", ["primary_id"])
    itself = merge(stack, duplicate["id"], duplicate["id"])
    assert refusal(itself) == (409, "merge_conflict", ["primary_id"])
    assert "并入自身" in itself.json()["error"]["fields"][0]["reason"]
    missing_reason = stack.call(
        "POST", f"/v1/incidents/{duplicate['id']}/merge", json={"primary_id": primary["id"]}
    )
    assert refusal(missing_reason) == (422, "validation_failed", ["reason"])
    drill = created(stack, report(stack.clock.now(), exercise=True))
    mixed = merge(stack, drill["id"], primary["id"])
    assert refusal(mixed) == (409, "merge_conflict", ["primary_id"])
    assert "演练事件与真实事件不能合并" in mixed.json()["error"]["fields"][0]["reason"]
    # Merged into the primary, the duplicate cannot be a primary or be merged elsewhere.
    assert merge(stack, duplicate["id"], primary["id"], "leader").status_code == 200
    third = created(stack, report(stack.clock.now(), title="第三次報告"))
    into_merged = merge(stack, third["id"], duplicate["id"])
    assert refusal(into_merged) == (409, "merge_conflict", ["primary_id"])
    reason = into_merged.json()["error"]["fields"][0]["reason"]
    assert reason == "主事件已并入其他事件，不在处置中", reason
    elsewhere = merge(stack, duplicate["id"], third["id"])
    assert refusal(elsewhere) == (409, "merge_conflict", ["incident_id"])
    assert "已并入其他事件" in elsewhere.json()["error"]["fields"][0]["reason"]
    # The primary now has a merged child: it cannot itself be merged away.
    refused = merge(stack, primary["id"], third["id"])
    assert refusal(refused) == (409, "merge_conflict", ["incident_id"])
    assert "已有其他事件并入本事件" in refused.json()["error"]["fields"][0]["reason"]
    # Nothing a refusal touched changed: the third report and the drill are still open.
    for ident in (third["id"], drill["id"]):
        assert stack.call("GET", f"/v1/incidents/{ident}").json()["status"] == "open"


def test_merge_into_a_closed_primary_is_refused(
    pair: tuple[Stack, dict[str, Any], dict[str, Any]],
) -> None:
    stack, primary, duplicate = pair
    close = stack.call(
        "POST", f"/v1/incidents/{primary['id']}/close", who="leader", json={"reason": "已處置完畢"}
    )
    assert close.status_code == 200
    response = merge(stack, duplicate["id"], primary["id"])
    assert response.status_code == 409
    assert response.json()["error"]["fields"][0]["path"] == "primary_id"
    assert stack.call("GET", f"/v1/incidents/{duplicate['id']}").json()["status"] == "open"


def test_leader_closes_an_incident(intake: Stack) -> None:
    incident = created(intake, report(intake.clock.now()))
    path = f"/v1/incidents/{incident['id']}/close"
    body = {"reason": "險情解除，群眾已返回"}
    assert intake.call("POST", path, who="operator", json=body).status_code == 403
    assert intake.call("POST", path, who="township_a", json=body).status_code == 403
    assert intake.call("POST", path, who="leader", json={"reason": " "}).status_code == 422
    response = intake.call("POST", path, who="leader", json=body)
    assert response.status_code == 200
    closed = response.json()
    assert (closed["status"], closed["closed_by"], closed["close_reason"]) == (
        "closed",
        "leader",
        body["reason"],
    )
    assert closed["closed_at"] is not None
    assert [h["kind"] for h in closed["history"]] == ["reported", "closed"]
    again = intake.call("POST", path, who="leader", json=body)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "not_open"
    [event] = sent_events(intake, "incident_closed", incident["id"])
    assert event["payload"]["closed_by"] == "leader"
    assert (
        intake.call("POST", "/v1/incidents/nope/close", who="leader", json=body).status_code == 404
    )


def test_merge_interrupted_after_claiming_the_primary_completes_on_retry(
    pair: tuple[Stack, dict[str, Any], dict[str, Any]],
) -> None:
    stack, primary, duplicate = pair
    # As if the process died between the two writes of a merge: the primary already claims it.
    repo = stack.ctx("intake").resources["repository"]
    entry = {"kind": "merged", "duplicate_id": duplicate["id"]}
    assert repo.claim_for_merge(primary["id"], duplicate["id"], entry, stack.clock.now())
    response = merge(stack, duplicate["id"], primary["id"])
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "merged"
    kept = stack.call("GET", f"/v1/incidents/{primary['id']}").json()
    assert kept["merged_ids"] == [duplicate["id"]]
    assert [h["kind"] for h in kept["history"]] == ["reported", "merged"]
    assert len(sent_events(stack, "incident_merged", duplicate["id"])) == 1
