"""Numbers and booleans from outside, taken only as JSON wrote them.

FastAPI hands pydantic the already parsed body as Python values, so a model in pydantic's lax
mode would turn ``true`` into 1, ``"12"`` into 12, ``3.0`` into 3 and ``"yes"`` into True. Every
integer, boolean and number field of a request body uses these types instead: a value of another
JSON type is a 422 naming the field (``int_type``/``bool_type``/``float_type``, reasons in
Chinese in ``libs/common/errors.py``). Times and enums stay lax on purpose: JSON carries them
as strings. The JSON schema is unchanged (``integer``, ``boolean``, ``number``). A calendar day
(``JsonDay``) is a ``YYYY-MM-DD`` string from 1900 to 2999, as the query parameters' days are.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Strict, WithJsonSchema

# Days from 1900 to 2999: the platform's records lie there, and a day's arithmetic (the day
# before, the local midnight in UTC) stays within what dates and the stores can hold.
DAY_PATTERN = r"^(19|2[0-9])[0-9]{2}-[0-9]{2}-[0-9]{2}$"
DAY_REASON = "须为 YYYY-MM-DD 格式、1900 至 2999 年之间的日期"


def _day_text(value: Any) -> Any:
    """Only the string form: lax pydantic would take a number of seconds (0 → 1970-01-01) or
    20260706, and a year like 0777 that nothing of the county's can be dated."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = value.isoformat()  # a model built in code, not from JSON
    if not isinstance(value, str) or not re.fullmatch(DAY_PATTERN, value):
        raise ValueError(DAY_REASON)
    return value


JsonInt = Annotated[int, Strict()]
"""A JSON integer: refuses booleans, strings and numbers with a fraction part (even ``3.0``)."""

JsonBool = Annotated[bool, Strict()]
"""A JSON ``true`` or ``false``: refuses strings (``"true"``, ``"yes"``) and numbers (1, 0)."""

JsonNumber = Annotated[float, Strict()]
"""A JSON number (integer or not): refuses booleans and strings (``"1.5"``)."""

JsonDay = Annotated[
    dt.date,
    BeforeValidator(_day_text),
    WithJsonSchema({"type": "string", "format": "date", "pattern": DAY_PATTERN}),
]
"""A calendar day in a request body: ``YYYY-MM-DD`` from 1900 to 2999, nothing else."""
