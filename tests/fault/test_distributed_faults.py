"""The distributed mode under faults: four `yingji run` processes on a real RabbitMQ while
townships post incidents and follow-ups and operators issue warnings (the seeded drill).

The broker is the session's own RabbitMQ node (`own_rabbitmq`, tests/support/rabbitmq.py): the
scenarios stop and start it, so they never touch the machine's broker. One stack serves the whole
module; every scenario adds its requests to one ledger and the checker (tests/fault/checker.py)
judges the whole ledger after each scenario settles. Pass condition everywhere: lost = 0,
duplicated = 0, unexpected = 0, with at least one request of the scenario acknowledged.

Each workload runs until enough incidents are acknowledged or its time budget ends, and faults
are injected at shares of that count, so a slow machine sends fewer requests but meets the same
faults; nothing asserts on throughput. CI sizes: the broker is down for at least 10 s in the
outage scenario (a full minute in the large run, `bench/fault_run.py`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from kombu import Connection, Producer

from libs.common.bus import (
    DEAD_LETTER_EXCHANGE,
    PERSISTENT,
    Publisher,
    dead_letter_exchange,
    queue_name,
)
from libs.common.events import EventEnvelope
from libs.common.settings import Settings
from tests.fault.checker import INCIDENT, Verdict, check, outbox_pending, settle
from tests.fault.support import (
    Workload,
    audit_envelopes,
    metric_sum,
    publish_again,
    queue_depth,
)
from tests.support.distributed import ROOT, DistributedStack, distributed_stack
from tests.support.rabbitmq import OwnNode
from yingji.drill import DRILL_PHONE, Outcome

# Bounds, not expectations: on a shared two-core machine a scenario's workload, settling and
# check can take minutes; each still ends within its own budgets.
pytestmark = [pytest.mark.fault, pytest.mark.bus, pytest.mark.timeout(900)]

REPORTING_INCIDENTS = queue_name("intake", "incident_reported", "reporting", "on_incident_reported")


class Ledger:
    """Every request of the module's scenarios, and the workload whose keys read the results."""

    def __init__(self, stack: DistributedStack, node: OwnNode) -> None:
        self.stack = stack
        self.node = node
        self.outcomes: list[Outcome] = []
        self.reader: Workload | None = None
        self.ignored: set[str] = set()
        self.keys: set[str] = set()
        self.expected_dead_letters: dict[str, int] = {}
        # (dead-letter queue, incident id) of a poison message a scenario put there on purpose.
        self.poison: tuple[str, str] | None = None

    def workload(self, **kwargs: object) -> Workload:
        load = Workload.on(self.stack, **kwargs)  # type: ignore[arg-type]
        load.setup()
        self.keys |= set(load.drill.keys.values())
        self.reader = self.reader or load
        return load

    def add(self, outcomes: list[Outcome]) -> None:
        self.outcomes += outcomes

    def settle_and_check(self, timeout: float = 240) -> Verdict:
        urls = [p.url + "/metrics" for p in self.stack.processes.values()]
        started = time.monotonic()
        seen = settle(urls, (self.stack.broker, self.stack.vhost), timeout=timeout)
        # Nothing waits in a dead-letter queue but what a scenario put there on purpose.
        dead = dict(seen["dead_letters"])
        if self.poison is not None:
            queue, poison_id = self.poison
            letters = _dead_letters(self.stack, queue.removesuffix(".dlq"))
            assert letters, "the poison left the dead-letter queue"
            assert all(
                letter["body"]["payload"]["incident_id"] == poison_id  # type: ignore[index]
                for letter in letters
            ), letters
            # A poison message may be dead-lettered more than once after a replay; copies of
            # it are not work lost or doubled, and nothing else may be there.
            dead[queue] = min(dead.get(queue, 0), 1)
        assert dead == self.expected_dead_letters, seen["dead_letters"]
        settled = time.monotonic()
        assert self.reader is not None
        verdict = check(self.outcomes, self.reader.get, ignore_incidents=self.ignored)
        print(verdict.report())
        print(
            f"settled in {settled - started:.1f} s, checked in {time.monotonic() - settled:.1f} s"
        )
        assert verdict.ok, verdict.report()
        return verdict


@pytest.fixture(scope="module")
def ledger(own_rabbitmq: OwnNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledger]:
    env = {"YINGJI_HANDLER_RETRIES": "2", "YINGJI_HANDLER_BACKOFF_SECONDS": "[0.1, 0.3]"}
    tmp = Path(tmp_path_factory.mktemp("distributed-faults"))
    with (
        own_rabbitmq.restored(),
        distributed_stack(tmp, broker=own_rabbitmq, extra_env=env) as stack,
    ):
        book = Ledger(stack, own_rabbitmq)
        yield book
        for load in {book.reader} - {None}:
            load.close()  # type: ignore[union-attr]


def acknowledged_incidents(outcomes: list[Outcome]) -> int:
    """Incidents of one scenario that got a 2xx (a check over none would prove nothing)."""
    return sum(1 for o in outcomes if o.operation == INCIDENT and o.acknowledged)


def metrics_text(stack: DistributedStack) -> list[str]:
    return [httpx.get(p.url + "/metrics", timeout=10).text for p in stack.processes.values()]


def test_duplicate_deliveries_change_nothing(ledger: Ledger) -> None:
    """Every event the run produced is published again: no effect is applied twice."""
    stack = ledger.stack
    load = ledger.workload(seed=404, rate=15, duration=60)
    load.start()
    try:
        load.until_acknowledged(30, 60)
    finally:
        load.stop()
        outcomes = load.join()
        ledger.add(outcomes)
    before = ledger.settle_and_check()
    envelopes = audit_envelopes(load.get)
    duplicates_before = sum(
        metric_sum(t, "yingji_bus_consumed_total", outcome="duplicate") for t in metrics_text(stack)
    )
    # Reporting's audit trail holds at least one `incident_reported` per acknowledged incident.
    assert len(envelopes) >= acknowledged_incidents(outcomes) >= 1
    assert publish_again(stack.amqp_url, envelopes) == len(envelopes)
    after = ledger.settle_and_check()
    duplicates_after = sum(
        metric_sum(t, "yingji_bus_consumed_total", outcome="duplicate") for t in metrics_text(stack)
    )
    assert after.summary() == before.summary()
    # Reporting's audit trail holds each event once, and nothing new was derived from replays.
    assert sorted(e.event_id for e in audit_envelopes(load.get)) == sorted(
        e.event_id for e in envelopes
    )
    # Every replayed delivery reached at least one handler that recognised it as a duplicate.
    assert duplicates_after - duplicates_before >= len(envelopes)
    print(
        f"replayed {len(envelopes)} events; duplicates recognised: "
        f"{duplicates_after - duplicates_before:.0f}"
    )


def test_broker_stopped_and_started_twice(ledger: Ledger) -> None:
    """The broker stopped for 3 s after a third and after two thirds of the target."""
    target, budget = 60, 90.0
    load = ledger.workload(seed=101, rate=12, duration=budget)
    load.start()
    try:
        for share in (1, 2):
            load.until_acknowledged(target * share // 3, budget / 3)
            ledger.node.stop_app()
            time.sleep(3)  # the outage itself: what is accepted meanwhile waits in the outboxes
            ledger.node.start_app()
        load.until_acknowledged(target, budget / 3)
    finally:
        load.stop()
        outcomes = load.join()
        ledger.add(outcomes)
    assert acknowledged_incidents(outcomes) >= 1
    ledger.settle_and_check()


def test_every_process_killed_mid_run_and_restarted(ledger: Ledger) -> None:
    """Each service SIGKILLed and restarted in turn, at shares of the target."""
    stack = ledger.stack
    target, budget = 48, 120.0
    load = ledger.workload(seed=202, rate=12, duration=budget)
    load.start()
    try:
        for share, name in enumerate(("intake", "reporting", "dispatch", "warning"), start=1):
            load.until_acknowledged(target * share // 5, budget / 5)
            stack.processes[name].kill()
            stack.processes[name].start()
            stack.wait_ready([name], timeout=60)
        load.until_acknowledged(target, budget / 5)
    finally:
        load.stop()
        outcomes = load.join()
        ledger.add(outcomes)
    assert acknowledged_incidents(outcomes) >= 1
    ledger.settle_and_check()


def test_broker_down_while_intake_keeps_accepting(ledger: Ledger) -> None:
    """The broker stays down for at least 10 s and until 30 incidents were posted meanwhile
    (or a minute passed); every incident posted meanwhile gets 201 and waits in the outbox."""
    stack = ledger.stack
    load = ledger.workload(seed=303, rate=12, duration=120)
    load.start()
    try:
        load.until_acknowledged(5, 30)
        ledger.node.stop_app()
        down_at = time.monotonic()
        before = load.acknowledged(INCIDENT)
        time.sleep(10)
        load.until_acknowledged(before + 30, 50)
        waiting = outbox_pending(httpx.get(stack.processes["intake"].url + "/metrics").text)
        up_at = time.monotonic()
        ledger.node.start_app()
    finally:
        load.stop()
        outcomes = load.join()
        ledger.add(outcomes)
    during = [
        o for o in outcomes if o.operation == INCIDENT and down_at <= o.started_at <= up_at - 1
    ]
    assert during, "no incident was posted while the broker was down"
    assert all(o.status == 201 for o in during), [o.status for o in during]
    assert waiting, f"intake's outbox held {waiting} events while the broker was down"
    ledger.settle_and_check()


def _dead_letters(stack: DistributedStack, queue: str) -> list[dict[str, object]]:
    response = httpx.get(
        stack.processes["reporting"].url + "/v1/admin/dlq",
        params={"queue": queue, "limit": 50},
        headers={"Authorization": f"Bearer {stack.admin_key}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def _wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def test_poison_message_dead_lettered_visible_and_replayable(ledger: Ledger) -> None:
    """A malformed `incident_reported` in reporting's real queue: retried, dead-lettered while
    the incidents behind it are processed, visible to operators (API and CLI), replayed (and
    back in the dead-letter queue, since it is still invalid); a valid event dead-lettered
    while reporting was down is applied once when replayed."""
    stack = ledger.stack
    load = ledger.workload(seed=505, rate=1, duration=0)
    poison_id = f"poison-{uuid.uuid4().hex[:8]}"
    ledger.ignored.add(poison_id)
    poison = EventEnvelope(
        event_id=str(uuid.uuid4()),
        event_type="incident_reported",
        occurred_at=datetime.now(UTC),
        source="intake",
        correlation_id=poison_id,
        payload={"incident_id": poison_id, "title": "malformed", "township_code": 349901001},
    )
    publisher = Publisher(Settings(bus_url=stack.amqp_url), "intake")
    try:
        publisher.publish([poison])
    finally:
        publisher.close()
    for _ in range(5):
        load.drill.report_incident()
    behind = [o.created_id for o in load.outcomes if o.operation == INCIDENT]
    assert len(behind) == 5 and all(behind)

    def applied(ident: str | None) -> bool:
        return load.get(f"/v1/reports?incident_id={ident}").status_code == 200

    _wait(lambda: all(applied(i) for i in behind), 30, "the incidents behind the poison")
    _wait(lambda: len(_dead_letters(stack, REPORTING_INCIDENTS)) == 1, 30, "the dead letter")
    letter = _dead_letters(stack, REPORTING_INCIDENTS)[0]
    assert letter["body"]["payload"]["incident_id"] == poison_id  # type: ignore[index]
    headers = letter["headers"]
    assert "grade" in headers["x-yingji-dead-letter-reason"]  # type: ignore[index]
    assert headers["x-yingji-attempts"] == 3  # type: ignore[index]
    cli = subprocess.run(
        [sys.executable, "-m", "yingji.cli", "dlq", "list", REPORTING_INCIDENTS],
        cwd=ROOT,
        env={**os.environ, "YINGJI_BUS_URL": stack.amqp_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert poison_id in cli.stdout, cli.stderr

    # A valid event dead-lettered while reporting was down (as x-delivery-limit or a handler
    # that gave up during an outage would): stop reporting, post an incident, move reporting's
    # delivery of it to the dead-letter queue exactly as the consumer does.
    reporting = stack.processes["reporting"]
    reporting.stop()
    load.drill.report_incident()
    valid_id = load.outcomes[-1].created_id
    assert load.outcomes[-1].status == 201 and valid_id
    _wait(lambda: queue_depth(stack, REPORTING_INCIDENTS) >= 1, 30, "the delivery")
    with Connection(stack.amqp_url) as connection:
        channel = connection.channel()
        message = channel.basic_get(REPORTING_INCIDENTS, no_ack=False)
        assert message is not None
        assert json.loads(message.body)["payload"]["incident_id"] == valid_id
        Producer(channel).publish(
            message.body,
            exchange=dead_letter_exchange(),
            routing_key=REPORTING_INCIDENTS,
            delivery_mode=PERSISTENT,
            content_type=message.content_type,
            content_encoding=message.content_encoding,
            headers={"x-yingji-dead-letter-reason": "moved by the fault test (outage)"},
            message_id=message.properties.get("message_id"),
        )
        channel.basic_ack(message.delivery_tag)
    assert DEAD_LETTER_EXCHANGE == "yingji.dlx"
    reporting.start()
    stack.wait_ready(["reporting"], timeout=60)
    _wait(lambda: queue_depth(stack, REPORTING_INCIDENTS) == 0, 30, "reporting to catch up")
    assert not applied(valid_id), "the dead-lettered event was applied without a replay"
    assert len(_dead_letters(stack, REPORTING_INCIDENTS)) == 2

    # The operator replays the queue: the valid event is applied, the poison comes back.
    replay = httpx.post(
        reporting.url + "/v1/admin/dlq/replay",
        json={"queue": REPORTING_INCIDENTS},
        headers={"Authorization": f"Bearer {stack.admin_key}"},
        timeout=30,
    )
    assert replay.json()["moved"] == 2, replay.text
    _wait(lambda: applied(valid_id), 30, "the replayed valid event")

    def poison_back() -> bool:
        letters = _dead_letters(stack, REPORTING_INCIDENTS)
        return len(letters) == 1 and letters[0]["headers"].get("x-yingji-replayed") == 1  # type: ignore[union-attr]

    _wait(poison_back, 30, "the poison back in the dead-letter queue")
    ledger.add(load.outcomes)
    ledger.expected_dead_letters = dict.fromkeys(dead_lettered_poison(stack), 1)
    ledger.poison = (f"{REPORTING_INCIDENTS}.dlq", poison_id)
    ledger.settle_and_check()


def dead_lettered_poison(stack: DistributedStack) -> list[str]:
    """The dead-letter queues holding the poison: every consumer of `incident_reported` that
    validates what it reads (the timeline records any well-formed envelope as received).
    A quorum queue's count in `rabbitmqctl list_queues` is refreshed on a timer, so reporting's
    dead-letter queue, refilled by the replay moments ago, is waited for rather than read once."""
    found: list[str] = []

    def reporting_counted() -> bool:
        depths = stack.broker.queue_depths(stack.vhost)
        found[:] = [q for q, n in depths.items() if n and q.endswith(".dlq")]
        return f"{REPORTING_INCIDENTS}.dlq" in found

    _wait(reporting_counted, 30, "the broker to count the poison in reporting's dead-letter queue")
    print("poison dead-lettered in:", found)
    return found


def test_no_keys_or_phone_numbers_in_the_service_logs(ledger: Ledger) -> None:
    """Every line every process wrote during the scenarios: no API key, no personal phone."""
    logs = {name: proc.log.read_text() for name, proc in ledger.stack.processes.items()}
    assert all(logs.values())
    secrets = {*ledger.keys, ledger.stack.admin_key}
    for name, text in logs.items():
        assert DRILL_PHONE not in text, name
        leaked = [key for key in secrets if key in text]
        assert leaked == [], f"{name} logged API keys"
