"""The one parser for every number a request carries: query parameters, headers, path parts.

A number is ASCII digits only (an optional ``-`` where negatives are allowed): no spaces, no
``+``, no ``_`` separators, no Unicode digits (``"²"``, Arabic-Indic digits) that Python's
``int()`` and ``str.isdigit()`` would let through; and within the bounds of the column or the
database type it ends up in (a value past them made the database driver fail with a 500).
Anything else is a 400 naming the parameter and the value.
"""

from __future__ import annotations

import re

from .errors import bad_request

INT32_MAX = 2**31 - 1
"""The largest value of a 32-bit integer column (PostgreSQL ``integer``)."""
INT64_MAX = 2**63 - 1
"""The largest value of a 64-bit integer column (PostgreSQL ``bigint``: change seqs)."""

_DIGITS = re.compile(r"-?[0-9]{1,20}", re.ASCII)
_SHOWN = 40
"""Characters of a refused value repeated in the error message."""


def parse_int(name: str, value: str, *, minimum: int = 0, maximum: int = INT32_MAX) -> int:
    """``value`` as an int in ``[minimum, maximum]``, else a 400 naming ``name`` and the value."""
    if _DIGITS.fullmatch(value) is None or (value.startswith("-") and minimum >= 0):
        raise bad_request(f"{name}={value[:_SHOWN]!r}: {_expected(minimum, maximum)}")
    number = int(value)
    if not minimum <= number <= maximum:
        raise bad_request(f"{name}={value[:_SHOWN]!r}: {_expected(minimum, maximum)}")
    return number


def optional_int(
    name: str, value: str | None, *, minimum: int = 0, maximum: int = INT32_MAX
) -> int | None:
    """:func:`parse_int`, with a missing or empty value as None."""
    if value is None or value == "":
        return None
    return parse_int(name, value, minimum=minimum, maximum=maximum)


def _expected(minimum: int, maximum: int) -> str:
    if minimum == 0:
        return f"must be a whole number from 0 to {maximum} (ASCII digits only)"
    return f"must be a whole number from {minimum} to {maximum} (ASCII digits only)"
