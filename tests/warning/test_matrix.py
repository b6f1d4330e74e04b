"""The approval matrix (role × level × department hazards) over HTTP, on one shared stack.

Kept in its own module: a module-scoped stack must not run beside another stack, since the
in-memory bus is shared by every runtime in the process.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.warning.conftest import WarningStack, warning_stack


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WarningStack]:
    """One stack for the read-mostly matrix tests."""
    with warning_stack(Path(tmp_path_factory.mktemp("matrix"))) as running:
        yield running


HAZARD = "forbidden_warning_action"  # the role may issue, but not this hazard
ROLE = "forbidden_role"  # the role may not issue at all


@pytest.mark.parametrize(
    ("who", "hazard", "level", "code", "outcome"),
    [
        ("operator", "rainstorm", 4, 201, "active"),
        ("operator", "rainstorm", 3, 201, "active"),
        ("operator", "rainstorm", 2, 201, "pending_approval"),
        ("operator", "geological", 1, 201, "pending_approval"),
        ("department", "rainstorm", 3, 201, "active"),
        ("department", "lightning", 2, 201, "pending_approval"),
        ("department", "flood", 3, 403, HAZARD),
        ("department", "geological", 1, 403, HAZARD),
        ("water_department", "flood", 4, 201, "active"),
        ("water_department", "flood", 1, 201, "pending_approval"),
        ("water_department", "rainstorm", 4, 403, HAZARD),
        ("leader", "rainstorm", 1, 201, "active"),
        ("leader", "public_health", 3, 201, "active"),
        ("township_a", "rainstorm", 4, 403, ROLE),
        ("admin", "rainstorm", 4, 403, ROLE),
    ],
)
def test_issue_matrix_role_level_department(
    shared: WarningStack, who: str, hazard: str, level: int, code: int, outcome: str
) -> None:
    """201 with the warning's status, or 403 with the error code that says why."""
    response = shared.issue(who, hazard=hazard, level=level)
    assert response.status_code == code, response.text
    if code == 403:
        assert response.json()["error"]["code"] == outcome
        return
    status = outcome
    body = response.json()
    assert body["status"] == status
    assert body["level"] == level
    assert body["color"] == {1: "red", 2: "orange", 3: "yellow", 4: "blue"}[level]
    assert body["version"] == 1
    versions = body["versions"]
    assert versions[0]["state"] == ("issued" if status == "active" else "pending")
    if who == "leader" and level <= 2:
        assert versions[0]["approved_by"]["role"] == "leader"


@pytest.mark.parametrize("who", ["operator", "department", "water_department", "township_a"])
def test_only_a_leader_approves_or_rejects(shared: WarningStack, who: str) -> None:
    created = shared.issue("operator", level=2).json()
    for action, body in (("approve", {}), ("reject", {"reason": "不同意"})):
        response = shared.call("POST", f"/v1/warnings/{created['id']}/{action}", who=who, json=body)
        assert response.status_code == 403, response.text
    assert shared.call("GET", f"/v1/warnings/{created['id']}").json()["status"] == (
        "pending_approval"
    )
