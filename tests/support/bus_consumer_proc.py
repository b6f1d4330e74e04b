"""A consumer in its own process for bus tests: prints each applied event id, once."""

from __future__ import annotations

import signal
import sys
import threading

from libs.common.bus import ConsumerWorker, Subscription
from libs.common.events import EventEnvelope
from libs.common.logging import configure_logging
from libs.common.settings import Settings


def main() -> None:
    """argv: broker URL, handler name. Prints READY, then APPLIED <event_id> lines."""
    url, handler_name = sys.argv[1], sys.argv[2]
    # Logs to stderr: stdout carries only the protocol lines, which a log line written by the
    # consumer thread at the same instant would otherwise run into.
    configure_logging()
    seen: set[str] = set()
    lock = threading.Lock()

    def handle(envelope: EventEnvelope) -> bool:
        with lock:
            if envelope.event_id in seen:
                print(f"DUPLICATE {envelope.event_id}", flush=True)
                return False
            seen.add(envelope.event_id)
        print(f"APPLIED {envelope.event_id}", flush=True)
        return True

    settings = Settings(bus_url=url, handler_backoff_seconds=[0.05])
    worker = ConsumerWorker(
        settings, "busproc", [Subscription("echo", "echo_recorded", handle, handler_name)]
    )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    worker.start()
    worker.ready.wait(30)
    print("READY", flush=True)
    stopped.wait()
    worker.stop()
    worker.join(10)


if __name__ == "__main__":
    main()
