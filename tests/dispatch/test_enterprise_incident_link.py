"""An incident may name an enterprise of the register: intake checks the id's form only and
carries it on incident_reported; reporting names the enterprise on the incident's report chain
once dispatch's snapshot has reached it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.dispatch.service import SPEC as DISPATCH
from services.intake.service import SPEC as INTAKE
from services.reporting.service import SPEC as REPORTING
from tests.intake.helpers import created, post, report
from tests.support.stack import Stack, running_stack

pytestmark = pytest.mark.e2e


@pytest.fixture
def three(tmp_path: Path) -> Iterator[Stack]:
    """Intake, dispatch and reporting in-process."""
    with running_stack(tmp_path, specs=[INTAKE, DISPATCH, REPORTING]) as stack:
        yield stack


def test_an_incident_names_an_enterprise_and_reporting_shows_its_name(three: Stack) -> None:
    bad = post(three, report(three.clock.now(), enterprise_id="E 01/../x"))
    assert bad.status_code == 422
    assert bad.json()["error"]["fields"][0]["path"] == "enterprise_id"
    incident = created(three, report(three.clock.now(), enterprise_id="E01"))
    assert incident["enterprise_id"] == "E01"
    plain = created(three, report(three.clock.now(), title="无企业事件"))
    assert plain["enterprise_id"] is None
    three.settle()
    chain = three.call("GET", "/v1/reports", params={"incident_id": incident["id"]}).json()
    assert chain["enterprise"] == {"id": "E01", "name": "安河县城关燃气有限公司"}
    other = three.call("GET", "/v1/reports", params={"incident_id": plain["id"]}).json()
    assert other["enterprise"] is None
