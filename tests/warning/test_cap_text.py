"""Text that stays XML: characters XML 1.0 forbids are refused at the door; any accepted text,
and text stored before that rule, still gives CAP documents (private and public) and an Atom
feed that parse and conform. Also: CAP identifiers unique per message, the feed's authors and
self link, and links built from the configured public URL, never from the Host header."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import hypothesis
import pytest
from hypothesis import strategies as st

from libs.common.settings import Settings
from tests.warning.atomfeed import ATOM_NS, FEED_SELF, assert_atom
from tests.warning.capschema import CAP_NS, assert_conforms
from tests.warning.conftest import TOWNSHIP_A, WarningStack

pytestmark = pytest.mark.e2e

NS = {"cap": CAP_NS, "a": ATOM_NS}
LISTENING = "http://127.0.0.1:8000"  # the test settings' host and port

# Every code point XML 1.0 forbids (the surrogates at both ends of both halves) ...
FORBIDDEN = [
    *(chr(c) for c in range(0x09)),
    "\x0b",
    "\x0c",
    *(chr(c) for c in range(0x0E, 0x20)),
    "\ud800",
    "\udbff",
    "\udc00",
    "\udfff",
    "\ufffe",
    "\uffff",
]
# ... and the allowed ones right next to them, plus what markup escaping must handle.
ALLOWED_EDGES = [
    "\t",
    "\n",
    "\r",
    " ",
    "\x7f",
    "\ud7ff",
    "\ue000",
    "\ufffd",
    "\U00010000",
    "\U0010ffff",
    "&",
    "<",
    ">",
    '"',
    "'",
    "]]>",
    "&amp;",
]
FORBIDDEN_TEXT = "".join(FORBIDDEN)


def xml_text() -> st.SearchStrategy[str]:
    """Any text the API must accept: every character XML allows, edges weighted in."""
    characters = st.characters(exclude_categories=["Cs"], exclude_characters=FORBIDDEN_TEXT)
    pieces = st.one_of(characters, st.sampled_from(ALLOWED_EDGES))
    return st.lists(pieces, min_size=1, max_size=40).map("".join).filter(lambda s: s.strip())


def parsed_text(value: str) -> str:
    """What an XML parser reads back for ``value`` written as element text (line ends normalised,
    XML 1.0 §2.11)."""
    return value.replace("\r\n", "\n").replace("\r", "\n")


def get(stack: WarningStack, path: str, who: str | None = "operator", **kwargs: Any) -> bytes:
    """GET a document (anonymously when ``who`` is None); fail on anything but 200."""
    if who is None:
        response = stack.client.get(path, **kwargs)
    else:
        response = stack.call("GET", path, who=who, **kwargs)
    assert response.status_code == 200, response.text
    return response.content


def documents(stack: WarningStack, wid: str, public: bool, versions: int = 1) -> list[bytes]:
    """Every CAP document of a warning: each private version and, when live, the public one."""
    docs = [get(stack, f"/v1/warnings/{wid}/cap?version={v}") for v in range(1, versions + 1)]
    if public:
        docs.append(get(stack, f"/v1/warnings/feed/{wid}/cap", who=None))
    return docs


def atom(stack: WarningStack, **kwargs: Any) -> bytes:
    """The public Atom feed."""
    return get(stack, "/v1/warnings/feed?format=atom", who=None, **kwargs)


@pytest.mark.parametrize("field", ["headline", "description", "instruction"])
def test_every_forbidden_character_is_refused_in_warning_texts(
    wstack: WarningStack, field: str
) -> None:
    for char in FORBIDDEN:
        # Escaped JSON (ensure_ascii): a lone surrogate cannot be sent as UTF-8.
        body = json.dumps(wstack.warning_body(**{field: f"预警{char}标题"}))
        response = wstack.call(
            "POST", "/v1/warnings", content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 422, (hex(ord(char)), response.text)
        [problem] = response.json()["error"]["fields"]
        assert problem["path"] == field
        assert f"U+{ord(char):04X}" in problem["reason"] and "XML 不允许" in problem["reason"]
    listed = wstack.call("GET", "/v1/warnings").json()["items"]
    assert listed == []


def test_the_headline_from_the_issue_is_refused_and_its_neighbours_accepted(
    wstack: WarningStack,
) -> None:
    assert wstack.issue(headline="预警\u0001标题").status_code == 422
    response = wstack.issue(headline="预警" + "".join(ALLOWED_EDGES) + "标题")
    assert response.status_code == 201, response.text
    wid = response.json()["id"]
    for document in documents(wstack, wid, public=True):
        root = assert_conforms(document)
        headline = root.findtext("cap:info/cap:headline", namespaces=NS)
        assert headline == parsed_text("预警" + "".join(ALLOWED_EDGES) + "标题")
    assert_atom(atom(wstack), LISTENING)


@pytest.mark.fuzz
def test_any_accepted_text_gives_conforming_cap_and_atom(wstack: WarningStack) -> None:
    @hypothesis.given(headline=xml_text(), description=xml_text(), reason=xml_text())
    @hypothesis.settings(
        max_examples=12,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.generate],
    )
    def check(headline: str, description: str, reason: str) -> None:
        texts = {"headline": headline, "description": description, "instruction": reason}
        issued = wstack.issue(**texts)
        assert issued.status_code == 201, issued.text
        pending = wstack.issue(level=2, **texts)
        assert pending.status_code == 201, pending.text
        wid, draft = issued.json()["id"], pending.json()["id"]
        assert_atom(atom(wstack), LISTENING)
        adjusted = wstack.call(
            "POST", f"/v1/warnings/{wid}/adjust", json={"level": 4, "reason": reason}
        )
        assert adjusted.status_code == 200, adjusted.text
        feed = assert_atom(atom(wstack), LISTENING)
        titles = [e.findtext("a:title", namespaces=NS) for e in feed.findall("a:entry", NS)]
        # An adjustment prefixes the (trimmed) headline with what changed (【…调整为…】).
        assert any(t and t.strip().endswith(parsed_text(headline).strip()) for t in titles)
        for document in [*documents(wstack, wid, True, 2), *documents(wstack, draft, False)]:
            root = assert_conforms(document)
            info = root.find("cap:info", NS)
            assert info is not None
            cap_headline = info.findtext("cap:headline", namespaces=NS) or ""
            assert cap_headline.strip().endswith(parsed_text(headline).strip())
            assert parsed_text(description) in (
                info.findtext("cap:description", namespaces=NS) or ""
            )
        lifted = wstack.call("POST", f"/v1/warnings/{wid}/lift", json={"reason": reason})
        assert lifted.status_code == 200, lifted.text
        cancel = assert_conforms(get(wstack, f"/v1/warnings/{wid}/cap?version=3"))
        assert cancel.findtext("cap:msgType", namespaces=NS) == "Cancel"
        assert cancel.findtext("cap:note", namespaces=NS) == parsed_text(reason)

    check()


def test_stored_text_with_forbidden_characters_still_gives_xml(wstack: WarningStack) -> None:
    """Values stored before input was checked, or arriving from the bus, are replaced on output."""
    wid = wstack.issue().json()["id"]
    doc = wstack.service.repo.warning_by_id(wid)
    assert doc is not None
    broken = "预警\x08标题\x01\ufffe"
    versions = [{**v, "headline": broken, "instruction": "\x0b撤离"} for v in doc["versions"]]
    changes = {"headline": broken, "versions": versions}
    assert wstack.service.repo.change_warning(wid, doc["rev"], changes, [], []) is not None
    for document in documents(wstack, wid, public=True):
        root = assert_conforms(document)
        assert root.findtext("cap:info/cap:headline", namespaces=NS) == "预警\ufffd标题\ufffd\ufffd"
        assert root.findtext("cap:info/cap:instruction", namespaces=NS) == "\ufffd撤离"
    feed = assert_atom(atom(wstack), LISTENING)
    assert feed.findtext("a:entry/a:title", namespaces=NS) == "预警\ufffd标题\ufffd\ufffd"


def test_an_incident_title_from_the_bus_cannot_break_an_accepted_suggestion(
    wstack: WarningStack,
) -> None:
    """A township's incident title is copied into a suggestion; the warning issued from it
    still exports as XML even when the title came in with control characters."""
    now = wstack.now()
    event = wstack.incident_event(
        "incident_reported",
        incident_id="inc-ctl",
        township_code=TOWNSHIP_A,
        category="flood",
        title="河堤\x08溃口\x01",
        grade=2,
        occurred_at=now,
        discovered_at=now,
        reported_at=now,
    )
    wstack.service.on_incident(event, event.payload)
    [suggestion] = wstack.call("GET", "/v1/warnings/suggestions?incident_id=inc-ctl").json()[
        "items"
    ]
    accepted = wstack.call(
        "POST", f"/v1/warnings/suggestions/{suggestion['id']}/accept", json={"level": 3}
    )
    assert accepted.status_code == 201, accepted.text
    wid = accepted.json()["id"]
    for document in documents(wstack, wid, public=True):
        root = assert_conforms(document)
        description = root.findtext("cap:info/cap:description", namespaces=NS) or ""
        assert "河堤\ufffd溃口\ufffd" in description
    assert_atom(atom(wstack), LISTENING)


def test_a_draft_and_the_approved_message_have_different_identifiers(
    wstack: WarningStack,
) -> None:
    wid = wstack.issue(level=2).json()["id"]
    draft = assert_conforms(get(wstack, f"/v1/warnings/{wid}/cap"))
    assert draft.findtext("cap:status", namespaces=NS) == "Draft"
    approved = wstack.call("POST", f"/v1/warnings/{wid}/approve", who="leader", json={})
    assert approved.status_code == 200, approved.text
    actual = assert_conforms(get(wstack, f"/v1/warnings/{wid}/cap"))
    assert actual.findtext("cap:status", namespaces=NS) == "Actual"
    draft_id = draft.findtext("cap:identifier", namespaces=NS)
    actual_id = actual.findtext("cap:identifier", namespaces=NS)
    assert actual_id == f"yingji.349901.{wid}.v1"
    assert draft_id == f"yingji.349901.{wid}.v1.draft"
    public = assert_conforms(get(wstack, f"/v1/warnings/feed/{wid}/cap", who=None))
    assert public.findtext("cap:identifier", namespaces=NS) == actual_id


def test_identifiers_are_unique_across_every_message_of_a_warning(wstack: WarningStack) -> None:
    wid = wstack.issue(level=3).json()["id"]
    adjusted = wstack.call(
        "POST", f"/v1/warnings/{wid}/adjust", json={"level": 2, "reason": "升级"}
    )
    assert adjusted.status_code == 200, adjusted.text
    messages = [assert_conforms(get(wstack, f"/v1/warnings/{wid}/cap?version={v}")) for v in (1, 2)]
    approve = wstack.call("POST", f"/v1/warnings/{wid}/approve", who="leader", json={})
    assert approve.status_code == 200, approve.text
    messages.append(assert_conforms(get(wstack, f"/v1/warnings/{wid}/cap?version=2")))
    statuses = [m.findtext("cap:status", namespaces=NS) for m in messages]
    assert statuses == ["Actual", "Draft", "Actual"]
    identifiers = [m.findtext("cap:identifier", namespaces=NS) for m in messages]
    assert len(set(identifiers)) == 3, identifiers


def test_the_feed_names_its_authors_and_links_itself(wstack: WarningStack) -> None:
    wstack.issue(who="department")
    wstack.issue(hazard="flood", headline="洪水预警", who="water_department")
    feed = assert_atom(atom(wstack), LISTENING)
    assert feed.findtext("a:author/a:name", namespaces=NS) == "安河县应急管理局"
    entry_authors = {
        e.findtext("a:author/a:name", namespaces=NS) for e in feed.findall("a:entry", NS)
    }
    assert entry_authors == {"县气象局", "县水利局"}
    [self_link] = [link for link in feed.findall("a:link", NS) if link.get("rel") == "self"]
    assert self_link.get("href") == LISTENING + FEED_SELF
    assert self_link.get("type") == "application/atom+xml"


def test_feed_links_ignore_the_host_header(wstack: WarningStack) -> None:
    wid = wstack.issue().json()["id"]
    for headers in ({"Host": "evil.example"}, {"X-Forwarded-Host": "evil.example"}):
        document = atom(wstack, headers=headers)
        assert b"evil.example" not in document
        feed = assert_atom(document, LISTENING)
        [link] = feed.findall("a:entry/a:link", NS)
        assert link.get("href") == f"{LISTENING}/v1/warnings/feed/{wid}/cap"


def test_feed_links_use_the_configured_public_url(make_stack: Callable[..., Any]) -> None:
    with make_stack(public_url="https://yingji.anhe.example/") as stack:
        wid = stack.issue().json()["id"]
        feed = assert_atom(
            atom(stack, headers={"Host": "evil.example"}), "https://yingji.anhe.example"
        )
        [link] = feed.findall("a:entry/a:link", NS)
        assert link.get("href") == f"https://yingji.anhe.example/v1/warnings/feed/{wid}/cap"


@pytest.mark.unit
def test_the_public_url_setting() -> None:
    assert Settings().public_base_url == "http://127.0.0.1:8000"
    assert Settings(host="::1", port=9000).public_base_url == "http://[::1]:9000"
    assert Settings(public_url="https://a.example/yj/").public_base_url == "https://a.example/yj"
    for bad in ("evil.example", "javascript:alert(1)", "https://a.example/?q=1", "http://a b"):
        with pytest.raises(ValueError):
            Settings(public_url=bad)
