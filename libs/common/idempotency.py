"""Idempotency on both sides: consumers that tolerate redelivery, and ``Idempotency-Key`` POSTs.

The key checks (``validate_key``, ``idempotency_scope``, ``fingerprint``, ``check_replay``) serve
every engine. The collection helpers (``apply_once``, ``merge_once``, ``insert_once``,
``find_replay``, ``insert_idempotent``) are the MongoDB engines' shared single-document writes,
used by the services' ``repository/mongo.py``; the SQLite engines say theirs in SQL.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from pymongo.errors import DuplicateKeyError

from libs.common.errors import ApiError
from libs.common.outbox import merge_updates

APPLIED = "_applied"
IDEMPOTENCY = "_idem"
REVISION = "_rev"
MERGE_ATTEMPTS = 20
APPLIED_KEEP = 500
# Sparse: documents created without a key (by event handlers, seeding) carry no ``_idem`` and
# must not collide with each other on a missing value.
IDEMPOTENCY_INDEXES: list[dict[str, Any]] = [
    {"keys": [(f"{IDEMPOTENCY}.key", 1)], "unique": True, "sparse": True, "name": "idempotency_key"}
]


def apply_once(
    collection: Any, selector: Mapping[str, Any], update: Mapping[str, Any], event_id: str
) -> bool:
    """Apply ``update`` to the document matching ``selector`` unless ``event_id`` already was.

    The event id is recorded in the same single-document update as the effect, so a redelivered
    event finds it and changes nothing. Returns True when the update was applied now.
    """
    guarded = {**selector, APPLIED: {"$ne": event_id}}
    recorded = merge_updates(
        update, {"$push": {APPLIED: {"$each": [event_id], "$slice": -APPLIED_KEEP}}}
    )
    return bool(collection.update_one(guarded, recorded).matched_count)


class ConcurrentMergeError(RuntimeError):
    """The document kept changing under a merge; the bus retries the event later."""


def merge_once(
    collection: Any,
    doc_id: str,
    event_id: str,
    merge: Callable[[Mapping[str, Any] | None], Mapping[str, Any]],
) -> bool:
    """Fold one event into the document ``doc_id`` (created if absent), once per ``event_id``.

    ``merge`` is a pure rule: given what the document knows (None when nothing yet), it returns
    the fields as they should be once this event is taken into account, whatever the order the
    events arrive in. The write is guarded by a revision number, so two concurrent merges never
    lose each other's facts, and records the event id with the change. Returns True when the
    event changed something now.
    """
    for _ in range(MERGE_ATTEMPTS):
        current = collection.find_one({"_id": doc_id})
        if current is not None and event_id in (current.get(APPLIED) or []):
            return False
        merged = merge(dict(current) if current is not None else None)
        fields = {
            k: v
            for k, v in merged.items()
            if k not in ("_id", APPLIED, REVISION)
            and (current is None or k not in current or current[k] != v)
        }
        if current is None:
            if insert_once(collection, {"_id": doc_id, **fields, APPLIED: [event_id], REVISION: 1}):
                return True
            continue
        revision = current.get(REVISION)
        result = collection.update_one(
            {"_id": doc_id, REVISION: revision, APPLIED: {"$ne": event_id}},
            {
                "$set": {**fields, REVISION: int(revision or 0) + 1},
                "$push": {APPLIED: {"$each": [event_id], "$slice": -APPLIED_KEEP}},
            },
        )
        if result.matched_count:
            return True
    raise ConcurrentMergeError(f"{doc_id} changed {MERGE_ATTEMPTS} times during a merge")


def insert_once(collection: Any, document: Mapping[str, Any]) -> bool:
    """Insert a document whose ``_id`` derives from the causing event; False if it exists."""
    try:
        collection.insert_one(dict(document))
    except DuplicateKeyError:
        return False
    return True


def fingerprint(body: Any) -> str:
    """A stable hash of a request body, to tell a retry from a different request."""
    canonical = json.dumps(
        body, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotency_scope(caller_id: str, key: str | None, fallback: str) -> str:
    """The unique key a created document carries: the caller's key, or its own id."""
    return f"{caller_id}:{key}" if key else f"auto:{fallback}"


def validate_key(key: str | None) -> str | None:
    """Check an ``Idempotency-Key`` header value (printable ASCII, 1–200 characters)."""
    if key is None:
        return None
    if not (1 <= len(key) <= 200) or not key.isascii() or not key.isprintable():
        raise ApiError(
            400,
            "invalid_idempotency_key",
            "Idempotency-Key 须为 1–200 个可打印 ASCII 字符",
            fields=[{"path": "header.Idempotency-Key", "reason": "须为 1–200 个可打印 ASCII 字符"}],
        )
    return key


def find_replay(collection: Any, scope: str, body_hash: str) -> dict[str, Any] | None:
    """The document a previous request with the same key created; 409 if the body differs."""
    return check_replay(collection.find_one({f"{IDEMPOTENCY}.key": scope}), body_hash)


def check_replay(existing: Mapping[str, Any] | None, body_hash: str) -> dict[str, Any] | None:
    """``existing`` (created under the same key) as a replay; 409 if its body differs."""
    if existing is None:
        return None
    if existing[IDEMPOTENCY].get("hash") != body_hash:
        raise ApiError(
            409,
            "idempotency_conflict",
            "该 Idempotency-Key 已用于另一个请求体",
            fields=[{"path": "header.Idempotency-Key", "reason": "已用于另一个请求体"}],
        )
    return dict(existing)


def insert_idempotent(
    collection: Any, document: Mapping[str, Any], scope: str, body_hash: str
) -> tuple[dict[str, Any], bool]:
    """Insert a created document stamped with its idempotency key; on a race return the winner."""
    stamped = {**document, IDEMPOTENCY: {"key": scope, "hash": body_hash}}
    try:
        collection.insert_one(stamped)
    except DuplicateKeyError:
        winner = find_replay(collection, scope, body_hash)
        if winner is None:
            raise
        return winner, False
    return stamped, True
