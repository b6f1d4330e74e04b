"""Numbers and booleans from outside, taken only as JSON wrote them.

FastAPI hands pydantic the already parsed body as Python values, so a model in pydantic's lax
mode would turn ``true`` into 1, ``"12"`` into 12, ``3.0`` into 3 and ``"yes"`` into True. Every
integer, boolean and number field of a request body uses these types instead: a value of another
JSON type is a 422 naming the field (``int_type``/``bool_type``/``float_type``, reasons in
Chinese in ``libs/common/errors.py``). Dates, times and enums stay lax on purpose: JSON carries
them as strings. The JSON schema is unchanged (``integer``, ``boolean``, ``number``).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Strict

JsonInt = Annotated[int, Strict()]
"""A JSON integer: refuses booleans, strings and numbers with a fraction part (even ``3.0``)."""

JsonBool = Annotated[bool, Strict()]
"""A JSON ``true`` or ``false``: refuses strings (``"true"``, ``"yes"``) and numbers (1, 0)."""

JsonNumber = Annotated[float, Strict()]
"""A JSON number (integer or not): refuses booleans and strings (``"1.5"``)."""
