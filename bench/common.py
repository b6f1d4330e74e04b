"""Shared plumbing for the benchmarks: stacks, load generators, percentiles, memory."""

from __future__ import annotations

import contextlib
import json
import math
import os
import queue
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.distributed import (  # noqa: E402
    DistributedStack,
    distributed_stack,
    free_port,
)
from tests.support.rabbitmq import Broker  # noqa: E402

TOWNSHIPS = ["349901001", "349901002", *(f"3499011{n:02d}" for n in range(1, 11))]
RESULTS: dict[str, Any] = {}
ROWS: list[dict[str, str]] = []
# `bench/run --quick` sets BENCH_QUICK=1: every benchmark takes its short setting.
QUICK = os.environ.get("BENCH_QUICK") == "1"
# Benchmarks measure capacity: the platform's per-client rate limit (500/s) is switched off.
NO_RATE_LIMIT = {"YINGJI_RATE_LIMIT_PER_SECOND": "0"}
BROKER_ATTEMPTS = 3


def quick(full: float, short: float, knob: str | None = None) -> float:
    """The knob's value if set, else the short setting in quick mode, else the full one."""
    if knob and os.environ.get(knob):
        return float(os.environ[knob])
    return short if QUICK else full


def row(
    benchmark: str, figure: str, baseline: str = "—", ratio: str = "—", goal: str = "—"
) -> None:
    """One line of the Markdown table ``bench/run`` prints at the end."""
    ROWS.append(
        {
            "benchmark": benchmark,
            "figure": figure,
            "baseline": baseline,
            "ratio": ratio,
            "goal": goal,
        }
    )


def markdown_table() -> str:
    """Every row recorded in this run, as a Markdown table for docs/performance.md."""
    lines = [
        "| benchmark | figure | baseline (same run) | ratio | goal |",
        "|---|---|---|---|---|",
    ]
    for r in ROWS:
        lines.append(
            f"| {r['benchmark']} | {r['figure']} | {r['baseline']} | {r['ratio']} | {r['goal']} |"
        )
    return "\n".join(lines)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(pct / 100 * len(ordered)) - 1))
    return ordered[rank]


def ms(seconds: float) -> float:
    """Seconds to milliseconds, rounded for printing."""
    return round(seconds * 1000, 1)


def record(name: str, **figures: Any) -> None:
    """Print one benchmark's figures and keep them for the summary."""
    RESULTS[name] = figures
    shown = "  ".join(f"{k}={v}" for k, v in figures.items())
    print(f"[{name}] {shown}", flush=True)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, seconds (from /proc)."""
    return sum(cpu_split(pid))


def cpu_split(pid: int) -> tuple[float, float]:
    """User and system CPU time of a process so far, seconds (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def context_switches(pid: int) -> int:
    """Voluntary context switches of all a process's threads so far: each is a thread that
    went to sleep, on a lock, the GIL, a queue or the socket (from /proc)."""
    total = 0
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        try:
            lines = status.read_text().splitlines()
        except OSError:  # the thread ended meanwhile
            continue
        total += sum(int(line.split()[1]) for line in lines if line.startswith("voluntary_"))
    return total


def serving_pid(url: str) -> int:
    """The process listening on the port of ``url`` on this machine (from /proc): the bench
    starts servers in several ways, and this finds each one's process the same way."""
    port = httpx.URL(url).port
    sockets = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            listening = fields[3] == "0A"
            if listening and int(fields[1].rsplit(":", 1)[1], 16) == port:
                sockets.add(f"socket:[{fields[9]}]")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") in sockets:
                        return int(pid)
    raise LookupError(f"no process of this machine listens on port {port}")


def rss_kib(pid: int) -> int:
    """Resident set size of a process, KiB (from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def incident_body(rnd: random.Random, exercise: bool = True) -> dict[str, Any]:
    """A complete initial report, as the drill sends it."""
    now = datetime.now(UTC)
    return {
        "category": rnd.choice(["flood", "flood", "geological", "traffic_accident", "fire"]),
        "township_code": rnd.choice(TOWNSHIPS),
        "title": "演练：压测事件",
        "description": "演练数据：河水上涨，部分道路积水，村民正在转移。",
        "occurred_at": (now - timedelta(minutes=rnd.randint(5, 40))).isoformat(),
        "discovered_at": (now - timedelta(minutes=rnd.randint(0, 4))).isoformat(),
        "location": {"address": f"演练地点 {rnd.randint(1, 99)} 号"},
        "casualties": {"deaths": 0, "injured": rnd.randint(0, 8), "missing": 0, "trapped": 0},
        "affected": {"people_affected": rnd.randint(0, 2000), "direct_loss_cny": 1000},
        "people_involved": rnd.randint(0, 5),
        "measures_taken": "已组织人员转移，设置警戒。",
        "needs": "需要沙袋和抽水泵。",
        "reporter": {"name": "演练报送人", "phone": "13900000000"},
        "approver": {"name": "演练审签人", "phone": "13900000001"},
        "source": "演练",
        "exercise": exercise,
    }


@dataclass
class LoadResult:
    """What a load run saw."""

    sent: int = 0
    ok: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    created: list[tuple[str, float]] = field(default_factory=list)  # (id, wall time sent)
    statuses: dict[str, int] = field(default_factory=dict)
    shed: int = 0

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def figures(self) -> dict[str, Any]:
        return {
            "requests": self.sent,
            "ok": self.ok,
            "errors": self.errors,
            "req_per_s": round(self.rate, 1),
            "p50_ms": ms(percentile(self.latencies, 50)),
            "p99_ms": ms(percentile(self.latencies, 99)),
            **({"error_statuses": self.statuses} if self.statuses else {}),
            **({"not_sent_in_time": self.shed} if self.shed else {}),
        }


def _post(
    client: httpx.Client, url: str, headers: dict[str, str], body: dict[str, Any]
) -> tuple[int | None, dict[str, Any] | None]:
    try:
        response = client.post(url, json=body, headers=headers)
    except httpx.HTTPError:
        return None, None
    data = None
    if response.status_code == 201:
        with contextlib.suppress(ValueError):
            data = response.json()
    return response.status_code, data


def closed_loop(
    url: str, headers: dict[str, str], seconds: float, concurrency: int = 8, seed: int = 1
) -> LoadResult:
    """``concurrency`` clients posting back to back for ``seconds``: the throughput."""
    result = LoadResult()
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def worker(n: int) -> None:
        rnd = random.Random(seed * 1000 + n)
        with httpx.Client(timeout=30) as client:
            while time.monotonic() < stop_at:
                started = time.perf_counter()
                status, _ = _post(client, url, headers, incident_body(rnd))
                took = time.perf_counter() - started
                with lock:
                    result.sent += 1
                    if status == 201:
                        result.ok += 1
                        result.latencies.append(took)
                    else:
                        result.errors += 1
                        result.statuses[str(status)] = result.statuses.get(str(status), 0) + 1

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds = time.monotonic() - started
    return result


def open_loop(
    url: str,
    headers: dict[str, str],
    rate: float,
    seconds: float,
    seed: int = 1,
    workers: int = 32,
    body: Callable[[random.Random], dict[str, Any]] = incident_body,
    shed_after: float = 10.0,
    on_created: Callable[[str], None] | None = None,
) -> LoadResult:
    """Requests at a fixed ``rate`` for ``seconds``; latency counts from the scheduled time.

    Counting from the schedule (not from when a worker got to it) keeps a slow server from
    hiding its queueing (coordinated omission)."""
    result = LoadResult()
    lock = threading.Lock()
    rnd = random.Random(seed)
    jobs: queue.Queue[tuple[float, dict[str, Any], float] | None] = queue.Queue()
    # Clients are made before the clock starts: building one costs tens of milliseconds.
    clients = [httpx.Client(timeout=30) for _ in range(workers)]

    give_up = time.perf_counter() + seconds + shed_after

    def work(client: httpx.Client) -> None:
        while (job := jobs.get()) is not None:
            scheduled, payload, wall = job
            if time.perf_counter() > give_up:
                # Bounded in time: what the server could not take in by then is not sent.
                with lock:
                    result.shed += 1
                continue
            status, data = _post(client, url, headers, payload)
            took = time.perf_counter() - scheduled
            with lock:
                result.sent += 1
                if status == 201:
                    result.ok += 1
                    result.latencies.append(took)
                    if data and "id" in data:
                        result.created.append((data["id"], wall))
                        if on_created is not None:
                            on_created(data["id"])
                else:
                    result.errors += 1
                    result.statuses[str(status)] = result.statuses.get(str(status), 0) + 1

    threads = [threading.Thread(target=work, args=(c,), daemon=True) for c in clients]
    for thread in threads:
        thread.start()
    interval = 1.0 / rate
    count = int(rate * seconds)
    payloads = [body(rnd) for _ in range(count)]
    started = time.perf_counter()
    for i in range(count):
        due = started + i * interval
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        jobs.put((due, payloads[i], time.time()))
    for _ in threads:
        jobs.put(None)
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - started
    for client in clients:
        client.close()
    return result


# ------------------------------------------------------------------ stacks


@dataclass
class Embedded:
    """``yingji up`` in a child process."""

    url: str
    admin_key: str
    process: subprocess.Popen[bytes]
    data_dir: Path


def wait_http(url: str, timeout: float = 60) -> None:
    """Wait until ``url`` answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not become ready")


@contextmanager
def embedded_stack(
    extra_env: dict[str, str] | None = None,
    data_dir: Path | None = None,
    admin_key: str | None = None,
) -> Iterator[Embedded]:
    """All four services in one process on a free port, in a fresh data directory (or the
    given one, e.g. one loaded with history, whose admin key is ``admin_key``)."""
    with tempfile.TemporaryDirectory(prefix="yingji-bench-") as fresh:
        tmp = str(data_dir or fresh)
        port = free_port()
        key = admin_key or f"bench-admin-{uuid.uuid4().hex}"
        env = {
            **os.environ,
            "YINGJI_BOOTSTRAP_ADMIN_KEY": key,
            "YINGJI_LOG_FORMAT": "json",
            "YINGJI_LOG_LEVEL": "WARNING",
            **NO_RATE_LIMIT,
            **(extra_env or {}),
        }
        env.pop("YINGJI_MONGO_URL", None)
        env.pop("YINGJI_BUS_URL", None)
        log = open(Path(tmp) / "yingji.log", "ab")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-m", "yingji.cli", "up", "--port", str(port), "--data-dir", tmp],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/readyz")
            yield Embedded(f"http://127.0.0.1:{port}", key, process, Path(tmp))
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
            log.close()


@contextmanager
def intake_process(tree: Path) -> Iterator[tuple[str, str]]:
    """``yingji run intake`` from ``tree`` in a fresh data directory; (url, operator key)."""
    with tempfile.TemporaryDirectory(prefix="yingji-bench-store-") as data:
        port, admin = free_port(), f"bench-admin-{uuid.uuid4().hex}"
        env = {
            **os.environ,
            "YINGJI_DATA_DIR": data,
            "YINGJI_BOOTSTRAP_ADMIN_KEY": admin,
            "YINGJI_LOG_LEVEL": "WARNING",
            **NO_RATE_LIMIT,
            "PYTHONPATH": str(tree),
        }
        for name in ("YINGJI_MONGO_URL", "YINGJI_BUS_URL"):
            env.pop(name, None)
        process = subprocess.Popen(
            [sys.executable, "-m", "yingji.cli", "run", "intake", "--port", str(port)],
            cwd=tree,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_http(url + "/readyz")
            yield url, make_key(url, admin)
        finally:
            process.terminate()
            process.wait(30)


@contextmanager
def distributed(extra_env: dict[str, str] | None = None) -> Iterator[DistributedStack]:
    """The four services as separate processes on RabbitMQ, in a vhost of their own."""
    with tempfile.TemporaryDirectory(prefix="yingji-bench-dist-") as tmp:
        env = {"YINGJI_LOG_LEVEL": "WARNING", **NO_RATE_LIMIT, **(extra_env or {})}
        with contextlib.ExitStack() as exits:
            for attempt in range(BROKER_ATTEMPTS):
                await_broker()
                try:
                    stack = exits.enter_context(distributed_stack(Path(tmp), extra_env=env))
                    break
                except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
                    # The broker is shared: while other work restarts it, making a vhost fails.
                    if attempt == BROKER_ATTEMPTS - 1:
                        raise
                    print(f"broker not taking a vhost ({exc!r}); retrying", flush=True)
                    time.sleep(10)
            yield stack


def await_broker() -> None:
    """Other work on this machine may restart RabbitMQ; wait until its app runs."""
    subprocess.run(["rabbitmqctl", "await_startup", "--timeout", "300"], capture_output=True)


STORE_SAMPLE = re.compile(
    r'^yingji_store_write_(transactions|wait_seconds|held_seconds)_total\{database="([^"]+)"\}'
    r"\s+([0-9.e+-]+)$",
    re.MULTILINE,
)


def store_writes(url: str, database: str) -> dict[str, float]:
    """A process's write transactions on one SQLite file so far, with the seconds they waited
    for their turn and held the file (``yingji_store_write_*`` of its /metrics)."""
    text = httpx.get(url + "/metrics", timeout=10).text
    found = {"transactions": 0.0, "wait_seconds": 0.0, "held_seconds": 0.0}
    for kind, name, value in STORE_SAMPLE.findall(text):
        if name == database:
            found[kind] += float(value)
    return found


def store_delta(
    before: dict[str, float], after: dict[str, float], seconds: float
) -> dict[str, Any]:
    """Per-write hold and wait, and the share of ``seconds`` the file was held, between two
    readings of ``store_writes`` (summed over processes beforehand when there are several)."""
    count = after["transactions"] - before["transactions"]
    held = after["held_seconds"] - before["held_seconds"]
    wait = after["wait_seconds"] - before["wait_seconds"]
    return {
        "writes": int(count),
        "held_ms_per_write": round(1000 * held / count, 3) if count else 0.0,
        "wait_ms_per_write": round(1000 * wait / count, 3) if count else 0.0,
        "held_share": round(held / seconds, 3) if seconds else 0.0,
    }


def make_key(base: str, admin_key: str, role: str = "operator", **extra: Any) -> str:
    """Create an API key through the admin API."""
    response = httpx.post(
        f"{base}/v1/admin/keys",
        json={"role": role, "name": f"bench {role}", **extra},
        headers={"Authorization": f"Bearer {admin_key}"},
        timeout=30,
    )
    response.raise_for_status()
    return str(response.json()["key"])


@contextmanager
def vhost() -> Iterator[str]:
    """A fresh virtual host of the shared broker (`YINGJI_TEST_AMQP_URL`); its AMQP URL."""
    broker = Broker.shared()
    await_broker()
    with broker.vhost("yingji-bench") as name:
        yield broker.vhost_url(name)


def save(path: Path) -> None:
    """Write every recorded figure as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(RESULTS, indent=2, ensure_ascii=False, default=str))
