"""Request bodies shared by the test suites: a complete incident report (every element 篇2/篇6/篇9
require), with its times relative to a given moment, and a daily zero report."""

from __future__ import annotations

import copy
from datetime import date, datetime, timedelta
from typing import Any

from tests.support.stack import TOWNSHIP_A

INCIDENT: dict[str, Any] = {
    "category": "flood",
    "title": "河口村河堤漫溢",
    "description": "持续强降雨致河口村段河堤漫溢，部分农田和民房进水。",
    "location": {"address": "城关镇河口村三组"},
    "casualties": {"deaths": 0, "injured": 0, "missing": 0, "trapped": 0},
    "affected": {
        "people_affected": 120,
        "people_evacuated": 40,
        "houses_damaged": 6,
        "houses_collapsed": 0,
        "direct_loss_cny": 150000,
    },
    "people_involved": 0,
    "measures_taken": "已转移群众40人，组织抢险队加固堤防。",
    "needs": "需要沙袋2000条。",
    "reporter": {"name": "张伟", "phone": "13800001111"},
    "approver": {"name": "李娜", "phone": "13900002222"},
    "source": "村委会电话报告",
}


def incident_body(
    now: datetime,
    township_code: str = TOWNSHIP_A,
    *,
    occurred_ago: timedelta = timedelta(minutes=30),
    discovered_ago: timedelta = timedelta(minutes=20),
    **overrides: Any,
) -> dict[str, Any]:
    """A complete incident report that occurred and was discovered the given time before ``now``."""
    body = copy.deepcopy(INCIDENT)
    body["township_code"] = township_code
    body["occurred_at"] = (now - occurred_ago).isoformat()
    body["discovered_at"] = (now - discovered_ago).isoformat()
    body.update(overrides)
    return body


def zero_report_body(township_code: str, day: date, **overrides: Any) -> dict[str, Any]:
    """A township's daily zero report (零报告, nothing to report) for ``day``."""
    body: dict[str, Any] = {
        "township_code": township_code,
        "date": day.isoformat(),
        "nothing_to_report": True,
        # 篇6: signed by its reporter and approved (审签) by another person.
        "reporter": {"name": "张伟", "phone": "13800001111"},
        "approver": {"name": "李娜", "phone": "13900002222"},
    }
    body.update(overrides)
    return body
