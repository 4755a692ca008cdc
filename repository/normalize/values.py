"""What every input form shares: the stored-form constants, element keys and value shapes.

Single values are converted by :func:`repository.validation.scalar`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import InvalidValueError
from ..pydicom_types import is_raw_data_element
from .dictionary import dictionary_VR, keyword_for_tag, tag_for_keyword

if TYPE_CHECKING:
    from pydicom.dataelem import DataElement, RawDataElement
    from typing_extensions import TypeIs

MAX_SEQUENCE_DEPTH = 80
"""Sequences nested deeper than this are refused: DICOM JSON spends three JSON levels on each
sequence level, and JSON encoders (orjson) stop at 255."""


def nested_too_deep(where: str) -> InvalidValueError:
    """The refusal of sequences nested more than :data:`MAX_SEQUENCE_DEPTH` levels deep."""
    return InvalidValueError(
        f"{where}: sequences nested more than {MAX_SEQUENCE_DEPTH} levels deep cannot be stored"
    )


BULK_DATA_THRESHOLD = 1024
"""Binary values longer than this many bytes are stored as a ``BulkDataURI`` reference."""

OHIF_EXTRA_KEYS = frozenset({"imageId", "wadoRoot", "wadoUri", "url"})
"""Non-DICOM keys OHIF adds to instance metadata; accepted on input, kept out of the JSON."""

BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
"""VRs whose values are bytes (inline base64 or a bulk data reference)."""

_TAG_KEY = re.compile(r"^[0-9A-Fa-f]{8}$")

Metadata = dict[str, Any]
"""Naturalized metadata: DICOM keywords (or 8-hex-digit tags) to values."""


class RawElement(NamedTuple):
    """A value :mod:`.reader` skipped (not read): where it lies in its file. The fields are the
    first ones of pydicom's ``RawDataElement`` (same names and order): a :data:`BulkDataURI`
    function reads both alike."""

    tag: int
    VR: str | None
    length: int
    value: bytes | None
    value_tell: int
    is_implicit_VR: bool
    is_little_endian: bool


BulkDataURI = Callable[["DataElement | RawDataElement | RawElement"], str | None]
"""Maps a large binary element to the URI stored in its place."""


def is_raw_element(elem: object) -> TypeIs[RawDataElement | RawElement]:
    """True for an element as read, not converted: a :class:`RawElement` or pydicom's
    ``RawDataElement`` (its ``length`` and ``value_tell`` give where its value lies)."""
    return isinstance(elem, RawElement) or is_raw_data_element(elem)


def is_tag_key(key: str) -> bool:
    """True if ``key`` is an 8-hex-digit tag (``"0020000D"``)."""
    return _TAG_KEY.match(key) is not None


def element_key(tag: int, vr: str | None = None) -> tuple[str, str | None]:
    """Keyword for public dictionary tags that map back to themselves, else the 8-hex tag; also
    the tag when the element's ``vr`` (if given) is not of the kind the dictionary's is."""
    if not tag >> 16 & 1:  # not private
        kw = keyword_for_tag(tag)
        if kw and tag_for_keyword(kw) == tag and (vr is None or fits_dictionary(tag, vr)):
            return kw, kw
    return f"{int(tag):08X}", None


_NUMBERS = ("US", "SS", "UL", "SL", "UV", "SV", "FL", "FD", "DS", "IS")
_TEXTS = ("AE", "AS", "CS", "DA", "DT", "LO", "LT", "SH", "ST", "TM", "UC", "UI", "UR", "UT")
_VR_KINDS = {
    **dict.fromkeys(_NUMBERS, "number"),
    **dict.fromkeys(_TEXTS, "text"),
    **dict.fromkeys(BINARY_VRS, "binary"),
    "SQ": "sequence",
    "PN": "person name",
    "AT": "tag",
}
"""What a value of each VR is stored as: a keyword's value must have its dictionary VR's kind."""


@cache
def fits_dictionary(tag: int, vr: str) -> bool:
    """True if a public element read with ``vr`` may be stored under its keyword: ``vr`` is
    of the kind of (one of) the VRs the dictionary gives the tag. A file that writes a sequence
    as US, or a person name as LO, has that element stored under its tag with its own VR (as
    a private element is), so that it is read back and sent on with the VR it had."""
    kind = _VR_KINDS.get(vr)
    if kind is None:
        return True
    try:
        choices = dictionary_VR(tag).split(" or ")
    except KeyError:
        return True
    return "UN" in choices or any(_VR_KINDS.get(choice, kind) == kind for choice in choices)


def element_name(tag: int) -> str:
    """``PatientName (00100010)``: how an error names an element."""
    key, kw = element_key(tag)
    return f"{kw} ({int(tag):08X})" if kw else key


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
