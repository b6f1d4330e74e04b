"""The large fault run: the distributed stack (four `yingji run` processes, the real RabbitMQ in a
fresh vhost) under the seeded drill for minutes, with many faults, then the checker.

    .venv/bin/python bench/fault_run.py                      # about 4,000 requests, ~8 minutes
    .venv/bin/python bench/fault_run.py --rate 20 --duration 260 --seed 8 --json out.json

Faults, at seconds into the run (scaled to --duration): broker stopped and started (5 s), every
service SIGKILLed and restarted (twice for intake and reporting), the broker down for a full
minute while intake keeps answering 201, a short stop during the catch-up, and at the end every
event the run produced published again (duplicate deliveries). Prints the checker's figures
(requests acknowledged/rejected/indeterminate; effects delivered/lost/duplicated/unexpected).
Starts a RabbitMQ node of its own (tests/support/rabbitmq.py: own name, ports and data in a
temporary folder) and stops and starts that node's application; the machine's broker is never
touched. Needs `rabbitmq-server` installed.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fault.checker import INCIDENT, check, settle  # noqa: E402
from tests.fault.support import (  # noqa: E402
    Workload,
    audit_envelopes,
    publish_again,
)
from tests.support.distributed import DistributedStack, distributed_stack  # noqa: E402
from tests.support.rabbitmq import OwnNode, own_node  # noqa: E402


def schedule(
    stack: DistributedStack, node: OwnNode, duration: float
) -> list[tuple[float, str, Callable[[], None]]]:
    """The faults, at fractions of the run (the long outage is a full minute regardless)."""

    def kill(name: str) -> Callable[[], None]:
        def run() -> None:
            stack.processes[name].kill()
            stack.processes[name].start()
            stack.wait_ready([name], timeout=90)

        return run

    def stop() -> None:
        node.stop_app()

    def start() -> None:
        node.start_app()

    at = duration / 260
    return [
        (20 * at, "broker stop", stop),
        (25 * at, "broker start", start),
        (40 * at, "SIGKILL intake", kill("intake")),
        (55 * at, "SIGKILL reporting", kill("reporting")),
        (70 * at, "SIGKILL dispatch", kill("dispatch")),
        (85 * at, "SIGKILL warning", kill("warning")),
        (100 * at, "broker stop (one minute)", stop),
        (100 * at + 60, "broker start", start),
        (190 * at, "broker stop", stop),
        (195 * at, "broker start", start),
        (210 * at, "SIGKILL reporting", kill("reporting")),
        (230 * at, "SIGKILL intake", kill("intake")),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=16.0, help="drill operations per second")
    parser.add_argument("--duration", type=float, default=260.0, help="seconds (>= 200)")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    if args.duration < 200:
        parser.error("--duration must be at least 200 s (the outage alone is a minute)")
    started = time.monotonic()
    log: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        own_node() as node,
        node.restored(),
        distributed_stack(Path(tmp), broker=node) as stack,
    ):
        load = Workload.on(stack, seed=args.seed, rate=args.rate, duration=args.duration)
        load.start()
        for offset, what, action in schedule(stack, node, args.duration):
            load.at(offset)
            t0 = time.monotonic()
            action()
            log.append(
                {"at_s": round(offset, 1), "fault": what, "took_s": round(time.monotonic() - t0, 1)}
            )
            print(f"{offset:7.1f} s  {what}", flush=True)
        outcomes = load.join()
        urls = [p.url + "/metrics" for p in stack.processes.values()]
        t0 = time.monotonic()
        settled = settle(urls, (stack.broker, stack.vhost), timeout=600)
        settle_after_run = time.monotonic() - t0
        first = check(outcomes, load.get)
        envelopes = audit_envelopes(load.get, limit=1_000_000)
        publish_again(stack.amqp_url, envelopes)
        t0 = time.monotonic()
        replayed = settle(urls, (stack.broker, stack.vhost), timeout=600)
        settle_after_replay = time.monotonic() - t0
        verdict = check(outcomes, load.get)
        load.close()
    during = [o for o in outcomes if o.operation == INCIDENT]
    figures = {
        "command": " ".join(["bench/fault_run.py", *sys.argv[1:]]),
        "machine": f"{platform.node()} {platform.machine()} {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}",
        "requests": len(outcomes),
        "incidents_posted": len(during),
        "faults": log,
        "events_replayed_as_duplicates": len(envelopes),
        "settle_after_run_s": round(settle_after_run, 1),
        "settle_after_replay_s": round(settle_after_replay, 1),
        "before_replay_ok": first.ok,
        "dead_letters_after_run": settled.get("dead_letters"),
        "dead_letters_after_replay": replayed.get("dead_letters"),
        "wall_clock_s": round(time.monotonic() - started, 1),
        **verdict.summary(),
        "problems": verdict.problems[:50],
    }
    print(verdict.report())
    print(json.dumps(figures, indent=2, ensure_ascii=False))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, ensure_ascii=False))
    clean = not settled.get("dead_letters") and not replayed.get("dead_letters")
    return 0 if verdict.ok and first.ok and clean else 1


if __name__ == "__main__":
    raise SystemExit(main())
