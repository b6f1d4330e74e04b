"""RSS drift over a steady drill: ``yingji up`` driven by ``yingji drill`` for 10 minutes
(``BENCH_SOAK_SECONDS``), the process's resident memory sampled every 10 s. Drift = last sample
against the sample after the first minute (start-up and first caches excluded)."""

from __future__ import annotations

import os
import threading
import time

from bench.common import embedded_stack, record, rss_kib
from yingji.drill import Drill

SECONDS = float(os.environ.get("BENCH_SOAK_SECONDS", "600"))
RATE = float(os.environ.get("BENCH_SOAK_RATE", "10"))


def main() -> None:
    with embedded_stack() as stack:
        samples: list[tuple[float, int]] = []
        stop = threading.Event()

        def sample() -> None:
            started = time.monotonic()
            while not stop.is_set():
                samples.append((time.monotonic() - started, rss_kib(stack.process.pid)))
                stop.wait(10)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        drill = Drill(stack.url, stack.admin_key, seed=9, rate=RATE, duration=SECONDS)
        try:
            recorder = drill.run()
        finally:
            drill.close()
        stop.set()
        sampler.join()
    warm = next((kib for t, kib in samples if t >= 60), samples[0][1])
    last = samples[-1][1]
    errors = sum(1 for o in recorder.outcomes if o.indeterminate)
    record(
        "soak.rss_drift",
        seconds=SECONDS,
        rate_ops_per_s=RATE,
        requests=len(recorder.outcomes),
        no_answer_or_5xx=errors,
        rss_after_1_min_mib=round(warm / 1024, 1),
        rss_end_mib=round(last / 1024, 1),
        drift_pct=round(100 * (last - warm) / warm, 1),
        goal="< 10 %",
    )


if __name__ == "__main__":
    main()
