"""Numbers and booleans are taken only as JSON wrote them: ``true`` is no 1, ``"12"`` no 12,
``3.0`` no count of people and ``"yes"`` no drill flag. Every integer, boolean and number field
of every JSON request body, found in the OpenAPI document, refuses another JSON type with a 422
naming the field and the reason in Chinese (libs/common/jsontypes.py); the repro cases of each
service are refused outright and the same body with the right type is accepted."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from libs.common.errors import PYDANTIC_REASONS
from tests.reporting.support import SHANGHAI
from tests.security.test_text_fields import body_with, json_body_operations, post_raw, resolve
from tests.support.bodies import incident_body, zero_report_body
from tests.support.stack import TOWNSHIP_A, Stack, running_stack

pytestmark = pytest.mark.e2e

Path_ = tuple[str | int, ...]
# For each JSON Schema type, values of other JSON types that lax parsing would have coerced.
WRONG_VALUES: dict[str, tuple[Any, ...]] = {
    "integer": (True, "1", 2.0),
    "boolean": ("true", 1),
    "number": (True, "1.5"),
}
ERROR_TYPES = {"integer": "int_type", "boolean": "bool_type", "number": "float_type"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(Path(tmp_path_factory.mktemp("json")), auth_failure_limit=10**6) as running:
        yield running


def scalar_fields(
    schema: Mapping[str, Any], components: Mapping[str, Any], path: Path_ = ()
) -> Iterator[tuple[Path_, str]]:
    """Every integer, boolean or number place in a body schema, with its path and type."""
    schema = resolve(schema, components)
    for key in ("anyOf", "oneOf", "allOf"):
        for alternative in schema.get(key, []):
            yield from scalar_fields(alternative, components, path)
    kind = schema.get("type")
    if kind == "object":
        for name, sub in schema.get("properties", {}).items():
            yield from scalar_fields(sub, components, (*path, name))
    elif kind == "array" and "items" in schema:
        yield from scalar_fields(schema["items"], components, (*path, 0))
    elif kind in WRONG_VALUES:
        yield path, kind


def _named(response: Any, name: str) -> list[dict[str, str]]:
    return [f for f in response.json()["error"]["fields"] if f["path"] == name]


def test_every_number_and_flag_of_every_request_refuses_other_json_types(stack: Stack) -> None:
    components = stack.client.app.openapi()["components"]["schemas"]  # type: ignore[attr-defined]
    problems: list[str] = []
    checked: set[str] = set()
    for method, path, schema in json_body_operations(stack):
        for field_path, kind in scalar_fields(schema, components):
            name = ".".join(str(p) for p in field_path)
            checked.add(f"{method} {path} {name}")
            for value in WRONG_VALUES[kind]:
                where = f"{method.upper()} {path} {name}={value!r}"
                response = post_raw(stack, method, path, body_with(field_path, value))
                if response.status_code != 422:
                    problems.append(f"{where}: {response.status_code} {response.text[:200]}")
                    continue
                named = _named(response, name)
                error_type = ERROR_TYPES[kind]
                expected = {"type": error_type, "reason": PYDANTIC_REASONS[error_type]}
                if not any(f.get("type") == expected["type"] for f in named):
                    problems.append(f"{where}: {named or response.text[:200]}, want {expected}")
                elif not all(f["reason"] == expected["reason"] for f in named):
                    problems.append(f"{where}: reason {named}")
    assert not problems, "\n".join(problems)
    # Casualties, losses, levels, versions, quantities, drill flags: dozens in all four services.
    assert len(checked) >= 50, sorted(checked)


@dataclass(frozen=True)
class Repro:
    """A request the trial found accepted with a value of the wrong JSON type."""

    path: str
    who: str
    body: Callable[[Stack], dict[str, Any]]
    field: str
    value: Any

    def send(self, stack: Stack, value: Any) -> Any:
        """POST the body with ``value`` put at the field's place."""
        body = self.body(stack)
        *parents, last = self.field.split(".")
        target: Any = body
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[last] = value
        return stack.call("POST", self.path, who=self.who, json=body)


def _incident(stack: Stack) -> dict[str, Any]:
    return incident_body(stack.clock.now())


def _warning(stack: Stack) -> dict[str, Any]:
    return {
        "hazard": "rainstorm",
        "level": 3,
        "headline": "安河县暴雨黄色预警",
        "description": "预计未来6小时城关镇降雨量将达50毫米以上。",
        "instruction": "注意防范，转移低洼地带人员。",
        "areas": [TOWNSHIP_A],
        "expires": (stack.clock.now() + timedelta(hours=6)).isoformat(),
        "exercise": True,
    }


def _adjustment(_: Stack) -> dict[str, Any]:
    return {"warehouse_id": "W01", "item_code": "tent", "delta": 1, "reason": "盘点"}


def _zero_report(stack: Stack) -> dict[str, Any]:
    # A zero report is for a day that is over in the county: yesterday, local time.
    yesterday = stack.clock.now().astimezone(SHANGHAI).date() - timedelta(days=1)
    return zero_report_body(TOWNSHIP_A, yesterday, exercise=True)


def _dispatch(stack: Stack) -> dict[str, Any]:
    reported = stack.call("POST", "/v1/incidents", json=incident_body(stack.clock.now()))
    assert reported.status_code == 201, reported.text
    stack.settle()
    line = {"warehouse_id": "W02", "item_code": "assault_boat", "quantity": 1}
    return {"incident_id": reported.json()["id"], "resources": [line]}


REPROS = {
    "deaths true": Repro("/v1/incidents", "township_a", _incident, "casualties.deaths", True),
    "deaths '12'": Repro("/v1/incidents", "township_a", _incident, "casualties.deaths", "12"),
    "deaths 3.0": Repro("/v1/incidents", "township_a", _incident, "casualties.deaths", 3.0),
    "people true": Repro("/v1/incidents", "township_a", _incident, "people_involved", True),
    "exercise 'yes'": Repro("/v1/incidents", "township_a", _incident, "exercise", "yes"),
    "level true": Repro("/v1/warnings", "operator", _warning, "level", True),
    "level '1'": Repro("/v1/warnings", "operator", _warning, "level", "1"),
    "level '3'": Repro("/v1/warnings", "operator", _warning, "level", "3"),
    "delta true": Repro("/v1/stock/adjust", "operator", _adjustment, "delta", True),
    "nothing 'true'": Repro(
        "/v1/zero-reports", "township_a", _zero_report, "nothing_to_report", "true"
    ),
    "nothing 1": Repro("/v1/zero-reports", "township_a", _zero_report, "nothing_to_report", 1),
    "half a boat": Repro("/v1/dispatches", "operator", _dispatch, "resources.0.quantity", 0.5),
}
EXPECTED_REASON = {
    "deaths 3.0": "须为整数",
    "exercise 'yes'": "须为布尔值",
    "delta true": "须为数字",
    "nothing 'true'": "须为布尔值",
    "nothing 1": "须为布尔值",
    "half a boat": "须为整数",
}


@pytest.mark.parametrize("case", list(REPROS), ids=list(REPROS))
def test_the_trial_repro_is_refused_naming_the_field(stack: Stack, case: str) -> None:
    repro = REPROS[case]
    stack.clock.advance(86_400)  # a day of its own: one zero report per township and day
    refused = repro.send(stack, repro.value)
    assert refused.status_code == 422, refused.text
    named = _named(refused, repro.field)
    assert named, refused.text
    assert EXPECTED_REASON.get(case, "须为整数") in named[0]["reason"]
    accepted = repro.send(stack, _right(repro.value, case))
    assert accepted.status_code in (200, 201), accepted.text


def _right(value: Any, case: str) -> Any:
    """The value the caller meant, of the JSON type the field takes."""
    if case.startswith(("exercise", "nothing")):
        return True
    if case == "delta true":
        return 1
    if case == "half a boat":
        return 1
    return int(value)
