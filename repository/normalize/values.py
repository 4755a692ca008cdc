"""What every input form shares: the stored-form constants, keys and the scalar converter."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydicom.datadict import keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.tag import BaseTag
from pydicom.valuerep import PersonName

from ..errors import InvalidValueError
from ..validation import as_number, clean_text

BULK_DATA_THRESHOLD = 1024
"""Binary values longer than this many bytes are stored as a ``BulkDataURI`` reference."""

OHIF_EXTRA_KEYS = frozenset({"imageId", "wadoRoot", "wadoUri", "url"})
"""Non-DICOM keys OHIF adds to instance metadata; accepted on input, kept out of the JSON."""

BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
"""VRs whose values are bytes (inline base64 or a bulk data reference)."""

_TAG_KEY = re.compile(r"^[0-9A-Fa-f]{8}$")

Metadata = dict[str, Any]
"""Naturalized metadata: DICOM keywords (or 8-hex-digit tags) to values."""

BulkDataURI = Callable[[DataElement | RawDataElement], str | None]
"""Maps a large binary element to the URI stored in its place."""


def is_tag_key(key: str) -> bool:
    """True if ``key`` is an 8-hex-digit tag (``"0020000D"``)."""
    return _TAG_KEY.match(key) is not None


def element_key(tag: BaseTag) -> tuple[str, str | None]:
    """Keyword for public dictionary tags that map back to themselves, else the 8-hex tag."""
    if not tag.is_private:
        kw = keyword_for_tag(tag)
        if kw and tag_for_keyword(kw) == tag:
            return kw, kw
    return f"{int(tag):08X}", None


def scalar(vr: str, value: Any, key: str) -> Any:
    """One value of element ``key`` (from pydicom or DICOM JSON) in stored form.

    DS and IS texts become numbers (kept verbatim when malformed), PN becomes a dict of
    component groups, AT a tag string; text loses its padding. JSON that is not a DICOM value
    (a boolean, a non-PN object, a nested list) is an error naming ``key``.
    """
    if value is None or value == "":
        return None
    if vr == "PN" or isinstance(value, PersonName):
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
        return value
    return clean_text(str(value))  # other pydicom value types (DA, TM ... objects)


def _person_name(value: Any, key: str) -> dict[str, str] | None:
    parts: Iterable[tuple[str, Any]]
    if isinstance(value, PersonName):
        parts = zip(("Alphabetic", "Ideographic", "Phonetic"), value.components, strict=False)
    elif isinstance(value, Mapping):
        parts = ((str(k), s) for k, s in value.items())
    else:
        raise InvalidValueError(f"element {key}: PN values must be objects")
    return {name: clean_text(str(part)) for name, part in parts if part} or None


def natural_value(vr: str, values: Any) -> Any:
    """Values of a keyword element in naturalized form: a scalar, a list, or None."""
    if vr == "SQ":
        return values
    if isinstance(values, dict):
        return values or None
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def tagged_value(vr: str, values: Any) -> dict[str, Any]:
    """Values of a tag-keyed (private or unknown) element in DICOM JSON form."""
    if isinstance(values, dict):
        return {"vr": vr, **values}
    if vr == "PN":
        values = [v if v is not None else {} for v in values]
    return {"vr": vr, "Value": values} if values else {"vr": vr}
