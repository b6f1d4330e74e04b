"""Outbox → relay → memory bus → idempotent consumer, in one process."""

from __future__ import annotations

from pathlib import Path

from tests.support.echo_service import SPEC
from tests.support.stack import running_stack


def test_event_flows_through_outbox_and_is_applied_once(tmp_path: Path) -> None:
    with running_stack(tmp_path, specs=[SPEC]) as stack:
        created = stack.call("POST", "/v1/echoes", json={"text": "hello"})
        assert created.status_code == 201, created.text
        stack.settle()
        echo = stack.call("GET", f"/v1/echoes/{created.json()['id']}").json()
        assert echo["handled"] == 1
