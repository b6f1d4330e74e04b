"""Every rejection path of POST /v1/incidents, and the OpenAPI documentation of its fields."""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from typing import Any, get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from libs.common.signatures import SAME_PERSON_REASON
from services.intake.domain import ELEMENTS, Category
from tests.intake.helpers import iso, post, report
from tests.support.stack import TOWNSHIP_B, Stack

REQUIRED = [
    "category",
    "township_code",
    "title",
    "description",
    "occurred_at",
    "discovered_at",
    "location",
    "location.address",
    "casualties",
    "affected",
    "measures_taken",
    "needs",
    "reporter",
    "reporter.name",
    "reporter.phone",
    "approver",
    "approver.name",
    "approver.phone",
    "source",
]


def without(body: dict[str, Any], path: str) -> dict[str, Any]:
    """``body`` with the element at a dotted ``path`` removed."""
    trimmed = copy.deepcopy(body)
    *parents, leaf = path.split(".")
    node = trimmed
    for part in parents:
        node = node[part]
    del node[leaf]
    return trimmed


def replaced(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """``body`` with the element at a dotted ``path`` set to ``value``."""
    changed = copy.deepcopy(body)
    *parents, leaf = path.split(".")
    node = changed
    for part in parents:
        node = node[part]
    node[leaf] = value
    return changed


def rejection_count(field: str) -> float:
    value = REGISTRY.get_sample_value("yingji_intake_validation_rejections_total", {"field": field})
    return value or 0.0


def test_required_list_matches_the_documented_elements() -> None:
    assert set(REQUIRED) == set(ELEMENTS)


@pytest.mark.parametrize("path", REQUIRED)
def test_each_missing_element_is_rejected_by_name(shared: Stack, path: str) -> None:
    before = rejection_count(path)
    response = post(shared, without(report(shared.clock.now()), path))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "incomplete_report"
    assert [f["path"] for f in error["fields"]] == [path]
    assert "要素不全" in error["fields"][0]["reason"]
    assert rejection_count(path) == before + 1


@pytest.mark.parametrize(
    "path",
    [
        "title",
        "description",
        "location.address",
        "measures_taken",
        "needs",
        "reporter.name",
        "approver.name",
        "source",
    ],
)
def test_blank_text_counts_as_missing(shared: Stack, path: str) -> None:
    response = post(shared, replaced(report(shared.clock.now()), path, "   "))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "incomplete_report"
    assert [f["path"] for f in error["fields"]] == [path]


@pytest.mark.parametrize("path", ["approver", "reporter", "casualties", "location"])
def test_null_object_counts_as_missing(shared: Stack, path: str) -> None:
    response = post(shared, replaced(report(shared.clock.now()), path, None))
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "incomplete_report"


def test_every_missing_element_is_listed_at_once(shared: Stack) -> None:
    body = {"category": "flood", "reporter": {"name": "张伟"}, "approver": {}}
    response = post(shared, body)
    assert response.status_code == 422
    paths = {f["path"] for f in response.json()["error"]["fields"]}
    present = {"category", "reporter", "reporter.name", "approver", "location.address"}
    assert paths == set(REQUIRED) - present


def test_missing_and_invalid_are_reported_together(shared: Stack) -> None:
    body = without(report(shared.clock.now(), title="x" * 101), "approver")
    response = post(shared, body)
    assert response.status_code == 422
    fields = {f["path"]: f["reason"] for f in response.json()["error"]["fields"]}
    assert set(fields) == {"title", "approver"}
    assert "100" in fields["title"]


@pytest.mark.parametrize(
    ("path", "limit"),
    [
        ("title", 100),
        ("measures_taken", 500),
        ("needs", 500),
        ("source", 100),
        ("location.address", 200),
        ("reporter.name", 50),
        ("trend", 500),
        ("scope", 500),
    ],
)
def test_length_limits(shared: Stack, path: str, limit: int) -> None:
    now = shared.clock.now()
    at_limit = post(shared, replaced(report(now), path, "字" * limit))
    assert at_limit.status_code == 201, at_limit.text
    over = post(shared, replaced(report(now), path, "字" * (limit + 1)))
    assert over.status_code == 422
    error = over.json()["error"]
    assert error["code"] == "validation_failed"
    assert [f["path"] for f in error["fields"]] == [path]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("casualties.deaths", -1),
        ("casualties.injured", 1.5),
        ("affected.direct_loss_cny", -0.01),
        ("affected.people_evacuated", "many"),
        ("people_involved", -3),
        ("category", "volcano"),
        ("township_code", "34990100"),
        ("reporter.phone", "call me"),
        ("approver.phone", "123"),
        ("location.lat", 91),
        ("location.lon", -181),
        ("dispute", {"nature": "gossip", "stability_impact": "low", "escalation_risk": "low"}),
        ("dispute", {"nature": "land", "stability_impact": "extreme", "escalation_risk": "low"}),
        ("exercise", "maybe"),
    ],
)
def test_bad_values_name_their_field(shared: Stack, path: str, value: Any) -> None:
    response = post(shared, replaced(report(shared.clock.now()), path, value))
    assert response.status_code == 422, response.text
    paths = [f["path"] for f in response.json()["error"]["fields"]]
    assert paths and all(p.startswith(path) for p in paths), paths


def test_dispute_markers_alone_are_accepted_before_assessment(shared: Stack) -> None:
    response = post(shared, report(shared.clock.now(), dispute={"key_persons": True}))
    assert response.status_code == 201, response.text
    dispute = response.json()["dispute"]
    assert dispute["key_persons"] is True
    assert (dispute["nature"], dispute["stability_impact"], dispute["escalation_risk"]) == (
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    "approver",
    [
        {"name": "张伟", "phone": "13800001111"},
        {"name": "张伟", "phone": "13700009999"},
        {"name": "王芳", "phone": "138-0000-1111"},
    ],
)
def test_the_reporter_cannot_approve_their_own_report(shared: Stack, approver: Any) -> None:
    """篇6 谁提供、谁审核: the same rule as reporting's (libs/common/signatures.py)."""
    body = report(shared.clock.now(), reporter={"name": "张伟", "phone": "13800001111"})
    response = post(shared, {**body, "approver": approver})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "same_person"
    assert error["fields"] == [{"path": "approver", "reason": SAME_PERSON_REASON}]


def test_lat_without_lon_is_refused(shared: Stack) -> None:
    body = report(shared.clock.now(), location={"address": "河口村", "lat": 31.5})
    response = post(shared, body)
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["path"] == "location"


def test_unknown_fields_are_refused_without_growing_metric_labels(shared: Stack) -> None:
    before = rejection_count("unknown_field")
    response = post(shared, report(shared.clock.now(), casualty_count=3))
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["path"] == "casualty_count"
    assert rejection_count("unknown_field") == before + 1


def test_unknown_township_is_refused(shared: Stack) -> None:
    response = post(shared, report(shared.clock.now(), township_code="349901999"), "operator")
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["path"] == "township_code"


def test_township_may_only_report_for_itself(shared: Stack) -> None:
    body = report(shared.clock.now(), township_code=TOWNSHIP_B)
    response = post(shared, body, "township_a")
    assert response.status_code == 403
    assert response.json()["error"]["fields"][0]["path"] == "township_code"
    assert post(shared, body, "township_b").status_code == 201


@pytest.mark.parametrize("who", ["department", "operator", "leader"])
def test_departments_operators_and_leaders_report_for_any_township(shared: Stack, who: str) -> None:
    body = report(shared.clock.now(), township_code=TOWNSHIP_B, title=f"{who}代报事件")
    response = post(shared, body, who)
    assert response.status_code == 201, response.text
    incident_id = response.json()["id"]
    stored = shared.call("GET", f"/v1/incidents/{incident_id}", who="township_b")
    assert stored.status_code == 200
    incident = stored.json()
    assert (incident["township_code"], incident["title"]) == (TOWNSHIP_B, f"{who}代报事件")
    assert incident["reported_by"]["role"] == who
    assert incident["reported_by"]["name"] == who
    # Filed for township B, the incident is B's: township A does not see it.
    assert shared.call("GET", f"/v1/incidents/{incident_id}", who="township_a").status_code == 404


def test_admin_and_anonymous_callers_cannot_report(shared: Stack) -> None:
    body = report(shared.clock.now())
    assert post(shared, body, "admin").status_code == 403
    assert shared.client.post("/v1/incidents", json=body).status_code == 401


def test_naive_times_are_refused(shared: Stack) -> None:
    now = shared.clock.now()
    naive = (now - timedelta(minutes=30)).replace(tzinfo=None).isoformat()
    response = post(shared, report(now, occurred_at=naive, discovered_at=naive))
    assert response.status_code == 422
    paths = {f["path"] for f in response.json()["error"]["fields"]}
    assert paths == {"occurred_at", "discovered_at"}


def test_discovered_before_occurred_is_refused(shared: Stack) -> None:
    now = shared.clock.now()
    body = report(
        now,
        occurred_at=iso(now - timedelta(minutes=10)),
        discovered_at=iso(now - timedelta(minutes=11)),
    )
    response = post(shared, body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_times"
    assert [f["path"] for f in error["fields"]] == ["discovered_at"]
    assert error["fields"][0]["reason"].startswith("发现时间不能早于发生时间"), error


@pytest.mark.parametrize("path", ["occurred_at", "discovered_at"])
def test_future_times_beyond_the_skew_are_refused(shared: Stack, path: str) -> None:
    now = shared.clock.now()
    at_skew = now + timedelta(minutes=5)
    body = report(now, occurred_at=iso(at_skew), discovered_at=iso(at_skew))
    assert post(shared, body).status_code == 201
    beyond = iso(now + timedelta(minutes=5, seconds=1))
    body = report(now, **{path: beyond})
    if path == "occurred_at":
        body["discovered_at"] = beyond
    response = post(shared, body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_times"
    assert path in {f["path"] for f in error["fields"]}
    assert error["fields"][0]["reason"].startswith("时间在未来："), error
    assert error["message"] == "报告的时间不成立"


@pytest.mark.parametrize(
    "moment", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "2026-07-06T01:00+25:00"]
)
def test_unrepresentable_times_are_refused_not_a_crash(shared: Stack, moment: str) -> None:
    response = post(shared, report(shared.clock.now(), occurred_at=moment, discovered_at=moment))
    assert response.status_code == 422
    listing = shared.call("GET", "/v1/incidents", params={"reported_after": moment})
    assert listing.status_code == 422
    assert listing.json()["error"]["fields"][0]["path"] == "query.reported_after"


# Values no lax conversion turns into the field's type (a bool is an int to pydantic, "3" is a
# number, "yes" a bool, a number a time): each is refused as the wrong type, naming its field.
NON_FINITE = st.sampled_from([float("nan"), float("inf"), float("-inf")])
SMALL_LISTS = st.lists(st.integers(), min_size=0, max_size=2)
SMALL_DICTS = st.dictionaries(st.text(max_size=4), st.integers(), max_size=2)
# Letters that spell no number, bool or time ("nan", "inf", "true", "yes", "on" ...).
WORDS = st.text(alphabet="bcdeghjkmpqrsuvwxz", min_size=2, max_size=8)
NOT_TEXT = st.integers() | st.booleans() | SMALL_LISTS | SMALL_DICTS | NON_FINITE
NOT_NUMBER = WORDS | SMALL_LISTS | SMALL_DICTS | NON_FINITE
NOT_OBJECT = st.integers() | st.booleans() | WORDS | SMALL_LISTS | NON_FINITE
NOT_BOOL = WORDS | SMALL_LISTS | SMALL_DICTS | NON_FINITE | st.integers(min_value=2)
NOT_TIME = st.booleans() | WORDS | SMALL_LISTS | SMALL_DICTS
WRONG_TYPES = {
    **dict.fromkeys(REQUIRED, NOT_TEXT),
    "occurred_at": NOT_TIME,
    "discovered_at": NOT_TIME,
    **dict.fromkeys(("location", "casualties", "affected", "reporter", "approver"), NOT_OBJECT),
    "casualties.deaths": NOT_NUMBER,
    "affected.direct_loss_cny": NOT_NUMBER,
    "people_involved": NOT_NUMBER,
    "location.lat": NOT_NUMBER,
    "dispute": NOT_OBJECT,
    "exercise": NOT_BOOL,
    "trend": NOT_TEXT,
}

SAFE_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5)
    | st.sampled_from("abcXYZ0123456789 ，。、-（）"),
    min_size=1,
    max_size=40,
).filter(lambda text: text.strip() != "")
PHONE = st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True)
# Values of the field's own type within its limits: each report is accepted as sent.
VALID = {
    **dict.fromkeys(
        (
            "title",
            "description",
            "measures_taken",
            "needs",
            "source",
            "location.address",
            "reporter.name",
            "approver.name",
        ),
        SAFE_TEXT,
    ),
    "reporter.phone": PHONE,
    "approver.phone": PHONE,
    "category": st.sampled_from(list(get_args(Category))),
    "casualties.deaths": st.integers(min_value=0, max_value=1_000_000),
    "casualties.injured": st.integers(min_value=0, max_value=1_000_000),
    "affected.people_evacuated": st.integers(min_value=0, max_value=100_000_000),
    "affected.direct_loss_cny": st.floats(min_value=0, max_value=1e13, allow_nan=False),
    "people_involved": st.integers(min_value=0, max_value=10_000_000),
    "exercise": st.booleans(),
    "trend": st.none() | SAFE_TEXT,
}


def post_raw(stack: Stack, body: dict[str, Any]) -> Any:
    """POST a report encoded by hand: NaN and Infinity are not JSON, but clients send them."""
    raw = json.dumps(body, ensure_ascii=False)
    return stack.call(
        "POST",
        "/v1/incidents",
        who="township_a",
        content=raw.encode(),
        headers={"Content-Type": "application/json"},
    )


def at(body: dict[str, Any], path: str) -> Any:
    """The element at a dotted ``path``."""
    node = body
    for part in path.split("."):
        node = node[part]
    return node


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    case=st.sampled_from(sorted(WRONG_TYPES)).flatmap(
        lambda p: st.tuples(st.just(p), WRONG_TYPES[p])
    )
)
def test_a_value_of_the_wrong_type_is_a_422_naming_its_field(
    shared: Stack, case: tuple[str, Any]
) -> None:
    path, value = case
    response = post_raw(shared, replaced(report(shared.clock.now()), path, value))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    assert path in [f["path"] for f in error["fields"]], error["fields"]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=st.sampled_from(sorted(VALID)).flatmap(lambda p: st.tuples(st.just(p), VALID[p])))
def test_a_valid_value_in_any_field_is_accepted_as_sent(
    shared: Stack, case: tuple[str, Any]
) -> None:
    path, value = case
    response = post_raw(shared, replaced(report(shared.clock.now()), path, value))
    assert response.status_code == 201, response.text
    stored = at(response.json(), path)
    assert stored == (value.strip() if isinstance(value, str) else value)


def test_an_occurrence_in_year_one_is_refused_not_a_crash(shared: Stack) -> None:
    now = shared.clock.now()
    body = report(now, occurred_at="0001-01-01T00:00:00+00:00")
    response = post(shared, body)
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["path"] == "occurred_at"
    assert "请检查年份" in response.json()["error"]["fields"][0]["reason"]


def test_times_with_other_offsets_are_stored_in_utc(shared: Stack) -> None:
    now = shared.clock.now()
    local = (now - timedelta(minutes=45)).astimezone().isoformat()
    body = report(now, occurred_at=local, discovered_at=local)
    result = post(shared, body)
    assert result.status_code == 201
    assert result.json()["occurred_at"].endswith("Z") or result.json()["occurred_at"].endswith(
        "+00:00"
    )


def test_malformed_json_is_a_400(shared: Stack) -> None:
    response = shared.call(
        "POST",
        "/v1/incidents",
        who="township_a",
        content=b'{"category": ',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_json"


def test_rejections_write_nothing(shared: Stack) -> None:
    before = shared.ctx("intake").resources["repository"].count_incidents()
    post(shared, without(report(shared.clock.now()), "approver"))
    post(shared, report(shared.clock.now(), township_code=TOWNSHIP_B))
    assert shared.ctx("intake").resources["repository"].count_incidents() == before


# --- OpenAPI --------------------------------------------------------------------------------


def _has_cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def test_every_request_field_is_documented_in_chinese(shared: Stack) -> None:
    schema = shared.client.get("/openapi.json").json()
    components = schema["components"]["schemas"]
    checked = 0
    for model in [
        "IncidentIn",
        "Contact",
        "Location",
        "CasualtiesIn",
        "AffectedIn",
        "DisputeIn",
        "MergeIn",
        "CloseIn",
    ]:
        for name, prop in components[model]["properties"].items():
            description = prop.get("description", "")
            assert _has_cjk(description), f"{model}.{name} lacks a Chinese description"
            checked += 1
    assert checked > 35
    assert "审签人" in components["IncidentIn"]["properties"]["approver"]["description"]
    assert "1500" in components["IncidentIn"]["properties"]["description"]["description"]
    params = schema["paths"]["/v1/incidents"]["get"]["parameters"]
    assert all(_has_cjk(p["description"]) for p in params if p["name"] not in {"limit", "cursor"})


def test_a_report_over_1500_characters_in_all_is_refused_whole(shared: Stack) -> None:
    """篇6: each text within its own limit, the report as one item within 1500 characters."""
    now = shared.clock.now()
    texts = {"description": "灾" * 1000, "measures_taken": "措" * 200, "needs": "需" * 100}
    fits = report(now, **texts, trend="势" * 100, scope="围" * 100)
    assert post(shared, fits).status_code == 201
    over = report(now, **texts, trend="势" * 100, scope="围" * 101)
    response = post(shared, over)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "too_long"
    assert error["fields"] == [
        {"path": "body", "reason": "合计 1501 字，综合信息不超过 1500 字（篇6）"}
    ]
    # A description over 1500 on its own is named by its field.
    alone = post(shared, report(now, description="灾" * 1501))
    assert alone.status_code == 422
    assert [f["path"] for f in alone.json()["error"]["fields"]] == ["description"]
