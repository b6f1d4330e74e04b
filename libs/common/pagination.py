"""Cursor pagination over a (sort field, _id) pair, stable under inserts, with signed cursors.

A cursor is ``<payload>.<tag>``: the payload is base64url JSON of the last row's sort value and
id, the tag an HMAC-SHA256 under the server's cursor secret over the list the cursor was issued
for (the request path) and the payload. A cursor that is malformed, altered, or issued for
another list is refused with 400 ``invalid_cursor`` before anything reaches a query, and even a
correctly signed value must be a plain scalar, so a query operator can never ride in a cursor.

The secret and the list come from the request: ``CursorScopeMiddleware`` puts them in a context
variable that ``page`` reads, so every list endpoint is covered without passing them around.
``page`` pages a MongoDB collection (the services' ``repository/mongo.py``); the SQLite engines
write their own ordered queries and use ``decode_cursor``/``encode_cursor``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from starlette.types import ASGIApp, Receive, Scope, Send

from libs.common.clock import as_utc
from libs.common.errors import ApiError, field_error

MAX_LIMIT = 200
MAX_CURSOR_CHARS = 1024
CURSOR_SECRET_FILE = "cursor-secret.key"
CURSOR_FIELD = "query.cursor"
_TAG_CONTEXT = b"yingji-cursor-v1"


@dataclass(frozen=True)
class CursorScope:
    """The secret cursors are signed with and the list (request path) they belong to."""

    secret: bytes
    list_id: str


_SCOPE: ContextVar[CursorScope | None] = ContextVar("yingji_cursor_scope", default=None)


class CursorScopeMiddleware:
    """Makes the cursor secret and the request path the scope of every cursor of a request."""

    def __init__(self, app: ASGIApp, secret: bytes) -> None:
        self.app = app
        self.secret = secret

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with cursor_scope(self.secret, scope["path"]):
            await self.app(scope, receive, send)


@contextmanager
def cursor_scope(secret: bytes, list_id: str) -> Iterator[None]:
    """Within the block, cursors are issued and read for ``list_id`` under ``secret``."""
    token = _SCOPE.set(CursorScope(secret, list_id))
    try:
        yield
    finally:
        _SCOPE.reset(token)


def load_cursor_secret(configured: str, data_dir: Path) -> bytes:
    """The configured secret, or one generated once into ``data_dir`` (mode 0600) and kept."""
    if configured:
        return configured.encode()
    path = data_dir / CURSOR_SECRET_FILE
    if not path.exists():
        _write_new_secret(path)
    secret = path.read_text().strip()
    if len(secret) < 32:
        raise RuntimeError(f"{path} holds no usable cursor secret; delete it to make a new one")
    return secret.encode()


def _write_new_secret(path: Path) -> None:
    """Write a fresh secret so that no reader ever sees a half-written file, and no process
    replaces one another process already wrote (link fails when the file exists)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
        os.chmod(temp, 0o600)
        try:
            os.link(temp, path)
            structlog.get_logger().bind(service="platform").info(
                "cursor_secret_written", path=str(path)
            )
        except FileExistsError:
            pass
    finally:
        temp.unlink(missing_ok=True)


def _current_scope() -> CursorScope:
    scope = _SCOPE.get()
    if scope is None:
        raise RuntimeError("cursors are only issued and read inside a request (CursorScope)")
    return scope


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _tag(scope: CursorScope, payload: str) -> str:
    message = b"\0".join([_TAG_CONTEXT, scope.list_id.encode(), payload.encode()])
    return _b64(hmac.new(scope.secret, message, hashlib.sha256).digest())


def encode_cursor(value: Any, ident: Any) -> str:
    """A signed cursor pointing after ``(value, ident)`` in the current request's list."""
    if isinstance(value, datetime):
        raw = {"t": as_utc(value).isoformat(), "i": ident}
    else:
        raw = {"v": value, "i": ident}
    return signed(_b64(json.dumps(raw, separators=(",", ":"), sort_keys=True).encode()))


def signed(payload: str) -> str:
    """A cursor of ``payload`` (base64url JSON) signed for the current request's list."""
    return f"{payload}.{_tag(_current_scope(), payload)}"


def invalid_cursor(reason: str) -> ApiError:
    """400 ``invalid_cursor`` naming the cursor field."""
    return field_error(CURSOR_FIELD, reason, status=400, code="invalid_cursor")


def decode_cursor(cursor: str) -> tuple[Any, Any]:
    """Check a cursor's signature for the current list and return its (value, id) scalars."""
    scope = _current_scope()
    if len(cursor) > MAX_CURSOR_CHARS or cursor.count(".") != 1:
        raise invalid_cursor("不是本接口签发的翻页游标")
    payload, tag = cursor.split(".")
    if not hmac.compare_digest(tag.encode(), _tag(scope, payload).encode()):
        raise invalid_cursor("不是本列表的翻页游标（被改动，或属于其他列表）")
    try:
        raw = json.loads(_unb64(payload))
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise invalid_cursor("不是本接口签发的翻页游标") from exc
    return _checked_scalars(raw)


def _checked_scalars(raw: Any) -> tuple[Any, Any]:
    """The (value, id) of a decoded payload, each a plain scalar of the types cursors carry."""
    if not isinstance(raw, dict) or set(raw) not in ({"v", "i"}, {"t", "i"}):
        raise invalid_cursor("不是本接口签发的翻页游标")
    ident = raw["i"]
    if not _is_scalar(ident) or isinstance(ident, float):
        raise invalid_cursor("游标中的位置不是简单值")
    if "t" in raw:
        return _parse_time(raw["t"]), ident
    if not _is_scalar(raw["v"]):
        raise invalid_cursor("游标中的位置不是简单值")
    return raw["v"], ident


def _is_scalar(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, (str, int))


def _parse_time(text: Any) -> datetime:
    try:
        moment = datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise invalid_cursor("游标中的位置不是带时区的时间")
    return as_utc(moment)


def page(
    collection: Any,
    selector: dict[str, Any],
    *,
    sort_field: str,
    descending: bool = True,
    limit: int = 50,
    cursor: str | None = None,
    projection: dict[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of documents and the cursor of the next page (None at the end)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise field_error("query.limit", f"须在 1 到 {MAX_LIMIT} 之间")
    query = dict(selector)
    if cursor:
        value, ident = decode_cursor(cursor)
        op = "$lt" if descending else "$gt"
        query = {
            "$and": [
                selector,
                {"$or": [{sort_field: {op: value}}, {sort_field: value, "_id": {op: ident}}]},
            ]
        }
    direction = -1 if descending else 1
    rows = list(
        collection.find(
            query,
            sort=[(sort_field, direction), ("_id", direction)],
            limit=limit + 1,
            projection=projection,
        )
    )
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor(last[sort_field], last["_id"])
    return rows, next_cursor
