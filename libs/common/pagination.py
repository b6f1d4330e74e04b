"""Cursor pagination: opaque cursors over a (sort field, _id) pair, stable under inserts."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from libs.common.clock import as_utc
from libs.common.errors import field_error

MAX_LIMIT = 200


def encode_cursor(value: Any, ident: Any) -> str:
    """An opaque cursor pointing after ``(value, ident)``."""
    if isinstance(value, datetime):
        raw = {"t": as_utc(value).isoformat(), "i": ident}
    else:
        raw = {"v": value, "i": ident}
    return base64.urlsafe_b64encode(json.dumps(raw).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[Any, Any]:
    """Undo ``encode_cursor``; 422 on anything else."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = json.loads(base64.urlsafe_b64decode(padded.encode()))
        value = datetime.fromisoformat(raw["t"]) if "t" in raw else raw["v"]
        return value, raw["i"]
    except Exception as exc:
        raise field_error("query.cursor", "not a cursor this API issued") from exc


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
        raise field_error("query.limit", f"must be between 1 and {MAX_LIMIT}")
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
