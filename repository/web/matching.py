"""PS3.4 C.2.2.2 attribute matching, as SQL conditions over typed columns or JSON metadata.

Single value (exact), UID list (``,`` or ``\\`` separated), wildcards ``*`` and ``?``, ranges
``A-B``, ``A-`` and ``-B`` for dates and times. Person names match case-insensitively (as
Orthanc does by default); with ``fuzzymatching=true`` a name without wildcards also matches any
name one of whose components starts with it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ColumnElement, Date, Integer, and_, func, or_

from ..validation import parse_date
from .attributes import Attribute
from .errors import bad_request, check_uid
from .numbers import INT32_MAX, parse_int

_NUMERIC_VRS = frozenset({"IS", "US", "SS", "UL", "SL", "UV", "SV"})
_RANGED_VRS = frozenset({"DA", "TM", "DT"})


def condition(
    expr: Any, attr: Attribute, value: str, *, fuzzy: bool, dialect: str
) -> ColumnElement[bool] | None:
    """The SQL condition ``expr`` must meet to match ``value`` (None: universal matching)."""
    if value == "":
        return None
    if attr.vr == "UI":
        uids = [check_uid(v.strip(), attr.key) for v in value.replace("\\", ",").split(",")]
        return expr.in_(uids) if len(uids) > 1 else expr == uids[0]  # type: ignore[no-any-return]
    if attr.vr in _RANGED_VRS and "-" in value:
        return _range(expr, attr, value)
    if attr.vr in _RANGED_VRS:
        return _single_date(expr, attr, value) if attr.vr == "DA" else _text(expr, value, dialect)
    if attr.vr in _NUMERIC_VRS and isinstance(getattr(expr, "type", None), Integer):
        return expr == _int(attr, value)  # type: ignore[no-any-return]
    if attr.vr == "PN":
        return _person_name(expr, value, fuzzy)
    return _text(expr, value, dialect)


def _int(attr: Attribute, value: str) -> int:
    return parse_int(attr.key, value, minimum=-INT32_MAX - 1, maximum=INT32_MAX)


def _date(attr: Attribute, value: str) -> dt.date:
    parsed = parse_date(value)
    if parsed is None:
        raise bad_request(f"{attr.key}={value!r}: not a date (YYYYMMDD)")
    return parsed


def _is_date_column(expr: Any) -> bool:
    return isinstance(getattr(expr, "type", None), Date)


def _single_date(expr: Any, attr: Attribute, value: str) -> ColumnElement[bool]:
    date = _date(attr, value)
    return expr == (date if _is_date_column(expr) else date.strftime("%Y%m%d"))  # type: ignore[no-any-return]


def _range(expr: Any, attr: Attribute, value: str) -> ColumnElement[bool]:
    low, _, high = value.partition("-")
    if not low and not high:
        raise bad_request(f"{attr.key}={value!r}: a range needs at least one end")
    parts: list[ColumnElement[bool]] = []
    if attr.vr == "DA":
        as_column = _is_date_column(expr)

        def bound(text: str) -> Any:
            date = _date(attr, text)
            return date if as_column else date.strftime("%Y%m%d")

        if low:
            parts.append(expr >= bound(low))
        if high:
            parts.append(expr <= bound(high))
    else:  # TM and DT: fixed-format text compares in order; the upper end covers its precision
        for text in (low, high):
            if text and not (text.isascii() and text.replace(".", "").replace("+", "").isdigit()):
                raise bad_request(f"{attr.key}={value!r}: not a {attr.vr} range")
        if low:
            parts.append(expr >= low)
        if high:
            parts.append(func.substr(expr, 1, len(high)) <= high)
    return and_(expr.is_not(None), *parts)


def _like_pattern(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _text(expr: Any, value: str, dialect: str) -> ColumnElement[bool]:
    if "*" not in value and "?" not in value:
        return expr == value  # type: ignore[no-any-return]
    if dialect == "sqlite":  # SQLite's LIKE ignores case; GLOB does not
        glob = value.replace("[", "[[]")
        return expr.op("GLOB")(glob)  # type: ignore[no-any-return]
    return expr.like(_like_pattern(value), escape="\\")  # type: ignore[no-any-return]


def _person_name(expr: Any, value: str, fuzzy: bool) -> ColumnElement[bool]:
    pattern = _like_pattern(value)
    if "*" in value or "?" in value:
        return expr.ilike(pattern, escape="\\")  # type: ignore[no-any-return]
    if not fuzzy:
        return func.lower(expr) == value.lower()
    return or_(
        expr.ilike(pattern + "%", escape="\\"),
        expr.ilike("%^" + pattern + "%", escape="\\"),
        expr.ilike("% " + pattern + "%", escape="\\"),
    )
