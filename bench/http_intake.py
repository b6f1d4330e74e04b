"""Intake ``POST /v1/incidents``: throughput and latency, embedded and distributed, against a
bare FastAPI endpoint with the same validation measured in the same run."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from bench.common import (
    ROOT,
    closed_loop,
    distributed,
    embedded_stack,
    free_port,
    make_key,
    open_loop,
    record,
    wait_http,
)

SECONDS = 10.0
RATE = 100.0
RATE_SECONDS = 20.0
CONCURRENCY = 8


@contextmanager
def bare() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.bare_app", str(port)], cwd=ROOT, stdout=subprocess.DEVNULL
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(30)


def measure(name: str, url: str, headers: dict[str, str]) -> tuple[float, float]:
    # Warm up (imports, first store calls, key cache) before counting.
    closed_loop(url, headers, 2.0, CONCURRENCY, seed=99)
    throughput = closed_loop(url, headers, SECONDS, CONCURRENCY)
    paced = open_loop(url, headers, RATE, RATE_SECONDS, seed=7)
    record(
        f"{name}.throughput",
        concurrency=CONCURRENCY,
        seconds=SECONDS,
        **throughput.figures(),
    )
    record(f"{name}.at_{int(RATE)}_per_s", seconds=RATE_SECONDS, **paced.figures())
    return throughput.rate, paced.figures()["p99_ms"]


def main() -> None:
    with bare() as url:
        base_rate, base_p99 = measure("http.baseline_bare_fastapi", url + "/v1/incidents", {})
    with embedded_stack() as stack:
        key = make_key(stack.url, stack.admin_key)
        emb_rate, emb_p99 = measure(
            "http.intake_embedded",
            stack.url + "/v1/incidents",
            {"Authorization": f"Bearer {key}"},
        )
    with distributed() as dstack:
        intake = dstack.processes["intake"].url
        key = make_key(intake, dstack.admin_key)
        dist_rate, dist_p99 = measure(
            "http.intake_distributed", intake + "/v1/incidents", {"Authorization": f"Bearer {key}"}
        )
    record(
        "http.ratios",
        embedded_vs_baseline=round(emb_rate / base_rate, 2),
        distributed_vs_baseline=round(dist_rate / base_rate, 2),
        goal=">= 0.5, p99 < 50 ms at 100 req/s",
        p99_embedded_ms=emb_p99,
        p99_distributed_ms=dist_p99,
        p99_baseline_ms=base_p99,
    )


if __name__ == "__main__":
    main()
