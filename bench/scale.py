"""Scale: two reporting processes on one data directory (its SQLite file) against one,
distributed on RabbitMQ.

The reporting service (the consumer with the most work per incident) is stopped, N incidents
are posted with wrk and their events wait in its queues; then one (or two) reporting processes
start on the same data directory and we measure how fast they take the ``incident_reported``
deliveries, from each process's own ``yingji_bus_consumed_total`` (between 10 % and 90 % of N,
so start-up is not counted). Done twice in fresh stacks: one replica, two replicas. Observed
through ``/metrics`` only, so it works on any store engine.
"""

from __future__ import annotations

import re
import time
from typing import Any

import httpx

from bench import wrk
from bench.common import (
    distributed,
    free_port,
    make_key,
    quick,
    record,
    row,
    store_delta,
    store_writes,
)
from tests.support.distributed import ServiceProcess

N = int(quick(3000, 1500, "BENCH_SCALE_INCIDENTS"))
REPORTING_FILE = "yingji_reporting"
# One sample line of the counter; its labels come in the exporter's order (alphabetical), so
# they are read as a set, not matched in a fixed order.
SAMPLE = re.compile(r"^yingji_bus_consumed_total\{([^}]*)\}\s+([0-9.e+]+)$", re.MULTILINE)
LABEL = re.compile(r'(\w+)="([^"]*)"')


def consumed_in(text: str) -> float:
    """Deliveries of reporting's own ``incident_reported`` handler (applied or duplicate), from
    /metrics text."""
    total = 0.0
    for labels, value in SAMPLE.findall(text):
        found = dict(LABEL.findall(labels))
        if found.get("queue", "").endswith(
            "incident_reported--reporting.on_incident_reported"
        ) and found.get("outcome") in (
            "applied",
            "duplicate",
        ):
            total += float(value)
    return total


def consumed(url: str) -> float:
    """``incident_reported`` deliveries one reporting process has handled so far."""
    try:
        text = httpx.get(url + "/metrics", timeout=5).text
    except httpx.HTTPError:
        return 0.0
    return consumed_in(text)


def run(replicas: int) -> tuple[float, dict[str, Any]]:
    """Deliveries per second taken by ``replicas`` reporting processes from a full queue, and
    how their writes held reporting's SQLite file while they took the queue."""
    with distributed() as stack:
        intake = stack.processes["intake"].url
        key = make_key(intake, stack.admin_key)
        stack.processes["reporting"].stop()
        posted = 0
        while posted < N:
            posted += wrk.post_incidents(intake + "/v1/incidents", key, 2.0)["created"]
        time.sleep(3)  # intake's relay empties its outbox
        base = stack.processes["reporting"]
        started = []
        for n in range(replicas):
            proc = ServiceProcess(
                "reporting", free_port(), dict(base.env), base.log.with_suffix(f".r{n}.log")
            )
            stack.processes[f"reporting{n}"] = proc
            proc.start()
            started.append(proc)
        marks: dict[str, tuple[float, float]] = {}
        first_look = time.monotonic()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            count = sum(consumed(f"http://127.0.0.1:{p.port}") for p in started)
            now = time.monotonic()
            if count >= 0.1 * posted and "start" not in marks:
                marks["start"] = (now, count)
            if count >= 0.9 * posted:
                marks["end"] = (now, count)
                break
            time.sleep(0.2)
        if "end" not in marks or "start" not in marks:
            # Say what was seen, so a run that measured nothing shows why.
            seen = [consumed(f"http://127.0.0.1:{p.port}") for p in started]
            print(f"{replicas} replica(s): {posted} posted, consumed {seen}, marks {marks}")
            for proc in started:
                print(proc.log.read_text(errors="replace")[-2000:] if proc.log.exists() else "")
        writes = _summed([store_writes(_url(p), REPORTING_FILE) for p in started])
        for proc in started:
            proc.stop()
        if "end" not in marks or "start" not in marks:
            return 0.0, {}
        (t0, c0), (t1, c1) = marks["start"], marks["end"]
        window = marks["end"][0] - first_look
        return (c1 - c0) / max(t1 - t0, 1e-6), store_delta(_summed([]), writes, window)


def _url(proc: ServiceProcess) -> str:
    return f"http://127.0.0.1:{proc.port}"


def _summed(readings: list[dict[str, float]]) -> dict[str, float]:
    """Store figures of several processes on one file, added up."""
    total = {"transactions": 0.0, "wait_seconds": 0.0, "held_seconds": 0.0}
    for reading in readings:
        for kind, value in reading.items():
            total[kind] += value
    return total


def main() -> None:
    one, one_writes = run(1)
    two, two_writes = run(2)
    ratio = round(two / one, 2) if one else 0
    record(
        "scale.reporting_consumer",
        incidents=N,
        one_replica_per_s=round(one, 1),
        two_replicas_per_s=round(two, 1),
        ratio=ratio,
        goal=">= 1.5x",
        one_replica_store=one_writes,
        two_replicas_store=two_writes,
    )
    row(
        f"replicas: reporting taking {N:,} queued `incident_reported` deliveries, 2 processes "
        "on one data directory vs 1",
        f"{two:,.1f} vs {one:,.1f} deliveries/s; reporting's file held"
        f" {two_writes.get('held_share', 0):.0%} of the time"
        f" ({two_writes.get('held_ms_per_write', 0)} ms a write)",
        f"one process: {one:,.1f}/s, file held {one_writes.get('held_share', 0):.0%}"
        f" ({one_writes.get('held_ms_per_write', 0)} ms a write)",
        f"**{ratio:.2f}×**",
        "≥ 1.5×",
    )


if __name__ == "__main__":
    main()
