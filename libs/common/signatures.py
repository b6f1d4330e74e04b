"""篇6's signature rule (谁提供、谁审核), one text for every service that takes a signed report."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SAME_PERSON_REASON = (
    "审签人必须是报送人以外的另一人（篇6：谁提供、谁审核）：姓名或联系电话相同即视为同一人"
)


def _name(person: Mapping[str, Any]) -> str:
    return "".join(str(person.get("name") or "").split())


def _phone(person: Mapping[str, Any]) -> str:
    # Spaces, hyphens and a leading + are formatting: one phone is one person however written.
    return "".join(ch for ch in str(person.get("phone") or "") if ch.isdigit())


def same_person(reporter: Mapping[str, Any], approver: Mapping[str, Any]) -> bool:
    """True when the approver is the reporter: the same name or the same phone number."""
    name, phone = _name(reporter), _phone(reporter)
    same_name = bool(name) and name == _name(approver)
    return same_name or (bool(phone) and phone == _phone(approver))


def same_person_errors(
    reporter: Mapping[str, Any] | None, approver: Mapping[str, Any] | None
) -> list[dict[str, str]]:
    """The field error for a report signed twice by one person; empty when the rule holds."""
    if reporter and approver and same_person(reporter, approver):
        return [{"path": "approver", "reason": SAME_PERSON_REASON}]
    return []
