"""An in-process stack for service tests: memory bus, manual clock, role keys, and the embedded
store (or a real MongoDB: `YINGJI_TEST_MONGO_URL`, or testcontainers when Docker runs)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from kombu.transport import memory

from libs.common.app import Runtime, create_app
from libs.common.auth import Role
from libs.common.clock import ManualClock
from libs.common.service import ServiceSpec
from libs.common.settings import Settings
from tests.support.mongo import drop_databases, mongo_url_for_tests

# A Monday 10:00 in Asia/Shanghai (02:00 UTC), inside working hours.
DEFAULT_START = datetime(2026, 7, 6, 2, 0, tzinfo=UTC)
TOWNSHIP_A = "349901001"
TOWNSHIP_B = "349901101"


def reset_memory_bus() -> None:
    """Forget every in-memory queue and binding (kombu keeps them per process)."""
    memory.Channel.queues.clear()
    memory.Channel.events.clear()
    memory.Transport.global_state.clear()


@dataclass
class Stack:
    """A running app with a client per role."""

    runtime: Runtime
    client: TestClient
    clock: ManualClock
    keys: dict[str, str] = field(default_factory=dict)

    def headers(self, who: str, **extra: str) -> dict[str, str]:
        """Authorization headers for a named caller (``operator``, ``township_a``, ...)."""
        return {"Authorization": f"Bearer {self.keys[who]}", **extra}

    def call(self, method: str, path: str, who: str = "operator", **kwargs: Any) -> Any:
        """Make a request as ``who``; extra headers go in ``headers=``."""
        headers = {**self.headers(who), **kwargs.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kwargs)

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until every event has been published and handled."""
        assert self.runtime.quiesce(timeout), "the bus did not settle"

    def ctx(self, service: str) -> Any:
        """The service context of ``service``."""
        return self.runtime.contexts[service]


def make_keys(runtime: Runtime) -> dict[str, str]:
    """A key for each role, two townships, the weather and the water department."""
    departments = {"department": "meteorology", "water_department": "water"}
    made = {}
    for who, role, township, hazards in [
        ("admin", Role.ADMIN, None, ()),
        ("leader", Role.LEADER, None, ()),
        ("operator", Role.OPERATOR, None, ()),
        ("department", Role.DEPARTMENT, None, ("rainstorm", "lightning", "typhoon", "wind")),
        ("water_department", Role.DEPARTMENT, None, ("flood", "drought")),
        ("township_a", Role.TOWNSHIP, TOWNSHIP_A, ()),
        ("township_b", Role.TOWNSHIP, TOWNSHIP_B, ()),
    ]:
        _, secret = runtime.keys.create(
            role, who, township, hazards, department_code=departments.get(who)
        )
        made[who] = secret
    return made


@contextmanager
def running_stack(
    tmp_path: Path,
    specs: Sequence[ServiceSpec] | None = None,
    start: datetime = DEFAULT_START,
    **settings: Any,
) -> Iterator[Stack]:
    """Start the given services (all four by default) in-process and stop them afterwards.

    The bus is the memory transport unless ``bus_url`` names a broker.
    """
    from yingji.platform import load_specs

    reset_memory_bus()
    clock = ManualClock(start)
    mongo_url = mongo_url_for_tests() or ""
    prefix = f"test{uuid.uuid4().hex[:10]}" if mongo_url else "yingji"
    config = Settings(
        data_dir=settings.pop("data_dir", None) or tmp_path / f"data-{uuid.uuid4().hex[:6]}",
        bus_url=settings.pop("bus_url", "memory://"),
        mongo_url=mongo_url,
        database_prefix=prefix,
        timer_interval_seconds=3600,
        handler_backoff_seconds=[0.01, 0.02, 0.05],
        **settings,
    )
    runtime = Runtime(config, specs if specs is not None else load_specs(), clock=clock)
    app = create_app(runtime)
    with TestClient(app, raise_server_exceptions=False) as client:
        # The timers' pass at start runs whenever its thread is scheduled: let it finish, so it
        # never races the timer jobs a test runs itself (the interval keeps it the only one).
        for timers in runtime.timer_threads.values():
            timers.first_pass_done.wait(timeout=60)
        stack = Stack(runtime=runtime, client=client, clock=clock, keys=make_keys(runtime))
        yield stack
    reset_memory_bus()
    if mongo_url:
        drop_databases(mongo_url, prefix)
