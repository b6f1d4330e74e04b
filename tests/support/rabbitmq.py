"""The brokers tests use: the shared one at `YINGJI_TEST_AMQP_URL` for tests that only publish and
consume, and a RabbitMQ node of the test's own for tests that stop, kill or cut a broker.

A test's own node has its own name, AMQP and distribution ports, data, logs, configuration,
enabled-plugins file, pid file and Erlang cookie, all under one temporary folder; every
`rabbitmqctl` call names it with `-n`, and it is stopped by its name and its folder removed
afterwards. Its cookie is its own, so nothing run against it can reach another node on the
machine. Starting one takes 5-20 s on two cores, so the test session shares one (see
`own_rabbitmq` in tests/conftest.py)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from kombu import Connection

DEFAULT_TEST_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
# Debian's /usr/sbin/rabbitmq-server switches to the `rabbitmq` user and its home; the scripts
# behind it run the node as whoever calls them, with the environment given here.
DEBIAN_SCRIPTS = Path("/usr/lib/rabbitmq/bin")


def shared_amqp_url() -> str:
    """The shared broker for tests that only publish and consume (one setting, read everywhere)."""
    return os.environ.get("YINGJI_TEST_AMQP_URL") or DEFAULT_TEST_AMQP_URL


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rabbitmq_script(name: str, *, own: bool) -> str:
    """Path of `rabbitmq-server`/`rabbitmqctl`; a missing installation fails the test. For a
    node of the tests' own, the script that keeps the caller's user and environment; for the
    machine's broker, the one on PATH (Debian's switches to the broker's user and cookie)."""
    debian = DEBIAN_SCRIPTS / name
    if own and debian.exists():
        return str(debian)
    found = shutil.which(name)
    if found is None:
        raise AssertionError(f"{name} is not installed (scripts/ensure-rabbitmq installs it)")
    return found


def run_cli(command: list[str], *, timeout: float = 120, env: dict[str, str] | None = None) -> str:
    """Run a RabbitMQ CLI command and fail loudly; its output. A timeout ends its process group.

    rabbitmqctl is a script around an Erlang node: killing only the script leaves the node holding
    one of the few distribution ports the CLI may use, and enough such leftovers make every later
    rabbitmqctl call on the machine fail with ``nodistribution``.
    """
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    ) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, command, out, err)
    return out


@dataclass
class Broker:
    """A RabbitMQ broker: its AMQP URL (vhost `/`) and how to reach its node with rabbitmqctl.

    ``node`` None means rabbitmqctl's default node, which is the machine's own broker."""

    url: str
    node: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def shared(cls) -> Broker:
        """The broker at `YINGJI_TEST_AMQP_URL`; its node from `YINGJI_TEST_RABBITMQ_NODE`."""
        return cls(shared_amqp_url(), os.environ.get("YINGJI_TEST_RABBITMQ_NODE") or None)

    @property
    def address(self) -> tuple[str, int]:
        """Host and AMQP port."""
        parts = urlsplit(self.url)
        return parts.hostname or "127.0.0.1", parts.port or 5672

    @property
    def user(self) -> str:
        """The user in the URL (who gets the permissions on a new vhost)."""
        return unquote(urlsplit(self.url).username or "guest")

    def reachable(self) -> bool:
        """True when something listens on the broker's AMQP port."""
        try:
            with socket.create_connection(self.address, timeout=1):
                return True
        except OSError:
            return False

    def vhost_url(self, vhost: str) -> str:
        """The AMQP URL of one virtual host of this broker."""
        parts = urlsplit(self.url)
        return urlunsplit((parts.scheme, parts.netloc, "/" + quote(vhost, safe=""), "", ""))

    def ctl(self, *args: str, timeout: float = 120) -> str:
        """Run rabbitmqctl against this broker's node and fail loudly; its output."""
        node = ("-n", self.node) if self.node else ()
        command = [rabbitmq_script("rabbitmqctl", own=bool(self.env)), *node, *args]
        return run_cli(command, timeout=timeout, env={**os.environ, **self.env})

    def check_vhosts_manageable(self) -> None:
        """Fail clearly when rabbitmqctl could only reach some other broker than the URL's."""
        if self.node is None and self.address[0] not in LOCAL_HOSTS:
            raise AssertionError(
                f"{self.url} is not on this machine: set YINGJI_TEST_RABBITMQ_NODE to its node "
                "name (and share its Erlang cookie) so the tests can create virtual hosts on it"
            )

    @contextmanager
    def vhost(self, prefix: str) -> Iterator[str]:
        """A fresh virtual host (the URL's user may use it), deleted afterwards; its name."""
        self.check_vhosts_manageable()
        name = f"{prefix}-{secrets.token_hex(4)}"
        self.ctl("add_vhost", name)
        try:
            self.ctl("set_permissions", "-p", name, self.user, ".*", ".*", ".*")
            yield name
        finally:
            with contextlib.suppress(subprocess.SubprocessError):
                self.ctl("delete_vhost", name)

    def queue_depths(self, vhost: str) -> dict[str, int]:
        """Messages (ready + unacknowledged) per queue of a vhost."""
        out = self.ctl("list_queues", "-p", vhost, "name", "messages", "--formatter", "json")
        return {row["name"]: int(row["messages"]) for row in json.loads(out or "[]")}

    def wait_accepting(self, timeout: float = 60) -> None:
        """Block (bounded) until the broker accepts AMQP connections."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with Connection(self.url, connect_timeout=2) as connection:
                    connection.ensure_connection(max_retries=1)
                    return
            except Exception:
                time.sleep(0.5)
        raise AssertionError(f"the broker at {self.address} does not accept connections")


@dataclass
class OwnNode(Broker):
    """A RabbitMQ node started for the tests; the only broker a test may stop or cut."""

    folder: Path = field(default_factory=Path)
    process: subprocess.Popen[bytes] | None = None

    def stop_app(self) -> None:
        """Stop the RabbitMQ application; the node stays up for rabbitmqctl."""
        self.ctl("stop_app")

    def start_app(self) -> None:
        """Start the application again and wait until it accepts connections."""
        self.ctl("start_app")
        self.wait_accepting()

    @contextmanager
    def restored(self) -> Iterator[None]:
        """Whatever happens inside, the application runs again afterwards."""
        try:
            yield
        finally:
            with contextlib.suppress(subprocess.SubprocessError):
                self.ctl("start_app")
            self.wait_accepting()


def _node_files(folder: Path, amqp_port: int) -> dict[str, str]:
    """Write the node's configuration, plugins file and cookie; the environment naming them."""
    (folder / "home").mkdir()
    cookie = folder / "home" / ".erlang.cookie"
    cookie.write_text(secrets.token_hex(20).upper())
    cookie.chmod(0o400)
    (folder / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{amqp_port}\n")
    (folder / "advanced.config").write_text("[].\n")
    (folder / "enabled_plugins").write_text("[].\n")
    (folder / "rabbitmq-env.conf").write_text("")
    return {
        "HOME": str(folder / "home"),
        "RABBITMQ_CONF_ENV_FILE": str(folder / "rabbitmq-env.conf"),
        "RABBITMQ_CONFIG_FILE": str(folder / "rabbitmq.conf"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(folder / "advanced.config"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(folder / "enabled_plugins"),
        "RABBITMQ_MNESIA_BASE": str(folder / "mnesia"),
        "RABBITMQ_LOG_BASE": str(folder / "log"),
        "RABBITMQ_PID_FILE": str(folder / "node.pid"),
    }


def _node_env(folder: Path, node: str) -> tuple[dict[str, str], int]:
    """Everything that keeps the node apart from the machine's; and its AMQP port."""
    amqp_port = free_port()
    env = {
        **_node_files(folder, amqp_port),
        "RABBITMQ_NODENAME": node,
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(amqp_port),
        "RABBITMQ_DIST_PORT": str(free_port()),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
    }
    return env, amqp_port


def _start(node: OwnNode, timeout: float) -> None:
    """Start the node's process and wait (bounded) until it accepts AMQP connections."""
    log = open(node.folder / "server.out", "ab")  # noqa: SIM115 - the node keeps it open
    node.process = subprocess.Popen(
        [rabbitmq_script("rabbitmq-server", own=True)],
        env={**os.environ, **node.env},
        cwd=node.folder,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if node.process.poll() is not None:
            output = (node.folder / "server.out").read_text(errors="replace")[-3000:]
            raise AssertionError(f"the test's RabbitMQ node exited:\n{output}")
        with contextlib.suppress(AssertionError):
            node.wait_accepting(timeout=2)
            node.ctl("await_startup", "--timeout", str(int(timeout)))
            return
    raise AssertionError(f"the test's RabbitMQ node {node.node} did not start in {timeout:.0f} s")


def _stop(node: OwnNode) -> None:
    """Stop the node by its name; only if that fails, end the process this module started."""
    with contextlib.suppress(subprocess.SubprocessError):
        node.ctl("stop", timeout=60)
    if node.process is None:
        return
    try:
        node.process.wait(30)
    except subprocess.TimeoutExpired:
        # Its own session: the group holds only what this module started for the node.
        os.killpg(node.process.pid, 9)
        node.process.wait(10)


@contextmanager
def own_node(startup_timeout: float = 180) -> Iterator[OwnNode]:
    """A RabbitMQ node of the caller's own (`yingji-test-<random>@localhost`), removed after."""
    folder = Path(tempfile.mkdtemp(prefix="yingji-rabbit-"))
    name = f"yingji-test-{secrets.token_hex(4)}@localhost"
    env, amqp_port = _node_env(folder, name)
    node = OwnNode(url=f"amqp://guest:guest@127.0.0.1:{amqp_port}//", node=name, env=env)
    node.folder = folder
    try:
        _start(node, startup_timeout)
        yield node
    finally:
        _stop(node)
        shutil.rmtree(folder, ignore_errors=True)
