"""POST /v1/reports and the handler of the report's own event apply the same report at the
same moment: whichever meets the deadline, the answer carries the report's true ``late``.

The race is laid out at its widest, every round: the own-event path meets the deadline first
and writes its note only once the API has answered, so the API's path loses the deadline and
must still answer with the note stored."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from services.reporting import events
from services.reporting.repository import ReportingRepository
from services.reporting.usecases import incoming
from tests.reporting.support import incident_reported, report_body
from tests.support.stack import Stack

ROUNDS = 3
# Only a safety net against a hang: every wait below ends on an event of the race itself.
WAIT = 30.0


class Race:
    """Orders the paths of one round through the repository they share."""

    def __init__(self, repo: ReportingRepository, monkeypatch: pytest.MonkeyPatch) -> None:
        self.own_event_thread: int | None = None
        self.met = threading.Event()
        self.answered = threading.Event()
        meet, note = repo.meet_deadline, repo.note_report_meets

        def meet_after_own_event(*args: Any) -> bool:
            mine = threading.get_ident() == self.own_event_thread
            if not mine:
                self.met.wait(WAIT)
            try:
                return meet(*args)
            finally:
                if mine:
                    self.met.set()

        def note_after_answer(*args: Any) -> bool | None:
            if threading.get_ident() == self.own_event_thread:
                self.answered.wait(WAIT)
            return note(*args)

        monkeypatch.setattr(repo, "meet_deadline", meet_after_own_event)
        monkeypatch.setattr(repo, "note_report_meets", note_after_answer)

    def new_round(self) -> None:
        """Both gates closed again."""
        self.met.clear()
        self.answered.clear()


def _own_event_path(stack: Stack, race: Race, incident_id: str) -> None:
    """What the handler of ``followup_filed`` does, run as soon as the report is stored."""
    race.own_event_thread = threading.get_ident()
    ctx = stack.ctx("reporting")
    repo: ReportingRepository = ctx.resources["repository"]
    while (report := repo.last_report(incident_id)) is None:
        pass
    incoming.own_report(ctx, repo)(events.report_filed(ctx.clock, report))


def _file_racing(stack: Stack, race: Race, incident_id: str) -> dict[str, Any]:
    """The API's answer, the own-event path running beside it."""
    race.new_round()
    other = threading.Thread(target=_own_event_path, args=(stack, race, incident_id))
    other.start()
    try:
        answer = stack.call("POST", "/v1/reports", who="township_a", json=report_body(incident_id))
    finally:
        race.answered.set()
        other.join(WAIT)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def test_the_answer_carries_the_stored_late_whichever_path_meets_the_deadline(
    rstack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo: ReportingRepository = rstack.ctx("reporting").resources["repository"]
    race = Race(repo, monkeypatch)
    for late in (False, True):
        ids = [incident_reported(rstack, grade=3).payload["incident_id"] for _ in range(ROUNDS)]
        if late:
            rstack.clock.advance(3 * 24 * 3600)  # every first follow-up is past due
        for incident_id in ids:
            answer = _file_racing(rstack, race, incident_id)
            stored = repo.report_by_id(answer["id"]) or {}
            assert isinstance(answer["late"], bool), answer
            assert answer["late"] is stored["late"] is late
            assert answer["deadline_id"] == stored["deadline_id"] is not None
        rstack.settle()
