"""Embedded mode: a dead letter outlives a restart, waiting to be replayed, and a replayed one
is not brought back by the next start."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from libs.common.bus import wait_until
from libs.common.dead_letters import FILE_NAME
from libs.common.events import EventEnvelope
from services.reporting.service import SPEC
from tests.reporting.support import publish
from tests.support.stack import Stack, running_stack

pytestmark = pytest.mark.e2e


def _queue(stack: Stack) -> str:
    """Reporting's queue of intake's initial reports (its deadlines start there)."""
    listed = stack.call("GET", "/v1/admin/dlq", who="admin").json()["items"]
    wanted = "evt-intake-incident_reported--reporting.on_incident_reported"
    assert wanted in [q["queue"] for q in listed]
    return wanted


def _letters(stack: Stack, queue: str) -> list[dict[str, Any]]:
    answer = stack.call("GET", "/v1/admin/dlq", who="admin", params={"queue": queue})
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def _kept_rows(data: Path) -> int:
    with sqlite3.connect(data / FILE_NAME) as conn:
        return int(conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0])


def test_a_dead_letter_outlives_a_restart_until_it_is_replayed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with running_stack(tmp_path, specs=[SPEC], data_dir=data, handler_retries=1) as stack:
        queue = _queue(stack)
        # An initial report without its incident: poison for every attempt.
        poison = EventEnvelope(
            event_id=str(uuid.uuid4()),
            event_type="incident_reported",
            occurred_at=stack.clock.now(),
            source="intake",
            correlation_id="poison",
            payload={"title": "无编号"},
        )
        publish(stack, poison, settle=False)
        assert wait_until(lambda: len(_letters(stack, queue)) == 1, 20)
    with running_stack(tmp_path, specs=[SPEC], data_dir=data, handler_retries=1) as stack:
        [letter] = _letters(stack, queue)
        assert letter["message_id"] == poison.event_id
        assert letter["body"]["payload"] == {"title": "无编号"}
        assert "x-yingji-dead-letter-reason" in letter["headers"]
        # Replayed, it fails again and is dead-lettered anew: one letter, one row.
        replayed = stack.call("POST", "/v1/admin/dlq/replay", who="admin", json={"queue": queue})
        assert replayed.json()["moved"] == 1
        assert wait_until(lambda: len(_letters(stack, queue)) == 1, 20)
        assert _kept_rows(data) == 1
    with running_stack(tmp_path, specs=[SPEC], data_dir=data, handler_retries=1) as stack:
        assert [d["message_id"] for d in _letters(stack, queue)] == [poison.event_id]
