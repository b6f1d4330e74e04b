"""Workloads for the fault suite: the seeded drill in a background thread, driven until enough
requests are acknowledged or a time budget ends, and replays of published events. Broker faults
are injected on the test's own node (tests/support/rabbitmq.py), never the machine's broker."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from libs.common.bus import Publisher
from libs.common.events import EventEnvelope
from libs.common.settings import Settings
from tests.support.distributed import DistributedStack
from yingji.drill import Drill, Outcome


class Workload:
    """The seeded drill against a stack, run in a thread while the test injects faults.

    ``duration`` is the time budget: tests stop the run earlier, once enough requests were
    acknowledged (`until_acknowledged`, `stop`), so a slow machine sends fewer requests and the
    checks stay about correctness, never throughput."""

    def __init__(
        self,
        base_url: str,
        admin_key: str,
        route: Callable[[str], str] | None = None,
        *,
        seed: int,
        rate: float,
        duration: float,
        concurrency: int = 6,
    ) -> None:
        self.drill = Drill(
            base_url,
            admin_key,
            seed=seed,
            rate=rate,
            duration=duration,
            concurrency=concurrency,
            route=route,
            timeout=10.0,
        )
        self.duration = duration
        # One client for every check read: a client per request costs a TLS context each,
        # which on a loaded two-core machine dominates the checker's time.
        self.reader = httpx.Client(timeout=30)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="fault-workload", daemon=True)
        self.started_at = 0.0

    @classmethod
    def on(cls, stack: DistributedStack, **kwargs: Any) -> Workload:
        """A workload against the distributed stack (each path to its owning process)."""
        return cls(stack.processes["intake"].url, stack.admin_key, stack.url_for, **kwargs)

    def setup(self) -> None:
        """Create the drill's keys (before any fault)."""
        self.drill.setup()

    def _run(self) -> None:
        try:
            self.drill.run()
        except BaseException as exc:
            self.error = exc

    def start(self) -> None:
        """Start sending; returns at once."""
        if not self.drill.keys:
            self.setup()
        self.started_at = time.monotonic()
        self.thread.start()

    def at(self, seconds: float) -> None:
        """Sleep until ``seconds`` after the start of the workload (the large run's schedule)."""
        time.sleep(max(0.0, self.started_at + seconds - time.monotonic()))

    def acknowledged(self, operation: str) -> int:
        """How many ``operation`` requests got a 2xx so far."""
        with self.drill.recorder.lock:
            rows = list(self.drill.recorder.outcomes)
        return sum(1 for o in rows if o.operation == operation and o.acknowledged)

    def until_acknowledged(self, count: int, budget: float, operation: str = "incident") -> bool:
        """Wait until ``count`` ``operation`` requests were acknowledged, ``budget`` seconds
        passed or the run ended; whether the count was reached."""
        deadline = time.monotonic() + budget
        while self.acknowledged(operation) < count:
            if time.monotonic() > deadline or not self.thread.is_alive():
                return False
            time.sleep(0.1)
        return True

    def stop(self) -> None:
        """End the run at the drill's next tick; requests in flight complete."""
        # The drill's schedule compares each tick with `duration`, so this ends it cleanly.
        self.drill.duration = 0.0

    def join(self) -> list[Outcome]:
        """Wait (bounded) for the run to finish; return every outcome."""
        self.thread.join(self.duration + 60)
        assert not self.thread.is_alive(), "the workload did not finish"
        if self.error is not None:
            raise self.error
        return list(self.drill.recorder.outcomes)

    @property
    def outcomes(self) -> list[Outcome]:
        """What was recorded so far."""
        return list(self.drill.recorder.outcomes)

    def get(self, path: str) -> httpx.Response:
        """GET as the drill's operator, with retries while a process restarts (bounded)."""
        url = self.drill.route(path)
        headers = {"Authorization": f"Bearer {self.drill.keys['operator']}"}
        for attempt in range(20):
            try:
                return self.reader.get(url, headers=headers)
            except httpx.TransportError:
                if attempt == 19:
                    raise
                time.sleep(0.5)
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Release the HTTP clients."""
        self.reader.close()
        self.drill.close()


def audit_envelopes(get: Callable[[str], httpx.Response], limit: int = 5000) -> list[EventEnvelope]:
    """Every event reporting's audit trail holds, rebuilt as the envelopes that were published."""
    envelopes: list[EventEnvelope] = []
    cursor = None
    while len(envelopes) < limit:
        page = get("/v1/audit?limit=200" + (f"&cursor={cursor}" if cursor else ""))
        assert page.status_code == 200, page.text
        body = page.json()
        for row in body["items"]:
            envelopes.append(
                EventEnvelope(
                    event_id=row["event_id"],
                    event_type=row["event_type"],
                    occurred_at=row["occurred_at"],
                    source=row["source"],
                    correlation_id=row["correlation_id"],
                    causation_id=row["causation_id"],
                    payload=row["payload"],
                )
            )
        cursor = body.get("next_cursor")
        if not cursor:
            break
    return envelopes


def publish_again(amqp_url: str, envelopes: list[EventEnvelope], times: int = 1) -> int:
    """Publish ``envelopes`` again to their exchanges, as a broker or relay would redeliver."""
    settings = Settings(bus_url=amqp_url)
    sent = 0
    by_source: dict[str, Publisher] = {}
    try:
        for _ in range(times):
            for envelope in envelopes:
                publisher = by_source.setdefault(
                    envelope.source, Publisher(settings, envelope.source)
                )
                publisher.publish([envelope])
                sent += 1
    finally:
        for publisher in by_source.values():
            publisher.close()
    return sent


def metric_sum(metrics_text: str, name: str, **labels: str) -> float:
    """Sum of a metric's samples whose labels include ``labels``."""
    total = 0.0
    for line in metrics_text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def queue_depth(stack: DistributedStack, queue: str) -> int:
    """Messages (ready + unacknowledged) in one queue of the stack's vhost."""
    return stack.broker.queue_depths(stack.vhost).get(queue, 0)
