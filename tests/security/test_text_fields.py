"""Text that stays XML, at the door: every string field of every JSON request body, found in the
OpenAPI document, refuses a character XML 1.0 forbids with a 422 naming the field; free-text
fields do it through the one shared type (libs/common/text.py) and say why in Chinese. The
county file is held to the same rule, and the output guard turns any string into XML text."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import yaml
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from libs.common.county import DEMO_COUNTY_FILE, load_county
from libs.common.text import XML_TEXT_PATTERN, Text, bounded_text, forbidden_reason, xml_safe
from tests.security.test_authz_matrix import ROLE_KEYS, allowed_roles, api_routes
from tests.support.bodies import incident_body
from tests.support.stack import Stack, running_stack

pytestmark = pytest.mark.e2e

BAD = "甲\u0001乙"
PREFERENCE = ("operator", "leader", "admin", "department", "township")
FORBIDDEN = [
    *(chr(c) for c in range(0x09)),
    "\x0b",
    "\x0c",
    *(chr(c) for c in range(0x0E, 0x20)),
    *("\ud800", "\udbff", "\udc00", "\udfff", "\ufffe", "\uffff"),
]
ALLOWED = ["\t", "\n", "\r", " ", "\x7f", "\ud7ff", "\ue000", "\ufffd", "\U00010000", "\U0010ffff"]
Path_ = tuple[str | int, ...]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(Path(tmp_path_factory.mktemp("text")), auth_failure_limit=10**6) as running:
        yield running


def resolve(schema: Mapping[str, Any], components: Mapping[str, Any]) -> Mapping[str, Any]:
    """A schema, or the component its $ref names."""
    ref = schema.get("$ref")
    return components[ref.rsplit("/", 1)[-1]] if ref else schema


def string_fields(
    schema: Mapping[str, Any], components: Mapping[str, Any], path: Path_ = ()
) -> Iterator[tuple[Path_, Mapping[str, Any]]]:
    """Every string-valued place in a body schema, with its path (list items as index 0)."""
    schema = resolve(schema, components)
    for key in ("anyOf", "oneOf", "allOf"):
        for alternative in schema.get(key, []):
            yield from string_fields(alternative, components, path)
    kind = schema.get("type")
    if kind == "object":
        for name, sub in schema.get("properties", {}).items():
            yield from string_fields(sub, components, (*path, name))
    elif kind == "array" and "items" in schema:
        yield from string_fields(schema["items"], components, (*path, 0))
    elif kind == "string":
        yield path, schema


def body_with(path: Path_, value: str) -> Any:
    """A body holding ``value`` at ``path`` and nothing else."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    inner = body_with(rest, value)
    return [inner] if isinstance(head, int) else {head: inner}


def key_for(stack: Stack, method: str, path: str) -> dict[str, str]:
    """Authorization for a role the route admits (none for public routes)."""
    for route in api_routes(stack):
        if route.path == path and method.upper() in route.methods:
            roles = allowed_roles(route) or ()
            for role in PREFERENCE:
                if role in roles:
                    return {"Authorization": f"Bearer {stack.keys[ROLE_KEYS[role]]}"}
            return {}
    raise AssertionError(f"no route for {method} {path}")


def json_body_operations(stack: Stack) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """(method, path, body schema) of every operation taking a JSON body."""
    document = stack.client.app.openapi()  # type: ignore[attr-defined]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                yield method, path, content["application/json"]["schema"]


def post_raw(stack: Stack, method: str, path: str, body: Any) -> Any:
    """Send ``body`` as ASCII-escaped JSON (a raw control character is not JSON at all)."""
    headers = {**key_for(stack, method, path), "Content-Type": "application/json"}
    url = re.sub(r"\{[^}]+\}", "x1", path)
    return stack.client.request(method.upper(), url, content=json.dumps(body), headers=headers)


def test_every_string_field_of_every_request_refuses_forbidden_characters(stack: Stack) -> None:
    components = stack.client.app.openapi()["components"]["schemas"]  # type: ignore[attr-defined]
    problems: list[str] = []
    checked = free_text = 0
    for method, path, schema in json_body_operations(stack):
        for field_path, field in string_fields(schema, components):
            name = ".".join(str(p) for p in field_path) or "body"
            where = f"{method.upper()} {path} {name}"
            response = post_raw(stack, method, path, body_with(field_path, BAD))
            checked += 1
            if response.status_code != 422:
                problems.append(f"{where}: {response.status_code} {response.text[:200]}")
                continue
            reasons = [
                f["reason"]
                for f in response.json()["error"]["fields"]
                if f["path"] == name or name.startswith(f"{f['path']}.")
            ]
            own_pattern = field.get("pattern") not in (None, XML_TEXT_PATTERN)
            closed = "enum" in field or "const" in field or "format" in field
            if not reasons:
                problems.append(f"{where}: 422 does not name the field")
            elif "U+0001" in reasons[0] and "XML 不允许" in reasons[0]:
                free_text += 1
            elif not (closed or (own_pattern and not re.search(field["pattern"], BAD))):
                problems.append(f"{where}: free text without the shared Text type: {reasons}")
    assert not problems, "\n".join(problems)
    # Incidents, reports, warnings, dispatch, keys: dozens of free-text fields in all.
    assert checked >= 60 and free_text >= 40, (checked, free_text)


def test_a_lone_surrogate_and_a_noncharacter_are_refused_with_the_reason(stack: Stack) -> None:
    for char, kind in (("\udc80", "代理码位"), ("\uffff", "非字符"), ("\x1f", "控制字符")):
        response = post_raw(stack, "post", "/v1/admin/keys", {"role": "operator", "name": char})
        assert response.status_code == 422, response.text
        [problem] = response.json()["error"]["fields"]
        assert problem["path"] == "name"
        assert kind in problem["reason"] and f"U+{ord(char):04X}" in problem["reason"]


def test_accepted_edges_pass_and_are_stored_as_sent(stack: Stack) -> None:
    name = "值班" + "".join(ALLOWED)
    response = post_raw(stack, "post", "/v1/admin/keys", {"role": "operator", "name": name})
    assert response.status_code == 201, response.text
    assert response.json()["name"] == name


def test_a_township_cannot_plant_a_control_character_in_an_incident_title(stack: Stack) -> None:
    """The title a township reports is copied into warning suggestions: it is refused at once."""
    body = incident_body(stack.clock.now(), title="河堤\b溃口")
    headers = {**stack.headers("township_a"), "Content-Type": "application/json"}
    response = stack.client.post("/v1/incidents", content=json.dumps(body), headers=headers)
    assert response.status_code == 422, response.text
    [problem] = response.json()["error"]["fields"]
    assert problem["path"] == "title" and "U+0008" in problem["reason"]
    good = stack.client.post(
        "/v1/incidents", json=incident_body(stack.clock.now()), headers=headers
    )
    assert good.status_code == 201, good.text


@pytest.mark.unit
def test_the_text_type_refuses_exactly_what_xml_forbids() -> None:
    text = TypeAdapter(Text)
    for char in FORBIDDEN:
        with pytest.raises(ValidationError) as refused:
            text.validate_python(f"a{char}b")
        assert refused.value.errors()[0]["type"] == "xml_forbidden_character"
        assert forbidden_reason(f"a{char}b") == refused.value.errors()[0]["msg"]
        if not 0xD800 <= ord(char) <= 0xDFFF:  # the schema's pattern leaves surrogates out
            assert re.fullmatch(XML_TEXT_PATTERN, f"a{char}b") is None
    for char in ALLOWED:
        assert text.validate_python(f"a{char}b") == f"a{char}b"
        assert re.fullmatch(XML_TEXT_PATTERN, f"a{char}b")
    short = TypeAdapter(bounded_text(3))
    assert short.validate_python("  甲乙  ") == "甲乙"
    for refused_value in ("    ", "甲乙丙丁", "\x01"):
        with pytest.raises(ValidationError):
            short.validate_python(refused_value)


@pytest.mark.unit
@hypothesis.given(st.lists(st.integers(0, 0x10FFFF).map(chr), max_size=50).map("".join))
@hypothesis.settings(max_examples=300, deadline=None, derandomize=True, database=None)
def test_the_output_guard_makes_any_string_xml_text(value: str) -> None:
    element = ET.Element("t")
    element.text = xml_safe(value)
    parsed = ET.fromstring(ET.tostring(element, encoding="utf-8")).text or ""
    assert forbidden_reason(parsed) is None
    expected = xml_safe(value).replace("\r\n", "\n").replace("\r", "\n")
    assert parsed == expected


@pytest.mark.unit
@pytest.mark.parametrize(
    ("place", "escaped"),
    [("name", "\\x01"), ("townships.0.name", "\\b"), ("teams.0.contact.name", "\\uFFFE")],
)
def test_the_county_file_refuses_forbidden_characters(
    tmp_path: Path, place: str, escaped: str
) -> None:
    county = yaml.safe_load(DEMO_COUNTY_FILE.read_text(encoding="utf-8"))
    target: Any = county
    *parents, last = [int(p) if p.isdigit() else p for p in place.split(".")]
    for part in parents:
        target = target[part]
    target[last] = f"@@{last}@@"
    text = yaml.safe_dump(county, allow_unicode=True)
    # A YAML escape: the file is plain text, the loaded value holds the character.
    text = re.sub(f"'?@@{last}@@'?", lambda _: f'"城关{escaped}镇"', text, count=1)
    path = tmp_path / "county.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValidationError) as refused:
        load_county(path)
    [error] = refused.value.errors()
    assert ".".join(str(p) for p in error["loc"]) == place
    assert "XML 不允许" in error["msg"]
