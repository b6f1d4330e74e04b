"""Reading the uniform error body: a refusal as (status, code, field paths), to assert at once."""

from __future__ import annotations

from typing import Any


def refusal(response: Any) -> tuple[int, str, list[str]]:
    """The status, the error code and the paths of the fields at fault of an error answer."""
    error = response.json()["error"]
    return response.status_code, error["code"], [f["path"] for f in error["fields"]]
