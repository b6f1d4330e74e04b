"""nameko interop both ways: a real `nameko run` service receives our events, and our consumer
receives what a nameko dispatcher sends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from kombu import Connection

from libs.common.bus import ConsumerWorker, Publisher, Subscription, queue_name
from libs.common.clock import SystemClock
from libs.common.events import EventEnvelope, make_event
from libs.common.settings import Settings
from tests.support import echo_service  # noqa: F401  (registers echo_recorded)

pytestmark = pytest.mark.bus
ROOT = Path(__file__).resolve().parents[2]
NAMEKO = Path(sys.executable).with_name("nameko")


def _queue_exists(url: str, name: str) -> bool:
    with Connection(url) as connection:
        try:
            connection.channel().queue_declare(queue=name, passive=True)
            return True
        except Exception:
            return False


def test_a_nameko_service_receives_an_event_we_publish(
    tmp_path: Path, amqp_url: str, cleanup_queues: list[str]
) -> None:
    out = tmp_path / "received.jsonl"
    queue = queue_name("echo", "echo_recorded", "nameko_listener", "on_echo")
    cleanup_queues.append(queue)
    env = {**os.environ, "NAMEKO_OUT": str(out), "PYTHONPATH": str(ROOT)}
    service = subprocess.Popen(
        [str(NAMEKO), "run", "tests.support.nameko_listener", "--broker", amqp_url],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    publisher = Publisher(Settings(bus_url=amqp_url), "echo")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _queue_exists(amqp_url, queue):
            assert service.poll() is None, service.stdout.read() if service.stdout else ""
            time.sleep(0.5)
        event = make_event(
            SystemClock(),
            "echo",
            "echo_recorded",
            {"echo_id": "n1", "text": "你好 nameko"},
            correlation_id="n1",
        )
        publisher.publish([event])
        while time.monotonic() < deadline and not (out.exists() and out.read_text().strip()):
            time.sleep(0.2)
        received = [json.loads(line) for line in out.read_text().splitlines()]
        assert received == [event.to_wire()]
    finally:
        publisher.close()
        service.terminate()
        service.wait(30)


DISPATCH = textwrap.dedent(
    """
    import json, sys
    from nameko.standalone.events import event_dispatcher
    dispatch = event_dispatcher({"AMQP_URI": sys.argv[1]})
    for body in json.loads(sys.argv[2]):
        dispatch("weather", "rain_forecast", body)
    """
)


def test_our_consumer_receives_what_a_nameko_dispatcher_sends(
    amqp_url: str, cleanup_queues: list[str]
) -> None:
    handler_name = f"rain_{uuid.uuid4().hex[:8]}"
    cleanup_queues.append(queue_name("weather", "rain_forecast", "interop", handler_name))
    received: list[EventEnvelope] = []
    worker = ConsumerWorker(
        Settings(bus_url=amqp_url),
        "interop",
        [Subscription("weather", "rain_forecast", received.append, handler_name)],
    )
    worker.start()
    try:
        assert worker.ready.wait(30)
        bodies = [{"township_code": "349901101", "mm": 120}]
        subprocess.run(
            [sys.executable, "-c", DISPATCH, amqp_url, json.dumps(bodies)],
            cwd=ROOT,
            check=True,
            timeout=60,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not received:
            time.sleep(0.05)
        assert len(received) == 1
        envelope = received[0]
        assert envelope.source == "weather"
        assert envelope.event_type == "rain_forecast"
        assert envelope.payload == bodies[0]
    finally:
        worker.stop()
        worker.join(10)
