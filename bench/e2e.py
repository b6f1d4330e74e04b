"""End to end on the real broker, distributed (four processes, RabbitMQ, a vhost of their own):

- incident posted → deadline registered in reporting: 50 incidents/s for 60 s; latency = the
  initial deadline's ``created_at`` (stamped by reporting when it registers it) minus the moment
  the client sent the POST (same machine, same clock);
- warning issued → delivered: one level-4 drill warning every 2 s alongside; latency = each
  delivery's ``delivered_at`` minus the moment the POST was sent.

The timestamps are read from the services' stores after the run, so observing adds no load.
"""

from __future__ import annotations

import os
import random
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    TOWNSHIPS,
    distributed,
    make_key,
    ms,
    open_loop,
    percentile,
    record,
)
from libs.common.clock import as_utc
from libs.common.sqlite import SqliteDatabase
from libs.common.store import EmbeddedEngine
from services.warning.repository.sqlite import SqliteWarningRepository

RATE = float(os.environ.get("BENCH_E2E_RATE", "50"))
SECONDS = float(os.environ.get("BENCH_E2E_SECONDS", "60"))


def _delivered(data_dir: Path) -> dict[str, list[float]]:
    """When each warning's deliveries went out, from the warning service's SQLite file."""
    repo = SqliteWarningRepository(SqliteDatabase(data_dir / "yingji_warning.sqlite3"))
    try:
        return {
            wid: [_seconds(at) for at in times]
            for wid, times in repo.delivered_at_by_warning().items()
        }
    finally:
        repo.close()


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
    return as_utc(moment).timestamp()


def main() -> None:
    with distributed() as stack:
        intake = stack.processes["intake"].url
        warning = stack.processes["warning"].url
        key = make_key(intake, stack.admin_key)
        stop = threading.Event()
        warned: list[tuple[str, float]] = []
        issuer = threading.Thread(target=_warnings, args=(warning, key, stop, warned))
        issuer.start()
        load = open_loop(
            intake + "/v1/incidents", {"Authorization": f"Bearer {key}"}, RATE, SECONDS, seed=11
        )
        stop.set()
        issuer.join()
        time.sleep(5)  # let the last events through
        data = Path(stack.processes["intake"].env["YINGJI_DATA_DIR"]) / "store"
        engine = EmbeddedEngine(data)
        try:
            deadlines = engine.database("yingji_reporting")["deadlines"]
            registered = {
                d["incident_id"]: _seconds(d["created_at"])
                for d in deadlines.find(
                    {"kind": "initial"}, projection={"incident_id": 1, "created_at": 1}
                )
            }
        finally:
            engine.close()
        delivered = _delivered(data.parent)
    lat = [registered[i] - sent for i, sent in load.created if i in registered]
    missing = sum(1 for i, _ in load.created if i not in registered)
    record(
        "e2e.incident_to_deadline",
        rate=RATE,
        seconds=SECONDS,
        posted=load.ok,
        post_errors=load.errors,
        post_p99_ms=load.figures()["p99_ms"],
        registered=len(lat),
        not_registered_after_5s=missing,
        p50_ms=ms(percentile(lat, 50)),
        p99_ms=ms(percentile(lat, 99)),
        max_ms=ms(max(lat, default=0)),
        goal="p99 < 250 ms",
        **({"not_sent_in_time": load.shed} if load.shed else {}),
    )
    wl = [t - sent for wid, sent in warned for t in delivered.get(wid, [])]
    record(
        "e2e.warning_to_delivered",
        warnings=len(warned),
        deliveries=len(wl),
        p50_ms=ms(percentile(wl, 50)),
        p99_ms=ms(percentile(wl, 99)),
        goal="p99 < 250 ms",
    )


if __name__ == "__main__":
    main()
