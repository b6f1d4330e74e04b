"""Idle cost: the CPU an embedded ``yingji up`` uses with no requests at all.

After start-up settles (``SETTLE`` s), the process's user + system CPU time (``/proc/PID/stat``)
is read at the start and end of ``BENCH_IDLE_SECONDS`` (60; 20 in quick mode); cores = CPU
seconds per wall second. Goal (issue 14): < 0.01 cores (block on the memory bus, don't poll).
"""

from __future__ import annotations

import time

from bench.common import cpu_seconds, embedded_stack, quick, record, row

SECONDS = quick(60, 20, "BENCH_IDLE_SECONDS")
SETTLE = 10.0


def main() -> None:
    with embedded_stack() as stack:
        time.sleep(SETTLE)
        pid = stack.process.pid
        cpu0, wall0 = cpu_seconds(pid), time.monotonic()
        time.sleep(SECONDS)
        cores = (cpu_seconds(pid) - cpu0) / (time.monotonic() - wall0)
    record("idle.embedded", seconds=SECONDS, cores=round(cores, 4), goal="< 0.01")
    row(
        f"idle cost: embedded `yingji up`, no requests, {SECONDS:g} s",
        f"{cores:.3f} cores",
        "—",
        "—",
        "< 0.01 cores",
    )


if __name__ == "__main__":
    main()
