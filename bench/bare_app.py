"""The HTTP baseline: a bare FastAPI endpoint with intake's validation and nothing else.

Run as ``python -m bench.bare_app PORT``; served by uvicorn exactly as ``yingji`` serves (no
access log). The gap between this and ``POST /v1/incidents`` is what intake adds: auth,
grading, duplicate lookup, the store write with its outbox event, the response view.
"""

from __future__ import annotations

import sys
import uuid
from typing import Any

import uvicorn
from fastapi import FastAPI

from services.intake.api import IncidentIn

app = FastAPI()


@app.post("/v1/incidents", status_code=201)
def report(body: IncidentIn) -> dict[str, Any]:
    """Validate, echo with an id."""
    return {"id": uuid.uuid4().hex, **body.model_dump(mode="json")}


@app.get("/readyz")
def ready() -> dict[str, str]:
    """Ready."""
    return {"status": "ok"}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_config=None, access_log=False)
