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
Before the reads, ``BENCH_ACTIVE_WARNINGS`` (20) county-wide warnings are issued and waited for
until each has reached every village, so the board's list of active warnings counts the reach
of a flood season (each warning's deliveries and receipts to every township and village).
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from bench.common import (
    ROOT,
    TOWNSHIPS,
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
from bench.replay import Replay

SIZES = [
    int(s)
    for s in os.environ.get("BENCH_HISTORY_SIZES", "300,2000" if quick(0, 1) else "1000,100000")
    .replace(" ", "")
    .split(",")
]
READS = int(quick(200, 50, "BENCH_READS"))
# Active county-wide warnings on the board while the reads run.
ACTIVE_WARNINGS = int(quick(20, 20, "BENCH_ACTIVE_WARNINGS"))
SUMMARY_READS = int(quick(200, 20, "BENCH_SUMMARY_READS"))
DAY_INCIDENTS = 200
HISTORY_DAYS = 360
BATCH = 20  # incidents reported at one moment of the manual clock
DRAIN_TIMEOUT = 120.0
# The one operator who reports the history, the same key id however it is loaded.
OPERATOR_NAME, OPERATOR_KEY_ID = "bench operator", "b0000000000000b1"


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


def final_report(body: Mapping[str, Any], incident_id: str) -> dict[str, Any]:
    """The 终报 of a history incident: same figures, every required element (it closes it)."""
    return {
        "incident_id": incident_id,
        "kind": "final",
        "casualties": body["casualties"],
        "affected": body["affected"],
        "people_involved": body["people_involved"],
        "progress": "险情已排除，群众已返回，处置结束。",
        "measures_taken": body["measures_taken"],
        "needs": "无。",
        "reporter": body["reporter"],
        "approver": body["approver"],
    }


@dataclass(frozen=True)
class Item:
    """One incident of the plan: its number, its moment, and whether its 终报 is filed."""

    n: int
    at: datetime
    final: bool

    @property
    def body(self) -> dict[str, Any]:
        """Its initial report, drawn from its own seed: the plan holds no bodies (at 100,000
        they would be most of the loader's memory), and the same item always says the same."""
        return _body(random.Random(self.n), self.at, self.n)


@dataclass(frozen=True)
class Plan:
    """What to load: the moments of the clock in order, the incidents reported at each."""

    day: date
    moments: list[tuple[datetime, list[Item]]]
    now: datetime

    @classmethod
    def of(cls, size: int, tz: ZoneInfo, now: datetime, day_incidents: int = DAY_INCIDENTS) -> Plan:
        """``size`` incidents over a year, finalised, then the measured day's open ones."""
        day, day_start, day_end = measured_day(tz, now)
        history = _moments(size, now - timedelta(days=HISTORY_DAYS), day_start - timedelta(hours=1))
        today = _moments(
            day_incidents, day_start + timedelta(hours=2), day_end - timedelta(hours=1)
        )
        moments: dict[datetime, list[Item]] = {}
        for n, (at, final) in enumerate([(a, True) for a in history] + [(a, False) for a in today]):
            moments.setdefault(at, []).append(Item(n, at, final))
        return cls(day, list(moments.items()), now)


def _settings(data_dir: Path, admin_key: str) -> Any:
    from libs.common.settings import Settings

    return Settings(
        data_dir=data_dir,
        log_level="WARNING",
        log_format="json",
        bootstrap_admin_key=admin_key,
        rate_limit_per_second=0,
    )


def _county_zone(settings: Any) -> ZoneInfo:
    """The county's time zone, as the services take it: from the deadline profile."""
    from libs.common.profiles import deadline_profile

    return ZoneInfo(deadline_profile(settings.deadline_profile).timezone)


class _Feeder:
    """Posts through the in-process app (the public API, without a socket)."""

    def __init__(self, client: Any, operator: str) -> None:
        self.client = client
        self.operator = {"Authorization": f"Bearer {operator}"}

    def report(self, body: dict[str, Any], n: int) -> str:
        headers = {**self.operator, "Idempotency-Key": f"history-{n}"}
        response = self.client.post("/v1/incidents", json=body, headers=headers)
        if response.status_code != 201:
            raise RuntimeError(f"report {n}: {response.status_code} {response.text[:300]}")
        return str(response.json()["id"])

    def finalise(self, body: dict[str, Any], incident_id: str, n: int) -> None:
        headers = {**self.operator, "Idempotency-Key": f"final-{n}"}
        response = self.client.post(
            "/v1/reports", json=final_report(body, incident_id), headers=headers
        )
        if response.status_code != 201:
            raise RuntimeError(f"final {n}: {response.status_code} {response.text[:300]}")


def load_api(data_dir: Path, plan: Plan, admin_key: str) -> dict[int, str]:
    """Feed the plan through the HTTP routes of a running embedded platform (slow: ~20/s)."""
    from fastapi.testclient import TestClient

    from libs.common.auth import Role
    from libs.common.clock import ManualClock
    from yingji.platform import build

    clock = ManualClock(plan.moments[0][0])
    app, runtime = build(_settings(data_dir, admin_key), clock=clock)
    ids: dict[int, str] = {}
    with TestClient(app) as client:
        _, operator = runtime.keys.create(Role.OPERATOR, OPERATOR_NAME, key_id=OPERATOR_KEY_ID)
        feeder = _Feeder(client, operator)
        for at, items in plan.moments:
            clock.set(at)
            bodies = {item.n: item.body for item in items}
            for item in items:
                ids[item.n] = feeder.report(bodies[item.n], item.n)
            _quiesce(runtime)
            for item in items:
                if item.final:
                    feeder.finalise(bodies[item.n], ids[item.n], item.n)
            _quiesce(runtime)
            _tick(runtime)
        clock.set(plan.now)
        _tick(runtime)
    return ids


def _tick(runtime: Any) -> None:
    """Every timer job once at this moment of the clock, as the fast loader does."""
    for thread in runtime.timer_threads.values():
        for timer in thread.timers:
            timer.run()
    _quiesce(runtime)


def _quiesce(runtime: Any) -> None:
    if not runtime.quiesce(DRAIN_TIMEOUT):
        raise RuntimeError("the platform did not settle in time")


def load_fast(data_dir: Path, plan: Plan, admin_key: str, per_commit: int = 10) -> dict[int, str]:
    """Feed the plan through the services' use cases and handlers in-process (bench.replay)."""
    from libs.common.auth import Role
    from libs.common.clock import ManualClock
    from libs.common.idempotency import fingerprint
    from services.intake.api import IncidentIn, _fingerprinted
    from services.intake.usecases import ReportCommand
    from services.reporting.api import ReportIn

    clock = ManualClock(plan.moments[0][0])
    replay = Replay(_settings(data_dir, admin_key), clock)
    try:
        operator = replay.principal(Role.OPERATOR, OPERATOR_NAME, OPERATOR_KEY_ID)
        intake, reporting = replay.usecases("intake"), replay.usecases("reporting")
        ids: dict[int, str] = {}
        for start in range(0, len(plan.moments), per_commit):
            with replay.batch():
                for at, items in plan.moments[start : start + per_commit]:
                    clock.set(at)
                    for item in items:
                        model = IncidentIn(**item.body)
                        doc, _ = intake.report(
                            ReportCommand(
                                fields=model.model_dump(),
                                digest=fingerprint(_fingerprinted(model)),
                                idempotency_key=f"history-{item.n}",
                                principal=operator,
                            )
                        )
                        ids[item.n] = doc["_id"]
                    replay.settle()
                    for item in items:
                        if item.final:
                            raw = ReportIn(**final_report(item.body, ids[item.n]))
                            reporting.file_report(
                                operator, raw.model_dump(mode="json"), f"final-{item.n}"
                            )
                    replay.tick()
        clock.set(plan.now)
        replay.tick()
    finally:
        replay.close()
    return ids


def load(data_dir: Path, size: int, admin_key: str, how: str = "fast") -> dict[str, Any]:
    """Load ``size`` finalised incidents of history plus the measured day's open ones."""
    tz = _county_zone(_settings(data_dir, admin_key))
    plan = Plan.of(size, tz, datetime.now(UTC))
    started = time.perf_counter()
    ids = (load_fast if how == "fast" else load_api)(data_dir, plan, admin_key)
    loaded_s = time.perf_counter() - started
    rss = rss_kib(os.getpid())
    population = [ids[n] for n in sorted(ids) if n < size] or list(ids.values())
    sample = random.Random(14).sample(population, min(500, len(population)))
    return {
        "size": size,
        "how": how,
        "day": plan.day.isoformat(),
        "load_s": round(loaded_s, 1),
        "incidents_per_s": round(len(ids) / loaded_s, 1),
        "loader_rss_mib": round(rss / 1024, 1),
        "sample_ids": sample,
        "ids": {str(n): i for n, i in ids.items()},
    }


def measured_day(tz: ZoneInfo, now: datetime) -> tuple[date, datetime, datetime]:
    """Yesterday, local time, with its start and end in UTC."""
    day = now.astimezone(tz).date() - timedelta(days=1)
    start = datetime.combine(day, day_time(0), tz).astimezone(UTC)
    return day, start, start + timedelta(days=1)


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
            tz = _county_zone(_settings(Path(tmp), admin))
            today = datetime.now(UTC).astimezone(tz).date().isoformat()
            timings: dict[str, dict[str, Any]] = {}
            with httpx.Client(
                base_url=stack.url, headers={"Authorization": f"Bearer {key}"}, timeout=120
            ) as client:
                issue_warnings(client, ACTIVE_WARNINGS)
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
    figures = {k: v for k, v in loaded.items() if k not in ("sample_ids", "ids")}
    figures["served_rss_mib"] = round(rss / 1024, 1)
    figures["active_warnings"] = ACTIVE_WARNINGS
    figures["reads"] = timings
    record(f"history.{size}", **figures)
    return figures


def issue_warnings(client: httpx.Client, count: int) -> None:
    """``count`` county-wide blue warnings, each waited for until it reached every township and
    village of the county file: the board of a flood season, with its reach to count."""
    ids = []
    for n in range(count):
        now = datetime.now(UTC)
        body = {
            "hazard": "flood",
            "level": 4,
            "headline": f"暴雨洪水蓝色预警（{n + 1}）",
            "description": "预计未来6小时有强降雨。",
            "instruction": "低洼地区群众注意转移。",
            "areas": TOWNSHIPS,
            "effective": now.isoformat(),
            "expires": (now + timedelta(hours=12)).isoformat(),
        }
        response = client.post("/v1/warnings", json=body)
        response.raise_for_status()
        ids.append(response.json()["id"])
    deadline = time.monotonic() + 120
    while ids and time.monotonic() < deadline:
        reach = client.get(f"/v1/warnings/{ids[-1]}").json()["reach"]
        if reach["villages"]["reached"] == reach["villages"]["total"]:
            ids.pop()
        else:
            time.sleep(0.2)
    if ids:
        raise RuntimeError(f"{len(ids)} warnings did not reach every village in 120 s")


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
        "history loading (bench.replay: the services' own use cases and handlers, in-process)",
        f"{s:,}: {small['incidents_per_s']} incidents/s; {b:,}: {big['incidents_per_s']} "
        "incidents/s (report, then 终报 for the history)",
    )


if __name__ == "__main__":
    if len(sys.argv) in (5, 6) and sys.argv[1] == "load":
        how = sys.argv[5] if len(sys.argv) == 6 else "fast"
        result = load(Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4], how)
        print(json.dumps(result, ensure_ascii=False))
    else:
        main()
