"""Idle cost of the embedded process: cores used by ``yingji up`` with no requests at all.

Starts ``yingji up`` on a fresh data directory, waits until /readyz answers 200, lets start-up
settle, then samples the process's CPU time (user + system, all threads, from /proc) over a
window. A bare sleeping Python process is measured over the same window in the same run as the
baseline. Run: ``.venv/bin/python bench/idle.py [--seconds 30]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.distributed import free_port  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (every thread)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    """Until /readyz says 200 (fails if the process exits first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"yingji up exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit("yingji up was not ready in time")


def measure(seconds: float, settle: float) -> dict[str, float]:
    """Cores used by the idle embedded process and by a sleeping Python process, same window."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="yingji-idle-") as data:
        env = {
            **os.environ,
            "YINGJI_DATA_DIR": data,
            "YINGJI_PORT": str(port),
            "YINGJI_LOG_LEVEL": "warning",
        }
        env.pop("YINGJI_MONGO_URL", None)
        env.pop("YINGJI_BUS_URL", None)
        yingji = subprocess.Popen(
            [sys.executable, "-m", "yingji.cli", "up"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        baseline = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(100000)"],
            stdout=subprocess.DEVNULL,
        )
        try:
            wait_ready(f"http://127.0.0.1:{port}", yingji)
            time.sleep(settle)
            start = time.monotonic()
            used = (cpu_seconds(yingji.pid), cpu_seconds(baseline.pid))
            time.sleep(seconds)
            wall = time.monotonic() - start
            after = (cpu_seconds(yingji.pid), cpu_seconds(baseline.pid))
        finally:
            for process in (yingji, baseline):
                process.terminate()
            for process in (yingji, baseline):
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
    return {
        "wall_s": round(wall, 1),
        "yingji_cores": (after[0] - used[0]) / wall,
        "baseline_cores": (after[1] - used[1]) / wall,
    }


def main() -> None:
    """Measure and print the figures."""
    options = argparse.ArgumentParser(description=__doc__)
    options.add_argument("--seconds", type=float, default=30.0, help="sampling window")
    options.add_argument("--settle", type=float, default=5.0, help="wait after ready")
    args = options.parse_args()
    figures = measure(args.seconds, args.settle)
    tick = 1 / TICKS
    baseline = max(figures["baseline_cores"], tick / figures["wall_s"])
    print(
        f"[idle] window={figures['wall_s']}s "
        f"yingji_cores={figures['yingji_cores']:.4f} "
        f"baseline_cores={figures['baseline_cores']:.4f} "
        f"excess_cores={figures['yingji_cores'] - figures['baseline_cores']:.4f} "
        f"ratio={figures['yingji_cores'] / baseline:.1f}x "
        f"(CPU time resolution {tick:.2f}s; a baseline of 0 ticks counts as one tick)",
        flush=True,
    )


if __name__ == "__main__":
    main()
