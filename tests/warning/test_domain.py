"""Pure warning rules: the permission matrix, windows, back-off, suggestions, the lift guard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from libs.common.county import Channel
from services.warning import domain
from services.warning.channels import ChannelConfigError, build_channels
from services.warning.rules import load_rules

pytestmark = pytest.mark.unit

RULES = load_rules()
WEATHER = ("rainstorm", "lightning", "typhoon", "wind")
NOW = datetime(2026, 7, 6, 2, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("role", "hazards", "hazard", "level", "allowed", "needs_approval"),
    [
        ("operator", (), "rainstorm", 4, True, False),
        ("operator", (), "rainstorm", 3, True, False),
        ("operator", (), "rainstorm", 2, True, True),
        ("operator", (), "geological", 1, True, True),
        ("department", WEATHER, "rainstorm", 4, True, False),
        ("department", WEATHER, "lightning", 3, True, False),
        ("department", WEATHER, "rainstorm", 2, True, True),
        ("department", WEATHER, "typhoon", 1, True, True),
        ("department", WEATHER, "flood", 3, False, False),
        ("department", WEATHER, "flood", 1, False, False),
        ("department", (), "rainstorm", 4, False, False),
        ("leader", (), "rainstorm", 1, True, False),
        ("leader", (), "flood", 3, True, False),
        ("township", (), "rainstorm", 4, False, False),
        ("admin", (), "rainstorm", 4, False, False),
    ],
)
def test_issue_matrix(
    role: str,
    hazards: tuple[str, ...],
    hazard: str,
    level: int,
    allowed: bool,
    needs_approval: bool,
) -> None:
    decision = domain.decide(RULES, "issue", role, hazards, hazard, level)
    assert decision.allowed is allowed, decision.reason
    assert decision.needs_approval is needs_approval
    if not allowed:
        assert decision.reason


def test_adjust_to_high_levels_needs_approval_and_lift_does_not() -> None:
    assert domain.decide(RULES, "adjust", "operator", (), "flood", 1).needs_approval
    assert not domain.decide(RULES, "adjust", "operator", (), "flood", 3).needs_approval
    assert not domain.decide(RULES, "adjust", "leader", (), "flood", 1).needs_approval
    assert not domain.decide(RULES, "lift", "operator", (), "flood", 1).needs_approval
    assert not domain.decide(RULES, "lift", "department", WEATHER, "flood", 3).allowed
    assert domain.decide(RULES, "lift", "department", WEATHER, "wind", 3).allowed


def test_only_leaders_approve() -> None:
    for role in ("operator", "department", "township", "admin"):
        assert not domain.decide(RULES, "approve", role, WEATHER, "rainstorm", 2).allowed
    assert domain.decide(RULES, "approve", "leader", (), "rainstorm", 2).allowed


def test_a_rule_table_can_restrict_operators_to_low_levels() -> None:
    strict = RULES.with_changes(
        permissions={
            **RULES.model_dump()["permissions"],
            "issue": {"operator": {"levels": [3, 4]}},
        }
    )
    decision = domain.decide(strict, "issue", "operator", (), "rainstorm", 2)
    assert not decision.allowed
    assert decision.reason == "值班员只能发布黄色（Ⅲ级）、蓝色（Ⅳ级）预警，不能发布橙色（Ⅱ级）预警"
    assert not domain.decide(strict, "issue", "leader", (), "rainstorm", 1).allowed


def test_levels_colours_and_cap_mapping() -> None:
    assert [domain.color_of(RULES, n) for n in (1, 2, 3, 4)] == ["red", "orange", "yellow", "blue"]
    assert [RULES.level(n).severity for n in (1, 2, 3, 4)] == [
        "Extreme",
        "Severe",
        "Moderate",
        "Minor",
    ]
    assert [RULES.level(n).ack_minutes for n in (1, 2, 3, 4)] == [15, 30, 60, 60]


def test_window_checks() -> None:
    assert domain.check_window(NOW, NOW + timedelta(hours=1), NOW, 168) == []
    assert ("expires", "须晚于生效时间 effective") in domain.check_window(NOW, NOW, NOW, 168)
    past = domain.check_window(NOW - timedelta(hours=3), NOW - timedelta(hours=1), NOW, 168)
    assert ("expires", "须晚于当前时间") in past
    too_long = domain.check_window(NOW, NOW + timedelta(hours=200), NOW, 168)
    assert too_long and too_long[0][0] == "expires"
    far = domain.check_window(NOW + timedelta(days=30), NOW + timedelta(days=31), NOW, 168)
    assert far and far[0][0] == "effective"


def test_backoff_is_exponential_and_capped() -> None:
    delays = [domain.backoff_seconds(n, 10, 2, 60) for n in (0, 1, 2, 3, 4, 5)]
    assert delays == [0, 10, 20, 40, 60, 60]


def test_ack_due_by_level() -> None:
    assert domain.ack_due(RULES, 1, NOW) == NOW + timedelta(minutes=15)
    assert domain.ack_due(RULES, 2, NOW) == NOW + timedelta(minutes=30)
    assert domain.ack_due(RULES, 4, NOW) == NOW + timedelta(minutes=60)
    assert domain.needs_ack("Alert") and domain.needs_ack("Update")
    assert not domain.needs_ack("Cancel")


def test_suggestions_by_category_and_grade() -> None:
    assert domain.suggested_warning(RULES, "flood", 1) == ("flood", 1)
    assert domain.suggested_warning(RULES, "geological", 3) == ("geological", 3)
    assert domain.suggested_warning(RULES, "public_health", 2) == ("public_health", 2)
    assert domain.suggested_warning(RULES, "flood", 4) is None
    assert domain.suggested_warning(RULES, "dispute", 1) is None
    texts = domain.suggestion_texts(RULES, "flood", 2, "河堤渗水", ["城关镇", "河西街道"])
    assert "洪水" in texts["headline"] and "二级（橙色）" in texts["headline"]
    assert "河堤渗水" in texts["description"]


def test_open_linked_incidents_follows_merges() -> None:
    view = {
        "a": {"status": "open"},
        "b": {"status": "closed"},
        "c": {"status": "merged", "primary_id": "a"},
        "d": {"status": "merged", "primary_id": "b"},
    }
    assert domain.open_linked_incidents(["a", "b", "c", "d", "unknown"], view) == ["a", "c"]


def test_references_cite_issued_versions_only() -> None:
    versions = [
        {"number": 1, "state": "issued"},
        {"number": 2, "state": "rejected"},
        {"number": 3, "state": "issued"},
        {"number": 4, "state": "issued"},
    ]
    assert [v["number"] for v in domain.references_of(versions, 4)] == [1, 3]


def test_rules_file_is_validated(tmp_path: Path) -> None:
    bad = tmp_path / "rules.yaml"
    text = Path("services/warning/rules.yaml").read_text(encoding="utf-8")
    bad.write_text(text.replace("cap_category: Geo", "cap_category: Rocks"), encoding="utf-8")
    with pytest.raises(ValidationError):
        load_rules(bad)


def test_channels_are_built_from_the_county_file() -> None:
    channels = build_channels(
        [
            Channel(type="log", name="值班日志"),
            Channel.model_validate(
                {
                    "type": "webhook",
                    "name": "短信网关",
                    "url": "http://127.0.0.1:9/sms",
                    "max_attempts": 3,
                    "backoff_base_seconds": 5,
                }
            ),
        ],
        RULES.delivery,
    )
    assert channels["短信网关"].policy.max_attempts == 3
    assert channels["短信网关"].policy.backoff_base_seconds == 5
    assert channels["值班日志"].policy.max_attempts == RULES.delivery.max_attempts
    with pytest.raises(ChannelConfigError, match="unknown channel type"):
        build_channels([Channel(type="pager", name="x")], RULES.delivery)
    with pytest.raises(ChannelConfigError, match="url"):
        build_channels([Channel(type="webhook", name="x")], RULES.delivery)
    with pytest.raises(ChannelConfigError, match="duplicate"):
        build_channels(
            [Channel(type="log", name="x"), Channel(type="log", name="x")], RULES.delivery
        )


def _delivery(township: str, state: str, **extra: object) -> dict[str, object]:
    return {"township_code": township, "state": state, "version": 2, **extra}


def test_dissemination_counts_each_townships_own_and_its_current_receipt() -> None:
    village = {"target": {"kind": "village", "code": "v1"}}
    deliveries = [
        _delivery("t1", "delivered"),
        _delivery("t1", "superseded", version=1),
        _delivery("t1", "delivered", **village),
        _delivery("t1", "pending", escalation_of="d1"),
        _delivery("t2", "failed"),
        _delivery("t3", "delivered"),
    ]
    receipts = [
        {"township_code": "t1", "version": 1, "state": "acked", "acked_at": NOW},
        {"township_code": "t1", "version": 2, "state": "pending", "acked_at": None},
        {"township_code": "t1", "version": 2, "state": "acked", "acked_at": NOW, **village},
        {"township_code": "t2", "version": 2, "state": "overdue", "acked_at": None},
    ]
    reached = domain.dissemination(2, ["t1", "t2"], deliveries, receipts)
    assert reached.delivery_counts == {"delivered": 1, "pending": 0, "failed": 1, "superseded": 1}
    # A village's receipt and an older version's are not the township's current one.
    assert reached.receipt_counts == {"acked": 0, "pending": 1, "overdue": 1}
    t1, t2 = reached.townships
    assert [d["state"] for d in t1.village_deliveries] == ["delivered", "pending"]
    assert len(t1.receipts) == 2 and t1.current_receipt == receipts[1]
    assert not t1.acknowledged and not t2.acknowledged
    acked = domain.dissemination(1, ["t1"], deliveries, receipts).townships[0]
    assert acked.acknowledged and acked.current_receipt == receipts[0]


def test_a_warning_links_incidents_of_its_own_kind_only() -> None:
    real, drill = {"exercise": False}, {"exercise": True}
    assert domain.linked_incident_problem("i", real, False) is None
    assert domain.linked_incident_problem("i", drill, True) is None
    assert domain.linked_incident_problem("i", drill, False) == (
        "该事件是演练事件，演练事件只能关联演练预警"
    )
    assert domain.linked_incident_problem("i", real, True) == (
        "该事件是真实事件，演练预警只能关联演练事件"
    )
    assert domain.linked_incident_problem("i", None, False) == "预警服务未收到事件 i"
    unreported = domain.linked_incident_problem("i", {"exercise": None}, False)
    assert unreported is not None and "初报" in unreported


def test_a_suggestion_keeps_its_drill_flag() -> None:
    assert domain.suggestion_exercise_problem(True, None) is None
    assert domain.suggestion_exercise_problem(True, True) is None
    assert domain.suggestion_exercise_problem(False, False) is None
    assert domain.suggestion_exercise_problem(True, False) == "该建议来自演练事件，只能发布演练预警"
    assert domain.suggestion_exercise_problem(False, True) == (
        "该建议来自真实事件，不能发布为演练预警"
    )
