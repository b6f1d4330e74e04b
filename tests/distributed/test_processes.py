"""The distributed mode: four `yingji run` processes on the real RabbitMQ."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.distributed import SERVICES, distributed_stack

pytestmark = [pytest.mark.bus, pytest.mark.e2e]


def test_the_front_documents_every_service(tmp_path: Path, amqp_url: str) -> None:
    """The front's /openapi.json (served by reporting, as the proxy routes it) holds every
    process's own paths, as in compose (YINGJI_OPENAPI_PEERS)."""
    with distributed_stack(tmp_path) as stack:
        merged = httpx.get(stack.url_for("/openapi.json"), timeout=30).json()
        assert sorted(merged["info"]["x-yingji-services"]) == sorted(SERVICES)
        assert "x-yingji-missing" not in merged["info"]
        for name in SERVICES:
            own = httpx.get(
                stack.processes[name].url + "/openapi.json",
                params={"scope": "process"},
                timeout=30,
            ).json()
            assert own["paths"], name
            assert set(own["paths"]) <= set(merged["paths"]), name
        assert {
            "/v1/incidents",
            "/v1/warnings",
            "/v1/dispatches",
            "/v1/timeline/{incident_id}",
        } <= set(merged["paths"])


def test_each_service_runs_alone_with_its_own_database(tmp_path: Path, amqp_url: str) -> None:
    with distributed_stack(tmp_path) as stack:
        for name in SERVICES:
            proc = stack.processes[name]
            ready = stack.request("GET", "/readyz")
            assert ready.status_code == 200
            assert proc.process is not None and proc.process.poll() is None
        databases = {p.name for p in (tmp_path / "data" / "store").iterdir() if p.is_dir()}
        assert {f"yingji_{name}" for name in SERVICES} <= databases
        me = stack.request("GET", "/v1/me")
        assert me.json()["role"] == "admin"
        # A key made through one service authenticates at every other one.
        made = stack.request("POST", "/v1/admin/keys", json={"role": "operator", "name": "值班"})
        key = made.json()["key"]
        for name in SERVICES:
            who = stack.processes[name]
            answer = httpx.get(who.url + "/v1/me", headers={"Authorization": f"Bearer {key}"})
            assert answer.json()["role"] == "operator", name
