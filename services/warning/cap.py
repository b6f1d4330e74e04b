"""CAP 1.2 documents (OASIS Common Alerting Protocol) and the Atom index of the public feed."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from libs.common.clock import as_utc
from libs.common.county import County
from libs.common.text import xml_safe
from services.warning.domain import MSG_ALERT, VERSION_PENDING, issuer_name, references_of
from services.warning.rules import HazardRule, LevelRule, WarningRules

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
ATOM_NS = "http://www.w3.org/2005/Atom"
CAP_MEDIA_TYPE = "application/cap+xml"
ATOM_MEDIA_TYPE = "application/atom+xml"
FEED_PATH = "/v1/warnings/feed"
DRAFT_SUFFIX = ".draft"


def cap_time(moment: datetime, timezone: str) -> str:
    """CAP dateTime: local time with its offset, no fractional seconds (CAP 1.2 §3.3.2)."""
    local = as_utc(moment).astimezone(ZoneInfo(timezone)).replace(microsecond=0)
    return local.isoformat()


def cap_sender(rules: WarningRules, county: County) -> str:
    """The CAP sender id of this county's platform."""
    return rules.cap.sender.format(county_code=county.code, county_name=county.name)


def office_name(rules: WarningRules, county: County) -> str:
    """The county's emergency office as the rules name it (the feed's author)."""
    return rules.cap.sender_name.format(county_code=county.code, county_name=county.name)


def sender_name(rules: WarningRules, county: County, warning: Mapping[str, Any]) -> str:
    """CAP senderName: the issuing department (县水利局 for its flood warnings), else the
    county's emergency office from the rules."""
    return issuer_name(warning, county.departments, office_name(rules, county))


def cap_identifier(county: County, warning_id: str, version: int) -> str:
    """A CAP identifier unique per sender (no spaces, commas or reserved characters)."""
    return f"yingji.{county.code}.{warning_id}.v{version}"


def message_identifier(version: Mapping[str, Any]) -> str:
    """The identifier of the CAP message a version is exported as.

    A version waiting for approval goes out as a Draft; once approved, the Actual message is a
    different message and CAP 1.2 wants each message's identifier unique, so the draft's own
    identifier carries a suffix.
    """
    identifier = str(version["identifier"])
    return identifier + DRAFT_SUFFIX if version.get("state") == VERSION_PENDING else identifier


def sent_of(version: Mapping[str, Any]) -> datetime:
    """When a version was sent: its issue time, or the request time of a draft."""
    return version.get("issued_at") or version["requested_at"]


def _sub(parent: ET.Element, name: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, f"{{{CAP_NS}}}{name}")
    if text is not None:
        # ElementTree escapes markup but writes forbidden characters as they are; values stored
        # before input was checked may hold some.
        element.text = xml_safe(text)
    return element


def _pair(parent: ET.Element, name: str, value_name: str, value: str) -> None:
    element = _sub(parent, name)
    _sub(element, "valueName", value_name)
    _sub(element, "value", value)


def render_cap(
    rules: WarningRules,
    county: County,
    warning: Mapping[str, Any],
    version: Mapping[str, Any],
) -> bytes:
    """The CAP 1.2 alert of one version of a warning.

    Issue = Alert, adjust = Update, lift = Cancel; Update and Cancel reference every earlier
    issued version. A version still waiting for approval is exported with status Draft.
    """
    sender = cap_sender(rules, county)
    level_rule = rules.level(int(version["level"]))
    hazard = rules.hazards[version["hazard"]]
    alert = ET.Element(f"{{{CAP_NS}}}alert")
    _alert_head(alert, sender, county.timezone, warning, version)
    info = _sub(alert, "info")
    _info_event(info, rules, hazard, level_rule, version)
    _info_texts(info, rules, county, warning, version)
    _info_parameters(info, level_rule, warning, version)
    for code in version["areas"]:
        _area(info, rules, county, code)
    return ET.tostring(alert, encoding="utf-8", xml_declaration=True, default_namespace=CAP_NS)


def _cap_status(version: Mapping[str, Any]) -> str:
    """Draft while waiting for approval, Exercise for a drill, else Actual."""
    if version.get("state") == VERSION_PENDING:
        return "Draft"
    if version.get("exercise"):
        return "Exercise"
    return "Actual"


def _alert_head(
    alert: ET.Element,
    sender: str,
    tz: str,
    warning: Mapping[str, Any],
    version: Mapping[str, Any],
) -> None:
    """The alert's message elements: identity, status, type, note and references."""
    msg_type = version["msg_type"]
    _sub(alert, "identifier", message_identifier(version))
    _sub(alert, "sender", sender)
    _sub(alert, "sent", cap_time(sent_of(version), tz))
    _sub(alert, "status", _cap_status(version))
    _sub(alert, "msgType", msg_type)
    _sub(alert, "source", "Yingji 应急")
    _sub(alert, "scope", "Public")
    if version.get("reason"):
        _sub(alert, "note", str(version["reason"]))
    if msg_type != MSG_ALERT:
        cited = references_of(warning.get("versions", []), int(version["number"]))
        if cited:
            _sub(
                alert,
                "references",
                " ".join(f"{sender},{v['identifier']},{cap_time(sent_of(v), tz)}" for v in cited),
            )
    if version.get("incident_ids"):
        _sub(alert, "incidents", " ".join(version["incident_ids"]))


def _info_event(
    info: ET.Element,
    rules: WarningRules,
    hazard: HazardRule,
    level_rule: LevelRule,
    version: Mapping[str, Any],
) -> None:
    """The info's event: language, category, response, urgency, severity and certainty."""
    _sub(info, "language", rules.cap.language)
    _sub(info, "category", hazard.cap_category)
    _sub(info, "event", f"{hazard.name}预警")
    response = "AllClear" if version["msg_type"] == "Cancel" else level_rule.response_type
    _sub(info, "responseType", response)
    _sub(info, "urgency", level_rule.urgency)
    _sub(info, "severity", level_rule.severity)
    _sub(info, "certainty", level_rule.certainty)
    _pair(info, "eventCode", "yingji:hazard", str(version["hazard"]))


def _info_texts(
    info: ET.Element,
    rules: WarningRules,
    county: County,
    warning: Mapping[str, Any],
    version: Mapping[str, Any],
) -> None:
    """The info's times, issuing department and the texts people read."""
    tz = county.timezone
    _sub(info, "effective", cap_time(version["effective"], tz))
    _sub(info, "onset", cap_time(version["effective"], tz))
    _sub(info, "expires", cap_time(version["expires"], tz))
    _sub(info, "senderName", sender_name(rules, county, warning))
    _sub(info, "headline", str(version["headline"]))
    _sub(info, "description", str(version["description"]))
    _sub(info, "instruction", str(version["instruction"]))


def _info_parameters(
    info: ET.Element,
    level_rule: LevelRule,
    warning: Mapping[str, Any],
    version: Mapping[str, Any],
) -> None:
    """The info's parameters: level, colour, label, warning id and version number."""
    _pair(info, "parameter", "level", str(int(version["level"])))
    _pair(info, "parameter", "color", level_rule.color)
    _pair(info, "parameter", "levelLabel", level_rule.label)
    _pair(info, "parameter", "yingji:warningId", str(warning["_id"]))
    _pair(info, "parameter", "yingji:version", str(version["number"]))


def _area(info: ET.Element, rules: WarningRules, county: County, code: str) -> None:
    """One township's area: its name, a circle around it and its geocodes."""
    township = county.township(code)
    area = _sub(info, "area")
    _sub(area, "areaDesc", township.name if township else code)
    if township is not None:
        _sub(
            area,
            "circle",
            f"{township.lat:.4f},{township.lon:.4f} {rules.cap.circle_radius_km:g}",
        )
    _area_geocodes(area, rules, county, code)


def _area_geocodes(area: ET.Element, rules: WarningRules, county: County, code: str) -> None:
    """The geocodes of a township area: its county's GB/T 2260 code (6 digits, the standard
    stops at the county), the township's and each village's 统计用区划代码 (National Bureau of
    Statistics, 9 and 12 digits), each under its own valueName."""
    _pair(area, "geocode", rules.cap.geocode_name, code[:6])
    _pair(area, "geocode", rules.cap.township_geocode_name, code)
    for _, village in county.villages(code):
        _pair(area, "geocode", rules.cap.village_geocode_name, village.code)


def render_atom(
    title: str,
    feed_id: str,
    updated: datetime,
    entries: Sequence[Mapping[str, Any]],
    timezone: str,
    base_url: str,
    author: str,
) -> bytes:
    """An Atom (RFC 4287) index of the public feed, one entry per active warning linking its CAP
    document; every link starts with ``base_url``, the configured public address."""
    # Plain names under an explicit xmlns: ElementTree's default_namespace option refuses the
    # unqualified attributes (rel, type, href) Atom needs.
    feed = ET.Element("feed", {"xmlns": ATOM_NS})

    def sub(parent: ET.Element, name: str, text: str | None = None) -> ET.Element:
        element = ET.SubElement(parent, name)
        if text is not None:
            element.text = xml_safe(text)
        return element

    def link(parent: ET.Element, rel: str, media_type: str, path: str) -> None:
        attributes = {"rel": rel, "type": media_type, "href": xml_safe(f"{base_url}{path}")}
        ET.SubElement(parent, "link", attributes)

    sub(feed, "title", title)
    sub(feed, "id", feed_id)
    sub(feed, "updated", cap_time(updated, timezone))
    sub(sub(feed, "author"), "name", author)
    link(feed, "self", ATOM_MEDIA_TYPE, f"{FEED_PATH}?format=atom")
    for item in entries:
        entry = sub(feed, "entry")
        sub(entry, "id", f"urn:yingji:warning:{item['id']}:v{item['version']}")
        sub(entry, "title", str(item["headline"]))
        sub(entry, "updated", cap_time(item["sent"], timezone))
        sub(sub(entry, "author"), "name", str(item.get("author") or author))
        sub(entry, "summary", f"{item['level_label']} {item['event']}")
        link(entry, "alternate", CAP_MEDIA_TYPE, str(item["cap_path"]))
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)
