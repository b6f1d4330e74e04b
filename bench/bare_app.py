"""The HTTP baseline: a bare FastAPI endpoint with intake's request model and a key check.

Run as ``python -m bench.bare_app PORT``; served by uvicorn exactly as ``yingji`` serves (no
access log). The key check compares the SHA-256 of the bearer key with a known digest, as the
platform's key store does for a cached key (``BENCH_BARE_KEY``; no key, no check). The gap
between this and ``POST /v1/incidents`` is what intake adds: the key store, grading, the
duplicate lookup, the store write with its outbox event, the response view.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sys
import uuid
from typing import Any

import uvicorn
from fastapi import FastAPI, Header, HTTPException

from services.intake.api import IncidentIn

app = FastAPI()
KEY_DIGEST = hashlib.sha256(os.environ.get("BENCH_BARE_KEY", "").encode()).hexdigest()
CHECK_KEY = bool(os.environ.get("BENCH_BARE_KEY"))


def _check(authorization: str | None) -> None:
    """401 unless the bearer key's digest is the known one."""
    if not CHECK_KEY:
        return
    key = (authorization or "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(hashlib.sha256(key.encode()).hexdigest(), KEY_DIGEST):
        raise HTTPException(401, "bad key")


@app.post("/v1/incidents", status_code=201)
def report(body: IncidentIn, authorization: str | None = Header(default=None)) -> dict[str, Any]:
    """Check the key, validate, echo with an id."""
    _check(authorization)
    return {"id": uuid.uuid4().hex, **body.model_dump(mode="json")}


@app.get("/readyz")
def ready() -> dict[str, str]:
    """Ready."""
    return {"status": "ok"}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_config=None, access_log=False)
