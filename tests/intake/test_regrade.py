"""Re-grading from reporting's follow-ups and closing on its final report, with redelivery."""

from __future__ import annotations

import re
from typing import Any

from prometheus_client import REGISTRY

from libs.common.bus import list_dead_letters, queue_name
from tests.intake.helpers import (
    affected,
    casualties,
    created,
    deliver,
    report,
    reporting_event,
    sent_events,
)
from tests.support.stack import TOWNSHIP_A, Stack


def followup(
    stack: Stack, incident_id: str, number: int, people: int | None = None, **figures: int
) -> Any:
    payload: dict[str, Any] = {
        "report_id": f"rep-{incident_id[:6]}-{number}",
        "incident_id": incident_id,
        "township_code": TOWNSHIP_A,
        "number": number,
        "casualties": casualties(**figures),
        "affected": affected(people_evacuated=40),
    }
    if people is not None:
        payload["people_involved"] = people
    return reporting_event(stack, "followup_filed", payload)


def final(stack: Stack, incident_id: str, **figures: int) -> Any:
    return reporting_event(
        stack,
        "final_report_filed",
        {
            "report_id": f"final-{incident_id[:6]}",
            "incident_id": incident_id,
            "township_code": TOWNSHIP_A,
            "casualties": casualties(**figures),
            "affected": affected(people_evacuated=40),
        },
    )


def incident(stack: Stack, incident_id: str) -> dict[str, Any]:
    response = stack.call("GET", f"/v1/incidents/{incident_id}")
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def regrades(old: str, new: str) -> float:
    value = REGISTRY.get_sample_value(
        "yingji_intake_regrades_total", {"old_grade": old, "new_grade": new}
    )
    return value or 0.0


def duplicate_deliveries() -> float:
    value = REGISTRY.get_sample_value(
        "yingji_bus_consumed_total",
        {
            "service": "intake",
            "queue": "evt-reporting-followup_filed--intake.on_followup_filed",
            "outcome": "duplicate",
        },
    )
    return value or 0.0


def test_followup_delivered_twice_regrades_once_and_flags_skipped_grades(intake: Stack) -> None:
    reported = created(intake, report(intake.clock.now(), casualties=casualties(deaths=1)))
    assert reported["grade"] == 4
    before = regrades("4", "2")
    duplicates_before = duplicate_deliveries()
    event = followup(intake, reported["id"], 1, deaths=11)
    deliver(intake, event, event)
    assert duplicate_deliveries() == duplicates_before + 1
    current = incident(intake, reported["id"])
    assert (current["grade"], current["grade_label"], current["initial_grade"]) == (
        4 - 2,
        "重大",
        4,
    )
    assert current["casualties"]["deaths"] == 11
    assert current["escalation_reasons"] == ["major_grade"]
    assert current["grade_basis"][0]["measure"] == "deaths"
    kinds = [h["kind"] for h in current["history"]]
    assert kinds == ["reported", "regraded"]
    entry = current["history"][1]
    assert (entry["old_grade"], entry["new_grade"], entry["skipped_grades"]) == (4, 2, True)
    [sent] = sent_events(intake, "incident_regraded", reported["id"])
    payload = sent["payload"]
    assert (payload["old_grade"], payload["new_grade"], payload["skipped_grades"]) == (4, 2, True)
    assert payload["reason"].startswith("续报第1次：死亡11人（Ⅱ级标准10人及以上）"), payload
    assert not re.search(r"[A-Za-z]", payload["reason"]), "the reason reaches users in Chinese"
    assert payload["casualties"]["deaths"] == 11
    assert sent["causation_id"] == event.event_id
    assert sent["correlation_id"] == reported["id"]
    assert regrades("4", "2") == before + 1


def test_one_step_upgrade_is_not_skipping(intake: Stack) -> None:
    reported = created(intake, report(intake.clock.now(), casualties=casualties(deaths=3)))
    deliver(intake, followup(intake, reported["id"], 1, deaths=10))
    [sent] = sent_events(intake, "incident_regraded", reported["id"])
    assert (sent["payload"]["old_grade"], sent["payload"]["new_grade"]) == (3, 2)
    assert sent["payload"]["skipped_grades"] is False


def test_falling_figures_never_downgrade(intake: Stack) -> None:
    reported = created(intake, report(intake.clock.now(), casualties=casualties(deaths=12)))
    deliver(intake, followup(intake, reported["id"], 1, deaths=2))
    current = incident(intake, reported["id"])
    assert current["grade"] == 2
    assert current["figures_grade"] == 4
    assert current["casualties"]["deaths"] == 2
    assert [h["kind"] for h in current["history"]] == ["reported", "updated"]
    assert sent_events(intake, "incident_regraded", reported["id"]) == []


def test_an_older_followup_arriving_late_is_ignored(intake: Stack) -> None:
    reported = created(intake, report(intake.clock.now()))
    deliver(intake, followup(intake, reported["id"], 2, deaths=4))
    deliver(intake, followup(intake, reported["id"], 1, deaths=1))
    current = incident(intake, reported["id"])
    assert current["casualties"]["deaths"] == 4
    assert current["grade"] == 3


def test_followup_people_involved_escalates(intake: Stack) -> None:
    body = report(intake.clock.now(), category="enterprise_risk", people_involved=3)
    reported = created(intake, body)
    assert reported["escalated"] is False
    deliver(intake, followup(intake, reported["id"], 1, people=14))
    current = incident(intake, reported["id"])
    assert current["people_involved"] == 14
    assert (current["escalated"], current["escalation_reasons"]) == (True, ["people_involved"])
    # A follow-up that is silent on people involved keeps the last count.
    deliver(intake, followup(intake, reported["id"], 2))
    assert incident(intake, reported["id"])["people_involved"] == 14


FOLLOWUP_QUEUE = queue_name("reporting", "followup_filed", "intake", "on_followup_filed")


def bus_counts(queue: str) -> dict[str, float]:
    """Intake's consumer counters for one queue: acknowledged, failed attempts, dead-lettered."""

    def sample(name: str, **labels: str) -> float:
        found = REGISTRY.get_sample_value(name, {"service": "intake", "queue": queue, **labels})
        return found or 0.0

    return {
        "acknowledged": sum(
            sample("yingji_bus_consumed_total", outcome=o) for o in ("applied", "duplicate")
        ),
        "failed": sample("yingji_bus_failed_total"),
        "dead_lettered": sample("yingji_bus_dead_lettered_total"),
    }


def test_followup_for_an_unknown_incident_is_acknowledged(intake: Stack) -> None:
    """Acknowledged once: never raised (retried) nor moved to the dead-letter queue."""
    before = bus_counts(FOLLOWUP_QUEUE)
    deliver(intake, followup(intake, "does-not-exist", 1, deaths=40))
    after = bus_counts(FOLLOWUP_QUEUE)
    delta = {name: after[name] - before[name] for name in before}
    assert delta == {"acknowledged": 1.0, "failed": 0.0, "dead_lettered": 0.0}
    assert list_dead_letters(intake.runtime.settings, FOLLOWUP_QUEUE) == []
    assert intake.ctx("intake").resources["repository"].count_incidents() == 0


def test_final_report_closes_once_even_when_redelivered(intake: Stack) -> None:
    body = report(intake.clock.now(), exercise=True, casualties=casualties(deaths=2))
    reported = created(intake, body)
    event = final(intake, reported["id"], deaths=3)
    deliver(intake, event, event)
    current = incident(intake, reported["id"])
    assert (current["status"], current["closed_by"]) == ("closed", "final_report")
    assert current["grade"] == 3  # the final figures raised it before closing
    assert [h["kind"] for h in current["history"]] == ["reported", "regraded", "closed"]
    [closed] = sent_events(intake, "incident_closed", reported["id"])
    assert closed["payload"]["closed_by"] == "final_report"
    assert closed["payload"]["reason"] == current["close_reason"] == "终报已报送，事件结案"
    assert regraded_reason(intake, reported["id"]).startswith("终报：死亡3人（Ⅲ级标准3人及以上）")
    assert closed["payload"]["exercise"] is True
    [regraded] = sent_events(intake, "incident_regraded", reported["id"])
    assert regraded["payload"]["exercise"] is True
    # Reporting files no follow-up after the final report, so one that arrives now was filed
    # before it and delivered late: its figures are older than the final report's and are
    # neither recorded over them nor re-grade the incident.
    deliver(intake, followup(intake, reported["id"], 5, deaths=40))
    after = incident(intake, reported["id"])
    assert (after["grade"], after["status"], after["casualties"]["deaths"]) == (3, "closed", 3)
    assert len(sent_events(intake, "incident_regraded", reported["id"])) == 1


def test_final_report_after_a_leader_closed_gives_its_figures_and_grade(intake: Stack) -> None:
    """The leader's close starts the final report's clock; the final report that answers it is
    the incident's last word: its figures are kept and raise the grade, once, with no second
    close."""
    reported = created(intake, report(intake.clock.now(), casualties=casualties(deaths=2)))
    response = intake.call(
        "POST",
        f"/v1/incidents/{reported['id']}/close",
        who="leader",
        json={"reason": "应急响应结束"},
    )
    assert response.status_code == 200
    before = regrades("4", "3")
    event = final(intake, reported["id"], deaths=3)
    deliver(intake, event, event)
    current = incident(intake, reported["id"])
    assert (current["status"], current["closed_by"]) == ("closed", "leader")
    assert (current["grade"], current["casualties"]["deaths"]) == (3, 3)
    assert [h["kind"] for h in current["history"]] == ["reported", "closed", "regraded"]
    assert regraded_reason(intake, reported["id"]).startswith("终报：死亡3人")
    assert len(sent_events(intake, "incident_closed", reported["id"])) == 1
    assert regrades("4", "3") == before + 1
    # A follow-up filed before the close and delivered after the final report is older than
    # it: the final figures stay.
    deliver(intake, followup(intake, reported["id"], 2, deaths=40))
    after = incident(intake, reported["id"])
    assert (after["grade"], after["casualties"]["deaths"]) == (3, 3)
    assert "final_report_at" not in after


def test_a_second_final_report_or_one_for_a_merged_incident_changes_nothing(
    intake: Stack,
) -> None:
    reported = created(intake, report(intake.clock.now()))
    deliver(intake, final(intake, reported["id"], deaths=1))
    late = reporting_event(
        intake,
        "final_report_filed",
        {
            "report_id": "final-again",
            "incident_id": reported["id"],
            "township_code": TOWNSHIP_A,
            "casualties": casualties(deaths=5),
            "affected": affected(),
        },
    )
    deliver(intake, late)
    current = incident(intake, reported["id"])
    assert (current["grade"], current["casualties"]["deaths"]) == (4, 1)
    assert sent_events(intake, "incident_regraded", reported["id"]) == []
    # A duplicate merged into its primary reports through the primary's chain.
    primary = created(intake, report(intake.clock.now(), title="主事件"))
    duplicate = created(intake, report(intake.clock.now(), title="重复报告"))
    merged = intake.call(
        "POST",
        f"/v1/incidents/{duplicate['id']}/merge",
        who="leader",
        json={"primary_id": primary["id"], "reason": "同一事件重复报告"},
    )
    assert merged.status_code == 200
    deliver(intake, final(intake, duplicate["id"], deaths=5))
    after = incident(intake, duplicate["id"])
    assert (after["status"], after["grade"], after["casualties"]["deaths"]) == ("merged", 4, 0)
    assert sent_events(intake, "incident_regraded", duplicate["id"]) == []


def regraded_reason(stack: Stack, incident_id: str) -> str:
    """The reason of the one re-grade sent for an incident."""
    [regraded] = sent_events(stack, "incident_regraded", incident_id)
    reason: str = regraded["payload"]["reason"]
    return reason
