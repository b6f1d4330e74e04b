"""Every request field of the warning API is described with its Chinese term."""

from __future__ import annotations

import re
from typing import Any

from tests.warning.conftest import WarningStack

CJK = re.compile(r"[\u4e00-\u9fff]")


def test_request_fields_have_chinese_descriptions(wstack: WarningStack) -> None:
    spec = wstack.client.get("/openapi.json").json()
    schemas: dict[str, Any] = spec["components"]["schemas"]
    checked = 0
    for path, methods in spec["paths"].items():
        if not path.startswith("/v1/warnings"):
            continue
        for operation in methods.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query":
                    assert parameter.get("description"), (path, parameter["name"])
            content = operation.get("requestBody", {}).get("content", {})
            for media in content.values():
                ref = media["schema"].get("$ref") or media["schema"].get("anyOf", [{}])[0].get(
                    "$ref", ""
                )
                model = schemas[ref.rsplit("/", 1)[-1]]
                for name, field in model["properties"].items():
                    assert CJK.search(field.get("description", "")), (path, name)
                    checked += 1
    assert checked > 30
