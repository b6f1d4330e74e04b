"""``wrk`` (a C load generator) driving ``POST /v1/incidents`` with bench/wrk/incidents.lua.

wrk costs a few hundredths of a core, so on two shared cores the server, not the generator,
is what the figure measures (the Python generator held the bare baseline near 500 req/s).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).with_name("wrk") / "incidents.lua"


def available() -> bool:
    """Whether wrk is installed (scripts/install-ops-tools installs it)."""
    return shutil.which("wrk") is not None


def post_incidents(
    url: str,
    key: str = "",
    seconds: float = 10.0,
    connections: int = 8,
    threads: int = 1,
    exercise: bool = False,
) -> dict[str, Any]:
    """Run wrk against ``url`` (…/v1/incidents); requests, req/s of 201s, latency percentiles."""
    if not available():
        raise RuntimeError("wrk is not installed: run scripts/install-ops-tools (as root)")
    env = {**os.environ, "BENCH_KEY": key, "BENCH_EXERCISE": "true" if exercise else "false"}
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "30s",
            "-s",
            str(SCRIPT),
            url,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 120,
    )
    line = next(
        (ln for ln in out.stdout.splitlines() if ln.startswith("BENCH_JSON ")),
        None,
    )
    if line is None:
        raise RuntimeError(f"wrk printed no figures:\n{out.stdout}\n{out.stderr}")
    figures: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
    counts = figures.pop("statuses")
    figures["created"] = counts.pop("created")
    seconds = figures["seconds"]
    figures["req_per_s"] = round(figures["created"] / seconds, 1) if seconds else 0.0
    figures["not_created"] = {name: n for name, n in counts.items() if n}
    return figures
