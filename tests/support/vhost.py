"""A RabbitMQ virtual host of its own for a test, on the broker the tests are pointed at."""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

from tests.support.rabbitmq import run_cli


def _rabbitmqctl(*args: str) -> None:
    run_cli(["rabbitmqctl", *args])


@contextmanager
def fresh_vhost(amqp_url: str) -> Iterator[str]:
    """Yield ``amqp_url`` pointed at a new vhost; the vhost and its queues are deleted after."""
    vhost = f"yingji-test-{uuid.uuid4().hex[:8]}"
    _rabbitmqctl("add_vhost", vhost)
    try:
        parts = urlsplit(amqp_url)
        user = parts.username or "guest"
        _rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        yield urlunsplit((parts.scheme, parts.netloc, f"/{vhost}", parts.query, ""))
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            _rabbitmqctl("delete_vhost", vhost)
