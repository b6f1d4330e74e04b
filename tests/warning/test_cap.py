"""CAP 1.2 export of issue, adjust, lift and drill versions, checked against the OASIS schema."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from services.warning.domain import delivery_id, township_target
from tests.warning.capschema import CAP_NS, CapSchema, assert_conforms, text_rules
from tests.warning.conftest import TOWNSHIP_A, TOWNSHIP_B, WarningStack

NS = {"cap": CAP_NS}


def cap(stack: WarningStack, wid: str, version: int | None = None, who: str = "operator") -> bytes:
    """Fetch a CAP document and check its media type."""
    suffix = f"?version={version}" if version else ""
    response = stack.call("GET", f"/v1/warnings/{wid}/cap{suffix}", who=who)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/cap+xml")
    return response.content


def text(root: ET.Element, path: str) -> str:
    """Text of one element under the alert."""
    value = root.findtext(path, namespaces=NS)
    assert value is not None, path
    return value


def params(root: ET.Element) -> dict[str, str]:
    """The info/parameter pairs."""
    return {
        text(p, "cap:valueName"): text(p, "cap:value")
        for p in root.findall("cap:info/cap:parameter", NS)
    }


def test_the_validator_catches_what_it_should() -> None:
    good = (
        f'<alert xmlns="{CAP_NS}"><identifier>a</identifier><sender>s</sender>'
        "<sent>2026-07-06T10:00:00+08:00</sent><status>Actual</status><msgType>Alert</msgType>"
        "<scope>Public</scope></alert>"
    ).encode()
    assert CapSchema().validate(good) == []
    swapped = good.replace(
        b"<status>Actual</status><msgType>Alert</msgType>",
        b"<msgType>Alert</msgType><status>Actual</status>",
    )
    assert CapSchema().validate(swapped)
    assert CapSchema().validate(good.replace(b"Public", b"Everyone"))
    assert CapSchema().validate(good.replace(b"+08:00", b".5+08:00"))
    assert CapSchema().validate(good.replace(b"<scope>Public</scope>", b""))
    assert text_rules(good.replace(b"<identifier>a<", b"<identifier>a b<"))
    assert text_rules(good.replace(b"Alert", b"Update"))


def test_alert_of_an_issued_warning(wstack: WarningStack) -> None:
    wid = wstack.issue("department", level=3).json()["id"]
    root = assert_conforms(cap(wstack, wid))
    assert text(root, "cap:msgType") == "Alert"
    assert text(root, "cap:status") == "Actual"
    assert text(root, "cap:scope") == "Public"
    assert root.find("cap:references", NS) is None
    assert text(root, "cap:sent") == "2026-07-06T10:00:00+08:00"  # 02:00 UTC in Asia/Shanghai
    assert text(root, "cap:identifier") == f"yingji.349901.{wid}.v1"
    info = root.find("cap:info", NS)
    assert info is not None
    assert text(info, "cap:language") == "zh-CN"
    assert text(info, "cap:category") == "Met"
    assert text(info, "cap:event") == "暴雨预警"
    assert (text(info, "cap:urgency"), text(info, "cap:severity"), text(info, "cap:certainty")) == (
        "Expected",
        "Moderate",
        "Likely",
    )
    assert text(info, "cap:expires") == "2026-07-06T16:00:00+08:00"
    assert text(info, "cap:senderName") == "县气象局"  # the issuing department (its key)
    assert text(info, "cap:headline") == "安河县暴雨黄色预警"
    assert params(root)["level"] == "3" and params(root)["color"] == "yellow"
    areas = info.findall("cap:area", NS)
    assert [text(a, "cap:areaDesc") for a in areas] == ["城关镇", "青石镇"]
    for area, township in zip(areas, (TOWNSHIP_A, TOWNSHIP_B), strict=True):
        pairs = [
            (text(g, "cap:valueName"), text(g, "cap:value"))
            for g in area.findall("cap:geocode", NS)
        ]
        villages = [v.code for _, v in wstack.runtime.county.villages(township)]
        # GB/T 2260 only for the county's 6 digits; townships and villages carry the NBS codes.
        assert pairs == [
            ("GB/T 2260", township[:6]),
            ("CN-NBS-TOWN", township),
            *[("CN-NBS-VILLAGE", code) for code in villages],
        ]
        assert len(villages) >= 4
    assert text(areas[0], "cap:circle") == "31.5200,116.4800 5"


@pytest.mark.parametrize(
    ("hazard", "level", "category", "urgency", "severity"),
    [
        ("geological", 1, "Geo", "Immediate", "Extreme"),
        ("forest_fire", 2, "Fire", "Immediate", "Severe"),
        ("public_health", 3, "Health", "Expected", "Moderate"),
        ("flood", 4, "Met", "Future", "Minor"),
    ],
)
def test_categories_and_level_mapping(
    wstack: WarningStack, hazard: str, level: int, category: str, urgency: str, severity: str
) -> None:
    wid = wstack.issue("leader", hazard=hazard, level=level).json()["id"]
    root = assert_conforms(cap(wstack, wid))
    assert text(root, "cap:info/cap:category") == category
    assert text(root, "cap:info/cap:urgency") == urgency
    assert text(root, "cap:info/cap:severity") == severity


def test_update_and_cancel_reference_earlier_versions(wstack: WarningStack) -> None:
    wid = wstack.issue(level=3).json()["id"]
    wstack.clock.advance(600)
    wstack.call("POST", f"/v1/warnings/{wid}/adjust", json={"level": 4, "reason": "减弱"})
    wstack.clock.advance(600)
    wstack.call("POST", f"/v1/warnings/{wid}/lift", json={"reason": "降雨结束"})
    alert = assert_conforms(cap(wstack, wid, 1))
    update = assert_conforms(cap(wstack, wid, 2))
    cancel = assert_conforms(cap(wstack, wid))  # default: latest
    sender = text(alert, "cap:sender")
    first = f"{sender},{text(alert, 'cap:identifier')},{text(alert, 'cap:sent')}"
    second = f"{sender},{text(update, 'cap:identifier')},{text(update, 'cap:sent')}"
    assert text(update, "cap:msgType") == "Update"
    assert text(update, "cap:references") == first
    assert text(update, "cap:note") == "减弱"
    assert text(update, "cap:sent") == "2026-07-06T10:10:00+08:00"
    assert params(update)["level"] == "4"
    assert text(cancel, "cap:msgType") == "Cancel"
    assert text(cancel, "cap:references") == f"{first} {second}"
    assert text(cancel, "cap:info/cap:responseType") == "AllClear"
    assert text(cancel, "cap:note") == "降雨结束"
    missing = wstack.call("GET", f"/v1/warnings/{wid}/cap?version=9")
    assert missing.status_code == 404
    assert wstack.call("GET", f"/v1/warnings/{wid}/cap?version=0").status_code == 422


def test_drill_is_exercise_and_drafts_are_draft(wstack: WarningStack) -> None:
    drill = wstack.issue(exercise=True).json()["id"]
    root = assert_conforms(cap(wstack, drill))
    assert text(root, "cap:status") == "Exercise"
    pending = wstack.issue(level=2).json()["id"]
    draft = assert_conforms(cap(wstack, pending))
    assert text(draft, "cap:status") == "Draft"
    assert wstack.call("GET", f"/v1/warnings/{pending}/cap", who="township_a").status_code == 404


def test_linked_incidents_appear_in_cap(wstack: WarningStack) -> None:
    wstack.report_incident("inc-77", category="flood", grade=4)
    wid = wstack.issue(hazard="flood", incident_ids=["inc-77"]).json()["id"]
    root = assert_conforms(cap(wstack, wid, who="township_b"))
    assert text(root, "cap:incidents") == "inc-77"


def test_an_adjustment_states_its_new_level_and_colour_everywhere(wstack: WarningStack) -> None:
    """Headline, CAP and SMS text of an adjustment say 调整为 with the new level and colour; the
    SMS of 3 → 1 does not read like the first alert."""
    wid = wstack.issue(level=3).json()["id"]
    wstack.clock.advance(600)
    adjusted = wstack.call(
        "POST", f"/v1/warnings/{wid}/adjust", who="leader", json={"level": 1, "reason": "雨势加强"}
    )
    assert adjusted.status_code == 200, adjusted.text
    headline = adjusted.json()["headline"]
    assert headline == "【暴雨预警由三级（黄色）调整为一级（红色）预警】安河县暴雨红色预警"
    update = assert_conforms(cap(wstack, wid, 2))
    assert text(update, "cap:info/cap:headline") == headline
    texts = {number: delivered_text(wstack, wid, number) for number in (1, 2)}
    assert "调整为一级（红色）" in texts[2] and "安河县暴雨红色预警" in texts[2]
    assert texts[2] != texts[1]
    # A second adjustment replaces the marker, it does not stack a second one.
    wstack.clock.advance(600)
    again = wstack.call(
        "POST", f"/v1/warnings/{wid}/adjust", who="leader", json={"level": 2, "reason": "减弱"}
    ).json()["headline"]
    assert again == "【暴雨预警由一级（红色）调整为二级（橙色）预警】安河县暴雨橙色预警"


def test_sender_name_is_the_issuing_department(wstack: WarningStack) -> None:
    """A flood warning issued with the water department's key is sent by 县水利局; one issued
    by the duty office by the emergency office."""
    water = wstack.issue("water_department", hazard="flood", headline="洪水黄色预警").json()["id"]
    office = wstack.issue(hazard="flood", headline="洪水黄色预警").json()["id"]
    sender = "cap:info/cap:senderName"
    assert text(assert_conforms(cap(wstack, water)), sender) == "县水利局"
    assert text(assert_conforms(cap(wstack, office)), sender) == "安河县应急管理局"


def delivered_text(wstack: WarningStack, wid: str, version: int) -> str:
    """The SMS text of a version's delivery to township A over the demo county's channel."""
    ident = delivery_id(wid, version, township_target(TOWNSHIP_A), "值班日志")
    row = wstack.service.repo.delivery_by_id(ident)
    assert row is not None
    return str(row["message"]["text"])
