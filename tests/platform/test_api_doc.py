"""docs/api.md lists exactly the routes the services serve."""

from __future__ import annotations

from pathlib import Path

from yingji.apidoc import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def test_api_doc_matches_the_route_table() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), "run scripts/gen-api-doc"
