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


def test_a_settled_stop_leaves_nothing_to_replay_at_the_next_start(tmp_path: Path) -> None:
    """The journal exists for a crash (the memory bus loses what it held); after a stop that
    settled the bus, every event was handled and a restart replays none of them."""
    data_dir = tmp_path / "data"
    with running_stack(tmp_path, specs=[SPEC], data_dir=data_dir) as stack:
        created = stack.call("POST", "/v1/echoes", json={"text": "hello"})
        assert created.status_code == 201, created.text
        stack.settle()
        journals = [r.journal for r in stack.runtime.relays.values() if r.journal is not None]
        assert journals and any(j.since(0) for j in journals)
    with running_stack(tmp_path, specs=[SPEC], data_dir=data_dir) as stack:
        relays = list(stack.runtime.relays.values())
        assert all(r.journal is not None and r.journal.since(0) == [] for r in relays)
        assert [r.replay_journal() for r in relays] == [0] * len(relays)
        echo = stack.call("GET", f"/v1/echoes/{created.json()['id']}").json()
        assert echo["handled"] == 1
