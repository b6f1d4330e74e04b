"""Free text from outside: one type that refuses what XML 1.0 cannot carry, and the output guard.

Text ends up in CAP documents, the Atom feed, spreadsheets and logs. XML 1.0 (§2.2) allows only
TAB, LF, CR, U+0020–U+D7FF, U+E000–U+FFFD and U+10000–U+10FFFF; anything else makes the whole
document unreadable, so it is refused at the door (422) and replaced on the way out for data
stored before the rule existed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler, StringConstraints
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

# The complement of XML 1.0's Char production within the BMP (astral code points are all legal).
XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# The same rule as a JSON Schema pattern, so clients and schema-driven tools know it up front.
# Lone surrogates stay out of it: an ECMA-262 class over UTF-16 code units would also exclude
# every astral character (a surrogate pair); the validator refuses lone ones all the same.
XML_TEXT_PATTERN = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\uFFFE\\uFFFF]*$"
REPLACEMENT = "\ufffd"


def _kind(char: str) -> str:
    """The Chinese name of the class a forbidden character belongs to."""
    code = ord(char)
    if 0xD800 <= code <= 0xDFFF:
        return "孤立的代理码位"
    if code in (0xFFFE, 0xFFFF):
        return "非字符"
    return "控制字符"


def forbidden_reason(value: str) -> str | None:
    """Why ``value`` cannot go into XML (in Chinese), or None when it can."""
    found = XML_FORBIDDEN.search(value)
    if found is None:
        return None
    char = found.group()
    return (
        f"第 {found.start() + 1} 个字符 U+{ord(char):04X} 是{_kind(char)}，"
        "XML 不允许出现，请删除后重试"
    )


def xml_safe(value: str) -> str:
    """``value`` with every character XML 1.0 forbids replaced by U+FFFD."""
    return XML_FORBIDDEN.sub(REPLACEMENT, value)


def _refuse_forbidden(value: Any) -> Any:
    # Before the string check: pydantic's own refusal of a lone surrogate would say less.
    reason = forbidden_reason(value) if isinstance(value, str) else None
    if reason is not None:
        raise PydanticCustomError("xml_forbidden_character", "{reason}", {"reason": reason})
    return value


@dataclass(frozen=True)
class _XmlChars:
    """Pydantic marker: check the raw string first, and state the rule in the schema."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(_refuse_forbidden, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        # A field's own pattern (codes, phone numbers) is stricter already; keep it.
        json_schema.setdefault("pattern", XML_TEXT_PATTERN)
        return json_schema


Text = Annotated[str, _XmlChars()]
"""Any text field of a request or of the county file; add Field(...) for lengths.

The JSON schema shows the XML rule as the field's pattern unless the field states its own
pattern, which is then shown (both are enforced). Fields whose pattern already admits only safe
characters (codes, phone numbers) stay plain ``str``.
"""


def bounded_text(max_length: int, *, min_length: int = 1, strip: bool = True) -> Any:
    """Text trimmed (by default), not blank and at most ``max_length`` characters."""
    # The length rules sit inside, on the string itself, so they see the trimmed value.
    return Annotated[
        str,
        StringConstraints(strip_whitespace=strip, min_length=min_length, max_length=max_length),
        _XmlChars(),
    ]
