"""Runs a service's periodic jobs on one thread; jobs read time from the injectable clock."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import structlog

from libs.common import metrics
from libs.common.service import Timer


class TimerThread(threading.Thread):
    """Calls each timer's job every ``interval_seconds``; a failing job is logged and retried."""

    def __init__(self, service: str, timers: Sequence[Timer]) -> None:
        super().__init__(name=f"yingji-timers-{service}", daemon=True)
        self.service = service
        self.timers = list(timers)
        self._stopping = threading.Event()
        # Set once every job has run once (the pass at start), or on stop: tests wait for it so
        # that pass never races the jobs they run themselves.
        self.first_pass_done = threading.Event()
        self._next = {t.name: 0.0 for t in self.timers}
        self.log = structlog.get_logger().bind(service=service, component="timers")

    def stop(self) -> None:
        """Stop after the job in hand."""
        self._stopping.set()
        self.first_pass_done.set()

    def run_due(self) -> None:
        """Run every job whose interval has passed."""
        now = time.monotonic()
        for timer in self.timers:
            if now < self._next[timer.name]:
                continue
            self._next[timer.name] = now + timer.interval_seconds
            try:
                timer.run()
                metrics.TIMER_RUNS.labels(self.service, timer.name, "ok").inc()
            except Exception as exc:
                metrics.TIMER_RUNS.labels(self.service, timer.name, "error").inc()
                self.log.error("timer_failed", timer=timer.name, error=repr(exc))

    def run(self) -> None:
        """Loop until stopped, sleeping until the next job is due (not polling)."""
        while not self._stopping.is_set():
            self.run_due()
            self.first_pass_done.set()
            self._stopping.wait(self._until_next_due())

    def _until_next_due(self) -> float:
        """Seconds until the earliest job is due (at least a little, at most a minute)."""
        if not self._next:
            return 60.0
        return min(60.0, max(0.05, min(self._next.values()) - time.monotonic()))
