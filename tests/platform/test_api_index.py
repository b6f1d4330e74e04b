"""`GET /v1/`, the address `yingji up` prints: the services of the process and their links, open
to anyone (it holds no data), and declared in the OpenAPI document."""

from __future__ import annotations

import pytest

from tests.support.stack import Stack

pytestmark = pytest.mark.e2e


def test_the_index_lists_the_services_and_links_without_a_key(stack: Stack) -> None:
    index = stack.client.get("/v1/")
    assert index.status_code == 200
    body = index.json()
    services = {s["name"]: s["links"] for s in body["services"]}
    assert list(services) == ["intake", "warning", "dispatch", "reporting"]
    assert "/v1/incidents" in services["intake"] and "/v1/teams" in services["dispatch"]
    assert "/v1/summaries/situation" in services["reporting"]
    assert all("{" not in link for links in services.values() for link in links)
    for link in (*services["warning"], body["links"]["docs"], body["links"]["openapi"]):
        assert stack.call("GET", link).status_code != 404, link


def test_the_index_is_in_the_openapi_document(stack: Stack) -> None:
    doc = stack.client.get("/openapi.json").json()
    operation = doc["paths"]["/v1/"]["get"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/ApiIndex"}
    assert "429" in operation["responses"] and "security" not in operation
