"""Two replicas of a service on the real broker share the work, and nothing is done twice.

Two intake processes take the requests and both run outbox relays over the same database; two
reporting processes compete for the same queues. Every incident is published exactly once (the
relays' leases) and applied exactly once (competing consumers, idempotent handlers), and both
reporting replicas did part of the work.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.bodies import incident_body
from tests.support.distributed import ServiceProcess, distributed_stack, wait_process_ready

pytestmark = [pytest.mark.bus, pytest.mark.e2e]
INCIDENTS = 40


def _metric(proc: ServiceProcess, name: str, **labels: str) -> float:
    text = httpx.get(proc.url + "/metrics", timeout=10).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def _incident(township: str, n: int) -> dict[str, object]:
    return incident_body(datetime.now(UTC), township, title=f"副本测试 {n}")


def test_two_replicas_share_work_without_duplicates(tmp_path: Path, amqp_url: str) -> None:
    with distributed_stack(tmp_path) as stack:
        intake_2 = stack.add_replica("intake")
        reporting_2 = stack.add_replica("reporting")
        for proc in (intake_2, reporting_2):
            wait_process_ready(proc)
        intakes = [stack.processes["intake"], intake_2]
        reportings = [stack.processes["reporting"], reporting_2]
        headers = {"Authorization": f"Bearer {stack.admin_key}"}
        operator = httpx.post(
            intakes[0].url + "/v1/admin/keys",
            headers=headers,
            json={"role": "operator", "name": "值班"},
        ).json()["key"]
        auth = {"Authorization": f"Bearer {operator}"}
        ids = []
        for n in range(INCIDENTS):
            target = intakes[n % 2]
            made = httpx.post(
                target.url + "/v1/incidents",
                headers=auth,
                json=_incident("349901001" if n % 3 else "349901101", n),
                timeout=30,
            )
            assert made.status_code == 201, made.text
            ids.append(made.json()["id"])

        deadline = time.monotonic() + 90
        missing = list(ids)
        while missing and time.monotonic() < deadline:
            missing = [
                i
                for i in missing
                if httpx.get(
                    reportings[0].url + f"/v1/reports?incident_id={i}", headers=auth, timeout=10
                ).status_code
                != 200
            ]
            time.sleep(0.5)
        assert missing == [], f"{len(missing)} incidents never reached reporting"

        published = sum(
            _metric(p, "yingji_bus_published_total", event_type="incident_reported")
            for p in intakes
        )
        assert published == INCIDENTS, "an incident was published twice (or not at all)"
        assert all(
            _metric(p, "yingji_bus_published_total", event_type="incident_reported") > 0
            for p in intakes
        ), "one intake relay did all the publishing"

        # The first-report handler: its timeline entry may already be written by the timeline
        # consumer (then that one counts a duplicate), but the incident and its deadlines are
        # written here once, so each delivery is applied exactly once across the replicas.
        queue = "evt-intake-incident_reported--reporting.on_incident_reported"
        applied = [
            _metric(p, "yingji_bus_consumed_total", queue=queue, outcome="applied")
            for p in reportings
        ]
        duplicates = [
            _metric(p, "yingji_bus_consumed_total", queue=queue, outcome="duplicate")
            for p in reportings
        ]
        assert sum(applied) == INCIDENTS, applied
        assert sum(duplicates) == 0
        assert all(a > 0 for a in applied), f"one replica did all the work: {applied}"
        for incident_id in ids[:10]:
            timeline = httpx.get(
                reportings[1].url + f"/v1/timeline/{incident_id}", headers=auth, timeout=10
            ).json()["items"]
            reported = [e for e in timeline if e["event_type"] == "incident_reported"]
            assert len(reported) == 1
