"""`/v1/summaries/situation` takes plain days (the county's Beijing days) as well as date-times:
``from`` a day is its start, ``to`` a day includes it (up to the next day's start)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support.stack import Stack

pytestmark = pytest.mark.e2e


def period(stack: Stack, **params: str) -> Any:
    """The period the situation pack covers for these query parameters."""
    response = stack.call("GET", "/v1/summaries/situation", params=params)
    assert response.status_code == 200, response.text
    found = response.json()["period"]
    return datetime.fromisoformat(found["from"]), datetime.fromisoformat(found["to"])


def test_days_are_beijing_days_and_to_includes_its_day(stack: Stack) -> None:
    start, end = period(stack, **{"from": "2026-07-01", "to": "2026-07-06"})
    assert start == datetime(2026, 6, 30, 16, tzinfo=UTC)
    assert end == datetime(2026, 7, 6, 16, tzinfo=UTC)
    one_day = period(stack, **{"from": "2026-07-06", "to": "2026-07-06"})
    assert one_day == (datetime(2026, 7, 5, 16, tzinfo=UTC), datetime(2026, 7, 6, 16, tzinfo=UTC))
    mixed = period(stack, **{"from": "2026-07-06", "to": "2026-07-06T12:00:00+08:00"})
    assert mixed == (datetime(2026, 7, 5, 16, tzinfo=UTC), datetime(2026, 7, 6, 4, tzinfo=UTC))
    times = period(stack, **{"from": "2026-07-06T00:00:00+08:00", "to": "2026-07-07T00:00:00Z"})
    assert times == (datetime(2026, 7, 5, 16, tzinfo=UTC), datetime(2026, 7, 7, tzinfo=UTC))


def test_bad_bounds_are_named(stack: Stack) -> None:
    for params, paths in [
        ({"from": "2026-02-30", "to": "2026-03-01"}, ["query.from"]),
        ({"from": "2026-07-01", "to": "20260706"}, ["query.to"]),
        ({"from": "yesterday", "to": "0.5"}, ["query.from", "query.to"]),
        ({"from": "2026-07-01T00:00:00", "to": "2026-07-02"}, ["query.from"]),
        ({"from": "2026-07-06", "to": "2026-07-05"}, ["query.to"]),
    ]:
        refused = stack.call("GET", "/v1/summaries/situation", params=params)
        assert refused.status_code == 422, (params, refused.text)
        assert [f["path"] for f in refused.json()["error"]["fields"]] == paths, params


def test_the_schema_says_both_forms(stack: Stack) -> None:
    doc = stack.client.get("/openapi.json").json()
    for parameter in doc["paths"]["/v1/summaries/situation"]["get"]["parameters"][:2]:
        forms = [option["format"] for option in parameter["schema"]["oneOf"]]
        assert forms == ["date", "date-time"], parameter
