"""Intake ``POST /v1/incidents`` throughput, driven by ``wrk``, against a bare FastAPI endpoint
with the same request model and a key check, all in the same run:

- the bare endpoint (``bench/bare_app.py``);
- the intake process alone (``yingji run intake``: its own SQLite file, memory bus);
- the embedded process with all four services (``yingji up``).

Each target gets a warm-up, then ``BENCH_HTTP_SECONDS`` (10; 5 in quick mode) of wrk with
``BENCH_HTTP_CONNECTIONS`` (16) connections. Besides the rate, each target's CPU (user +
system, from /proc) per request answered. Goals (issue 14): intake alone ≥ 0.5× the bare
endpoint, embedded ≥ 0.25×.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bench import wrk
from bench.common import (
    ROOT,
    context_switches,
    cpu_split,
    embedded_stack,
    free_port,
    intake_process,
    make_key,
    quick,
    record,
    row,
    serving_pid,
    store_delta,
    store_writes,
    wait_http,
)

SECONDS = quick(10, 5, "BENCH_HTTP_SECONDS")
CONNECTIONS = int(quick(16, 16, "BENCH_HTTP_CONNECTIONS"))
WARM_UP = 2.0
INTAKE_FILE = "yingji_intake"


@contextmanager
def bare(key: str = "") -> Iterator[str]:
    """The bare endpoint on a free port; its base URL. With ``key``, it checks that key."""
    port = free_port()
    env = {**os.environ, "BENCH_BARE_KEY": key}
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.bare_app", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(30)


def measure(name: str, base: str, key: str, database: str = "") -> dict[str, Any]:
    """Warm up, then one wrk run; the figures are recorded under ``name``. With ``database``,
    also how long intake's writes held its SQLite file (the one writer slot of that file)."""
    url = base + "/v1/incidents"
    wrk.post_incidents(url, key, WARM_UP, CONNECTIONS)
    before = store_writes(base, database) if database else {}
    pid = serving_pid(base)
    (user_before, system_before), switches_before = cpu_split(pid), context_switches(pid)
    figures = wrk.post_incidents(url, key, SECONDS, CONNECTIONS)
    user_after, system_after = cpu_split(pid)
    answered = max(figures["requests"], 1)
    cpu = user_after - user_before + system_after - system_before
    figures["cpu_ms_per_request"] = round(1000 * cpu / answered, 3)
    figures["system_ms_per_request"] = round(1000 * (system_after - system_before) / answered, 3)
    figures["switches_per_request"] = round((context_switches(pid) - switches_before) / answered, 1)
    figures["cores"] = round(cpu / figures["seconds"], 2)
    if database:
        after = store_writes(base, database)
        figures["store"] = store_delta(before, after, figures["seconds"])
    record(name, connections=CONNECTIONS, **figures)
    return figures


def _figure(f: dict[str, Any]) -> str:
    errors = f" ({f['not_created']} not 201)" if f["not_created"] else ""
    text = (
        f"{f['req_per_s']:,.0f} req/s, p50 {f['p50_ms']} ms, p99 {f['p99_ms']} ms{errors};"
        f" {f['cpu_ms_per_request']} ms of CPU a request ({f['system_ms_per_request']} in the"
        f" kernel; {f['switches_per_request']} thread switches; {f['cores']} cores)"
    )
    store = f.get("store")
    if store:
        text += (
            f"; intake's file held {store['held_share']:.0%} of the time,"
            f" {store['held_ms_per_write']} ms a write"
        )
    return text


def main() -> None:
    key = f"bench-{uuid.uuid4().hex}"
    with bare(key) as url:
        base = measure("http.baseline_bare_fastapi_key_check", url, key)
    with intake_process(ROOT) as (url, operator):
        alone = measure("http.intake_process_alone", url, operator, INTAKE_FILE)
    with embedded_stack() as stack:
        embedded = measure(
            "http.embedded_all_four",
            stack.url,
            make_key(stack.url, stack.admin_key),
            INTAKE_FILE,
        )
    ceiling = base["req_per_s"] or 1.0
    ratio_alone = round(alone["req_per_s"] / ceiling, 3)
    ratio_embedded = round(embedded["req_per_s"] / ceiling, 3)
    record(
        "http.ratios",
        intake_alone_vs_bare=ratio_alone,
        embedded_vs_bare=ratio_embedded,
        goal="intake alone >= 0.5, embedded >= 0.25",
    )
    bare_text = f"bare FastAPI, same model + key check: {_figure(base)}"
    row(
        f"intake `POST /v1/incidents`, intake process alone (SQLite), wrk {CONNECTIONS} conns, "
        f"{SECONDS:g} s",
        _figure(alone),
        bare_text,
        f"**{ratio_alone:.2f}×**",
        "≥ 0.5×",
    )
    row(
        "same, embedded process with all four services",
        _figure(embedded),
        "same bare run",
        f"**{ratio_embedded:.2f}×**",
        "≥ 0.25×",
    )


if __name__ == "__main__":
    main()
