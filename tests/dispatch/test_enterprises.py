"""The enterprise risk register over HTTP: the demo seed, registration with its checks, township
scope, revisioned changes, closing, inspections, the overdue scan, its event and gauges, and
the enterprises a plan lists."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prometheus_client import REGISTRY

from services.dispatch.api import _read_once
from services.dispatch.enterprises import domain
from services.dispatch.enterprises.service import use_cases
from tests.dispatch.conftest import sent_events
from tests.support.stack import TOWNSHIP_A, TOWNSHIP_B, Stack

CODE = domain.with_check("91349901MA2XY800" + "1")


def body(**changes: Any) -> dict[str, Any]:
    """A valid registration."""
    doc: dict[str, Any] = {
        "name": "安河县测试化工有限公司",
        "credit_code": CODE,
        "township_code": TOWNSHIP_A,
        "risk_level": "large",
        "hazard_types": ["危险化学品", "有限空间"],
        "lat": 31.51,
        "lon": 116.47,
        "responsible": {"name": "赵建国", "phone": "13812345678"},
        "safety_officer": {"name": "钱海燕", "phone": "0551-6661234"},
        "response_groups": [
            {"group": "财产保全组", "name": "孙志强", "phone": "13812340001"},
            {"group": "维护稳定组", "name": "李秀英", "phone": "13812340002"},
        ],
    }
    doc.update(changes)
    return doc


def field_of(response: Any) -> str:
    """The first field a 4xx names."""
    return str(response.json()["error"]["fields"][0]["path"])


def gauge(name: str, **labels: str) -> float:
    """A gauge's current value."""
    value = REGISTRY.get_sample_value(name, labels)
    return -1.0 if value is None else value


def register(stack: Stack, **changes: Any) -> dict[str, Any]:
    """Register an enterprise, asserting 201."""
    created = stack.call("POST", "/v1/enterprises", json=body(**changes))
    assert created.status_code == 201, created.text
    return dict(created.json())


def test_demo_county_is_seeded_once_in_risk_order(dstack: Stack) -> None:
    items = dstack.call("GET", "/v1/enterprises", params={"limit": 200}).json()["items"]
    assert len(items) == 28
    ranks = [domain.RISK_RANK[i["risk_level"]] for i in items]
    assert ranks == sorted(ranks) and items[0]["risk_label"] == "重大"
    assert {i["township_code"] for i in items} >= {TOWNSHIP_A, TOWNSHIP_B}
    assert all(domain.credit_code_problem(i["credit_code"]) is None for i in items)
    assert all(len(i["response_groups"]) == 4 for i in items)
    assert use_cases(dstack.ctx("dispatch")).seed([]) == 0
    assert gauge("yingji_dispatch_enterprises", risk_level="major") == 6
    assert gauge("yingji_dispatch_enterprise_rectifications_overdue") == 0


def test_registration_checks_name_the_field(dstack: Stack) -> None:
    wrong_check = CODE[:17] + ("0" if CODE[17] != "0" else "1")
    cases = [
        ({"credit_code": wrong_check}, "credit_code"),
        ({"credit_code": "91349901MA2XYZ00I" + "1"}, "credit_code"),
        ({"township_code": "349901999"}, "township_code"),
        ({"risk_level": "huge"}, "risk_level"),
        ({"hazard_types": ["火山"]}, "hazard_types.0"),
        ({"responsible": {"name": "赵", "phone": "12345"}}, "responsible.phone"),
        (
            {"response_groups": [{"group": "后勤组", "name": "钱", "phone": "13800000000"}]},
            "response_groups.0.group",
        ),
        ({"name": "坏\u0001名"}, "name"),
    ]
    for change, path in cases:
        refused = dstack.call("POST", "/v1/enterprises", json=body(**change))
        assert refused.status_code == 422, (change, refused.text)
        assert field_of(refused) == path, (change, refused.json())
    twice = body(response_groups=[body()["response_groups"][0]] * 2)
    assert field_of(dstack.call("POST", "/v1/enterprises", json=twice)) == "response_groups.1.group"
    assert dstack.call("POST", "/v1/enterprises", json=body(), who="township_a").status_code == 403
    assert dstack.call("POST", "/v1/enterprises", json=body(), who="leader").status_code == 403


def test_register_change_close_send_snapshots(dstack: Stack) -> None:
    created = register(dstack, id="E-T1")
    assert created["revision"] == 1 and created["risk_label"] == "较大"
    again = dstack.call("POST", "/v1/enterprises", json=body(id="E-T2"))
    assert again.status_code == 409 and field_of(again) == "credit_code"
    drill = dstack.call("POST", "/v1/enterprises", json=body(id="E-T3", exercise=True))
    assert drill.status_code == 201  # a drill copy never collides with the real record

    patch = {"risk_level": "major", "revision": 1}
    changed = dstack.call("PATCH", "/v1/enterprises/E-T1", json=patch)
    assert changed.status_code == 200 and changed.json()["revision"] == 2
    assert changed.headers["ETag"] == '"2"'
    stale = dstack.call("PATCH", "/v1/enterprises/E-T1", json={"risk_level": "low", "revision": 1})
    assert stale.status_code == 409 and field_of(stale) == "revision"
    by_header = dstack.call(
        "PATCH",
        "/v1/enterprises/E-T1",
        json={"name": "安河县测试新材料有限公司"},
        headers={"If-Match": '"2"'},
    )
    assert by_header.status_code == 200 and by_header.json()["revision"] == 3
    unguarded = dstack.call("PATCH", "/v1/enterprises/E-T1", json={"name": "某某"})
    assert unguarded.status_code == 422 and field_of(unguarded) == "revision"

    closed = dstack.call("POST", "/v1/enterprises/E-T1/close", json={"reason": "停产关闭"})
    assert closed.json()["status"] == "closed" and closed.json()["revision"] == 4
    listed = dstack.call("GET", "/v1/enterprises", params={"limit": 200}).json()["items"]
    assert "E-T1" not in {i["id"] for i in listed}
    snapshots = [
        e["payload"]
        for e in sent_events(dstack)
        if e["event_type"] == "enterprise_registered" and e["payload"]["enterprise_id"] == "E-T1"
    ]
    assert [s["revision"] for s in snapshots] == [1, 2, 3, 4]
    assert snapshots[-1]["status"] == "closed" and snapshots[1]["risk_level"] == "major"
    drills = [e for e in sent_events(dstack) if e["payload"].get("enterprise_id") == "E-T3"]
    assert drills and drills[0]["payload"]["exercise"] is True


def test_townships_read_their_own_only(dstack: Stack) -> None:
    own = dstack.call("GET", "/v1/enterprises", who="township_a", params={"limit": 200})
    assert own.status_code == 200
    assert {i["township_code"] for i in own.json()["items"]} == {TOWNSHIP_A}
    other = dstack.call(
        "GET", "/v1/enterprises", who="township_a", params={"township_code": TOWNSHIP_B}
    )
    assert other.status_code == 403
    theirs = dstack.call("GET", "/v1/enterprises", params={"township_code": TOWNSHIP_B})
    some_id = theirs.json()["items"][0]["id"]
    assert dstack.call("GET", f"/v1/enterprises/{some_id}", who="township_a").status_code == 404
    assert dstack.call("GET", f"/v1/enterprises/{some_id}", who="township_b").status_code == 200


def test_filters_and_pages(dstack: Stack) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 5, **({"cursor": cursor} if cursor else {})}
        answer = dstack.call("GET", "/v1/enterprises", params=params).json()
        seen += [i["id"] for i in answer["items"]]
        cursor = answer["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 28
    majors = dstack.call("GET", "/v1/enterprises", params={"risk_level": "major"}).json()["items"]
    assert majors and {i["risk_level"] for i in majors} == {"major"}
    gas = dstack.call("GET", "/v1/enterprises", params={"hazard_type": "燃气"}).json()["items"]
    assert gas and all("燃气" in i["hazard_types"] for i in gas)
    bad = dstack.call("GET", "/v1/enterprises", params={"hazard_type": "火山"})
    assert bad.status_code == 422 and field_of(bad) == "query.hazard_type"


def test_inspection_overdue_is_flagged_once_and_rectified(dstack: Stack) -> None:
    created = register(dstack, id="E-I1")
    today = dstack.clock.now().date()
    url = "/v1/enterprises/E-I1/inspections"
    no_deadline = {"date": today.isoformat(), "inspector": "王检查", "findings": ["消防通道堵塞"]}
    refused = dstack.call("POST", url, json=no_deadline)
    assert refused.status_code == 422 and field_of(refused) == "deadline"
    deadline = today + timedelta(days=3)
    made = dstack.call("POST", url, json={**no_deadline, "deadline": deadline.isoformat()})
    assert made.status_code == 201 and made.json()["rectification_label"] == "整改中"
    clean_body = {"date": today.isoformat(), "inspector": "王检查"}
    keyed = {"Idempotency-Key": "inspection-1"}
    clean = dstack.call("POST", url, json=clean_body, headers=keyed)
    assert clean.json()["rectification"] == "none"
    retry = dstack.call("POST", url, json=clean_body, headers=keyed)
    assert retry.status_code == 201 and retry.json()["id"] == clean.json()["id"]
    other = dstack.call("POST", url, json={**clean_body, "inspector": "李检查"}, headers=keyed)
    assert other.status_code == 409 and field_of(other) == "header.Idempotency-Key"
    listed = dstack.call("GET", "/v1/enterprises/E-I1").json()["inspections"]
    assert len(listed) == 2
    register_uc = use_cases(dstack.ctx("dispatch"))
    assert register_uc.scan_overdue() == 0

    dstack.clock.advance(timedelta(days=5))
    assert register_uc.scan_overdue() == 1 and register_uc.scan_overdue() == 0
    shown = dstack.call("GET", f"/v1/enterprises/{created['id']}").json()
    assert shown["rectification_flag"] == "整改逾期" and shown["overdue_rectifications"] == 1
    assert gauge("yingji_dispatch_enterprise_rectifications_overdue") == 1
    overdue = [
        e for e in sent_events(dstack) if e["event_type"] == "enterprise_rectification_overdue"
    ]
    assert len(overdue) == 1 and overdue[0]["payload"]["deadline"] == deadline.isoformat()

    inspection = made.json()["id"]
    fix = {"rectified_on": (today + timedelta(days=5)).isoformat(), "rectification_note": "已清理"}
    done = dstack.call("PATCH", f"{url}/{inspection}", json=fix)
    assert done.status_code == 200 and done.json()["rectification_label"] == "整改完成"
    assert dstack.call("PATCH", f"{url}/{inspection}", json=fix).status_code == 409
    assert gauge("yingji_dispatch_enterprise_rectifications_overdue") == 0
    assert dstack.call("GET", "/v1/enterprises/E-I1").json()["rectification_flag"] is None


def test_a_plan_lists_its_area_enterprises_major_first(dstack: Stack) -> None:
    plan = {
        "level": 4,
        "township_codes": [TOWNSHIP_A],
        "hazard": "flood",
        "reason": "防汛准备",
        "requested_by": "城关镇",
        "scope": "township",
    }
    created = dstack.call("POST", "/v1/plans", json=plan)
    assert created.status_code == 201, created.text
    listed = created.json()["enterprises"]
    assert listed and {e["township_code"] for e in listed} == {TOWNSHIP_A}
    ranks = [domain.RISK_RANK[e["risk_level"]] for e in listed]
    assert ranks == sorted(ranks) and listed[0]["risk_label"] == "重大"


COUNTY_PLAN = {
    "level": 2,
    "township_codes": [TOWNSHIP_A, TOWNSHIP_B],
    "hazard": "flood",
    "reason": "全县防汛",
    "requested_by": "县防指",
    "scope": "county",
}


def test_a_township_reads_only_its_own_enterprises_in_a_county_plan(dstack: Stack) -> None:
    created = dstack.call("POST", "/v1/plans", json=COUNTY_PLAN).json()
    assert len({e["township_code"] for e in created["enterprises"]}) > 2
    seen = dstack.call("GET", f"/v1/plans/{created['id']}", who="township_a").json()
    assert seen["enterprises"] and {e["township_code"] for e in seen["enterprises"]} == {TOWNSHIP_A}


def test_a_page_of_plans_names_what_each_plan_names(dstack: Stack) -> None:
    county = COUNTY_PLAN
    township = {**county, "level": 4, "township_codes": [TOWNSHIP_A], "scope": "township"}
    for plan in (county, township, {**county, "exercise": True}):
        assert dstack.call("POST", "/v1/plans", json=plan).status_code == 201
    for who in ("operator", "township_a"):
        page = dstack.call("GET", "/v1/plans", who=who).json()["items"]
        assert len(page) == 3
        for item in page:
            detail = dstack.call("GET", f"/v1/plans/{item['id']}", who=who).json()
            assert item["enterprises"] == detail["enterprises"]
    names = {len(item["enterprises"]) for item in dstack.call("GET", "/v1/plans").json()["items"]}
    assert len(names) == 2  # the county's and the township's: the page kept them apart


def test_a_page_reads_the_register_once_an_area() -> None:
    calls: list[tuple[object, bool]] = []

    def area(codes: Any, exercise: bool) -> list[dict[str, Any]]:
        calls.append((codes, exercise))
        return [{"codes": codes, "exercise": exercise}]

    once = _read_once(area)
    assert once(None, False) == once(None, False) == [{"codes": None, "exercise": False}]
    assert once(None, True) == [{"codes": None, "exercise": True}]
    assert once([TOWNSHIP_A], False) == once([TOWNSHIP_A], False)
    assert calls == [(None, False), (None, True), ([TOWNSHIP_A], False)]
