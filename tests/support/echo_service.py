"""A tiny service used to test the platform plumbing on its own (not shipped)."""

from __future__ import annotations

import os
import uuid
from typing import Any

from fastapi import APIRouter, Header
from pydantic import BaseModel, ConfigDict, Field

from libs.common.auth import Principal, Role
from libs.common.events import EventEnvelope, EventPayload, event_model, make_event
from libs.common.idempotency import (
    apply_once,
    find_replay,
    fingerprint,
    idempotency_scope,
    insert_idempotent,
    validate_key,
)
from libs.common.outbox import new_document, strip_internal
from libs.common.service import ServiceContext, ServiceSpec, subscribe


@event_model("echo", "echo_recorded")
class EchoRecorded(EventPayload):
    """Test event."""

    echo_id: str
    text: str


class EchoIn(BaseModel):
    """Test body."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=100)
    township_code: str | None = None


def build_router(ctx: ServiceContext) -> APIRouter:
    """POST creates an echo and its event; GET reads it back."""
    router = APIRouter()
    coll = ctx.db["echoes"]

    @router.post("/v1/echoes", status_code=201)
    def create(
        body: EchoIn,
        principal: Principal = ctx.allow(*Role),
        idempotency_key: str | None = Header(default=None),
    ) -> dict[str, Any]:
        if body.township_code:
            principal.ensure_township(body.township_code)
        key = validate_key(idempotency_key)
        echo_id = uuid.uuid4().hex
        scope = idempotency_scope(principal.key_id, key, echo_id)
        digest = fingerprint(body.model_dump())
        replay = find_replay(coll, scope, digest) if key else None
        if replay is None:
            event = make_event(
                ctx.clock,
                "echo",
                "echo_recorded",
                {"echo_id": echo_id, "text": body.text},
                correlation_id=echo_id,
            )
            doc = new_document({"_id": echo_id, "text": body.text, "handled": 0}, [event])
            replay, _ = insert_idempotent(coll, doc, scope, digest)
            ctx.wake_relay()
        return {"id": replay["_id"], "text": replay["text"]}

    @router.get("/v1/echoes/{echo_id}")
    def read(echo_id: str, principal: Principal = ctx.allow(*Role)) -> dict[str, Any]:
        doc = strip_internal(coll.find_one({"_id": echo_id}))
        return doc or {}

    return router


def on_recorded(ctx: ServiceContext) -> Any:
    """Counts deliveries idempotently; raises for poison text."""

    def handle(envelope: EventEnvelope) -> bool:
        payload = envelope.payload
        if payload["text"] == "poison":
            raise ValueError("poison message")
        if payload["text"] == "crash-once" and not os.environ.get("ECHO_CRASHED"):
            os.environ["ECHO_CRASHED"] = "1"
            raise RuntimeError("transient failure")
        return apply_once(
            ctx.db["echoes"],
            {"_id": payload["echo_id"]},
            {"$inc": {"handled": 1}},
            envelope.event_id,
        )

    return handle


SPEC = ServiceSpec(
    name="echo",
    build_router=build_router,
    subscriptions=lambda ctx: [subscribe("echo", "echo_recorded", "count", on_recorded(ctx))],
    outbox_collections=("echoes",),
)
