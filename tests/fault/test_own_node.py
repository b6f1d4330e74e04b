"""The broker the fault tests stop is a node of their own, apart from the machine's: its name,
ports, data, logs, configuration and plugins are its own, and stopping it leaves the shared
broker serving."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection

from tests.support.rabbitmq import Broker, OwnNode

pytestmark = [pytest.mark.fault, pytest.mark.bus]


def _status(node: OwnNode) -> dict[str, Any]:
    return dict(json.loads(node.ctl("status", "--formatter", "json")))


def test_the_tests_node_keeps_everything_in_its_own_folder(own_rabbitmq: OwnNode) -> None:
    status = _status(own_rabbitmq)
    folder = str(own_rabbitmq.folder)
    assert own_rabbitmq.node and own_rabbitmq.node.startswith("yingji-test-")
    assert str(status["data_directory"]).startswith(folder)
    assert str(status["enabled_plugin_file"]).startswith(folder)
    assert status["active_plugins"] == []
    assert all(str(path).startswith(folder) for path in status["config_files"])
    logs = [path for path in status["log_files"] if path != "<stdout>"]
    assert logs and all(str(path).startswith(folder) for path in logs)
    listeners = status["listeners"]
    assert {(x["interface"], x["port"]) for x in listeners if x["protocol"] == "amqp"} == {
        ("127.0.0.1", own_rabbitmq.address[1])
    }
    assert Path(own_rabbitmq.env["RABBITMQ_PID_FILE"]).parent == own_rabbitmq.folder


def test_stopping_the_tests_node_leaves_the_shared_broker_serving(
    own_rabbitmq: OwnNode, amqp_url: str
) -> None:
    assert own_rabbitmq.address != Broker.shared().address
    with own_rabbitmq.restored():
        own_rabbitmq.stop_app()
        assert not own_rabbitmq.reachable()
        with Connection(amqp_url, connect_timeout=5) as connection:
            connection.ensure_connection(max_retries=1)
            assert connection.connected
    assert own_rabbitmq.reachable()
