"""An open ``/v1/stream`` ends once its key is revoked, within the key cache's lifetime.

The stream re-checks its key on the ticker the test moves, so nothing here sleeps for the
interval: the test revokes a key through the admin API, moves the ticker by the key cache's
lifetime and waits for the stream's last message.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from libs.common.auth import CACHE_SECONDS, KeyStore, Role
from libs.common.clock import ManualClock
from libs.common.keys.sqlite import SqliteKeyRepository
from libs.common.sqlite import SqliteDatabase
from tests.console.support import (
    LiveServer,
    ManualTicker,
    messages_until,
    open_stream,
    reporting_timeline,
)
from tests.support.stack import TOWNSHIP_A, Stack

pytestmark = pytest.mark.e2e


def new_key(stack: Stack, role: str = "operator") -> tuple[str, str]:
    """A fresh key made through the admin API: its id and its secret."""
    made = stack.call("POST", "/v1/admin/keys", who="admin", json={"role": role, "name": "值班员"})
    assert made.status_code == 201, made.text
    return made.json()["id"], made.json()["key"]


def timeline_entry(stack: Stack) -> dict[str, Any]:
    """A timeline entry every role may see (a county-wide stock alert)."""
    now = stack.clock.now()
    return {
        "_id": str(uuid.uuid4()),
        "event_type": "stock_low",
        "schema_version": 1,
        "source": "dispatch",
        "occurred_at": now,
        "order_key": f"{now.isoformat()}|{uuid.uuid4().hex}",
        "incident_ids": [],
        "summary": "test",
        "payload": {"warehouse_id": "W1", "item_code": "tent", "township_code": TOWNSHIP_A},
    }


def test_a_revoked_keys_stream_ends_with_a_revoked_message(
    console_stack: Stack, server: LiveServer, ticker: ManualTicker
) -> None:
    timeline = reporting_timeline(console_stack)
    key_id, key = new_key(console_stack)
    console_stack.settle()
    with open_stream(server, key) as reader:
        before = timeline_entry(console_stack)
        timeline.record(before)
        assert messages_until(reader, before["_id"]) == []
        revoked = console_stack.call("DELETE", f"/v1/admin/keys/{key_id}", who="admin")
        assert revoked.status_code == 204, revoked.text
        ticker.advance(CACHE_SECONDS)
        last = reader.next(timeout=10)
        assert last["event"] == "revoked", last
        assert last["data"]["reason"] == "key_revoked"
        assert reader.ended.wait(10), "the stream stayed open after its key was revoked"
        after = timeline_entry(console_stack)
        timeline.record(after)
        # The stream has ended: whatever it delivered is already in the queue.
        assert reader.messages.empty(), "an event was delivered after the revocation"
    again = console_stack.call("GET", "/v1/me", headers={"Authorization": f"Bearer {key}"})
    assert again.status_code == 401


def test_a_valid_keys_stream_keeps_going_across_checks(
    console_stack: Stack, server: LiveServer, ticker: ManualTicker
) -> None:
    timeline = reporting_timeline(console_stack)
    _, key = new_key(console_stack, role="leader")
    console_stack.settle()
    with open_stream(server, key) as reader:
        for _ in range(3):
            ticker.advance(CACHE_SECONDS)
            marker = timeline_entry(console_stack)
            timeline.record(marker)
            got = messages_until(reader, marker["_id"])
            assert all(m.get("event") != "revoked" for m in got), got
        assert not reader.ended.is_set()


def test_revoking_one_key_leaves_other_streams_open(
    console_stack: Stack, server: LiveServer, ticker: ManualTicker
) -> None:
    timeline = reporting_timeline(console_stack)
    gone_id, gone = new_key(console_stack)
    _, kept = new_key(console_stack)
    console_stack.settle()
    with open_stream(server, gone) as ending, open_stream(server, kept) as staying:
        console_stack.call("DELETE", f"/v1/admin/keys/{gone_id}", who="admin")
        ticker.advance(CACHE_SECONDS)
        assert ending.next(timeout=10)["event"] == "revoked"
        marker = timeline_entry(console_stack)
        timeline.record(marker)
        assert messages_until(staying, marker["_id"]) == []
        assert not staying.ended.is_set()


def test_fresh_verification_sees_a_revocation_made_by_another_process(
    console_stack: Stack,
) -> None:
    """Another service's process revokes in the shared database; this cache still says yes."""
    shared = console_stack.runtime.settings.data_dir / f"keys-{uuid.uuid4().hex[:8]}.sqlite3"
    here = KeyStore(SqliteKeyRepository(SqliteDatabase(shared)), ManualClock())
    elsewhere = KeyStore(SqliteKeyRepository(SqliteDatabase(shared)), ManualClock())
    here.repo.ensure_schema()
    record, key = here.create(Role.OPERATOR, "值班员")
    assert here.verify(key) is not None  # now cached here
    assert elsewhere.revoke(record["_id"])
    assert here.verify(key) is not None, "the cache answers within its lifetime"
    assert here.verify(key, fresh=True) is None
    assert here.verify(key) is None, "a fresh look-up refreshes the cache"
    here.repo.close()
    elsewhere.repo.close()
