"""The distributed stack for tests: one `yingji run` process per service on the real RabbitMQ,
in a RabbitMQ virtual host of its own that is deleted afterwards.

The broker is the shared one at `YINGJI_TEST_AMQP_URL` unless a test passes its own node
(tests/support/rabbitmq.py). Virtual hosts are made with `rabbitmqctl` against the broker's node,
which works without the management plugin: for the shared broker that is rabbitmqctl's default
node (the machine's) or `YINGJI_TEST_RABBITMQ_NODE`; a URL on another host needs the latter."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.rabbitmq import Broker, free_port

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("intake", "warning", "dispatch", "reporting")
ROUTES = {
    "/v1/incidents": "intake",
    "/v1/admin": "intake",
    "/v1/townships": "intake",
    "/v1/me": "intake",
    "/v1/warnings": "warning",
    "/v1/teams": "dispatch",
    "/v1/stock": "dispatch",
    "/v1/dispatches": "dispatch",
    "/v1/plans": "dispatch",
    "/v1/assignments": "dispatch",
    "/v1/joint-meetings": "dispatch",
    "/v1/enterprises": "dispatch",
    "/v1/enterprise-reference": "dispatch",
}


@dataclass
class ServiceProcess:
    """One running service."""

    name: str
    port: int
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start (or restart) the process."""
        handle = open(self.log, "ab")  # noqa: SIM115 - the child keeps it open
        self.process = subprocess.Popen(
            [sys.executable, "-m", "yingji.cli", "run", self.name, "--port", str(self.port)],
            cwd=ROOT,
            env=self.env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        """SIGKILL: no clean shutdown."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM and wait for a clean exit."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def url(self) -> str:
        """Base URL of the process."""
        return f"http://127.0.0.1:{self.port}"


@dataclass
class DistributedStack:
    """Four processes, a vhost, an admin key and a router that sends paths to their owner."""

    vhost: str
    amqp_url: str
    admin_key: str
    broker: Broker
    processes: dict[str, ServiceProcess] = field(default_factory=dict)
    replicas: list[ServiceProcess] = field(default_factory=list)

    def add_replica(self, name: str) -> ServiceProcess:
        """Start one more process of service ``name``; it is stopped with the stack."""
        first = self.processes[name]
        replica = ServiceProcess(
            name,
            free_port(),
            dict(first.env),
            first.log.with_name(f"{name}-{len(self.replicas) + 2}.log"),
        )
        self.replicas.append(replica)
        replica.start()
        return replica

    def url_for(self, path: str) -> str:
        """Where a path is served (what the reverse proxy does in production)."""
        for prefix, service in ROUTES.items():
            if path.startswith(prefix):
                return self.processes[service].url + path
        return self.processes["reporting"].url + path

    def request(
        self, method: str, path: str, key: str | None = None, **kwargs: object
    ) -> httpx.Response:
        """Send a request to the owning service."""
        headers = {"Authorization": f"Bearer {key or self.admin_key}"}
        headers.update(kwargs.pop("headers", {}) or {})  # type: ignore[call-overload]
        return httpx.request(method, self.url_for(path), headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]

    def wait_ready(self, names: Sequence[str] = SERVICES, timeout: float = 60) -> None:
        """Block until every named service answers /readyz with 200."""
        for name in names:
            wait_process_ready(self.processes[name], timeout)


def wait_process_ready(proc: ServiceProcess, timeout: float = 60) -> None:
    """Block until one process answers /readyz with 200; fail with its log if it dies."""
    deadline = time.monotonic() + timeout
    while True:
        assert proc.process and proc.process.poll() is None, proc.log.read_text()[-3000:]
        try:
            if httpx.get(proc.url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{proc.name} not ready:\n{proc.log.read_text()[-3000:]}")
        time.sleep(0.2)


def front_env(name: str, ports: dict[str, int]) -> dict[str, str]:
    """As in compose: reporting, which serves the front's /docs and /openapi.json, merges the
    other processes' documents (YINGJI_OPENAPI_PEERS)."""
    if name != "reporting":
        return {}
    peers = [f"http://127.0.0.1:{ports[other]}" for other in SERVICES if other != name]
    return {"YINGJI_OPENAPI_PEERS": ",".join(peers)}


@contextmanager
def distributed_stack(
    tmp_path: Path, broker: Broker | None = None, extra_env: dict[str, str] | None = None
) -> Iterator[DistributedStack]:
    """Start the four services as separate processes sharing a fresh vhost of ``broker``
    (default: the shared test broker)."""
    broker = broker or Broker.shared()
    with broker.vhost("yingji-test") as vhost:
        yield from _stack_in(tmp_path, broker, vhost, extra_env)


def _stack_in(
    tmp_path: Path, broker: Broker, vhost: str, extra_env: dict[str, str] | None
) -> Iterator[DistributedStack]:
    amqp_url = broker.vhost_url(vhost)
    admin_key = f"test-admin-{uuid.uuid4().hex}"
    stack = DistributedStack(vhost=vhost, amqp_url=amqp_url, admin_key=admin_key, broker=broker)
    data_dir = tmp_path / "data"
    base_env = {
        **os.environ,
        "YINGJI_BUS_URL": amqp_url,
        "YINGJI_DATA_DIR": str(data_dir),
        "YINGJI_BOOTSTRAP_ADMIN_KEY": admin_key,
        "YINGJI_LOG_FORMAT": "json",
        "YINGJI_TIMER_INTERVAL_SECONDS": "1",
        "YINGJI_RELAY_INTERVAL_SECONDS": "0.2",
        **(extra_env or {}),
    }
    base_env.pop("YINGJI_MONGO_URL", None)
    if os.environ.get("YINGJI_TEST_MONGO_URL"):
        base_env["YINGJI_MONGO_URL"] = os.environ["YINGJI_TEST_MONGO_URL"]
    ports = {name: free_port() for name in SERVICES}
    try:
        for name in SERVICES:
            env = {**base_env, **front_env(name, ports), **(extra_env or {})}
            proc = ServiceProcess(name, ports[name], env, tmp_path / f"{name}.log")
            stack.processes[name] = proc
            proc.start()
        stack.wait_ready()
        yield stack
    finally:
        for proc in [*stack.replicas, *stack.processes.values()]:
            proc.stop()
