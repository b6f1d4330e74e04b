"""The OpenAPI document tells the truth: schemathesis runs every operation with an operator key
and with an admin key against the in-process app, and fails on a status, media type or body the
document does not declare, on a schema-valid request refused for anything but state (an id or a
cursor the server never issued, a rule relative to today or between fields, listed below) or an
integer written as a float, and on schema-invalid data accepted."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis.core.failures import AcceptedNegativeData, FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.specs.openapi import checks

from tests.support.stack import Stack, running_stack

pytestmark = pytest.mark.fuzz

EXAMPLES = 10
CHECKS = [
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.positive_data_acceptance,
    checks.negative_data_rejection,
]
# Fields naming stored records: a random value names nothing (as a random id in a path is 404).
REFERENCES = {
    "cursor",
    "incident_id",
    "incident_ids",
    "warehouse_id",
    "item_code",
    "team_ids",
    "warning_id",
    "suggestion_id",
    "assignment_ids",
}
# Rules the schema cannot state: relative to the present (the stack's clock) or between fields.
RELATIVE_RULES = {
    ("GET /v1/scores", "query.month"),  # a month that has begun
    ("POST /v1/summaries/daily/publish", "query.date"),  # from the start, past its 17:00 cut-off
    ("GET /v1/summaries/daily", "query.date"),  # not in the future, not before the county's start
    ("GET /v1/summaries/situation", "query.to"),  # after from, at most 366 days
    ("GET /v1/summaries/situation", "query.from"),  # a period that has begun
    ("GET /v1/audit", "query.to"),  # after from
    # Report days: from not after to, at most 92 days before it (to defaults to today).
    ("GET /v1/zero-reports/contradictions", "query.from"),
    ("POST /v1/warnings", "expires"),  # in the future, after effective, at most 168 h
    ("POST /v1/warnings", "effective"),
    ("POST /v1/incidents", "occurred_at"),  # not in the future, before discovery
    ("POST /v1/incidents", "discovered_at"),
    ("POST /v1/incidents", "reporter"),  # reporter and approver are two people
    ("POST /v1/incidents", "approver"),
    ("POST /v1/zero-reports", "date"),  # not in the future, not before the county's start
    ("POST /v1/zero-reports", "approver"),  # reporter and approver are two people
    ("POST /v1/zero-reports", "reporter"),
    ("POST /v1/assignments", "due_at"),  # in the future
    ("POST /v1/joint-meetings", "held_on"),  # not in the future
    ("POST /v1/campaigns", "ends_on"),  # not before starts_on, at most 366 days after it
    ("POST /v1/campaigns", "stages"),  # each ending within the period, in order
    ("GET /v1/information/scores", "query.month"),  # a month that has begun
    ("POST /v1/information/items", "unit_code"),  # a department or township as unit_kind says
    ("POST /v1/information/notices", "unit_code"),
    ("POST /v1/information/notices", "date"),  # not in the future, in a month not yet scored
    ("POST /v1/epidemic/reports", "date"),  # begun, not before the county's start
    # Between fields and the day's stored figures: a disease or zero_for_rest, deaths within
    # cases, a case report with cases, each watched disease once, a reason for a changed figure.
    ("POST /v1/epidemic/reports", "entries"),
    ("POST /v1/dispatches", "resources"),  # a stock line listed once (by warehouse and item)
    ("POST /v1/dispatches/{dispatch_id}/status", "returned"),
    ("PUT /v1/duty/roster/{week}", "shifts"),  # days of the week the path names
    ("POST /v1/duty/spot-checks", "called_at"),  # not in the future
    ("POST /v1/duty/spot-checks", "answerer"),  # named when the result is 在岗
    # GB 32100's check character over the other 17, and one registration per code.
    ("POST /v1/enterprises", "credit_code"),
    ("POST /v1/enterprises", "response_groups"),  # each of the four groups once
    # The revision read (If-Match or revision) must be given and still be the stored one.
    ("PATCH /v1/enterprises/{enterprise_id}", "revision"),
    ("PATCH /v1/enterprises/{enterprise_id}", "header.If-Match"),  # the ETag read, e.g. "3"
    ("PATCH /v1/enterprises/{enterprise_id}", "response_groups"),
    # A deadline with findings only, not before the inspection's date.
    ("POST /v1/enterprises/{enterprise_id}/inspections", "deadline"),
    # Not before the inspection's date.
    ("PATCH /v1/enterprises/{enterprise_id}/inspections/{inspection_id}", "rectified_on"),
    # A key's fields by its role: a township code for a township key only, a department's code
    # or hazards (each once) for a department key only.
    ("POST /v1/admin/keys", "township_code"),
    ("POST /v1/admin/keys", "department_code"),
    ("POST /v1/admin/keys", "hazards"),
    # Names from capabilities.yaml, a file the county may replace (YINGJI_DISPATCH_…_FILE).
    ("POST /v1/teams", "capabilities"),
    ("PATCH /v1/teams/{team_id}", "capabilities"),
}


@pytest.fixture(scope="module")
def conformance_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(
        Path(tmp_path_factory.mktemp("conformance")),
        auth_failure_limit=10**6,
        rate_limit_per_second=0,
    ) as running:
        yield running


@pytest.fixture(scope="module")
def api_schema(conformance_stack: Stack) -> Any:
    # From the document itself: schemathesis' ASGI loader would run the app's lifespan again.
    return schemathesis.openapi.from_dict(conformance_stack.client.app.openapi())  # type: ignore[attr-defined]


def state_dependent(operation: str, response: Any, body: Any = None) -> bool:
    """A schema-valid request refused because of what is stored or of the present, or because
    ``body`` wrote an integer as a float."""
    if response.status_code not in (400, 422):
        return False
    try:
        error = json.loads(response.text)["error"]
        fields = error.get("fields") or []
    except (ValueError, KeyError, TypeError, AttributeError):
        return False
    if error.get("code") == "invalid_cursor":  # a cursor the server never issued
        return True

    def explained(field: dict[str, str]) -> bool:
        path = field["path"]
        segments = path.split(".")
        relative = {(operation, path), (operation, segments[0])} & RELATIVE_RULES
        return bool(set(segments) & REFERENCES or relative or integer_as_float(field, body))

    return bool(fields) and all(explained(field) for field in fields)


def integer_as_float(field: dict[str, str], body: Any) -> bool:
    """An integer field refused for a float with no fraction (121.0): JSON Schema counts it an
    integer, the API on purpose does not (libs/common/jsontypes.py: 3.0 people is a bug)."""
    if field.get("type") != "int_type":
        return False
    value = body
    for part in field["path"].split("."):
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return False
    return isinstance(value, float) and value.is_integer()


def not_really_invalid(case: Any, response: Any) -> bool:
    """A negative case that reached the server valid: its mutation was of the Authorization
    header (the test sends a real key), or it only added query parameters and dropped a required
    one that the added ones happen to name again."""
    mutations = case.meta.phase.data.mutations if case.meta is not None else ()
    if not mutations:
        return False
    sent = {name for name, _ in response.request.url.params.multi_items()}
    required = {p.name for p in case.operation.query if p.is_required}
    plain_strings = {
        p.name for p in case.operation.query if _plain_string(p.definition.get("schema", {}))
    }
    for mutation in mutations:
        if mutation.parameter == "Authorization":
            continue
        # On the wire every query value is text: a "wrong type" for a free-text parameter
        # arrives as a valid string (a list as the same name repeated; the last one counts).
        if mutation.parameter in plain_strings and set(mutation.keywords) <= {"type"}:
            continue
        extras_only = set(mutation.keywords) <= {"additionalProperties", "required"}
        if not (extras_only and str(mutation.parameter_location.value) == "query"):
            return False
        if not required <= sent:
            return False
    return True


def _plain_string(schema: dict[str, Any]) -> bool:
    options = [o for o in schema.get("anyOf", [schema]) if o.get("type") != "null"]
    limits = {"pattern", "enum", "format", "minLength", "maxLength", "const"}
    return len(options) == 1 and options[0].get("type") == "string" and not limits & set(options[0])


def _run(stack: Stack, operation: Any, who: str, mode: GenerationMode) -> list[str]:
    problems: list[str] = []
    headers = {"Authorization": f"Bearer {stack.keys[who]}"}
    label = f"{operation.method.upper()} {operation.path}"

    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    def check(case: Any) -> None:
        # Through the stack's own client: schemathesis' ASGI client would re-run the lifespan.
        kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=headers)
        kwargs.pop("cookies", None)
        response = stack.client.request(**kwargs)
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except FailureGroup as group:
            for failure in group.exceptions:
                if isinstance(failure, RejectedPositiveData) and state_dependent(
                    label, response, kwargs.get("json")
                ):
                    continue
                if isinstance(failure, AcceptedNegativeData) and not_really_invalid(case, response):
                    continue
                problems.append(
                    f"{who} {mode.value} {label} {kwargs.get('params')} "
                    f"{str(kwargs.get('json'))[:200]} → {response.status_code} "
                    f"{response.text[:200]}: {type(failure).__name__}"
                )

    # Unsatisfiable: nothing in this operation can be made invalid (no parameters, no body).
    with contextlib.suppress(hypothesis.errors.Unsatisfiable):
        check()
    return problems


@pytest.mark.parametrize("who", ["operator", "admin"])
def test_every_operation_keeps_its_contract(
    api_schema: Any, conformance_stack: Stack, who: str
) -> None:
    problems: list[str] = []
    operations = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        if operation.path == "/v1/stream":
            continue  # an endless event stream; tests/console covers it
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            problems += _run(conformance_stack, operation, who, mode)
    assert operations > 50
    assert problems == [], f"{len(problems)} problems:\n" + "\n".join(problems[:40])
