"""Auth, key management, bad input and probes on the platform routes."""

from __future__ import annotations

import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from libs.common.errors import validation_fields
from tests.support.echo_service import SPEC, open_repository
from tests.support.stack import Stack, running_stack


@pytest.fixture
def echo(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path, specs=[SPEC], auth_failure_limit=5) as stack:
        yield stack


def test_missing_and_bad_keys_get_401_with_the_uniform_body(echo: Stack) -> None:
    missing = echo.client.get("/v1/townships")
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "unauthenticated"
    assert missing.headers["www-authenticate"] == "Bearer"
    bad = echo.client.get("/v1/townships", headers={"Authorization": "Bearer yj_nope_nope"})
    assert bad.status_code == 401


def test_repeated_failures_are_throttled_but_valid_keys_pass(echo: Stack) -> None:
    for _ in range(5):
        assert echo.client.get("/v1/me", headers={"Authorization": "Bearer x"}).status_code == 401
    throttled = echo.client.get("/v1/me", headers={"Authorization": "Bearer x"})
    assert throttled.status_code == 429
    assert int(throttled.headers["retry-after"]) >= 1
    assert echo.client.get("/v1/me", headers=echo.headers("admin")).status_code == 200


def test_roles_are_enforced(echo: Stack) -> None:
    denied = echo.call(
        "POST", "/v1/admin/keys", who="operator", json={"role": "operator", "name": "x"}
    )
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "forbidden_role"


def test_township_keys_act_only_for_their_township(echo: Stack) -> None:
    own = echo.call(
        "POST", "/v1/echoes", who="township_a", json={"text": "hi", "township_code": "349901001"}
    )
    assert own.status_code == 201
    other = echo.call(
        "POST", "/v1/echoes", who="township_a", json={"text": "hi", "township_code": "349901101"}
    )
    assert other.status_code == 403
    assert other.json()["error"]["fields"][0]["path"] == "township_code"


def test_keys_are_created_shown_once_stored_hashed_and_revocable(echo: Stack) -> None:
    created = echo.call(
        "POST",
        "/v1/admin/keys",
        who="admin",
        json={"role": "township", "name": "青石镇值班", "township_code": "349901101"},
    )
    assert created.status_code == 201
    body = created.json()
    key = body["key"]
    record = echo.runtime.keys.repo.key_by_id(body["id"])
    assert key not in str(record)
    assert record["hash"] != key
    me = echo.client.get("/v1/me", headers={"Authorization": f"Bearer {key}"})
    assert me.json()["township_code"] == "349901101"
    listed = echo.call("GET", "/v1/admin/keys", who="admin").json()["items"]
    assert all("key" not in item and "hash" not in item for item in listed)
    assert echo.call("DELETE", f"/v1/admin/keys/{body['id']}", who="admin").status_code == 204
    echo.runtime.keys._cache.clear()
    assert echo.client.get("/v1/me", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    assert echo.call("DELETE", f"/v1/admin/keys/{body['id']}", who="admin").status_code == 404


def test_key_requests_are_validated(echo: Stack) -> None:
    no_code = echo.call(
        "POST", "/v1/admin/keys", who="admin", json={"role": "township", "name": "x"}
    )
    assert no_code.status_code == 422
    unknown = echo.call(
        "POST",
        "/v1/admin/keys",
        who="admin",
        json={"role": "township", "name": "x", "township_code": "349901999"},
    )
    assert unknown.status_code == 422
    assert unknown.json()["error"]["code"] == "unknown_township"
    assert unknown.json()["error"]["fields"][0]["path"] == "township_code"
    no_department = echo.call(
        "POST",
        "/v1/admin/keys",
        who="admin",
        json={"role": "department", "name": "x", "department_code": "no_such_department"},
    )
    assert no_department.status_code == 422, no_department.text
    assert no_department.json()["error"]["code"] == "unknown_department"
    assert no_department.json()["error"]["fields"] == [
        {"path": "department_code", "reason": "县情文件中没有该部门"}
    ]
    bad_role = echo.call("POST", "/v1/admin/keys", who="admin", json={"role": "king", "name": "x"})
    assert bad_role.json()["error"]["fields"][0]["path"] == "role"


def test_bootstrap_key_file_is_private(echo: Stack) -> None:
    path = echo.runtime.settings.data_dir / "bootstrap-admin.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = path.read_text().strip()
    assert (
        echo.client.get("/v1/me", headers={"Authorization": f"Bearer {key}"}).json()["role"]
        == "admin"
    )


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (b"{not json", {"content-type": "application/json"}, 400, "malformed_json"),
        (b'{"text": 5}', {"content-type": "application/json"}, 422, "validation_failed"),
        (
            b'{"text": "x", "extra": 1}',
            {"content-type": "application/json"},
            422,
            "validation_failed",
        ),
        (b"[1, 2]", {"content-type": "application/json"}, 422, "validation_failed"),
        (
            b"text=x",
            {"content-type": "application/x-www-form-urlencoded"},
            415,
            "unsupported_media_type",
        ),
        (b"\xff\xfe\xfa", {"content-type": "application/json"}, 400, "malformed_json"),
        # JSON without a declared type is not read on a guess.
        (b'{"text": "x"}', {}, 415, "unsupported_media_type"),
        (
            b'{"text": "' + b"x" * 300_000 + b'"}',
            {"content-type": "application/json"},
            413,
            "body_too_large",
        ),
    ],
)
def test_bad_input_gets_a_4xx_with_the_uniform_body(
    echo: Stack, body: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    response = echo.client.post(
        "/v1/echoes", content=body, headers={**echo.headers("operator"), **headers}
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert set(error) == {"code", "message", "fields"}


def test_oversized_chunked_body_is_refused_without_content_length(echo: Stack) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"text": "'
        for _ in range(40):
            yield b"x" * 10_000
        yield b'"}'

    response = echo.client.post(
        "/v1/echoes",
        content=chunks(),
        headers={**echo.headers("operator"), "content-type": "application/json"},
    )
    assert response.status_code == 413
    assert open_repository(echo.runtime.contexts["echo"]).count() == 0


def test_deeply_nested_json_is_a_400(echo: Stack) -> None:
    """Nesting past the parser's depth limit is a body that cannot be read: malformed JSON."""
    nested = b"[" * 5000 + b"]" * 5000
    response = echo.client.post(
        "/v1/echoes",
        content=nested,
        headers={**echo.headers("operator"), "content-type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "malformed_json"
    assert open_repository(echo.runtime.contexts["echo"]).count() == 0


def test_idempotency_key_replays_and_conflicts(echo: Stack) -> None:
    headers = {"Idempotency-Key": "retry-1"}
    first = echo.call("POST", "/v1/echoes", json={"text": "a"}, headers=headers)
    again = echo.call("POST", "/v1/echoes", json={"text": "a"}, headers=headers)
    assert first.json()["id"] == again.json()["id"]
    conflict = echo.call("POST", "/v1/echoes", json={"text": "b"}, headers=headers)
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "idempotency_conflict"
    other_caller = echo.call(
        "POST", "/v1/echoes", who="leader", json={"text": "b"}, headers=headers
    )
    assert other_caller.status_code == 201
    assert open_repository(echo.runtime.contexts["echo"]).count() == 2


def test_probes_and_metrics(echo: Stack) -> None:
    assert echo.client.get("/healthz").json() == {"status": "ok"}
    ready = echo.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["store"] == "ok"
    echo.client.get("/v1/townships")
    text = echo.client.get("/metrics").text
    assert (
        'yingji_http_requests_total{method="GET",route="/v1/townships",service="platform",status="401"}'
        in text
    )
    assert "yingji_outbox_pending" in text or "yingji_bus_connected" in text


def test_unknown_routes_use_the_uniform_body(echo: Stack) -> None:
    response = echo.client.get("/v1/nowhere")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_security_headers_are_set(echo: Stack) -> None:
    response = echo.client.get("/healthz")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"


def test_rejections_are_counted_for_the_service_that_owns_the_route(echo: Stack) -> None:
    echo.call("POST", "/v1/echoes", json={"text": 5})
    echo.call(
        "POST", "/v1/echoes", who="township_a", json={"text": "x", "township_code": "349901101"}
    )
    text = echo.client.get("/metrics").text
    assert 'yingji_http_rejections_total{reason="validation",service="echo"}' in text
    assert 'yingji_http_rejections_total{reason="forbidden_township",service="echo"}' in text


@pytest.mark.parametrize(
    ("body", "path", "kind", "reason"),
    [
        ({}, "text", "missing", "必填"),
        ({"text": ""}, "text", "string_too_short", "至少 1 个字符"),
        ({"text": "x" * 101}, "text", "string_too_long", "最多 100 个字符"),
        ({"text": 5}, "text", "string_type", "须为字符串"),
        ({"text": "x", "extra": 1}, "extra", "extra_forbidden", "不允许的字段"),
    ],
)
def test_validation_reasons_are_chinese_with_pydantic_types(
    echo: Stack, body: dict[str, object], path: str, kind: str, reason: str
) -> None:
    """Field reasons read in Chinese; ``type`` keeps pydantic's code for clients."""
    response = echo.client.post("/v1/echoes", json=body, headers=echo.headers("operator"))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["message"] == "请求内容不合规"
    assert error["fields"] == [{"path": path, "reason": reason, "type": kind}]


def test_refusals_of_the_platform_read_in_chinese(echo: Stack) -> None:
    """401, 403, 404 and 400 answers say why in Chinese; the codes stay as they were."""
    missing = echo.client.get("/v1/me").json()["error"]
    wrong = echo.client.get("/v1/me", headers={"Authorization": "Bearer nope"}).json()["error"]
    unknown = echo.client.get("/v1/nowhere", headers=echo.headers("admin")).json()["error"]
    bad_key = echo.client.post(
        "/v1/echoes",
        json={"text": "x"},
        headers={**echo.headers("operator"), "Idempotency-Key": "x" * 201},
    ).json()["error"]
    malformed = echo.client.post(
        "/v1/echoes",
        content=b"{not json",
        headers={**echo.headers("operator"), "content-type": "application/json"},
    ).json()["error"]
    assert (missing["code"], wrong["code"]) == ("unauthenticated", "unauthenticated")
    assert wrong["message"] == "API 密钥无效"
    assert (bad_key["code"], malformed["code"]) == ("invalid_idempotency_key", "malformed_json")
    for error in (missing, wrong, bad_key, malformed):
        assert re.search(r"[\u4e00-\u9fff]", error["message"]), error
        for row in error["fields"]:
            assert re.search(r"[\u4e00-\u9fff]", row["reason"]), row
    assert unknown["code"] == "not_found"


def test_pydantic_error_types_are_translated() -> None:
    rows = validation_fields(
        [
            {"type": "greater_than", "loc": ("query", "limit"), "msg": "x", "ctx": {"gt": 0}},
            {"type": "enum", "loc": ("body", "kind"), "msg": "x", "ctx": {"expected": "'a'"}},
            {"type": "int_parsing", "loc": ("body", "n"), "msg": "x"},
            {"type": "datetime_parsing", "loc": ("body", "at"), "msg": "x", "ctx": {}},
            {"type": "value_error", "loc": ("body", "at"), "msg": "Value error, 须晚于发生时间"},
        ]
    )
    assert [(r["path"], r["reason"], r["type"]) for r in rows] == [
        ("query.limit", "须大于 0", "greater_than"),
        ("kind", "须为以下之一：'a'", "enum"),
        ("n", "须为整数", "int_parsing"),
        ("at", "不是有效的时间（ISO 8601，含时区）", "datetime_parsing"),
        ("at", "须晚于发生时间", "value_error"),
    ]
