"""Atom (RFC 4287) checks for the public feed: the required elements, authors and links."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

ATOM_NS = "http://www.w3.org/2005/Atom"
NS = {"a": ATOM_NS}
RFC3339 = re.compile(r"\d\d\d\d-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([Zz]|[-+]\d\d:\d\d)")
FEED_SELF = "/v1/warnings/feed?format=atom"


def _one(parent: ET.Element, name: str, where: str, errors: list[str]) -> ET.Element | None:
    found = parent.findall(f"a:{name}", NS)
    if len(found) != 1:
        errors.append(f"{where}: {len(found)} atom:{name}, RFC 4287 wants exactly one")
        return None
    return found[0]


def _common(node: ET.Element, where: str, errors: list[str]) -> None:
    """id, title and updated, which feed and entry both need exactly once."""
    for name in ("id", "title"):
        element = _one(node, name, where, errors)
        if element is not None and not (element.text or "").strip():
            errors.append(f"{where}: empty atom:{name}")
    updated = _one(node, "updated", where, errors)
    if updated is not None and not RFC3339.fullmatch(updated.text or ""):
        errors.append(f"{where}: atom:updated {updated.text!r} is not an RFC 3339 date-time")


def _authors(node: ET.Element, where: str, errors: list[str]) -> None:
    authors = node.findall("a:author", NS)
    if not authors:
        errors.append(f"{where}: no atom:author")
    for author in authors:
        if not (author.findtext("a:name", default="", namespaces=NS)).strip():
            errors.append(f"{where}: atom:author without a name")


def _links(node: ET.Element, where: str, base: str, errors: list[str]) -> None:
    for link in node.findall("a:link", NS):
        href = link.get("href") or ""
        if not href.startswith(base + "/"):
            errors.append(f"{where}: link {href!r} is not under the public URL {base!r}")


def atom_problems(document: bytes, base: str) -> list[str]:
    """What keeps ``document`` from being the feed RFC 4287 and the platform promise."""
    root = ET.fromstring(document)
    if root.tag != f"{{{ATOM_NS}}}feed":
        return [f"root element is {root.tag}, not atom:feed"]
    errors: list[str] = []
    _common(root, "feed", errors)
    _authors(root, "feed", errors)
    _links(root, "feed", base, errors)
    selves = [link for link in root.findall("a:link", NS) if link.get("rel") == "self"]
    if [link.get("href") for link in selves] != [base + FEED_SELF]:
        errors.append(f"feed: rel=self links {[s.get('href') for s in selves]}")
    for index, entry in enumerate(root.findall("a:entry", NS)):
        where = f"entry[{index}]"
        _common(entry, where, errors)
        _authors(entry, where, errors)
        _links(entry, where, base, errors)
        alternates = [
            link for link in entry.findall("a:link", NS) if link.get("rel") == "alternate"
        ]
        if len(alternates) != 1:
            errors.append(f"{where}: {len(alternates)} rel=alternate links (its CAP document)")
    return errors


def assert_atom(document: bytes, base: str) -> ET.Element:
    """Fail with every problem; return the parsed feed."""
    problems = atom_problems(document, base)
    assert not problems, "\n".join(problems)
    return ET.fromstring(document)
