"""Fixtures for the warning service: a stack with a chosen county and rules, and an event probe."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from libs.common.app import Runtime, create_app
from libs.common.clock import ManualClock
from libs.common.county import County, load_county
from libs.common.events import EventEnvelope, make_event, registered_event_types
from libs.common.service import RelayParts, ServiceContext, ServiceSpec, subscribe
from libs.common.settings import Settings
from services.warning.rules import WarningRules, load_rules
from services.warning.service import build_spec, use_cases
from services.warning.usecases import WarningUseCases
from tests.support.stack import DEFAULT_START, Stack, make_keys, reset_memory_bus

TOWNSHIP_A = "349901001"  # 城关镇, key township_a
TOWNSHIP_B = "349901101"  # 青石镇, key township_b
TOWNSHIP_C = "349901102"  # 柳湾镇, no key in the stack


class Probe:
    """Records every warning event that reaches the bus (a stand-in subscriber)."""

    def __init__(self) -> None:
        self.events: list[EventEnvelope] = []
        self._lock = threading.Lock()

    def spec(self) -> ServiceSpec:
        """A service that subscribes to every warning event type."""

        def record(envelope: EventEnvelope) -> bool:
            with self._lock:
                self.events.append(envelope)
            return True

        def subscriptions(ctx: ServiceContext) -> list[Any]:
            return [
                subscribe("warning", event_type, "probe", record)
                for _, event_type in registered_event_types("warning")
            ]

        return ServiceSpec(
            name="probe",
            build_router=lambda ctx: __import__("fastapi").APIRouter(),
            # It publishes nothing: no outbox, no journal.
            relay_parts=lambda ctx: RelayParts(sources=()),
            subscriptions=subscriptions,
        )

    def of(self, event_type: str) -> list[dict[str, Any]]:
        """Payloads of one type, in arrival order."""
        with self._lock:
            return [e.payload for e in self.events if e.event_type == event_type]

    def envelopes(self, event_type: str) -> list[EventEnvelope]:
        """Envelopes of one type."""
        with self._lock:
            return [e for e in self.events if e.event_type == event_type]


class WarningStack(Stack):
    """The test stack plus the warning service object and the probe."""

    probe: Probe

    @property
    def service(self) -> WarningUseCases:
        """The running warning service's use cases."""
        return use_cases(self.ctx("warning"))

    def now(self) -> datetime:
        """The manual clock's time."""
        return self.clock.now()

    def warning_body(self, **overrides: Any) -> dict[str, Any]:
        """A valid yellow rainstorm warning for townships A and B."""
        body: dict[str, Any] = {
            "hazard": "rainstorm",
            "level": 3,
            "headline": "安河县暴雨黄色预警",
            "description": "预计未来6小时城关镇、青石镇降雨量将达50毫米以上。",
            "instruction": "注意防范，转移低洼地带人员。",
            "areas": [TOWNSHIP_A, TOWNSHIP_B],
            "expires": (self.now() + timedelta(hours=6)).isoformat(),
        }
        body.update(overrides)
        return body

    def without_enterprises(self) -> None:
        """Close every enterprise of the register (the demo county seeds some): a warning then
        reaches the townships (and villages) only."""
        listed = self.call("GET", "/v1/enterprises", params={"limit": 200})
        assert listed.status_code == 200, listed.text
        for enterprise in listed.json()["items"]:
            path = f"/v1/enterprises/{enterprise['id']}/close"
            closed = self.call("POST", path, json={"reason": "测试：仅送达乡镇"})
            assert closed.status_code == 200, closed.text
        self.settle()

    def issue(self, who: str = "operator", **overrides: Any) -> Any:
        """POST a warning; returns the response."""
        return self.call("POST", "/v1/warnings", who=who, json=self.warning_body(**overrides))

    def incident_event(self, event_type: str, **payload: Any) -> EventEnvelope:
        """An intake event as intake would publish it."""
        return make_event(
            self.clock, "intake", event_type, payload, correlation_id=payload["incident_id"]
        )

    def report_incident(
        self,
        incident_id: str,
        category: str = "flood",
        grade: int = 2,
        township: str = TOWNSHIP_A,
        **extra: Any,
    ) -> EventEnvelope:
        """Deliver an ``incident_reported`` to the warning service's handler; returns it."""
        now = self.now()
        envelope = self.incident_event(
            "incident_reported",
            incident_id=incident_id,
            township_code=township,
            category=category,
            title=f"{category} at {township}",
            grade=grade,
            occurred_at=now,
            discovered_at=now,
            reported_at=now,
            **extra,
        )
        self.service.on_incident(envelope, envelope.payload)
        return envelope


@contextmanager
def warning_stack(
    tmp_path: Path,
    county: County | None = None,
    rules: WarningRules | None = None,
    start: datetime = DEFAULT_START,
    wake_on_issue: bool | None = None,
    **settings: Any,
) -> Iterator[WarningStack]:
    """All services in-process (the warning service with ``rules``), a probe, a manual clock;
    ``settings`` override process settings. An issued warning wakes the delivery worker when
    ``wake_on_issue`` (by default only with a short worker interval)."""
    from yingji.platform import load_specs

    reset_memory_bus()
    clock = ManualClock(start)
    config = Settings(
        data_dir=tmp_path / f"data-{uuid.uuid4().hex[:6]}",
        bus_url="memory://",
        mongo_url="",
        timer_interval_seconds=3600,
        handler_backoff_seconds=[0.01, 0.02, 0.05],
        **settings,
    )
    probe = Probe()
    # A long worker interval and no wake on issue: the tests call the delivery job
    # themselves, deterministically (unless their rules ask for a short interval).
    chosen = rules or load_rules().with_changes(delivery={"worker_interval_seconds": 3600})
    wake = (
        chosen.delivery.worker_interval_seconds < 3600 if wake_on_issue is None else wake_on_issue
    )
    specs: Sequence[ServiceSpec] = [
        build_spec(chosen, wake_on_issue=wake) if spec.name == "warning" else spec
        for spec in load_specs()
    ]
    runtime = Runtime(config, [*specs, probe.spec()], clock=clock, county=county or load_county())
    app = create_app(runtime)
    with TestClient(app, raise_server_exceptions=False) as client:
        stack = WarningStack(runtime=runtime, client=client, clock=clock, keys=make_keys(runtime))
        stack.probe = probe
        yield stack
    reset_memory_bus()


@pytest.fixture
def wstack(tmp_path: Path) -> Iterator[WarningStack]:
    """The demo county (one log channel) with the default rules."""
    with warning_stack(tmp_path) as running:
        yield running


@pytest.fixture
def make_stack(tmp_path: Path) -> Callable[..., Any]:
    """Build a stack with a custom county or rules: ``with make_stack(county=...) as s:``."""

    def factory(**kwargs: Any) -> Any:
        return warning_stack(tmp_path, **kwargs)

    return factory


def county_with_channels(channels: list[dict[str, Any]], villages: bool = True) -> County:
    """The demo county with other warning channels; without its villages when not
    ``villages`` (only the townships are reached: tests of one delivery's retries)."""
    data = load_county().model_dump()
    if not villages:
        data["townships"] = [{**t, "villages": []} for t in data["townships"]]
    return County.model_validate({**data, "warning_channels": channels})
