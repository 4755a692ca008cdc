"""Naturalized values in the forms OHIF and dcmjs produce -> the values a file ingest stores.

A naturalized value may arrive in a non-canonical form (dcmjs, a hand-written dict, JSON
transport): numbers as strings or backslash-joined strings (text is never split: a backslash in
a naturalized string is taken as part of the text), PN as a string or a one-element
list, empty values as ``""``/``[]``/``None``, AT as numbers, binary values as the ``{}`` that an
``ArrayBuffer`` becomes in JSON. :func:`coerce_values` turns one such value, given its VR, into
the list of values (or the binary dict) that :mod:`.dataset` makes of the same element read
from a file, so the stored form is the same whichever way the data came in.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from functools import cache
from typing import Any

from ..errors import InvalidValueError
from ..validation import as_number, scalar
from .dictionary import dictionary_VR, private_dictionary_VR, repeaters, tag_for_keyword
from .values import BINARY_VRS

INT_VRS = frozenset({"US", "SS", "UL", "SL", "UV", "SV"})
FLOAT_VRS = frozenset({"FL", "FD"})
SPLIT_VRS = INT_VRS | FLOAT_VRS | {"DS", "IS"}
"""VRs whose string values are split on backslashes (``"0\\0\\3"``); text stays verbatim."""

LONG_STRING_MAX = 64


@cache
def _repeater_tags() -> dict[str, str]:
    """Repeating-group keyword -> the tag key of its first group (``60000010``)."""
    return {entry[4]: mask.replace("xx", "00") for mask, entry in repeaters().items()}


RETIRED_PREFIX = "RETIRED_"


def dcmjs_name(name: str) -> str | None:
    """The key a file ingest uses for an element dcmjs names differently, or None.

    dcmjs calls retired elements ``RETIRED_<Keyword>`` and repeating-group elements by the
    group's keyword (``OverlayRows`` for 60xx,0010, naming the first group, 6000).
    """
    bare = name.removeprefix(RETIRED_PREFIX)
    if bare != name and tag_for_keyword(bare) is not None:
        return bare
    return _repeater_tags().get(bare)


def tag_vr(tag: int) -> str | None:
    """The dictionary VR of a tag-keyed element (repeaters and group lengths too), or None."""
    if tag & 0xFFFF == 0:
        return "UL"  # group length
    if tag >> 16 & 1:  # private
        return None
    try:
        choices = dictionary_VR(tag).split(" or ")
    except KeyError:
        return None
    return next((vr for vr in choices if vr in BINARY_VRS), choices[0])


def private_vr(tag: int, creator: str | None) -> str | None:
    """The VR pydicom's private dictionary gives element ``tag`` of ``creator``'s block, or None
    (pydicom reads an implicit-VR private element with this VR when it knows its creator)."""
    if not creator or not tag >> 16 & 1 or tag & 0xFFFF < 0x1000:
        return None
    try:
        choices = private_dictionary_VR(tag, creator).replace("_", " or ").split(" or ")
    except KeyError:
        return None
    return next((vr for vr in choices if vr in BINARY_VRS), choices[0])


def fits(vr: str, value: Any) -> bool:
    """Whether a bare value's JSON type can be a value of ``vr`` (dcmjs gives numbers for
    binary and decimal numbers, strings for text, objects for sequences, PN and binary)."""
    items = [v for v in (value if isinstance(value, list) else [value]) if v is not None]
    if vr == "SQ" or vr in BINARY_VRS:
        return all(isinstance(v, Mapping) for v in items)
    if vr in INT_VRS:
        return all(isinstance(v, int) and not isinstance(v, bool) for v in items)
    if vr in FLOAT_VRS | {"DS", "IS"}:
        return all(isinstance(v, int | float | str) and not isinstance(v, bool) for v in items)
    if vr == "PN":
        return all(isinstance(v, str | Mapping) for v in items)
    return vr == "AT" or all(isinstance(v, str) for v in items)


def keyword_vr(keyword: str, vr_map: Mapping[str, Any], value: Any = None) -> str:
    """The VR of a keyword element: dcmjs's ``_vrMap`` entry, else the dictionary's; of an
    ambiguous entry (``US or OW``) the binary choice unless ``value`` holds numbers."""
    given = vr_map.get(keyword)
    if isinstance(given, str) and given:
        return given
    choices = dictionary_VR(keyword).split(" or ")
    items = value if isinstance(value, list) else [value]
    numeric = any(isinstance(v, int | float) and not isinstance(v, bool) for v in items)
    plain = [vr for vr in choices if vr not in BINARY_VRS]
    if len(choices) > 1 and numeric and plain:
        return plain[0]
    return next((vr for vr in choices if vr in BINARY_VRS), choices[0])


def infer_vr(value: Any) -> str:
    """The VR of a private or unknown element given as a bare value (no ``_vrMap`` entry)."""
    items = value if isinstance(value, list) else [value]
    present = [v for v in items if v is not None and v != ""]
    if not present:
        return "LO" if any(v == "" for v in items) else "UN"  # dcmjs gives empty text as ""
    if all(isinstance(v, Mapping) for v in present):
        if all(not v for v in present):
            return "UN"  # JSON-transported binary ({} is what an ArrayBuffer becomes)
        if all(set(v) <= {"Alphabetic", "Ideographic", "Phonetic"} for v in present):
            return "PN"
        return "SQ"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "SL" if all(-(2**31) <= v < 2**31 for v in present) else "SV"
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return "FD"
    if all(isinstance(v, str) for v in present):
        return "LO" if all(len(v) <= LONG_STRING_MAX for v in present) else "UT"
    raise InvalidValueError(f"element {value!r}: cannot tell its VR from the value")


def coerce_values(vr: str, value: Any, key: str) -> Any:
    """``value`` of element ``key`` as the list of stored values, or a binary dict.

    Sequences are returned as the list of their items unchanged (the caller checks the items).
    """
    if vr == "SQ":
        return _items(value, key)
    if vr in BINARY_VRS:
        return _binary(value, key)
    if value is None or value == "" or value == []:
        return []
    items = value if isinstance(value, list) else [value]
    out: list[Any] = []
    for item in items:
        if isinstance(item, str) and vr in SPLIT_VRS:
            out += [_one(vr, part, key) for part in item.split("\\")]
        else:
            out.append(_one(vr, item, key))
    # one empty value is an empty element; several (``"\\"``) stay as file ingest keeps them
    return [] if out == [None] else out


_JSON_SCALARS = (str, int, float, Mapping, type(None))


def _one(vr: str, value: Any, key: str) -> Any:
    if not isinstance(value, _JSON_SCALARS):
        raise InvalidValueError(f"element {key}: value of type {type(value).__name__} is not JSON")
    try:
        return _converted(vr, value, key)
    except InvalidValueError as error:
        if key in str(error):
            raise
        raise InvalidValueError(f"element {key}: {error}") from None


def _converted(vr: str, value: Any, key: str) -> Any:
    if vr == "PN" and isinstance(value, str):
        from pydicom.valuerep import PersonName  # pydicom's parsing (imported on first need)

        value = PersonName(value)
    elif isinstance(value, str) and vr in INT_VRS | FLOAT_VRS:
        text = value.strip(" \x00")
        if not text:
            return None
        try:
            return int(text) if vr in INT_VRS else float(text)
        except ValueError:
            raise InvalidValueError(f"element {key}: {value!r} is not a {vr} number") from None
    elif vr == "DS" and isinstance(value, int) and not isinstance(value, bool):
        return as_number(value, "DS")  # a file ingest stores DS as floats
    return scalar(vr, value, key)


def _items(value: Any, key: str) -> list[Mapping[str, Any]]:
    if value is None or value == "":
        return []
    items = value if isinstance(value, list) else [value]
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise InvalidValueError(f"{key}[{index}]: a sequence item must be an object")
    return items


def _binary(value: Any, key: str) -> dict[str, Any]:
    """A binary value: ``InlineBinary``/``BulkDataURI`` kept; ``{}``, ``[{}]``, ``None`` (a
    value JSON transport could not carry) stored as an element without value."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if value is None or value == "" or value == [] or value == {}:
        return {}
    if isinstance(value, list) and all(v == {} for v in value):
        return {}  # several ArrayBuffers (fragments), none carried through JSON
    if isinstance(value, Mapping) and set(value) == {"BulkDataURI"}:
        if not isinstance(value["BulkDataURI"], str) or not value["BulkDataURI"]:
            raise InvalidValueError(f"element {key}: BulkDataURI must be a non-empty string")
        return {"BulkDataURI": value["BulkDataURI"]}
    if isinstance(value, Mapping) and set(value) == {"InlineBinary"}:
        return inline_binary(value["InlineBinary"], key)
    raise InvalidValueError(f"element {key}: binary value must be InlineBinary or BulkDataURI")


def inline_binary(data: Any, key: str) -> dict[str, Any]:
    """A checked ``{"InlineBinary": base64}``; kept inline whatever its size.

    The store has no bulk-data store of its own (bulk data references point at files or
    DICOMweb servers); an inline value without such an address is therefore kept inline rather
    than replaced by a reference that leads nowhere.
    """
    if not isinstance(data, str):
        raise InvalidValueError(f"element {key}: InlineBinary must be a base64 string")
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidValueError(f"element {key}: InlineBinary is not valid base64") from None
    return {"InlineBinary": data} if data else {}
