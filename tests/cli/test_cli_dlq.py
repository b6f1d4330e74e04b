"""`yingji dlq`: against the embedded in-memory bus it says so and touches nothing; an unknown
queue is an error that creates no queue on the broker; a reader that goes away ends it quietly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from kombu import Connection

from tests.cli.support import cli_env, yingji
from tests.conftest import shared_broker

pytestmark = pytest.mark.e2e


def queue_exists(url: str, name: str) -> bool:
    """True when the broker has a queue of that name (asked passively: never creates one)."""
    with Connection(url) as connection:
        try:
            connection.channel().queue_declare(queue=name, passive=True)
            return True
        except Exception:
            return False


def test_memory_bus_is_one_line_and_creates_no_data_directory(tmp_path: Path) -> None:
    for args in (["queues"], ["list", "evt-intake-incident_reported--warning.on_incident"]):
        result = yingji("dlq", *args, cwd=tmp_path)
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "in-memory" in lines[0] and "/v1/admin/dlq" in lines[0]
        assert result.stdout == ""
    assert list(tmp_path.iterdir()) == []


@pytest.mark.bus
def test_unknown_queue_is_an_error_and_never_declared(tmp_path: Path) -> None:
    url = shared_broker().url
    env = cli_env(YINGJI_BUS_URL=url, YINGJI_DATA_DIR=str(tmp_path / "data"))
    name = "evt-nosuch-thing--nobody.on_nothing"
    try:
        for action in ("list", "replay"):
            result = yingji("dlq", action, name, cwd=tmp_path, env=env)
            assert result.returncode == 1
            assert result.stderr.strip().splitlines() == [
                f"yingji dlq: {name} is not a queue of Yingji (see `yingji dlq queues`)"
            ]
        assert not queue_exists(url, f"{name}.dlq") and not queue_exists(url, name)
    finally:
        with Connection(url) as connection:
            channel = connection.channel()
            for queue in (name, f"{name}.dlq"):
                channel.queue_delete(queue=queue)
    listed = yingji("dlq", "queues", cwd=tmp_path, env=env)
    assert listed.returncode == 0
    assert "evt-intake-incident_reported--reporting.on_incident_reported" in listed.stdout.split()
    # Naming the queues reads no store: no data directory appears.
    assert not (tmp_path / "data").exists() and not (tmp_path / "yingji-data").exists()


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    env = cli_env(YINGJI_BUS_URL="amqp://guest:guest@127.0.0.1:5672//")
    env["YINGJI_DATA_DIR"] = str(tmp_path / "data")
    # The reader is gone before the command writes a line (as `yingji dlq queues | head -0`).
    child = subprocess.Popen(
        [sys.executable, "-m", "yingji.cli", "dlq", "queues"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()
    status = child.wait(60)
    errors = child.stderr.read()
    assert "Traceback" not in errors and "BrokenPipe" not in errors and errors == ""
    assert status == 141
