"""What the OpenAPI document promises, point by point, and the requests it says are refused:
the bearer scheme, every error status with the uniform error body, constraints equal to the
validation, the media types served, OPTIONS, and bodies, keys and times that are not accepted."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from libs.common.hazards import HAZARDS
from services.warning.rules import load_rules
from tests.support.stack import Stack, running_stack

pytestmark = pytest.mark.e2e

PUBLIC = {
    ("get", "/v1/"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/v1/warnings/ack/{token}"),
    ("post", "/v1/warnings/ack/{token}"),
    ("get", "/v1/warnings/feed"),
    ("get", "/v1/warnings/feed/{warning_id}/cap"),
    ("get", "/console"),
    ("get", "/console/static/{name}"),
}
ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}


@pytest.fixture(scope="module")
def module_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(Path(tmp_path_factory.mktemp("contract"))) as running:
        yield running


@pytest.fixture(scope="module")
def doc(module_stack: Stack) -> dict[str, Any]:
    response = module_stack.client.get("/openapi.json")
    assert response.status_code == 200
    return dict(response.json())


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def test_the_bearer_scheme_is_declared_on_every_protected_operation(doc: dict[str, Any]) -> None:
    scheme = doc["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for method, path, operation in operations(doc):
        if (method, path) in PUBLIC:
            assert "security" not in operation, (method, path)
            assert "401" not in operation["responses"], (method, path)
        else:
            assert operation.get("security") == [{"bearer": []}], (method, path)
            assert {"401", "403"} <= set(operation["responses"]), (method, path)


def test_every_error_status_is_documented_with_the_error_body(doc: dict[str, Any]) -> None:
    error = doc["components"]["schemas"]["ErrorBody"]
    assert error["required"] == ["error"]
    for method, path, operation in operations(doc):
        responses = operation["responses"]
        for status, response in responses.items():
            if int(status) >= 400:
                assert response["content"]["application/json"]["schema"] == ERROR_REF
        if path not in {"/healthz", "/readyz", "/metrics"}:
            assert "429" in responses, (method, path)
        if "requestBody" in operation or method in {"post", "patch", "put"}:
            assert {"400", "413", "415", "422"} <= set(responses), (method, path)
        if "{" in path:
            assert "404" in responses, (method, path)
    lift = doc["paths"]["/v1/warnings/{warning_id}/lift"]["post"]["responses"]
    assert {"200", "400", "401", "403", "404", "409", "413", "415", "422", "429"} <= set(lift)
    assert "HTTPValidationError" not in doc["components"]["schemas"]


def test_a_lift_of_a_lifted_warning_answers_a_documented_409(
    module_stack: Stack, doc: dict[str, Any]
) -> None:
    body = {
        "hazard": "flood",
        "level": 3,
        "headline": "洪水预警",
        "description": "d",
        "instruction": "i",
        "areas": ["349901001"],
        "expires": "2026-07-07T02:00:00+00:00",
    }
    created = module_stack.call("POST", "/v1/warnings", json=body)
    assert created.status_code == 201, created.text
    path = f"/v1/warnings/{created.json()['id']}/lift"
    assert module_stack.call("POST", path, json={"reason": "解除"}).status_code == 200
    again = module_stack.call("POST", path, json={"reason": "再解除"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_active"
    assert "409" in doc["paths"]["/v1/warnings/{warning_id}/lift"]["post"]["responses"]


def parameter(doc: dict[str, Any], method: str, path: str, name: str) -> dict[str, Any]:
    params = doc["paths"][path][method]["parameters"]
    return dict(next(p for p in params if p["name"] == name)["schema"])


def test_every_limit_is_at_least_one_in_the_schema_and_in_fact(
    module_stack: Stack, doc: dict[str, Any]
) -> None:
    limited = [
        (method, path)
        for method, path, operation in operations(doc)
        if any(p["name"] == "limit" for p in operation.get("parameters", []))
    ]
    assert len(limited) >= 12
    for method, path in limited:
        schema = parameter(doc, method, path, "limit")
        assert schema["minimum"] == 1 and schema["maximum"] <= 200, (path, schema)
        if "{" not in path and method == "get":
            who = "admin" if path.startswith("/v1/admin") else "operator"
            params = {"limit": 0, "incident_id": "x", "queue": "q"}
            refused = module_stack.call("GET", path, who=who, params=params)
            assert refused.status_code == 422, (path, refused.text)
            assert "query.limit" in [f["path"] for f in refused.json()["error"]["fields"]]


def test_month_day_and_times_are_what_the_schema_says(
    module_stack: Stack, doc: dict[str, Any]
) -> None:
    month = parameter(doc, "get", "/v1/scores", "month")
    assert re.fullmatch(month["pattern"], "2026-07") and not re.fullmatch(
        month["pattern"], "0000-01"
    )
    for bad in ("2026-13", "2026-7", "0000-01"):
        refused = module_stack.call("GET", "/v1/scores", params={"month": bad})
        assert refused.status_code == 422, (bad, refused.text)
    assert parameter(doc, "get", "/v1/zero-reports", "date")["format"] == "date"
    for bad in ("20260706", "2026-W28-1", "2026-02-30", "0001-01-01"):
        for path in ("/v1/zero-reports", "/v1/summaries/daily"):
            refused = module_stack.call("GET", path, params={"date": bad})
            assert refused.status_code == 422, (bad, refused.text)
    forms = parameter(doc, "get", "/v1/summaries/situation", "to")["oneOf"]
    assert [form["format"] for form in forms] == ["date", "date-time"]
    start = "2026-07-01T00:00:00+08:00"
    for path in ("/v1/summaries/situation", "/v1/audit"):
        refused = module_stack.call("GET", path, params={"from": start, "to": "0.5"})
        assert refused.status_code == 422
        assert [f["path"] for f in refused.json()["error"]["fields"]] == ["query.to"]
    body = {"hazard": "flood", "level": 3, "headline": "h", "description": "d"}
    body |= {"instruction": "i", "areas": ["349901001"], "expires": 1.9e9}
    numeric = module_stack.call("POST", "/v1/warnings", json=body)
    assert numeric.status_code == 422
    assert [f["path"] for f in numeric.json()["error"]["fields"]] == ["expires"]


def test_the_media_types_served_are_declared(module_stack: Stack, doc: dict[str, Any]) -> None:
    def declared(path: str) -> set[str]:
        return set(doc["paths"][path]["get"]["responses"]["200"]["content"])

    assert "text/plain" in declared("/metrics")
    served = module_stack.client.get("/metrics").headers["content-type"]
    assert served.startswith("text/plain")
    assert "application/atom+xml" in declared("/v1/warnings/feed")
    atom = module_stack.client.get("/v1/warnings/feed", params={"format": "atom"})
    assert atom.headers["content-type"].startswith("application/atom+xml")
    assert "application/cap+xml" in declared("/v1/warnings/feed/{warning_id}/cap")
    assert "application/cap+xml" in declared("/v1/warnings/{warning_id}/cap")
    assert "text/html" in declared("/v1/summaries/daily")


def test_options_answers_the_allowed_methods_of_every_path(
    module_stack: Stack, doc: dict[str, Any]
) -> None:
    for path, item in doc["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        response = module_stack.client.options(concrete)
        assert response.status_code == 204, (path, response.text)
        allowed = {m.strip() for m in response.headers["allow"].split(",")}
        assert allowed == {m.upper() for m in item} | {"OPTIONS"}, (path, allowed)
        for method in allowed - {"OPTIONS"}:
            answered = module_stack.client.request(method, concrete)
            assert answered.status_code != 405, (method, path)
    assert module_stack.client.options("/v1/nowhere").status_code == 404


KEY = {"role": "admin", "name": "备用管理员"}


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        ("application/json-patch+json", json.dumps(KEY).encode(), 415),
        ("application/merge-patch+json", json.dumps(KEY).encode(), 415),
        ("application/json; charset=utf-16", json.dumps(KEY).encode("utf-16"), 415),
        ("application/json", json.dumps(KEY).encode("utf-16"), 400),
        ("application/json", json.dumps(KEY).encode("utf-16-le"), 400),
        ("application/json", json.dumps(KEY).encode("utf-32"), 400),
    ],
)
def test_json_endpoints_take_only_utf8_application_json(
    module_stack: Stack, content_type: str, body: bytes, status: int
) -> None:
    headers = module_stack.headers("admin", **{"content-type": content_type})
    response = module_stack.client.post("/v1/admin/keys", content=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] in {"unsupported_media_type", "malformed_json"}
    fine = module_stack.client.post(
        "/v1/admin/keys",
        content=json.dumps(KEY, ensure_ascii=False).encode(),
        headers=module_stack.headers(
            "admin", **{"content-type": "application/json; charset=utf-8"}
        ),
    )
    assert fine.status_code == 201


def test_department_keys_name_only_known_hazards(module_stack: Stack, doc: dict[str, Any]) -> None:
    body = {"role": "department", "name": "县气象局", "hazards": ["*", "all", "不存在"]}
    refused = module_stack.call("POST", "/v1/admin/keys", who="admin", json=body)
    assert refused.status_code == 422, refused.text
    assert [f["path"] for f in refused.json()["error"]["fields"]] == [
        "hazards.0",
        "hazards.1",
        "hazards.2",
    ]
    body["hazards"] = ["rainstorm", "lightning"]
    assert module_stack.call("POST", "/v1/admin/keys", who="admin", json=body).status_code == 201
    items = doc["components"]["schemas"]["KeyRequest"]["properties"]["hazards"]["items"]
    assert items["enum"] == list(HAZARDS)


def test_the_hazard_list_is_the_warning_rules_list() -> None:
    assert set(load_rules().hazards) == set(HAZARDS)


def test_every_schema_has_a_title_of_its_own(module_stack: Stack) -> None:
    """Client generators name a model by its title: two models of one title (an intake and a
    dispatch ``CloseIn``) make them drop the operations that use either."""
    schemas = module_stack.client.app.openapi()["components"]["schemas"]  # type: ignore[attr-defined]
    titles = [schema.get("title", key) for key, schema in schemas.items()]
    assert sorted({t for t in titles if titles.count(t) > 1}) == []
