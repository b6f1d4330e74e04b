"""A phoned-in report (电话报告): the duty officer enters a township's incident and intake keeps
who took the call (接听人) beside the caller (the reporter), stored and shown back, and the
信息专报 that reporting writes from the 首报 names the 接听人."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.intake.service import SPEC as INTAKE
from services.reporting.service import SPEC as REPORTING
from tests.intake.helpers import created, post, report
from tests.reporting.test_documents import docx_text
from tests.support.stack import Stack, running_stack

pytestmark = pytest.mark.e2e

TAKER = {"name": "王值班", "phone": "0551-6660110"}


def test_call_taker_is_kept_and_shown_with_the_incident(intake: Stack) -> None:
    body = report(intake.clock.now(), source="电话报告", received_by=TAKER)
    result = created(intake, body, who="operator")
    assert result["received_by"] == TAKER
    assert result["reporter"] == body["reporter"], "the caller is the reporter"
    # Read back from the store, in the list and in the detail.
    detail = intake.call("GET", f"/v1/incidents/{result['id']}").json()
    assert detail["received_by"] == TAKER and detail["source"] == "电话报告"
    listed = intake.call("GET", "/v1/incidents").json()["items"]
    assert [i["received_by"] for i in listed if i["id"] == result["id"]] == [TAKER]
    stored = intake.ctx("intake").resources["repository"].incident_by_id(result["id"])
    assert stored["received_by"] == TAKER


def test_a_report_the_township_files_itself_has_no_call_taker(intake: Stack) -> None:
    result = created(intake, report(intake.clock.now()))
    assert result["received_by"] is None
    name_only = created(
        intake, report(intake.clock.now(), received_by={"name": "李值班"}), "operator"
    )
    assert name_only["received_by"] == {"name": "李值班", "phone": None}


@pytest.mark.parametrize(
    ("received_by", "field"),
    [
        ({"name": "  "}, "received_by.name"),
        ({"name": "王值班", "phone": "call me"}, "received_by.phone"),
        ({"name": "王值班", "shift": "night"}, "received_by.shift"),
        ("王值班", "received_by"),
    ],
)
def test_a_bad_call_taker_is_refused_naming_the_field(
    intake: Stack, received_by: object, field: str
) -> None:
    response = post(intake, report(intake.clock.now(), received_by=received_by), "operator")
    assert response.status_code == 422, response.text
    assert field in {f["path"] for f in response.json()["error"]["fields"]}


def test_idempotent_retry_without_a_call_taker_keeps_its_fingerprint(intake: Stack) -> None:
    body = report(intake.clock.now())
    first = post(intake, body, headers={"Idempotency-Key": "phone-1"})
    again = post(intake, {**body, "received_by": None}, headers={"Idempotency-Key": "phone-1"})
    assert first.status_code == 201 and again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    other = post(intake, {**body, "received_by": TAKER}, headers={"Idempotency-Key": "phone-1"})
    assert other.status_code == 409


@pytest.fixture
def with_reporting(tmp_path: Path) -> Iterator[Stack]:
    """Intake and reporting: the 首报's event reaches reporting, which writes the 信息专报."""
    with running_stack(tmp_path, specs=[INTAKE, REPORTING]) as stack:
        yield stack


def test_the_call_taker_reaches_the_bulletin(with_reporting: Stack) -> None:
    stack = with_reporting
    body = report(stack.clock.now(), source="电话报告", received_by=TAKER)
    result = created(stack, body, who="operator")
    stack.settle()
    response = stack.call(
        "GET", "/v1/reports", params={"incident_id": result["id"], "format": "docx"}
    )
    assert response.status_code == 200, response.text
    text = docx_text(response.content)
    assert "接听人：王值班（0551-6660110）（电话报告）" in text
    assert f"报送人：{body['reporter']['name']}" in text, "the caller stays the reporter"


def test_a_township_filed_bulletin_names_no_call_taker(with_reporting: Stack) -> None:
    stack = with_reporting
    result = created(stack, report(stack.clock.now()))
    stack.settle()
    response = stack.call(
        "GET", "/v1/reports", params={"incident_id": result["id"], "format": "docx"}
    )
    assert response.status_code == 200, response.text
    assert "报送人" in docx_text(response.content)
    assert "接听人" not in docx_text(response.content)
