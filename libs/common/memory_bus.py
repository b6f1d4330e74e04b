"""kombu's in-memory transport, with consumers that sleep until a message arrives.

kombu's memory transport is polled: a consumer with nothing to read sleeps ``polling_interval``
and looks again, so an idle embedded process kept waking up a hundred times a second per
consumer. Here every put into any in-memory queue announces itself on one condition, and a
consumer with nothing to read waits on it (up to its timeout) instead of sleeping a fixed step.
Queues, exchanges and bindings stay kombu's own (process-global), so ordering, acks, requeues and
dead-lettering behave exactly as on the plain memory transport.
"""

from __future__ import annotations

import threading
import time
from queue import Empty
from typing import Any

from kombu.transport import memory

_ARRIVALS = threading.Condition()
_generation = 0


def announce() -> None:
    """Wake every consumer waiting for a message (something was put, or a consumer must stop)."""
    global _generation
    with _ARRIVALS:
        _generation += 1
        _ARRIVALS.notify_all()


def _seen() -> int:
    with _ARRIVALS:
        return _generation


def _wait_for_news(seen: int, seconds: float) -> bool:
    """Wait until something is announced after ``seen`` or ``seconds`` pass; True if woken."""
    with _ARRIVALS:
        if _generation == seen:
            _ARRIVALS.wait(seconds)
        return _generation != seen


class WakingChannel(memory.Channel):
    """A memory channel whose puts wake waiting consumers."""

    def _put(self, queue: str, message: Any, **kwargs: Any) -> None:
        super()._put(queue, message, **kwargs)
        announce()

    def _put_fanout(
        self, exchange: str, message: Any, routing_key: Any = None, **kwargs: Any
    ) -> None:
        super()._put_fanout(exchange, message, routing_key, **kwargs)
        announce()


class WakingMemoryTransport(memory.Transport):
    """The memory transport whose ``drain_events`` blocks instead of polling."""

    Channel = WakingChannel

    def drain_events(self, connection: Any, timeout: Any = None) -> Any:  # type: ignore[override]
        """Deliver one message, waiting for one to arrive until ``timeout`` (TimeoutError).

        A wake that brings nothing for this connection (a put elsewhere, or a consumer being
        stopped) also ends the wait with TimeoutError, so the caller can look at its own state.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        cycle: Any = self.cycle
        woken = False
        while True:
            # Read the generation before looking: a put between the look and the wait changes it,
            # so the wait returns at once instead of missing the message.
            seen = _seen()
            try:
                cycle.get(self._deliver, timeout=timeout)
                return
            except Empty:
                pass
            remaining = None if deadline is None else deadline - time.monotonic()
            if woken or (remaining is not None and remaining <= 0):
                raise TimeoutError()
            woken = _wait_for_news(seen, 60.0 if remaining is None else remaining)
