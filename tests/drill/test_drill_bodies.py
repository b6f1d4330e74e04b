"""What the drill sends: every write flagged as exercise (演练), Chinese texts without raw codes."""

from __future__ import annotations

from typing import Any

import pytest

from services.dispatch.enterprises.domain import credit_code_problem
from services.reporting.domain import CATEGORY_LABELS
from yingji.drill import CATEGORY_NAMES, CATEGORY_WEIGHTS, Drill

pytestmark = pytest.mark.unit


class Captured(Drill):
    """A drill that records its requests instead of sending them."""

    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:9", "admin", seed=3)
        self.sent: list[tuple[str, str, Any]] = []
        self.townships = ["349901001", "349901101"]
        self.teams = ["T01"]
        self.epidemic_units = [{"id": "H02", "township_code": "349901001"}]
        self.diseases = ["hfmd", "measles"]

    def call(self, operation: str, method: str, path: str, who: str, body: Any = None,
             id_field: str = "id", subject: str | None = None) -> Any:  # fmt: skip
        self.sent.append((method, path, body))
        return None


def test_category_names_are_the_platforms_chinese_labels() -> None:
    assert set(CATEGORY_NAMES) == set(CATEGORY_WEIGHTS)
    for category, name in CATEGORY_NAMES.items():
        assert name == CATEGORY_LABELS[category]


def test_every_creating_write_carries_the_flag_and_chinese_titles() -> None:
    drill = Captured()
    for _ in range(40):
        drill.report_incident()
        drill.file_zero_report()
        drill.issue_warning()
        drill.file_epidemic_report()
        drill.register_enterprise()
    drill.open_incidents = [
        {
            "id": "inc-1",
            "township": "349901001",
            "category": "flood",
            "casualties": {"deaths": 0, "injured": 0, "missing": 0, "trapped": 0},
            "affected": {"people_affected": 10},
            "followups": 0,
        }
    ]
    drill.file_followup()
    bodies = [body for method, _, body in drill.sent if method == "POST" and body]
    paths = {path for _, path, _ in drill.sent}
    assert {"/v1/incidents", "/v1/zero-reports", "/v1/warnings", "/v1/reports"} <= paths
    assert "/v1/epidemic/reports" in paths and "/v1/enterprises" in paths
    names = [body["name"] for body in bodies if "credit_code" in body]
    assert names and all(n.startswith("演练：") for n in names)
    assert all(credit_code_problem(b["credit_code"]) is None for b in bodies if "credit_code" in b)
    case_reports = [e["case_report"] for b in bodies for e in b.get("entries", [])]
    assert case_reports and all(r.startswith("演练：") for r in case_reports)
    assert all(body.get("exercise") is True for body in bodies)
    titles = [body["title"] for body in bodies if "title" in body]
    assert titles and all(t.startswith("演练：") for t in titles)
    assert [t for t in titles if any(c.isascii() and c.isalpha() for c in t)] == []
    drill.close()
