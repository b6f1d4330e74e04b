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


def test_the_last_mile_writes_are_drills_and_reach_villages() -> None:
    drill = Captured()
    drill.villages = {"349901001": ["349901001001", "349901001002"]}
    drill.village_warnings = [{"id": "wrn_1", "areas": ["349901001"]}]
    for _ in range(60):
        drill.last_mile()
    posts = [(path, body) for method, path, body in drill.sent if method == "POST"]
    warnings = [body for path, body in posts if path == "/v1/warnings"]
    assert warnings and all(b["exercise"] is True and b["level"] == 2 for b in warnings)
    assert all(b["headline"].startswith("演练：") for b in warnings)
    acks = [body for path, body in posts if path == "/v1/warnings/wrn_1/ack"]
    assert acks and {b["village_code"] for b in acks} <= set(drill.villages["349901001"])
    drill.close()


def test_the_drill_campaign_is_an_exercise_and_its_texts_are_chinese() -> None:
    drill = Captured()
    drill.start_campaign()
    [(method, path, body)] = drill.sent
    assert (method, path) == ("POST", "/v1/campaigns")
    assert body["exercise"] is True and body["name"].startswith("演练：")
    assert body["participants"] == drill.townships
    assert [s["name"] for s in body["stages"]] == ["组织动员", "全面排查"]
    # Nothing answered: no campaign is known, so no report is filed for one.
    assert drill.campaign is None
    drill.file_campaign_report()
    assert len(drill.sent) == 1
    drill.campaign = {"id": "C1", "participants": [{"code": "349901001"}]}
    drill.file_campaign_report()
    assert drill.sent[-1][1] == "/v1/campaigns/C1/reports"
    assert drill.sent[-1][2]["content"].startswith("演练：")
    drill.close()


def test_the_drill_assigns_only_drill_disputes_once_each() -> None:
    drill = Captured()
    drill.open_incidents = [
        {"id": "d-1", "township": "349901001", "category": "dispute"},
        {"id": "f-1", "township": "349901001", "category": "flood"},
    ]
    drill.supervise_dispute()
    drill.supervise_dispute()
    assignments = [body for _, path, body in drill.sent if path == "/v1/assignments"]
    assert [b["incident_id"] for b in assignments] == ["d-1"]
    assert assignments[0]["stability_contact"]["name"].startswith("演练")
    drill.close()


def test_information_items_and_their_feedback_are_drills() -> None:
    drill = Captured()
    drill.departments = ["water"]
    for _ in range(20):
        drill.submit_information()
        drill.give_feedback("I-1")
    sent = {path: body for method, path, body in drill.sent if method == "POST"}
    assert {"/v1/information/adoptions", "/v1/information/instructions"} <= set(sent)
    assert all(body["exercise"] is True for _, _, body in drill.sent)
    items = [b for _, p, b in drill.sent if p == "/v1/information/items"]
    assert {b["unit_kind"] for b in items} == {"department", "township"}
    assert all(b["title"].startswith("演练：") for b in items)
