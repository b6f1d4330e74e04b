"""Which characters of a text are traditional-only (OpenCC's t2s table changes them)."""

from __future__ import annotations

from opencc import OpenCC

TO_SIMPLIFIED = OpenCC("t2s")


def traditional(text: str) -> list[str]:
    """Each traditional-only character of ``text`` with a little context."""
    converted = TO_SIMPLIFIED.convert(text)
    if len(converted) != len(text):  # a phrase changed length: compare character by character
        converted = "".join(TO_SIMPLIFIED.convert(ch) for ch in text)
    return [
        f"{original}→{simple} in «{text[max(0, i - 12) : i + 12]}»"
        for i, (original, simple) in enumerate(zip(text, converted, strict=True))
        if original != simple
    ]
