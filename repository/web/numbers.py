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

DECIMAL_MAX = 2.0**53
"""The largest magnitude of a decimal parameter (a window's center and width)."""

_DIGITS = re.compile(r"-?[0-9]{1,20}", re.ASCII)
_DECIMAL = re.compile(r"-?[0-9]{1,20}(?:\.[0-9]{1,20})?", re.ASCII)
_BYTE_RANGES = re.compile(
    r"bytes=[0-9]{0,20}-[0-9]{0,20}(?:[ \t]*,[ \t]*[0-9]{0,20}-[0-9]{0,20})*", re.ASCII | re.I
)
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


def parse_decimal(name: str, value: str, *, bound: float = DECIMAL_MAX) -> float:
    """``value`` as a float within ``[-bound, bound]``: ASCII digits with an optional fraction
    (``-12.5``; no exponent, ``inf`` or ``nan``), else a 400 naming ``name`` and the value."""
    if _DECIMAL.fullmatch(value) is None or abs(float(value)) > bound:
        raise bad_request(
            f"{name}={value[:_SHOWN]!r}: must be a decimal number from {-bound:g} to {bound:g} "
            "(ASCII digits, an optional fraction)"
        )
    return float(value)


def check_byte_ranges(header: str) -> None:
    """A ``Range`` header made of byte ranges in ASCII digits (``bytes=0-99, 200-``), else a
    400; whether they fit the answer is the answer's to check."""
    if _BYTE_RANGES.fullmatch(header.strip()) is None:
        raise bad_request(
            f"Range {header[:_SHOWN]!r}: must be bytes=FIRST-LAST, ... (ASCII digits only)"
        )
