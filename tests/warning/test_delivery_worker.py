"""The delivery worker runs its job when woken, again at once after a full batch, and stops
cleanly; its interval is an hour here, so only a wake can make it run within the test."""

from __future__ import annotations

import threading

import pytest
import structlog

from services.warning.service import DeliveryWorker

pytestmark = pytest.mark.unit

HOUR = 3600.0


def test_a_wake_runs_the_job_and_a_full_batch_runs_it_again() -> None:
    calls: list[int] = []
    second_run = threading.Event()
    results = iter([10, 0])  # a full batch (10), then nothing left

    def job() -> int:
        calls.append(1)
        if len(calls) == 2:
            second_run.set()
        return next(results, 0)

    worker = DeliveryWorker(job, lambda: False, HOUR, 10, structlog.get_logger())
    worker.start()
    try:
        assert calls == []  # nothing runs before a wake or the (hour-long) interval
        worker.wake()
        assert second_run.wait(10), "the full batch did not make the worker run again"
    finally:
        worker.stop()
    assert len(calls) == 2
    assert not worker.is_alive()


def test_a_failing_job_does_not_stop_the_worker() -> None:
    failed, ran = threading.Event(), threading.Event()

    def job() -> int:
        if not failed.is_set():
            failed.set()
            raise RuntimeError("channel plug-in bug")
        ran.set()
        return 0

    worker = DeliveryWorker(job, lambda: True, HOUR, 10, structlog.get_logger())
    worker.start()
    try:
        worker.wake()
        assert failed.wait(10)
        worker.wake()
        assert ran.wait(10), "the worker stopped after a failing run"
    finally:
        worker.stop()
