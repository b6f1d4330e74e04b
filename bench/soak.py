"""RSS drift over a steady drill: ``yingji up`` driven by ``yingji drill`` for 10 minutes
(``BENCH_SOAK_SECONDS``; 2 minutes in quick mode), the process's resident memory sampled every
10 s (5 s in quick mode). Drift = last sample against the sample after the first minute (after
the first fifth of a shorter run): start-up and first caches excluded."""

from __future__ import annotations

import threading
import time

from bench.common import embedded_stack, quick, record, row, rss_kib
from yingji.drill import Drill

SECONDS = quick(600, 120, "BENCH_SOAK_SECONDS")
RATE = quick(10, 10, "BENCH_SOAK_RATE")
SAMPLE_EVERY = 10.0 if SECONDS >= 300 else 5.0
WARM = min(60.0, SECONDS / 5)


def main() -> None:
    with embedded_stack() as stack:
        samples: list[tuple[float, int]] = []
        stop = threading.Event()

        def sample() -> None:
            started = time.monotonic()
            while not stop.is_set():
                samples.append((time.monotonic() - started, rss_kib(stack.process.pid)))
                stop.wait(SAMPLE_EVERY)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        drill = Drill(stack.url, stack.admin_key, seed=9, rate=RATE, duration=SECONDS)
        try:
            recorder = drill.run()
        finally:
            drill.close()
        stop.set()
        sampler.join()
    warm = next((kib for t, kib in samples if t >= WARM), samples[0][1])
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
        # The curve, one sample a minute (or a fifth of a short run): growth that levels off
        # reads differently from growth that does not.
        curve_mib=[
            [round(t), round(kib / 1024, 1)]
            for t, kib in samples[:: max(1, round(WARM / SAMPLE_EVERY))]
        ],
    )
    drift = round(100 * (last - warm) / warm, 1)
    row(
        f"RSS drift, embedded, steady drill {RATE:g} ops/s for {SECONDS / 60:g} min "
        "(`yingji drill`)",
        f"{warm / 1024:.0f} → {last / 1024:.0f} MiB after {len(recorder.outcomes):,} requests, "
        f"{errors} without answer or 5xx",
        f"RSS after {WARM:g} s: {warm / 1024:.0f} MiB",
        f"**{drift:+.1f} %**",
        "< 10 % over 10 min",
    )


if __name__ == "__main__":
    main()
