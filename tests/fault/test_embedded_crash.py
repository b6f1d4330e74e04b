"""The embedded mode (`yingji up`: one process, memory bus, embedded store) killed with SIGKILL
in the middle of a drill and started again: everything acknowledged is present everywhere
afterwards. The memory bus forgets what it held when the process dies; the outbox journal
(libs/common/outbox.py, decision 0002) republishes what was sent in the last ten minutes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.fault.checker import ACKNOWLEDGED, INCIDENT, Verdict, check, settle
from tests.fault.support import Workload
from tests.support.distributed import ROOT, free_port

pytestmark = [pytest.mark.fault, pytest.mark.timeout(900)]


class Embedded:
    """One `yingji up` process."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.admin_key = f"test-admin-{uuid.uuid4().hex}"
        self.log = tmp_path / "yingji-up.log"
        self.data = tmp_path / "data"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {
            **os.environ,
            "YINGJI_BOOTSTRAP_ADMIN_KEY": self.admin_key,
            "YINGJI_LOG_FORMAT": "json",
            "YINGJI_RELAY_INTERVAL_SECONDS": "0.2",
            "YINGJI_TIMER_INTERVAL_SECONDS": "1",
        }
        for name in ("YINGJI_BUS_URL", "YINGJI_MONGO_URL"):
            env.pop(name, None)
        handle = open(self.log, "ab")  # noqa: SIM115 - the child keeps it open
        self.process = subprocess.Popen(
            [
                sys.executable,
                *("-m", "yingji.cli", "up"),
                *("--port", str(self.port), "--data-dir", str(self.data)),
            ],
            cwd=ROOT,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"yingji up not ready:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


def test_sigkill_of_the_embedded_platform_mid_drill(tmp_path: Path) -> None:
    """Killed after a third and after two thirds of the target were acknowledged; the workload
    then runs until the target or its time budget, whatever the machine's speed."""
    target, budget = 40, 90.0
    platform = Embedded(tmp_path)
    platform.start()
    load = Workload(platform.url, platform.admin_key, seed=606, rate=15, duration=budget)
    try:
        load.start()
        for share in (1, 2):
            load.until_acknowledged(target * share // 3, budget / 3)
            platform.kill()
            platform.start()
        load.until_acknowledged(target, budget / 3)
        load.stop()
        outcomes = load.join()
        settle([platform.url + "/metrics"], None, timeout=240)
        # The memory bus cannot be inspected from outside: check until it passes (bounded).
        verdict: Verdict | None = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            verdict = check(outcomes, load.get)
            if verdict.ok:
                break
            time.sleep(1)
        assert verdict is not None
        print(verdict.report())
        assert verdict.ok, verdict.report()
        assert verdict.requests[INCIDENT][ACKNOWLEDGED] >= 1, "nothing acknowledged to check"
        assert "outbox_journal_replayed" in platform.log.read_text()
    finally:
        load.stop()
        load.close()
        platform.stop()
