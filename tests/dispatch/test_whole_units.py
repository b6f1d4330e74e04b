"""Items counted in whole units (艘、台、顶 …) are never split: orders, adjustments, new lines and
returns refuse a fraction of them with a 422 naming the quantity; measured goods (升、吨) divide."""

from __future__ import annotations

from typing import Any

import pytest

from services.dispatch import domain
from tests.dispatch.conftest import report_incident, stock
from tests.support.errors import refusal
from tests.support.stack import Stack

DIESEL = {
    "warehouse_id": "W02",
    "item_code": "diesel",
    "name": "柴油",
    "unit": "升",
    "quantity": 100,
}


def _order(stack: Stack, incident_id: str, *resources: dict[str, Any]) -> Any:
    body = {"incident_id": incident_id, "resources": list(resources)}
    return stack.call("POST", "/v1/dispatches", json=body)


def _line(item_code: str, quantity: float, warehouse_id: str = "W02") -> dict[str, Any]:
    return {"warehouse_id": warehouse_id, "item_code": item_code, "quantity": quantity}


def _reason(response: Any, path: str) -> str:
    [field] = [f for f in response.json()["error"]["fields"] if f["path"] == path]
    return str(field["reason"])


@pytest.mark.unit
@pytest.mark.parametrize(
    ("quantity", "unit", "refused"),
    [
        (0.5, "艘", True),
        (5.5, "台", True),
        (-1.5, "顶", True),
        (2.0, "个", False),
        (3, " 件 ", False),
        (0.5, "升", False),
        (1.25, "吨", False),
        (0.5, "立方米", False),
        (0.5, "批次", False),
    ],
)
def test_only_counted_units_refuse_fractions(quantity: float, unit: str, refused: bool) -> None:
    reason = domain.fraction_error(quantity, unit)
    assert (reason is not None) is refused
    if refused:
        assert reason is not None and "须为整数" in reason and f"{quantity:g}" in reason


def test_an_order_for_half_a_boat_is_refused_and_takes_nothing(dstack: Stack) -> None:
    incident = report_incident(dstack)
    refused = _order(dstack, incident, _line("pump", 1), _line("assault_boat", 0.5))
    assert refusal(refused) == (422, "invalid", ["resources.1.quantity"])
    assert "“艘”" in _reason(refused, "resources.1.quantity")
    assert stock(dstack, "W02", "assault_boat")["quantity"] == 6
    assert stock(dstack, "W02", "pump")["quantity"] == 12
    listed = dstack.call("GET", "/v1/dispatches", params={"incident_id": incident}).json()
    assert [o["status"] for o in listed["items"]] == []
    assert _order(dstack, incident, _line("assault_boat", 1.0)).status_code == 201
    assert stock(dstack, "W02", "assault_boat")["quantity"] == 5


def test_a_measured_item_is_dispatched_by_the_fraction(dstack: Stack) -> None:
    assert dstack.call("POST", "/v1/stock", json=DIESEL).status_code == 201
    incident = report_incident(dstack)
    placed = _order(dstack, incident, _line("diesel", 2.5))
    assert placed.status_code == 201, placed.text
    assert stock(dstack, "W02", "diesel")["quantity"] == 97.5


def test_an_adjustment_never_splits_a_counted_item(dstack: Stack) -> None:
    body = {"warehouse_id": "W01", "item_code": "generator", "reason": "盘点"}
    for delta in (0.5, -1.5):
        refused = dstack.call("POST", "/v1/stock/adjust", json={**body, "delta": delta})
        assert refusal(refused) == (422, "invalid", ["delta"])
        assert "须为整数" in _reason(refused, "delta")
    assert stock(dstack, "W01", "generator")["quantity"] == 20
    ledger = dstack.call("GET", "/v1/stock/ledger", params={"item_code": "generator"}).json()
    assert ledger["items"] == []
    assert dstack.call("POST", "/v1/stock", json=DIESEL).status_code == 201
    diesel = {**body, "warehouse_id": "W02", "item_code": "diesel", "delta": 0.25}
    assert dstack.call("POST", "/v1/stock/adjust", json=diesel).status_code == 200


def test_a_new_counted_line_starts_with_a_whole_number(dstack: Stack) -> None:
    rope = {**DIESEL, "item_code": "rope", "name": "救援绳", "unit": "根", "quantity": 2.5}
    refused = dstack.call("POST", "/v1/stock", json=rope)
    assert refusal(refused) == (422, "invalid", ["quantity"])
    listed = dstack.call("GET", "/v1/stock", params={"item_code": "rope"}).json()
    assert listed["items"] == []


def test_a_release_never_returns_part_of_a_boat(dstack: Stack) -> None:
    incident = report_incident(dstack)
    placed = _order(dstack, incident, _line("assault_boat", 2))
    assert placed.status_code == 201, placed.text
    path = f"/v1/dispatches/{placed.json()['id']}/status"
    returned = {"status": "released", "returned": [_line("assault_boat", 0.5)]}
    refused = dstack.call("POST", path, json=returned)
    assert refusal(refused) == (422, "invalid_return", ["returned.0.quantity"])
    assert dstack.call("GET", f"/v1/dispatches/{placed.json()['id']}").json()["status"] == "ordered"
    assert stock(dstack, "W02", "assault_boat")["quantity"] == 4
