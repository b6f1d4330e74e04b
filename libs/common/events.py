"""The event envelope (modelled on EDXL-DE) and the registry of versioned payload models."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from libs.common.clock import Clock, as_utc


class EventPayload(BaseModel):
    """Base of every payload model; unknown fields from newer producers are kept, not refused."""

    model_config = ConfigDict(extra="allow")


class EventEnvelope(BaseModel):
    """What travels on the bus: the payload plus who, what, when and why."""

    model_config = ConfigDict(extra="ignore")

    event_id: str = Field(description="UUID, unique per event")
    event_type: str = Field(description="snake_case past tense, e.g. incident_reported")
    schema_version: int = Field(default=1, ge=1)
    occurred_at: datetime
    source: str = Field(description="the service that emitted the event")
    correlation_id: str | None = Field(
        default=None, description="the incident or warning id that started the chain"
    )
    causation_id: str | None = Field(default=None, description="the event that caused this one")
    payload: dict[str, Any] = Field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        """The JSON body published on the bus."""
        return self.model_dump(mode="json")


class UnknownEventError(LookupError):
    """No payload model is registered for an event type and version."""


P = TypeVar("P", bound=type[EventPayload])

_REGISTRY: dict[tuple[str, int], type[EventPayload]] = {}
_SOURCES: dict[str, str] = {}


def event_model(source: str, event_type: str, version: int = 1) -> Any:
    """Class decorator registering a payload model for ``(event_type, version)``."""

    def register(model: P) -> P:
        key = (event_type, version)
        if key in _REGISTRY and _REGISTRY[key] is not model:
            raise ValueError(f"event model {key} registered twice")
        known_source = _SOURCES.setdefault(event_type, source)
        if known_source != source:
            raise ValueError(f"{event_type} already belongs to {known_source}")
        _REGISTRY[key] = model
        return model

    return register


def payload_model(event_type: str, version: int = 1) -> type[EventPayload]:
    """The registered model for an event type and version."""
    _load_models()
    try:
        return _REGISTRY[(event_type, version)]
    except KeyError as exc:
        raise UnknownEventError(f"no model for {event_type} v{version}") from exc


def latest_version(event_type: str) -> int:
    """The highest registered version of an event type."""
    _load_models()
    versions = [v for (t, v) in _REGISTRY if t == event_type]
    if not versions:
        raise UnknownEventError(f"no model for {event_type}")
    return max(versions)


def registered_event_types(source: str | None = None) -> list[tuple[str, str]]:
    """``(source, event_type)`` for every registered event type, optionally of one source."""
    _load_models()
    return sorted((s, t) for t, s in _SOURCES.items() if source is None or s == source)


def make_event(
    clock: Clock,
    source: str,
    event_type: str,
    payload: EventPayload | dict[str, Any],
    *,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    version: int | None = None,
    event_id: str | None = None,
) -> EventEnvelope:
    """Build an envelope, validating the payload against its registered model."""
    _load_models()
    if _SOURCES.get(event_type) not in (None, source):
        raise ValueError(f"{source} may not emit {event_type}")
    chosen = version or latest_version(event_type)
    model = payload_model(event_type, chosen)
    if type(payload) is model:
        # Built with the registered model's constructor, so validated already: only dumped.
        validated = payload.model_dump(mode="json")
    else:
        body = payload if isinstance(payload, dict) else payload.model_dump(mode="json")
        validated = model.model_validate(body).model_dump(mode="json")
    return EventEnvelope(
        event_id=event_id or str(uuid.uuid4()),
        event_type=event_type,
        schema_version=chosen,
        occurred_at=as_utc(clock.now()),
        source=source,
        correlation_id=correlation_id,
        causation_id=causation_id,
        payload=validated,
    )


def parse_payload(envelope: EventEnvelope) -> EventPayload:
    """Validate an envelope's payload with the model of its type and version."""
    model = payload_model(envelope.event_type, envelope.schema_version)
    return model.model_validate(envelope.payload)


def envelope_from_wire(
    body: Any,
    *,
    exchange: str | None = None,
    routing_key: str | None = None,
    message_id: str | None = None,
    fallback_time: datetime | None = None,
) -> EventEnvelope:
    """Read a bus body: our envelope as is, or a bare nameko payload wrapped in one.

    A bare payload gets a deterministic event id (from the AMQP message id, or a hash of the
    body) so that redeliveries of the same message stay recognisable as duplicates.
    """
    if (
        isinstance(body, dict)
        and {"event_id", "event_type", "source", "occurred_at"} <= body.keys()
    ):
        return EventEnvelope.model_validate(body)
    source = (exchange or "unknown.events").removesuffix(".events")
    import json

    stable = message_id or json.dumps(body, sort_keys=True, ensure_ascii=False, default=str)
    return EventEnvelope(
        event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{exchange}/{routing_key}/{stable}")),
        event_type=routing_key or "unknown",
        schema_version=1,
        occurred_at=fallback_time or datetime.now().astimezone(),
        source=source,
        payload=body if isinstance(body, dict) else {"value": body},
    )


_LOADED = False


def _load_models() -> None:
    """Import the modules that declare payload models (once)."""
    global _LOADED
    if _LOADED:
        return
    # Marked only once the import finished: a thread arriving meanwhile waits on the import
    # lock instead of reading a half-filled registry (UnknownEventError).
    import libs.common.eventmodels  # noqa: F401  (registers models on import)

    _LOADED = True


__all__ = [
    "EventEnvelope",
    "EventPayload",
    "UnknownEventError",
    "ValidationError",
    "envelope_from_wire",
    "event_model",
    "latest_version",
    "make_event",
    "parse_payload",
    "payload_model",
    "registered_event_types",
]
