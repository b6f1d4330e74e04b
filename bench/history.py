"""Reads and summaries at 1,000 and 100,000 incidents of history, embedded mode, over HTTP.

**Loading.** ``python -m bench.history load DIR SIZE`` builds the embedded platform (all four
services, memory bus) in its own process with a manual clock and feeds it a year of history
through its own HTTP routes (FastAPI's in-process test client, no sockets): each incident is
reported by an operator and closed by a leader, at a moment of the past, and the services'
own consumers take the events off the bus (reporting registers the deadlines and the
timeline, warning and dispatch record the incident) before the clock moves on. The one day
measured (yesterday, local time) holds the same ``DAY_INCIDENTS`` open incidents whatever the
history, so a summary's work is the same at both sizes. Shortcut against the public API over
a socket: no network and no uvicorn, and the clock is set rather than waited for; every
document is still written by the service that owns it, through its own code.

**Measuring.** ``yingji up`` then serves that data directory; each read is asked
``BENCH_READS`` times (200; 50 in quick mode; the summaries ``BENCH_SUMMARY_READS``, 200; 20)
in turn with one client, and its p50/p99 kept.
RSS: of the loading process once the history is in, and of ``yingji up`` after the reads.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from bench.common import (
    ROOT,
    embedded_stack,
    incident_body,
    make_key,
    ms,
    percentile,
    quick,
    record,
    row,
    rss_kib,
)

SIZES = [
    int(s)
    for s in os.environ.get("BENCH_HISTORY_SIZES", "300,2000" if quick(0, 1) else "1000,100000")
    .replace(" ", "")
    .split(",")
]
READS = int(quick(200, 50, "BENCH_READS"))
SUMMARY_READS = int(quick(200, 20, "BENCH_SUMMARY_READS"))
DAY_INCIDENTS = 200
HISTORY_DAYS = 360
BATCH = 20  # incidents reported at one moment of the manual clock
LOAD_THREADS = int(os.environ.get("BENCH_LOAD_THREADS", "1"))  # requests in flight while loading
DRAIN_TIMEOUT = 120.0


# ------------------------------------------------------------------ loading (own process)


def _moments(size: int, first: datetime, last: datetime) -> list[datetime]:
    """``size`` report times, evenly over [first, last), ``BATCH`` to a moment."""
    batches = max(1, -(-size // BATCH))
    step = (last - first) / batches
    return [first + step * (n // BATCH) for n in range(size)]


def _body(rnd: random.Random, at: datetime, n: int) -> dict[str, Any]:
    """A real (not drill) initial report made at ``at``."""
    body = incident_body(rnd, exercise=False)
    body["occurred_at"] = (at - timedelta(minutes=rnd.randint(10, 120))).isoformat()
    body["discovered_at"] = (at - timedelta(minutes=rnd.randint(1, 9))).isoformat()
    body["title"] = f"历史事件 {n}"
    body["location"] = {"address": f"历史地点 {n} 号"}
    body["source"] = "村委会电话报告"
    return body


class _Feeder:
    """Posts through the in-process app and waits for reporting to have taken each batch."""

    def __init__(self, client: Any, operator: str, leader: str) -> None:
        self.client = client
        self.operator = {"Authorization": f"Bearer {operator}"}
        self.leader = {"Authorization": f"Bearer {leader}"}

    def report(self, body: dict[str, Any], n: int) -> str:
        headers = {**self.operator, "Idempotency-Key": f"history-{n}"}
        response = self.client.post("/v1/incidents", json=body, headers=headers)
        if response.status_code != 201:
            raise RuntimeError(f"report {n}: {response.status_code} {response.text[:300]}")
        return str(response.json()["id"])

    def close(self, incident_id: str) -> None:
        response = self.client.post(
            f"/v1/incidents/{incident_id}/close",
            json={"reason": "处置完毕，结案。"},
            headers=self.leader,
        )
        if response.status_code != 200:
            raise RuntimeError(f"close {incident_id}: {response.status_code} {response.text[:300]}")

    def drain(self, incident_id: str) -> None:
        """Wait until reporting registered the deadlines of ``incident_id`` (FIFO consumers)."""
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while time.monotonic() < deadline:
            response = self.client.get(
                f"/v1/deadlines?incident_id={incident_id}&limit=1", headers=self.operator
            )
            if response.status_code == 200 and response.json()["items"]:
                return
            time.sleep(0.005)
        raise RuntimeError(f"reporting did not take incident {incident_id} in time")


def measured_day(tz: ZoneInfo, now: datetime) -> tuple[date, datetime, datetime]:
    """Yesterday, local time, with its start and end in UTC."""
    day = now.astimezone(tz).date() - timedelta(days=1)
    start = datetime.combine(day, day_time(0), tz).astimezone(UTC)
    return day, start, start + timedelta(days=1)


def load(data_dir: Path, size: int, admin_key: str) -> dict[str, Any]:
    """Feed ``size`` closed incidents of history plus the measured day's open ones."""
    from fastapi.testclient import TestClient

    from libs.common.clock import ManualClock
    from libs.common.settings import Settings
    from yingji.platform import build

    settings = Settings(
        data_dir=data_dir,
        log_level="WARNING",
        log_format="json",
        bootstrap_admin_key=admin_key,
        rate_limit_per_second=0,
    )
    tz = ZoneInfo(settings.timezone)
    now = datetime.now(UTC)
    day, day_start, day_end = measured_day(tz, now)
    history = _moments(size, now - timedelta(days=HISTORY_DAYS), day_start - timedelta(hours=1))
    today = _moments(DAY_INCIDENTS, day_start + timedelta(hours=2), day_end - timedelta(hours=1))
    clock = ManualClock(history[0] if history else day_start)
    rnd = random.Random(14)
    app, _ = build(settings, clock=clock)
    ids: list[str] = []
    started = time.perf_counter()
    with TestClient(app) as client:
        feeder = _Feeder(
            client,
            make_key_in(client, admin_key, "operator"),
            make_key_in(client, admin_key, "leader"),
        )
        plan = [(at, True) for at in history] + [(at, False) for at in today]
        moments: dict[datetime, list[tuple[int, dict[str, Any], bool]]] = {}
        for n, (at, closed) in enumerate(plan):
            moments.setdefault(at, []).append((n, _body(rnd, at, n), closed))

        def feed(item: tuple[int, dict[str, Any], bool]) -> str:
            n, body, closed = item
            incident_id = feeder.report(body, n)
            if closed:
                feeder.close(incident_id)
            return incident_id

        with ThreadPoolExecutor(LOAD_THREADS) as pool:
            for at, items in moments.items():
                clock.set(at)
                batch = list(pool.map(feed, items))
                # Every event of this moment is taken before the clock moves on.
                list(pool.map(feeder.drain, batch))
                ids += batch
        clock.set(datetime.now(UTC))
        time.sleep(2)  # the last closings and timers settle
        loaded_s = time.perf_counter() - started
        rss = rss_kib(os.getpid())
    population = ids[:size] or ids
    sample = rnd.sample(population, min(500, len(population)))
    return {
        "size": size,
        "day": day.isoformat(),
        "load_s": round(loaded_s, 1),
        "incidents_per_s": round(len(ids) / loaded_s, 1),
        "loader_rss_mib": round(rss / 1024, 1),
        "sample_ids": sample,
    }


def make_key_in(client: Any, admin_key: str, role: str) -> str:
    """An API key made through the in-process admin API."""
    response = client.post(
        "/v1/admin/keys",
        json={"role": role, "name": f"bench {role}"},
        headers={"Authorization": f"Bearer {admin_key}"},
    )
    response.raise_for_status()
    return str(response.json()["key"])


# ------------------------------------------------------------------ measuring


def _reads(day: str, today: str, ids: list[str]) -> list[tuple[str, str, Callable[[], str]]]:
    """(group, name, path) of every read measured; group picks the goal."""
    rnd = random.Random(3)
    pick = lambda: rnd.choice(ids)  # noqa: E731
    fixed = lambda path: lambda: path  # noqa: E731
    return [
        ("read", "list incidents, page 1", fixed("/v1/incidents")),
        ("read", "GET incident", lambda: f"/v1/incidents/{pick()}"),
        ("read", "GET /v1/deadlines", fixed("/v1/deadlines")),
        ("read", "GET /v1/timeline/{id}", lambda: f"/v1/timeline/{pick()}"),
        ("board", "board: open incidents", fixed("/v1/incidents?status=open&limit=100")),
        ("board", "board: overdue deadlines", fixed("/v1/deadlines?status=overdue&limit=100")),
        ("board", "board: dispatches", fixed("/v1/dispatches?limit=100")),
        ("board", "board: active warnings", fixed("/v1/warnings?status=active&limit=100")),
        (
            "board",
            "board: warnings awaiting approval",
            fixed("/v1/warnings?status=pending_approval&limit=100"),
        ),
        ("board", "board: teams", fixed("/v1/teams?limit=100")),
        ("board", "board: warehouses", fixed("/v1/warehouses")),
        ("board", "board: stock", fixed("/v1/stock?limit=100")),
        ("board", "board: zero reports of today", fixed(f"/v1/zero-reports?date={today}")),
        ("board", "board: zero-report contradictions", fixed("/v1/zero-reports/contradictions")),
        ("board", "board: console context", fixed("/console/context")),
        ("summary", "daily summary (JSON)", fixed(f"/v1/summaries/daily?date={day}")),
        (
            "summary",
            "situation pack, one day (JSON)",
            fixed(f"/v1/summaries/situation?from={day}&to={day}"),
        ),
    ]


def measure(size: int) -> dict[str, Any]:
    """Load ``size`` incidents in a child process, serve them with ``yingji up``, time reads."""
    admin = f"bench-admin-{uuid.uuid4().hex}"
    with tempfile.TemporaryDirectory(prefix="yingji-bench-history-") as tmp:
        out = subprocess.run(
            [sys.executable, "-m", "bench.history", "load", tmp, str(size), admin],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            raise RuntimeError(f"loading failed:\n{out.stderr[-3000:]}")
        loaded = json.loads(out.stdout.strip().splitlines()[-1])
        with embedded_stack(data_dir=Path(tmp), admin_key=admin) as stack:
            key = make_key(stack.url, stack.admin_key)
            tz = ZoneInfo(os.environ.get("YINGJI_TIMEZONE", "Asia/Shanghai"))
            today = datetime.now(UTC).astimezone(tz).date().isoformat()
            timings: dict[str, dict[str, Any]] = {}
            with httpx.Client(
                base_url=stack.url, headers={"Authorization": f"Bearer {key}"}, timeout=120
            ) as client:
                for group, name, path in _reads(loaded["day"], today, loaded["sample_ids"]):
                    client.get(path())  # first call: caches, connections
                    took, failed = [], 0
                    for _ in range(SUMMARY_READS if group == "summary" else READS):
                        started = time.perf_counter()
                        response = client.get(path())
                        took.append(time.perf_counter() - started)
                        failed += response.status_code != 200
                    timings[name] = {
                        "group": group,
                        "p50_ms": ms(percentile(took, 50)),
                        "p99_ms": ms(percentile(took, 99)),
                        "failed": failed,
                    }
            rss = rss_kib(stack.process.pid)
    figures = {k: v for k, v in loaded.items() if k != "sample_ids"}
    figures["served_rss_mib"] = round(rss / 1024, 1)
    figures["reads"] = timings
    record(f"history.{size}", **figures)
    return figures


def _ratio(big: float, small: float) -> str:
    return f"{big / small:.1f}×" if small else "—"


def main() -> None:
    small, big = (measure(size) for size in (min(SIZES), max(SIZES)))
    s, b = small["size"], big["size"]
    for name, at_big in big["reads"].items():
        at_small = small["reads"][name]
        summary = at_big["group"] == "summary"
        failed = f"; {at_big['failed']} not 200" if at_big["failed"] else ""
        count = SUMMARY_READS if summary else READS
        row(
            f"{name}, {b:,} incidents of history (p99 of {count})",
            f"p99 {at_big['p99_ms']} ms, p50 {at_big['p50_ms']} ms{failed}",
            f"{s:,} incidents: p99 {at_small['p99_ms']} ms",
            _ratio(at_big["p99_ms"], at_small["p99_ms"]),
            "< 300 ms and ≤ 2× at 1k" if summary else "p99 < 50 ms",
        )
    for figures in (small, big):
        row(
            f"RSS, embedded, {figures['size']:,} incidents of history",
            f"loader (all four services) {figures['loader_rss_mib']} MiB after loading; "
            f"`yingji up` {figures['served_rss_mib']} MiB after the reads",
            "—",
            "—",
            "< 300 MiB at 100k",
        )
    row(
        "history loading (in-process, through the services' own routes and consumers)",
        f"{s:,}: {small['incidents_per_s']} incidents/s; {b:,}: {big['incidents_per_s']} "
        "incidents/s (report + close each)",
    )


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "load":
        result = load(Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
        print(json.dumps(result, ensure_ascii=False))
    else:
        main()
