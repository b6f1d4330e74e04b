"""Profile of the hottest path: ``POST /v1/incidents`` on the embedded stack (all four services
in one process, as ``yingji up`` runs them).

A small sampling profiler (stdlib only) reads every thread's stack every 2 ms, so the store's
owner thread, the request threads and the consumers are all seen (cProfile sees one thread).
Prints, per thread group, the share of samples in which each function was on the stack.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from bench.common import incident_body, record
from libs.common.settings import Settings
from yingji.platform import build

REQUESTS = int(os.environ.get("BENCH_PROFILE_REQUESTS", "400"))
ROOT = str(Path(__file__).resolve().parents[1])


def _group(name: str) -> str:
    if name.startswith("yingji-store"):
        return "store owner thread"
    if name.startswith("yingji-consumer"):
        return "consumers"
    if name.startswith("yingji-relay"):
        return "relays"
    if "AnyIO" in name or "worker" in name.lower():
        return "request threads"
    return "other"


class Sampler(threading.Thread):
    """Counts, per thread group, how often each of our functions is on the stack."""

    def __init__(self, interval: float = 0.002) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.stop = threading.Event()
        self.samples: Counter[str] = Counter()
        self.busy: Counter[str] = Counter()
        self.cumulative: dict[str, Counter[str]] = defaultdict(Counter)

    def run(self) -> None:
        me = threading.get_ident()
        while not self.stop.is_set():
            names = {t.ident: t.name for t in threading.enumerate()}
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                group = _group(names.get(ident, "?"))
                stack = traceback.extract_stack(frame)
                self.samples[group] += 1
                leaf = stack[-1]
                idle = leaf.name in {"wait", "_worker", "select", "get", "poll", "sleep"} and (
                    "threading" in leaf.filename
                    or "queue" in leaf.filename
                    or "selectors" in leaf.filename
                    or "thread.py" in leaf.filename
                )
                if idle:
                    continue
                self.busy[group] += 1
                seen = set()
                for entry in stack:
                    where = entry.filename.replace(ROOT + "/", "")
                    if ".venv" in where:
                        where = "…/" + where.split("site-packages/")[-1]
                    key = f"{where}:{entry.name}"
                    if key not in seen:
                        seen.add(key)
                        self.cumulative[group][key] += 1
            time.sleep(self.interval)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="yingji-profile-") as tmp:
        settings = Settings(data_dir=Path(tmp), log_level="WARNING", log_format="json")
        app, runtime = build(settings)
        with TestClient(app) as client:
            from libs.common.auth import Role

            _, key = runtime.keys.create(Role.OPERATOR, "profile", None, ())
            headers = {"Authorization": f"Bearer {key}"}
            rnd = random.Random(3)
            for _ in range(50):  # warm-up
                client.post("/v1/incidents", json=incident_body(rnd), headers=headers)
            sampler = Sampler()
            sampler.start()
            started = time.perf_counter()
            for _ in range(REQUESTS):
                response = client.post("/v1/incidents", json=incident_body(rnd), headers=headers)
                assert response.status_code == 201, response.text
            took = time.perf_counter() - started
            sampler.stop.set()
            sampler.join()
    per_request = took / REQUESTS
    record(
        "profile.intake_post_sequential",
        requests=REQUESTS,
        ms_per_request=round(per_request * 1000, 2),
        req_per_s=round(1 / per_request, 1),
    )
    for group in ("request threads", "store owner thread", "consumers", "relays"):
        total = sampler.busy[group]
        if not total:
            continue
        print(f"\n== {group}: busy in {total} samples")
        rows: list[tuple[str, Any]] = sampler.cumulative[group].most_common(200)
        shown = 0
        for key, count in rows:
            if not key.startswith(("libs/", "services/", "yingji/", "…/")):
                continue
            print(f"  {100 * count / total:5.1f}%  {key}")
            shown += 1
            if shown >= 22:
                break


if __name__ == "__main__":
    main()
