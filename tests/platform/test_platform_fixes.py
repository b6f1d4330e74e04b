"""Fixes to the shared plumbing: early-year dates in SQLite, the last admin key, key requests,
the framework's refusals in Chinese."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from libs.common.clock import UtcTime
from libs.common.errors import validation_fields
from libs.common.hazards import HAZARDS
from libs.common.sqlite import SqliteDatabase, dumps, from_iso, iso, loads
from tests.support.echo_service import SPEC
from tests.support.stack import Stack, running_stack

CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture
def echo(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path, specs=[SPEC]) as stack:
        yield stack


# ---------------------------------------------------------------- 1. years before 1000


@pytest.mark.parametrize("year", [1, 999, 1000, 2026, 9999])
def test_stored_times_round_trip_for_every_year(year: int, tmp_path: Path) -> None:
    moment = datetime(year, 7, 7, 23, 54, 17, 123456, tzinfo=UTC)
    text = iso(moment)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00", text), text
    assert from_iso(text) == moment
    assert loads(dumps({"at": moment})) == {"at": moment}
    db = SqliteDatabase(tmp_path / "t.sqlite3")
    try:
        with db.transaction() as conn:
            conn.execute("INSERT INTO meta (key, value) VALUES ('at', ?)", (dumps(moment),))
        assert loads(db.query("SELECT value FROM meta WHERE key = 'at'")[0][0]) == moment
    finally:
        db.close()


def test_stored_times_keep_their_format_and_sort_as_text() -> None:
    assert iso(datetime(2026, 7, 7, 8, 0, tzinfo=UTC)) == "2026-07-07T08:00:00.000000+00:00"
    moments = [datetime(y, 1, 1, tzinfo=UTC) for y in (9999, 1, 2026, 999, 1000)]
    assert sorted(iso(m) for m in moments) == [iso(m) for m in sorted(moments)]


# ---------------------------------------------------------------- 2. the last admin key


def _admin_ids(stack: Stack) -> list[str]:
    listed = stack.call("GET", "/v1/admin/keys", who="admin").json()["items"]
    return [k["id"] for k in listed if k["role"] == "admin" and k["revoked_at"] is None]


def test_the_last_active_admin_key_cannot_be_revoked(echo: Stack) -> None:
    me = echo.call("GET", "/v1/me", who="admin").json()
    others = [k for k in _admin_ids(echo) if k != me["id"]]
    for key_id in others:  # revoking another admin, and one's own while another remains
        assert echo.call("DELETE", f"/v1/admin/keys/{key_id}", who="admin").status_code == 204
    assert _admin_ids(echo) == [me["id"]]
    refused = echo.call("DELETE", f"/v1/admin/keys/{me['id']}", who="admin")
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["code"] == "last_admin_key"
    assert CJK.search(error["message"])
    echo.runtime.keys._cache.clear()
    assert echo.call("GET", "/v1/me", who="admin").status_code == 200
    assert _admin_ids(echo) == [me["id"]]


def test_an_admin_may_revoke_its_own_key_while_another_remains(echo: Stack) -> None:
    made = echo.call("POST", "/v1/admin/keys", who="admin", json={"role": "admin", "name": "备用"})
    assert made.status_code == 201
    me = echo.call("GET", "/v1/me", who="admin").json()["id"]
    assert echo.call("DELETE", f"/v1/admin/keys/{me}", who="admin").status_code == 204


# ---------------------------------------------------------------- 3. key requests


def _create(stack: Stack, body: dict[str, Any]) -> Any:
    return stack.call("POST", "/v1/admin/keys", who="admin", json=body)


@pytest.mark.parametrize("name", [" ", "\t", "\u200b", " \u3000\ufeff "])
def test_key_names_may_not_be_blank(echo: Stack, name: str) -> None:
    refused = _create(echo, {"role": "operator", "name": name})
    assert refused.status_code == 422, refused.text
    (row,) = refused.json()["error"]["fields"]
    assert row["path"] == "name"
    assert CJK.search(row["reason"])


@pytest.mark.parametrize(
    ("body", "paths"),
    [
        ({"role": "township", "name": "x"}, ["township_code"]),
        ({"role": "operator", "name": "x", "township_code": "349901001"}, ["township_code"]),
        ({"role": "operator", "name": "x", "department_code": "yjj"}, ["department_code"]),
        (
            {"role": "township", "name": "x", "township_code": "349901001", "hazards": ["flood"]},
            ["hazards"],
        ),
        ({"role": "department", "name": "x"}, ["department_code", "hazards"]),
        ({"role": "department", "name": "x", "hazards": ["flood", "fog", "flood"]}, ["hazards.2"]),
    ],
)
def test_key_fields_must_fit_the_role(echo: Stack, body: dict[str, Any], paths: list[str]) -> None:
    refused = _create(echo, body)
    assert refused.status_code == 422, refused.text
    rows = refused.json()["error"]["fields"]
    assert [r["path"] for r in rows] == paths
    assert all(CJK.search(r["reason"]) for r in rows), rows
    assert not any(
        k["name"] == "x" for k in echo.call("GET", "/v1/admin/keys", who="admin").json()["items"]
    )


def test_key_hazards_have_a_maximum(echo: Stack) -> None:
    schema = echo.client.get("/openapi.json").json()["components"]["schemas"]["KeyRequest"]
    assert schema["properties"]["hazards"]["maxItems"] == len(HAZARDS)
    refused = _create(echo, {"role": "department", "name": "x", "hazards": [*HAZARDS, HAZARDS[0]]})
    assert refused.status_code == 422
    assert refused.json()["error"]["fields"][0]["path"] == "hazards"
    fine = _create(echo, {"role": "department", "name": "县气象局", "hazards": list(HAZARDS)})
    assert fine.status_code == 201, fine.text


# ---------------------------------------------------------------- 4. refusals in Chinese


class _At(BaseModel):
    at: UtcTime


@pytest.mark.parametrize("value", ["0.5", "9999-12-31T23:59:00-23:59"])
def test_time_refusals_are_chinese(value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        _At.model_validate({"at": value})
    (row,) = validation_fields(caught.value.errors())
    assert row["path"] == "at"
    assert CJK.search(row["reason"]), row


def test_framework_refusals_are_chinese(echo: Stack) -> None:
    nested = echo.client.post(
        "/v1/echoes",
        content=b"[" * 5000 + b"]" * 5000,
        headers={**echo.headers("operator"), "content-type": "application/json"},
    )
    unknown = echo.client.get("/v1/nowhere", headers=echo.headers("admin"))
    wrong_method = echo.client.put("/v1/townships", headers=echo.headers("admin"))
    expected = [(nested, 400, "malformed_json"), (unknown, 404, "not_found")]
    expected.append((wrong_method, 405, "method_not_allowed"))
    for response, status, code in expected:
        assert response.status_code == status
        error = response.json()["error"]
        assert error["code"] == code
        assert CJK.search(error["message"]), error
    assert "GET" in wrong_method.headers["allow"]


# ---------------------------------------------------------------- 9. a full disk


def test_a_full_disk_is_503_store_unavailable_with_retry_after() -> None:
    import sqlite3

    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from libs.common.errors import install_error_handlers

    app = FastAPI()
    install_error_handlers(app, "test")

    @app.post("/write")
    def write() -> None:
        conn = sqlite3.connect(":memory:")
        conn.execute("PRAGMA max_page_count = 1")
        conn.execute("CREATE TABLE t (v TEXT)")
        conn.execute("INSERT INTO t VALUES (?)", ("x" * 100_000,))  # SQLITE_FULL

    @app.post("/locked")
    def locked() -> None:
        raise sqlite3.OperationalError("database is locked")

    @app.post("/poison")
    def poison() -> None:
        raise sqlite3.OperationalError("no such column: nope")

    @app.post("/other")
    def other() -> None:
        raise RuntimeError("not the disk")

    client = TestClient(app, raise_server_exceptions=False)
    full = client.post("/write")
    assert full.status_code == 503, full.text
    assert full.json()["error"]["code"] == "store_unavailable"
    assert CJK.search(full.json()["error"]["message"])
    assert int(full.headers["retry-after"]) == 60
    # A store out of reach for a moment is a 503 too, to be tried again sooner.
    busy = client.post("/locked")
    assert busy.status_code == 503 and busy.json()["error"]["code"] == "store_unavailable"
    assert busy.json()["error"]["message"] == "存储暂时不可用，请稍后重试"
    assert int(busy.headers["retry-after"]) == 5
    # A statement that can never work is a fault of the platform, not an outage.
    assert client.post("/poison").status_code == 500
    assert client.post("/other").status_code == 500


def test_readiness_fails_when_the_data_directory_is_short_of_space(tmp_path: Path) -> None:
    with running_stack(tmp_path, specs=[SPEC], min_free_disk_bytes=2**62) as stack:
        ready = stack.client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["store"].startswith("error: disk_full")
    with running_stack(tmp_path, specs=[SPEC], min_free_disk_bytes=0) as stack:
        assert stack.client.get("/readyz").json()["checks"]["store"] == "ok"
