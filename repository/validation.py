"""One validator per kind of value: UIDs, data-source names, URL credentials, scalar values.

Every module that checks or converts one of these imports it from here, so each rule is written
once.

UIDs follow PS3.5 section 9.1 with one tolerance: 1-64 characters, digits and dots, no empty
component (no leading, trailing or doubled dot). PS3.5 also forbids a leading zero in a
multi-digit component (``1.02``); real archives and test files hold such UIDs, pydicom reads them
without complaint, and rejecting them would refuse data a viewer displays, so they are accepted.
Trailing NUL or space padding is removed first (a UI value is padded to even length).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from .errors import InvalidUIDError, InvalidValueError, MissingAttributeError
from .pydicom_types import is_person_name

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

UID_MAX_LENGTH = 64
DATA_SOURCE_MAX_LENGTH = 64

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_PASSWORD_PARAM = re.compile(r"([?&])password=[^&#]*", re.IGNORECASE)
_USERINFO = re.compile(r"(?<=://)[^/?#@\s]*@")
_DATE = re.compile(r"^(\d{4})\.?(\d{2})\.?(\d{2})$")

# --------------------------------------------------------------------------- UIDs


def is_uid(text: str) -> bool:
    """True if ``text`` (padding already removed) is a UID by the rule of this module."""
    return 0 < len(text) <= UID_MAX_LENGTH and _UID.match(text) is not None


def check_uid(value: Any, keyword: str) -> str:
    """Return ``value`` as a valid UID string or raise :class:`InvalidUIDError` naming it."""
    if not isinstance(value, str):
        raise InvalidUIDError(f"{keyword} {value!r} is not a UID string")
    uid = value.rstrip("\x00 ")
    if not is_uid(uid):
        raise InvalidUIDError(f"{keyword} {value[:80]!r} is not a valid UID")
    return uid


def require_uid(md: Mapping[str, Any], keyword: str) -> str:
    """The UID under ``keyword``; :class:`MissingAttributeError` if absent or empty."""
    value = md.get(keyword)
    if value is None or value == "":
        raise MissingAttributeError(f"{keyword} is missing")
    return check_uid(value, keyword)


def optional_uid(value: Any, keyword: str) -> str | None:
    """``value`` as a checked UID, None when absent; a list gives its first value."""
    if isinstance(value, list):
        value = value[0] if value else None
    return None if value is None or value == "" else check_uid(value, keyword)


# --------------------------------------------------------------------------- names and URLs


def check_data_source(name: Any, what: str = "data_source") -> str:
    """Return ``name`` if it is a data-source (series list) name: a string of 1-64 characters,
    not blank; else raise :class:`InvalidValueError`."""
    if not isinstance(name, str) or not name.strip() or len(name) > DATA_SOURCE_MAX_LENGTH:
        raise InvalidValueError(
            f"{what} {name!r} must be a name of 1-{DATA_SOURCE_MAX_LENGTH} characters"
        )
    return check_text(name, what)


def check_text(value: Any, what: str) -> str:
    """``value`` if it is a string a database can store (no NUL, no lone surrogate), else
    :class:`InvalidValueError` naming ``what``."""
    if not isinstance(value, str):
        raise InvalidValueError(f"{what} must be a string, got {type(value).__name__}")
    if "\x00" in value:
        raise InvalidValueError(f"{what} {value[:40]!r} contains a NUL character")
    if value.isascii():  # the common case, and no lone surrogate can be in it
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidValueError(
            f"{what} {value[:40]!r} contains a lone surrogate (not Unicode text)"
        ) from None
    return value


def check_url(value: Any, what: str) -> str | None:
    """An optional URL argument (``wado_root``...) as text, its credentials stripped
    (:func:`strip_credentials`): none are ever stored, logged or put in an identifier."""
    return None if value is None else strip_credentials(check_text(value, what))


def check_flag(value: Any, what: str) -> bool:
    """``value`` if it is a bool (not merely truthy), else :class:`InvalidValueError`."""
    if not isinstance(value, bool):
        raise InvalidValueError(f"{what} must be True or False, not {value!r}")
    return value


def check_callable(value: Any, what: str) -> Any:
    """``value`` if it can be called, else :class:`InvalidValueError`."""
    if not callable(value):
        raise InvalidValueError(f"{what} must be callable, not {value!r:.80}")
    return value


def check_attempts(value: Any) -> int:
    """A number of attempts: an int >= 1, else :class:`InvalidValueError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidValueError(f"attempts must be an int >= 1, not {value!r}")
    return value


def check_items(value: Any, what: str) -> list[Any]:
    """An iterable argument (a list of instances...) as a list; None, text, bytes and
    non-iterables are an :class:`InvalidValueError` naming ``what``."""
    if value is None or isinstance(value, str | bytes | bytearray | Mapping):
        raise InvalidValueError(f"{what} must be a list (an iterable), not {value!r:.80}")
    try:
        return list(value)
    except TypeError:
        raise InvalidValueError(f"{what} must be a list (an iterable), not {value!r:.80}") from None


def strip_credentials(url: str | URL) -> str:
    """``url`` without its ``user:password@`` part, fit for messages, names and storage.

    Works for any URL with an authority (``http(s)://``, ``postgresql+psycopg://``...), for
    URLs behind a prefix (OHIF imageIds: ``wadors:https://...``) and for SQLAlchemy
    :class:`~sqlalchemy.engine.URL` objects; others (``sqlite:///x.db``) come back unchanged.
    """
    if not isinstance(url, str):  # a SQLAlchemy URL (not imported here: file workers)
        url = url.render_as_string(hide_password=False)
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL that parses (``http://[::1/x``): the patterns below only
        parts = None
    if parts is not None and "@" in parts.netloc:
        netloc = parts.netloc.rpartition("@")[2]
        url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    url = _PASSWORD_PARAM.sub(r"\1password=***", url)  # libpq takes ?password=... too
    return _USERINFO.sub("", url)  # URLs inside identifiers: wadors:https://user:pw@host/...


# --------------------------------------------------------------------------- scalar converters


def clean_text(value: str) -> str:
    """Strip DICOM padding; reject NUL inside the value (PostgreSQL cannot store it) and lone
    surrogates (not Unicode; neither database can store them)."""
    return check_text(value.rstrip("\x00 "), "text value")


JSON_INT_MIN, JSON_INT_MAX = -(2**63), 2**64 - 1
"""The integers the stored JSON can hold (PostgreSQL's and orjson's limits)."""


def check_number(value: int | float, key: str) -> int | float:
    """``value`` if the stored JSON can hold it exactly, else :class:`InvalidValueError`
    naming element ``key``: NaN and infinity are not JSON (they would become null), and
    integers beyond 64 bits do not fit. An integer beyond a typed INTEGER column's range is
    kept in the JSON; the column holds NULL (see :func:`as_int`)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidValueError(f"element {key}: {value!r} is not a finite number (not JSON)")
    if isinstance(value, int) and not JSON_INT_MIN <= value <= JSON_INT_MAX:
        raise InvalidValueError(f"element {key}: integer {value:.3e} is beyond 64 bits")
    return value


def as_number(value: Any, vr: str) -> Any:
    """A DS (float) or IS (int) value as a JSON number; kept verbatim as text if malformed."""
    kind: type = float if vr == "DS" else int
    try:
        number = kind(value)
    except (TypeError, ValueError):
        try:
            number = float(value)
        except (TypeError, ValueError):
            return clean_text(str(value))  # keep malformed numbers rather than lose them
    if isinstance(number, float) and not math.isfinite(number):  # NaN, inf are not JSON
        return clean_text(str(value))  # kept verbatim, as a malformed number is
    if isinstance(number, int) and not JSON_INT_MIN <= number <= JSON_INT_MAX:
        return clean_text(str(value))
    return number


def as_int(value: Any) -> int | None:
    """First value as int, or None when absent or not a number (the JSON keeps the original)."""
    number = as_float(value)
    if number is None or not -(2**31) <= number < 2**31:
        return None
    return int(number)


def as_float(value: Any) -> float | None:
    """First value as a finite float, or None when absent or not a number (DS columns)."""
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def as_text(value: Any) -> str | None:
    """A value as text for a typed column: PN as its Alphabetic form, lists joined with '\\'."""
    if value is None:
        return None
    if isinstance(value, list):
        parts = [as_text(v) or "" for v in value]
        return "\\".join(parts) or None
    if isinstance(value, Mapping):
        return str(value.get("Alphabetic") or value.get("Ideographic") or "") or None
    return str(value) or None


def parse_date(value: Any) -> dt.date | None:
    """A DICOM DA value (``YYYYMMDD``, or ``YYYY.MM.DD`` from ACR-NEMA) as a date, else None."""
    if not isinstance(value, str):
        return None
    match = _DATE.match(value.strip())
    if not match:
        return None
    try:
        return dt.date(*(int(g) for g in match.groups()))
    except ValueError:
        return None


def optional_str(value: Any, name: str) -> str | None:
    """``value`` if it is a string or None; else :class:`InvalidValueError` naming ``name``."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidValueError(f"{name} must be a string, got {type(value).__name__}")
    return value


_PLAIN = frozenset({str, int, float})  # types no PersonName has: tested first, fast


def scalar(vr: str, value: Any, key: str) -> Any:
    """One value of element ``key`` (from pydicom or DICOM JSON) in stored form.

    DS and IS texts become numbers (kept verbatim when malformed), PN becomes a dict of
    component groups, AT a tag string; text loses its padding. JSON that is not a DICOM value
    (a boolean, a non-PN object, a nested list) is an error naming ``key``.
    """
    if value is None or value == "":
        return None
    if vr == "PN" or (type(value) not in _PLAIN and is_person_name(value)):
        return _person_name(value, key)
    if vr == "AT" and isinstance(value, int):
        return f"{int(value):08X}"
    if vr in ("DS", "IS") and type(value) not in (int, float):
        return as_number(value, vr)  # text, or one of pydicom's DSfloat/IS types
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, bool | Mapping | list):
        raise InvalidValueError(f"element {key}: unexpected value {value!r}")
    if isinstance(value, float | int):
        return check_number(value, key)
    return clean_text(str(value))  # other pydicom value types (DA, TM ... objects)


def _person_name(value: Any, key: str) -> dict[str, str] | None:
    parts: Iterable[tuple[str, Any]]
    if is_person_name(value):
        parts = zip(("Alphabetic", "Ideographic", "Phonetic"), value.components, strict=False)
    elif isinstance(value, Mapping):
        parts = ((str(k), s) for k, s in value.items())
    else:
        raise InvalidValueError(f"element {key}: PN values must be objects")
    return {name: clean_text(str(part)) for name, part in parts if part} or None
