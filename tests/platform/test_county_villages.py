"""Villages, information officers, health units and watched diseases in the county file: the demo
county's content, the validation of a county file, and ``GET /v1/county/villages``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from libs.common.county import DEMO_COUNTY_FILE, County, load_county
from tests.support.stack import TOWNSHIP_A, TOWNSHIP_B, Stack, running_stack


def demo_raw() -> dict[str, Any]:
    """The demo county file as plain data, to be broken by a test."""
    raw: dict[str, Any] = yaml.safe_load(DEMO_COUNTY_FILE.read_text(encoding="utf-8"))
    return raw


def refusal(raw: dict[str, Any]) -> str:
    """The validation message a broken county file gets."""
    with pytest.raises(ValidationError) as caught:
        County.model_validate(raw)
    return str(caught.value)


@pytest.mark.unit
def test_every_demo_township_has_four_to_eight_villages_with_an_officer() -> None:
    county = load_county()
    for township in county.townships:
        assert 4 <= len(township.villages) <= 8, township.name
        for village in township.villages:
            assert village.code.startswith(township.code) and len(village.code) == 12
            assert village.officer.name and village.officer.phone.startswith("1390000")
            assert village.officer.channel in ("sms", "phone", "webhook")
        assert sum(v.population for v in township.villages) <= township.population
    assert len({v.code for _, v in county.villages()}) == len(county.villages())


@pytest.mark.unit
def test_demo_county_lists_health_units_and_watched_diseases() -> None:
    county = load_county()
    assert {u.township_code for u in county.health_units} == {t.code for t in county.townships}
    classes = {d.disease_class for d in county.notifiable_diseases}
    assert classes == {"甲类", "乙类", "丙类"}
    assert county.disease_index["cholera"].name == "霍乱"


@pytest.mark.unit
def test_a_village_code_outside_its_township_is_refused_by_name() -> None:
    raw = demo_raw()
    raw["townships"][2]["villages"][0]["code"] = "349901102201"
    message = refusal(raw)
    assert "青石镇（349901101）的 青石村" in message
    assert "不以所属乡镇代码 349901101 开头" in message


@pytest.mark.unit
def test_a_village_code_used_twice_is_refused_naming_both() -> None:
    raw = demo_raw()
    villages = raw["townships"][2]["villages"]
    villages[1]["code"] = villages[0]["code"]
    message = refusal(raw)
    assert "上湾村：村代码 349901101201 与 青石镇（349901101）的 青石村 重复" in message


@pytest.mark.unit
def test_village_codes_must_have_twelve_digits_and_officers_a_known_channel() -> None:
    raw = demo_raw()
    raw["townships"][0]["villages"][0]["code"] = "349901001"
    assert "townships.0.villages.0.code" in refusal(raw)
    raw = demo_raw()
    raw["townships"][0]["villages"][0]["officer"]["channel"] = "pigeon"
    assert "townships.0.villages.0.officer.channel" in refusal(raw)


@pytest.mark.unit
def test_health_units_and_diseases_are_checked() -> None:
    raw = demo_raw()
    raw["health_units"][0]["township_code"] = "349901999"
    raw["health_units"][1]["id"] = raw["health_units"][2]["id"]
    raw["notifiable_diseases"][1]["code"] = "plague"
    message = refusal(raw)
    assert "卫生单位 H01（县人民医院）所在乡镇 349901999 不在本县" in message
    assert "卫生单位编号 H03 重复" in message
    assert "病种代码 plague 重复" in message
    raw = demo_raw()
    raw["notifiable_diseases"][0]["class"] = "丁类"
    assert "notifiable_diseases.0.class" in refusal(raw)


@pytest.mark.unit
def test_the_offices_record_fields_are_checked() -> None:
    """版记 lines end up in .docx files: what XML cannot carry, or an empty 抄送机关, is refused."""
    raw = demo_raw()
    raw["office"]["copy_to"] = ["县委办公室", ""]
    assert "office.copy_to.1" in refusal(raw)
    raw = demo_raw()
    raw["office"]["printing_office"] = "办公室\x01"
    assert "office.printing_office" in refusal(raw)
    raw = demo_raw()
    del raw["office"]["printing_office"], raw["office"]["copy_to"]
    office = County.model_validate(raw).issuing_office
    assert office.printing_office == "" and office.copy_to == []


@pytest.mark.unit
def test_a_county_file_without_villages_still_loads(tmp_path: Path) -> None:
    raw = demo_raw()
    for township in raw["townships"]:
        township.pop("villages")
    raw.pop("health_units")
    raw.pop("notifiable_diseases")
    path = tmp_path / "county.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    county = load_county(path)
    assert county.villages() == [] and county.notifiable_diseases == []


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from services.reporting.service import SPEC

    with running_stack(tmp_path_factory.mktemp("villages"), specs=[SPEC]) as running:
        yield running


@pytest.mark.e2e
def test_operators_read_every_village_and_its_officer(stack: Stack) -> None:
    response = stack.call("GET", "/v1/county/villages")
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert len(items) == 65
    first = items[0]
    assert first["township_name"] == "城关镇" and first["officer"]["channel"] == "webhook"
    only_b = stack.call("GET", "/v1/county/villages", params={"township_code": TOWNSHIP_B})
    assert {v["township_code"] for v in only_b.json()["items"]} == {TOWNSHIP_B}


@pytest.mark.e2e
def test_a_township_key_sees_its_own_villages_only(stack: Stack) -> None:
    own = stack.call("GET", "/v1/county/villages", who="township_a").json()["items"]
    assert own and {v["township_code"] for v in own} == {TOWNSHIP_A}
    other = stack.call(
        "GET", "/v1/county/villages", who="township_a", params={"township_code": TOWNSHIP_B}
    )
    assert other.status_code == 403 and other.json()["error"]["code"] == "forbidden_township"


@pytest.mark.e2e
def test_departments_do_not_read_officers_phones(stack: Stack) -> None:
    response = stack.call("GET", "/v1/county/villages", who="department")
    assert response.status_code == 403
