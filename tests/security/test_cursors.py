"""Pagination cursors are opaque, signed and bound to their list: nothing a client writes into a
cursor reaches a database query.

Every list endpoint (every GET route with a ``cursor`` parameter, found from the route table) is
walked page by page and then sent forged cursors: unsigned JSON carrying query operators, the
same with a made-up signature, tampered signatures and payloads, cursors of other lists, cursors
signed with another secret, garbage, and correctly signed payloads that carry operators anyway.
Each is refused with 400 ``invalid_cursor`` naming ``query.cursor``.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from libs.common.errors import ApiError
from libs.common.pagination import (
    CURSOR_SECRET_FILE,
    cursor_scope,
    decode_cursor,
    encode_cursor,
    load_cursor_secret,
    signed,
)
from libs.common.settings import Settings
from tests.security.test_authz_matrix import api_routes
from tests.security.townships import seed_two_townships
from tests.support.bodies import incident_body
from tests.support.stack import TOWNSHIP_B, Stack, running_stack

pytestmark = pytest.mark.e2e

# Every list endpoint, by route template; ``{incident_id}`` is township A's flood.
LISTS = [
    "/v1/incidents",
    "/v1/warnings/suggestions",
    "/v1/warnings",
    "/v1/teams",
    "/v1/enterprises",
    "/v1/stock",
    "/v1/stock/ledger",
    "/v1/dispatches",
    "/v1/plans",
    "/v1/assignments",
    "/v1/deadlines",
    "/v1/campaigns",
    "/v1/timeline/{incident_id}",
    "/v1/audit",
]


@dataclass
class Lists:
    """The seeded stack, the concrete path of each list and the ids used to fill them."""

    stack: Stack
    incident_a: str
    incident_b: str

    def path(self, template: str) -> str:
        """The concrete path of a list."""
        return template.replace("{incident_id}", self.incident_a)

    def get(self, path: str, **params: Any) -> Any:
        """GET a list as the leader (who may read all of them)."""
        return self.stack.call("GET", path, who="leader", params=params)

    def next_cursor(self, template: str) -> str:
        """A genuine cursor of a list's first page of one row."""
        cursor = self.get(self.path(template), limit=1).json()["next_cursor"]
        assert cursor, f"{template} has fewer than two rows"
        return str(cursor)

    def secret(self) -> bytes:
        """The server's cursor secret."""
        settings = self.stack.runtime.settings
        return load_cursor_secret(settings.cursor_secret, settings.data_dir)


def seed_more(stack: Stack) -> None:
    """A second suggestion and two ledger entries, so that every list has two rows or more."""
    casualties = {"deaths": 3, "injured": 2, "missing": 0, "trapped": 0}
    body = incident_body(stack.clock.now(), TOWNSHIP_B, title="山洪冲毁桥梁", casualties=casualties)
    flood = stack.call("POST", "/v1/incidents", json=body)
    assert flood.status_code == 201, flood.text
    line = stack.call("GET", "/v1/stock", params={"limit": 1}).json()["items"][0]
    for delta in (5, -2):
        adjusted = stack.call(
            "POST",
            "/v1/stock/adjust",
            json={
                "warehouse_id": line["warehouse_id"],
                "item_code": line["item_code"],
                "delta": delta,
                "reason": "盘点调整",
            },
        )
        assert adjusted.status_code in (200, 201), adjusted.text
    stack.settle()


@pytest.fixture(scope="module")
def lists(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lists]:
    with running_stack(Path(tmp_path_factory.mktemp("cursors")), auth_failure_limit=10**6) as st:
        townships = seed_two_townships(st)
        seed_more(st)
        yield Lists(st, townships["township_a"].incident, townships["township_b"].incident)


def b64(raw: Any) -> str:
    """Unpadded base64url of ``raw`` (JSON unless bytes)."""
    data = raw if isinstance(raw, bytes) else json.dumps(raw).encode()
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


OPERATOR_PAYLOADS = [
    {"v": {"$foo": 1}, "i": "x"},
    {"v": {"$where": "sleep(1000) || true"}, "i": "x"},
    {"v": {"$ne": None}, "i": "zzz"},
    {"v": {"$regex": "^(a+)+$"}, "i": "x"},
    {"v": ["a", "b"], "i": "x"},
    {"v": True, "i": "x"},
    {"v": None, "i": "x"},
    {"t": {"$gt": ""}, "i": "x"},
    {"t": "2026-07-06T10:00:00", "i": "x"},
    {"t": "not a time", "i": "x"},
    {"v": "a", "i": {"$gt": ""}},
    {"v": "a", "i": 1.5},
    {"v": "a"},
    {"v": "a", "i": "x", "$where": "1"},
    ["a", "x"],
]
GARBAGE = [
    "nonsense",
    "a.b",
    "a.b.c",
    ".",
    "...",
    "%%%",
    "游标",
    b64(b"\xff\xfe\x00") + ".AAAA",
    b64({"v": "a", "i": "x"}),
]


def refused(response: Any) -> bool:
    """True when ``response`` is the invalid-cursor refusal."""
    if response.status_code != 400:
        return False
    error = response.json()["error"]
    return bool(error["code"] == "invalid_cursor" and error["fields"][0]["path"] == "query.cursor")


def test_every_list_endpoint_is_covered(lists: Lists) -> None:
    with_cursor = {
        route.path
        for route in api_routes(lists.stack)
        if "GET" in route.methods
        and any(param.name == "cursor" for param in route.dependant.query_params)
    }
    assert with_cursor == set(LISTS)


@pytest.mark.parametrize("template", LISTS)
def test_paging_walks_every_row_in_order(lists: Lists, template: str) -> None:
    path = lists.path(template)
    everything = lists.get(path, limit=200).json()
    assert everything["next_cursor"] is None and len(everything["items"]) >= 2
    walked: list[Any] = []
    cursor = None
    for _ in range(len(everything["items"]) + 1):
        params: dict[str, Any] = {"limit": 1} | ({"cursor": cursor} if cursor else {})
        answer = lists.get(path, **params)
        assert answer.status_code == 200, answer.text
        walked.extend(answer.json()["items"])
        cursor = answer.json()["next_cursor"]
        if cursor is None:
            break
    assert walked == everything["items"]


@pytest.mark.parametrize("template", LISTS)
def test_unsigned_cursors_with_query_operators_are_refused(lists: Lists, template: str) -> None:
    path = lists.path(template)
    for payload in OPERATOR_PAYLOADS:
        for cursor in (b64(payload), b64(payload) + "." + b64(b"made-up signature")):
            assert refused(lists.get(path, cursor=cursor)), (payload, cursor)


@pytest.mark.parametrize("template", LISTS)
def test_signed_cursors_must_still_carry_plain_values(lists: Lists, template: str) -> None:
    """Even with the server's own signature, a cursor position is a scalar or it is refused."""
    path = lists.path(template)
    for payload in OPERATOR_PAYLOADS:
        with cursor_scope(lists.secret(), path):
            cursor = signed(b64(payload))
        assert refused(lists.get(path, cursor=cursor)), payload


@pytest.mark.parametrize("template", LISTS)
def test_tampered_cursors_are_refused(lists: Lists, template: str) -> None:
    path = lists.path(template)
    genuine = lists.next_cursor(template)
    payload, tag = genuine.split(".")
    flipped = tag[:-1] + ("A" if tag[-1] != "A" else "B")
    other_payload = b64({"v": "zzzz", "i": "zzzz"})
    for cursor in (f"{payload}.{flipped}", f"{other_payload}.{tag}", f"{payload}.", payload):
        assert refused(lists.get(path, cursor=cursor)), cursor
    assert lists.get(path, cursor=genuine).status_code == 200


@pytest.mark.parametrize("template", LISTS)
def test_cursors_of_other_lists_are_refused(lists: Lists, template: str) -> None:
    path = lists.path(template)
    for other in LISTS:
        if other != template:
            assert refused(lists.get(path, cursor=lists.next_cursor(other))), other


def test_a_timeline_cursor_is_refused_on_another_incidents_timeline(lists: Lists) -> None:
    cursor = lists.next_cursor("/v1/timeline/{incident_id}")
    assert refused(lists.get(f"/v1/timeline/{lists.incident_b}", cursor=cursor))


@pytest.mark.parametrize("template", LISTS)
def test_cursors_signed_with_another_secret_are_refused(lists: Lists, template: str) -> None:
    path = lists.path(template)
    with cursor_scope(b"another county's secret, 32+ characters long", path):
        cursor = encode_cursor("2026-07-06", "x")
    assert refused(lists.get(path, cursor=cursor))


@pytest.mark.parametrize("template", LISTS)
def test_garbage_cursors_are_refused(lists: Lists, template: str) -> None:
    path = lists.path(template)
    for cursor in GARBAGE:
        assert refused(lists.get(path, cursor=cursor)), cursor


def test_the_generated_secret_is_private_and_kept(tmp_path: Path) -> None:
    first = load_cursor_secret("", tmp_path)
    path = tmp_path / CURSOR_SECRET_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_cursor_secret("", tmp_path) == first
    assert len(first) >= 32
    with cursor_scope(first, "/v1/incidents"):
        cursor = encode_cursor("a", "b")
    # A restart reads the same secret, so cursors issued before it stay valid.
    with cursor_scope(load_cursor_secret("", tmp_path), "/v1/incidents"):
        assert decode_cursor(cursor) == ("a", "b")


def test_processes_starting_together_on_one_data_dir_agree_on_the_secret(tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        found = set(pool.map(lambda _: load_cursor_secret("", tmp_path), range(32)))
    assert len(found) == 1
    assert [p.name for p in tmp_path.iterdir()] == [CURSOR_SECRET_FILE]


def test_a_configured_secret_is_used_and_nothing_is_written(tmp_path: Path) -> None:
    configured = "c" * 40
    assert load_cursor_secret(configured, tmp_path) == configured.encode()
    assert not (tmp_path / CURSOR_SECRET_FILE).exists()


def test_overlong_cursors_are_refused_before_anything_is_decoded() -> None:
    with cursor_scope(b"s" * 32, "/v1/audit"), pytest.raises(ApiError) as refusal:
        decode_cursor("x" * 5000)
    assert (refusal.value.status, refusal.value.code) == (400, "invalid_cursor")


def test_a_short_configured_secret_is_refused() -> None:
    with pytest.raises(ValidationError):
        Settings(cursor_secret="too-short")
