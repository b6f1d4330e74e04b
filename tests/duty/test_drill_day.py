"""A drill day for the duty office: `yingji drill` run through a day and a night shift against
the embedded stack, with a fake city configured. The drill roster, both shifts' handovers, the
spot checks and the pushes of grade Ⅲ-and-above drill incidents are all exercise data: the city
receives them marked ``Exercise``, and the real duty office stays empty."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.console.support import live_server
from tests.drill.test_drill_isolation import Platform, PlatformDrill, did
from tests.duty.support import FakeCityServer
from tests.support.stack import running_stack

pytestmark = pytest.mark.e2e

BUDGET_SECONDS = 90.0  # bounds the loop, not an assertion on time


@pytest.fixture
def platform(tmp_path: Path, upward_env: FakeCityServer) -> Iterator[Platform]:
    """All four services in one process reporting up to the fake city, served over HTTP."""
    with running_stack(tmp_path) as stack, live_server(stack.client.app) as server:
        running = Platform(stack, server.url)
        yield running
        running.http.close()


def drill_shift(platform: Platform, drill: PlatformDrill) -> None:
    """Run the drill until this shift was handed over, a serious drill incident went up and a
    spot check was made (the drill picks operations at random, the spot check among many)."""
    handed_over = len(drill.recorder.acknowledged_ids("duty_handover"))
    ends = time.monotonic() + BUDGET_SECONDS
    while time.monotonic() < ends:
        drill.run()
        platform.settle()
        pushed = platform.ok("GET", "/v1/duty/upward", params={"limit": 200})["items"]
        handed = len(drill.recorder.acknowledged_ids("duty_handover")) > handed_over
        if handed and pushed and did(drill, "spot_check"):
            return


def test_a_drill_day_fills_the_duty_office_with_exercise_data_only(
    platform: Platform, upward_env: FakeCityServer
) -> None:
    drill = PlatformDrill(platform, seed=11, rate=20, duration=3, concurrency=4)
    drill_shift(platform, drill)  # 白班
    platform.stack.clock.advance(timedelta(hours=12))
    drill_shift(platform, drill)  # 夜班
    drill.close()
    for operation in ("duty_roster", "duty_handover", "duty_confirm", "spot_check"):
        assert did(drill, operation), f"the drill made no {operation}"

    duty = platform.stack.ctx("reporting").resources["duty_usecases"]
    duty.deliver_due()
    platform.settle()
    received = upward_env.city.documents()
    assert received and {d["status"] for d in received} == {"Exercise"}
    pushes = platform.ok("GET", "/v1/duty/upward", params={"limit": 200})
    assert pushes["items"] and all(p["exercise"] for p in pushes["items"])
    assert pushes["counts"] == {"pending": 0, "held": 0, "delivered": 0}  # real pushes only

    drill_handovers = platform.ok("GET", "/v1/duty/handovers", params={"exercise": "true"})
    shifts = {h["shift_id"].split("/")[1] for h in drill_handovers["items"]}
    assert shifts == {"day", "night"}
    assert all(h["confirmed_at"] for h in drill_handovers["items"])
    week = platform.ok("GET", "/v1/duty/roster", params={"exercise": "true"})
    assert all(s["staffed"] for s in week["shifts"])

    # The real duty office saw none of it.
    assert platform.ok("GET", "/v1/duty/handovers")["items"] == []
    assert platform.ok("GET", "/v1/duty/now")["current"]["staffed"] is False
    month = platform.ok("GET", "/v1/duty/monthly", params={"month": "2026-07"})
    assert month["spot_checks"] == [] and month["tally"]["late_pushes"] == 0
