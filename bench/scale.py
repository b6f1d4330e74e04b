"""Scale: two replicas of a consumer against one, distributed on RabbitMQ.

The reporting service (the consumer with the most work per incident) is stopped, N incidents
are posted and their events wait in its queues; then one (or two) reporting processes start and
we measure how fast the initial deadlines get registered (between 10 % and 90 % of N, so start-up
is not counted). Done twice in fresh stacks: one replica, two replicas.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from bench.common import closed_loop, distributed, free_port, make_key, record
from libs.common.store import EmbeddedEngine
from tests.support.distributed import ServiceProcess

N = int(os.environ.get("BENCH_SCALE_INCIDENTS", "1500"))


def run(replicas: int) -> float:
    with distributed() as stack:
        intake = stack.processes["intake"].url
        key = make_key(intake, stack.admin_key)
        stack.processes["reporting"].stop()
        posted = 0
        while posted < N:
            load = closed_loop(intake + "/v1/incidents", {"Authorization": f"Bearer {key}"}, 2.0)
            posted += load.ok
        base = stack.processes["reporting"]
        data = Path(base.env["YINGJI_DATA_DIR"]) / "store"
        engine = EmbeddedEngine(data)
        deadlines = engine.database("yingji_reporting")["deadlines"]
        before = deadlines.count_documents({"kind": "initial"})
        time.sleep(3)  # intake's relay empties its outbox
        started = []
        for n in range(replicas):
            proc = ServiceProcess(
                "reporting", free_port(), dict(base.env), base.log.with_suffix(f".r{n}.log")
            )
            stack.processes[f"reporting{n}"] = proc
            proc.start()
            started.append(proc)
        target = before + posted
        marks: dict[str, tuple[float, int]] = {}
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            count = deadlines.count_documents({"kind": "initial"})
            done = (count - before) / posted
            now = time.monotonic()
            if done >= 0.1 and "start" not in marks:
                marks["start"] = (now, count)
            if done >= 0.9:
                marks["end"] = (now, count)
                break
            time.sleep(0.2)
        engine.close()
        for proc in started:
            proc.stop()
        if "end" not in marks or "start" not in marks or target <= 0:
            return 0.0
        (t0, c0), (t1, c1) = marks["start"], marks["end"]
        return (c1 - c0) / max(t1 - t0, 1e-6)


def main() -> None:
    one = run(1)
    two = run(2)
    record(
        "scale.reporting_consumer",
        incidents=N,
        one_replica_per_s=round(one, 1),
        two_replicas_per_s=round(two, 1),
        ratio=round(two / one, 2) if one else 0,
        goal=">= 1.6x where the broker is not the bound",
    )


if __name__ == "__main__":
    main()
