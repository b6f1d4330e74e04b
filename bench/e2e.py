"""End to end, embedded (``yingji up``, memory bus: the issue's setting) or, with
``BENCH_E2E_MODE=distributed``, on the real broker (four processes, RabbitMQ, a vhost of their
own):

- incident posted → deadline registered in reporting: 50 incidents/s for 60 s (10 s in quick
  mode); latency = the moment a watcher first sees the incident's deadline through
  ``GET /v1/deadlines?incident_id=`` minus the moment the client sent the POST;
- warning issued → delivered: one level-4 drill warning every 2 s alongside; latency = each
  delivery's ``delivered_at`` (from ``GET /v1/warnings/{id}/deliveries``) minus the moment the
  POST was sent.

Everything is observed over HTTP, so the benchmark works on any store engine. The watcher asks
only about the oldest incident not yet seen (the consumers take events in order), one cheap
indexed read at a time, so it adds one read per incident plus a few while waiting, and its
observation lags by at most one read.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bench.common import (
    TOWNSHIPS,
    distributed,
    embedded_stack,
    make_key,
    ms,
    open_loop,
    percentile,
    quick,
    record,
    row,
)
from libs.common.clock import as_utc

RATE = quick(50, 50, "BENCH_E2E_RATE")
SECONDS = quick(60, 10, "BENCH_E2E_SECONDS")


def _warnings(base: str, key: str, stop: threading.Event, sent: list[tuple[str, float]]) -> None:
    rnd = random.Random(5)
    with httpx.Client(timeout=30) as client:
        while not stop.is_set():
            now = datetime.now(UTC)
            body = {
                "hazard": "flood",
                "level": 4,
                "headline": "演练：暴雨洪水预警",
                "description": "演练：预计未来6小时有强降雨。",
                "instruction": "低洼地区群众注意转移。",
                "areas": rnd.sample(TOWNSHIPS, 3),
                "effective": now.isoformat(),
                "expires": (now + timedelta(hours=6)).isoformat(),
                "exercise": True,
            }
            wall = time.time()
            response = client.post(
                f"{base}/v1/warnings", json=body, headers={"Authorization": f"Bearer {key}"}
            )
            if response.status_code == 201:
                sent.append((response.json()["id"], wall))
            stop.wait(2.0)


def _seconds(moment: Any) -> float:
    return as_utc(datetime.fromisoformat(moment) if isinstance(moment, str) else moment).timestamp()


class Watcher(threading.Thread):
    """Notes when reporting first shows each posted incident's deadlines."""

    def __init__(self, base: str, key: str) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.headers = {"Authorization": f"Bearer {key}"}
        self.pending: deque[str] = deque()
        self.seen: dict[str, float] = {}
        self.stop_at: float | None = None

    def run(self) -> None:
        with httpx.Client(base_url=self.base, headers=self.headers, timeout=30) as client:
            while self.stop_at is None or (self.pending and time.monotonic() < self.stop_at):
                if not self.pending:
                    time.sleep(0.002)
                    continue
                incident_id = self.pending[0]
                response = client.get(f"/v1/deadlines?incident_id={incident_id}&limit=1")
                if response.status_code == 200 and response.json()["items"]:
                    self.seen[incident_id] = time.time()
                    self.pending.popleft()
                else:
                    time.sleep(0.002)


def _deliveries(base: str, key: str, warned: list[tuple[str, float]]) -> list[float]:
    latencies = []
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as client:
        for warning_id, sent in warned:
            response = client.get(f"/v1/warnings/{warning_id}/deliveries")
            if response.status_code != 200:
                continue
            latencies += [
                _seconds(d["delivered_at"]) - sent
                for township in response.json()["townships"]
                for d in township["deliveries"]
                if d.get("delivered_at")
            ]
    return latencies


MODE = os.environ.get("BENCH_E2E_MODE", "embedded")


@contextmanager
def _urls() -> Iterator[tuple[str, str, str, str]]:
    """(intake, warning, reporting, operator key) of a fresh stack of the chosen mode."""
    if MODE == "distributed":
        with distributed() as stack:
            urls = {name: stack.processes[name].url for name in ("intake", "warning", "reporting")}
            key = make_key(urls["intake"], stack.admin_key)
            yield urls["intake"], urls["warning"], urls["reporting"], key
    else:
        with embedded_stack() as embedded:
            url = embedded.url
            yield url, url, url, make_key(url, embedded.admin_key)


def main() -> None:
    with _urls() as (intake, warning, reporting, key):
        stop = threading.Event()
        warned: list[tuple[str, float]] = []
        issuer = threading.Thread(target=_warnings, args=(warning, key, stop, warned))
        watcher = Watcher(reporting, key)
        watcher.start()
        issuer.start()
        load = open_loop(
            intake + "/v1/incidents",
            {"Authorization": f"Bearer {key}"},
            RATE,
            SECONDS,
            seed=11,
            on_created=watcher.pending.append,
        )
        stop.set()
        issuer.join()
        watcher.stop_at = time.monotonic() + 10
        watcher.join()
        wl = _deliveries(warning, key, warned)
    lat = [watcher.seen[i] - sent for i, sent in load.created if i in watcher.seen]
    missing = sum(1 for i, _ in load.created if i not in watcher.seen)
    figures = {
        "p50_ms": ms(percentile(lat, 50)),
        "p99_ms": ms(percentile(lat, 99)),
        "max_ms": ms(max(lat, default=0)),
    }
    record(
        "e2e.incident_to_deadline",
        mode=MODE,
        rate=RATE,
        seconds=SECONDS,
        posted=load.ok,
        post_errors=load.errors,
        post_p99_ms=load.figures()["p99_ms"],
        registered=len(lat),
        not_registered_after_10s=missing,
        **figures,
        goal="p99 < 250 ms",
        **({"not_sent_in_time": load.shed} if load.shed else {}),
    )
    record(
        "e2e.warning_to_delivered",
        warnings=len(warned),
        deliveries=len(wl),
        p50_ms=ms(percentile(wl, 50)),
        p99_ms=ms(percentile(wl, 99)),
    )
    unsent = f", {load.shed} not sent in time" if load.shed else ""
    row(
        f"end to end, {'distributed on RabbitMQ' if MODE == 'distributed' else 'embedded'}: "
        "`POST /v1/incidents` → deadline registered, "
        f"{RATE:g}/s for {SECONDS:g} s",
        f"p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms ({load.ok} posted, "
        f"{len(lat)} seen registered, {missing} not within 10 s{unsent})",
        f"POST alone: p99 {load.figures()['p99_ms']} ms",
        "—",
        "p99 < 250 ms",
    )
    row(
        "end to end: level-4 drill warning issued → delivered (one every 2 s alongside)",
        f"p50 {ms(percentile(wl, 50))} ms, p99 {ms(percentile(wl, 99))} ms "
        f"({len(wl)} deliveries of {len(warned)} warnings)",
    )


if __name__ == "__main__":
    main()
