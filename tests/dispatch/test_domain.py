"""Pure dispatch rules: life cycles, returns, ranking, plan levels and 三三制."""

from __future__ import annotations

import itertools

import pytest

from libs.common.county import load_county
from services.dispatch import config, domain
from services.dispatch.domain import Attempt, Line, PlanRules, TeamView

pytestmark = pytest.mark.unit


def test_order_life_cycle_follows_edxl_rm() -> None:
    path = ["ordered", "en_route", "on_scene", "completed", "released"]
    for current, wanted in itertools.pairwise(path):
        assert domain.transition_error(current, wanted) is None
    # Recall before arrival is a release; once on scene the work is completed first.
    assert domain.transition_error("ordered", "released") is None
    assert domain.transition_error("en_route", "released") is None
    assert domain.transition_error("on_scene", "released") is not None
    for current, wanted in [
        ("ordered", "on_scene"),
        ("ordered", "completed"),
        ("en_route", "ordered"),
        ("completed", "on_scene"),
        ("en_route", "en_route"),
    ]:
        assert domain.transition_error(current, wanted), (current, wanted)
    assert "已是 released" in (domain.transition_error("released", "released") or "")
    assert domain.transition_error("rejected", "en_route")


def test_manual_team_status_never_touches_deployed() -> None:
    assert domain.manual_status_change_error("available", "resting") is None
    assert domain.manual_status_change_error("resting", "standby") is None
    assert domain.manual_status_change_error("available", "deployed")
    assert domain.manual_status_change_error("deployed", "available")


def test_returns_only_what_was_dispatched() -> None:
    sent = [Line("W01", "tent", 10), Line("W01", "quilt", 5)]
    assert domain.return_errors(sent, [Line("W01", "tent", 10), Line("W01", "quilt", 0)]) == []
    too_many = domain.return_errors(sent, [Line("W01", "tent", 11)])
    assert too_many == [{"path": "returned.0.quantity", "reason": "超过调出的数量 10"}]
    foreign = domain.return_errors(sent, [Line("W02", "tent", 1)])
    assert foreign[0]["path"] == "returned.0"
    twice = domain.return_errors(sent, [Line("W01", "tent", 1), Line("W01", "tent", 1)])
    assert {"path": "returned.1", "reason": "库存条目重复"} in twice


def test_crossing_below_minimum_alerts_once() -> None:
    assert domain.crossed_below(100, 79, 80)
    assert not domain.crossed_below(79, 70, 80)  # already below: no new alert
    assert not domain.crossed_below(100, 80, 80)  # at the minimum is not below it


def _table() -> domain.CapabilityTable:
    return config.load_capabilities()


def test_ranking_capability_then_distance_then_headcount() -> None:
    county = load_county()
    table = _table()
    teams = [
        TeamView("near_one_cap", ("flood",), "349901001", 10),
        TeamView("far_three_caps", ("flood", "rescue", "evacuation"), "349901108", 5),
        TeamView("near_two_caps_small", ("flood", "rescue"), "349901001", 5),
        TeamView("near_two_caps_big", ("flood", "rescue"), "349901001", 50),
        TeamView("mid_two_caps", ("rescue", "evacuation"), "349901002", 80),
        TeamView("busy", ("flood", "rescue", "evacuation"), "349901001", 90, status="deployed"),
        TeamView("resting", ("flood", "rescue", "evacuation"), "349901001", 90, status="resting"),
        TeamView("standby", ("flood",), "349901002", 10, status="standby"),
        TeamView("medics", ("medical",), "349901001", 20),
    ]
    ranked = domain.rank_teams(teams, "flood", "349901001", county.distance_km, table)
    assert [s.team_id for s in ranked] == [
        "far_three_caps",
        "near_two_caps_big",
        "near_two_caps_small",
        "mid_two_caps",
        "near_one_cap",
        "standby",
    ]
    assert [s.rank for s in ranked] == [1, 2, 3, 4, 5, 6]
    assert ranked[0].matched == ("flood", "rescue", "evacuation")
    assert ranked[0].distance_km > ranked[1].distance_km == 0
    everyone = domain.rank_teams(
        teams, "flood", "349901001", county.distance_km, table, include_unmatched=True
    )
    assert everyone[-1].team_id == "medics" and everyone[-1].matched == ()


def test_capability_table_falls_back_to_category_name() -> None:
    table = _table()
    assert "flood" in table.required("rainstorm")
    assert table.required("unlisted_hazard") == ("unlisted_hazard",)
    with pytest.raises(ValueError):
        domain.CapabilityTable.from_mapping({"categories": {"flood": "rescue"}})


def test_plan_activation_and_step_down() -> None:
    rules = PlanRules(activate_max_level=2, county_scope_max_level=1)
    assert domain.plan_action(None, 1, rules) == ("activate", 1)
    assert domain.plan_action(None, 2, rules) == ("activate", 2)
    assert domain.plan_action(None, 3, rules) is None
    assert domain.plan_action(None, 3, rules, force=True) == ("activate", 3)
    assert domain.plan_action(1, 3, rules) == ("change", 3)  # step down
    assert domain.plan_action(3, 1, rules) == ("change", 1)  # step back up
    assert domain.plan_action(2, 2, rules) is None
    assert domain.plan_scope(1, rules) == "county"
    assert domain.plan_scope(2, rules) == "township"


def test_standby_candidates_match_capability_and_place() -> None:
    teams = [
        TeamView("a", ("flood",), "1", 5),
        TeamView("b", ("flood",), "2", 5),
        TeamView("c", ("medical",), "1", 5),
        TeamView("d", ("flood",), "1", 5, status="deployed"),
    ]
    assert domain.standby_candidates(teams, ["flood"], ["1"]) == ["a"]
    assert domain.standby_candidates(teams, ["flood"], None) == ["a", "b"]


@pytest.mark.parametrize(
    ("level", "upper"),
    [("group", "village"), ("village", "township"), ("township", "county")],
)
def test_three_three_rule_at_each_level(level: str, upper: str) -> None:
    required = 3
    attempts: list[Attempt] = []
    for done in range(required):
        reason = domain.escalation_error("active", level, attempts, required)
        assert reason and "三三制" in reason and f"已记录 {done} 次" in reason
        attempts.append(Attempt(level, "unresolved"))
    # Attempts at another level do not count here.
    assert domain.unresolved_at([*attempts, Attempt("other", "unresolved")], level) == 3
    assert domain.escalation_error("active", level, attempts, required) is None
    assert domain.next_level(level) == upper


def test_no_escalation_beyond_county_or_when_not_active() -> None:
    attempts = [Attempt("county", "unresolved")] * 3
    assert "已在县级" in (domain.escalation_error("active", "county", attempts, 3) or "")
    group = [Attempt("group", "unresolved")] * 3
    assert domain.escalation_error("pending_approval", "group", group, 3)
    assert domain.escalation_error("resolved", "group", group, 3)


def test_attempts_only_at_current_level_and_after_approval() -> None:
    assert domain.attempt_error("active", "group", "group") is None
    assert domain.attempt_error("active", "group", "village")
    assert "审批" in (domain.attempt_error("pending_approval", "group", "group") or "")
    assert domain.attempt_error("resolved", "group", "group")


def test_rules_file_validated() -> None:
    rules = config.load_rules()
    assert rules.attempts_per_level == 3 and rules.plans.activate_max_level == 2
    with pytest.raises(ValueError):
        domain.Rules.from_mapping({"plans": {"activate_max_level": 9}})
