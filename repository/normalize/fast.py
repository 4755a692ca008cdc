"""The stored form of a pydicom Dataset, decoding common raw elements straight from their bytes.

:func:`naturalize_dataset_fast` returns exactly what :func:`.dataset.naturalize_dataset` returns
for the same Dataset, only faster: pydicom turns each raw element into a ``DataElement``
(value classes, validation, MultiValue) that the stored form then takes apart again; here the
common cases are decoded from ``RawDataElement`` bytes into the stored values directly:

- text VRs, when the value has no ISO 2022 escape and the data set's character set is Latin-1,
  ASCII or UTF-8 (or the VR ignores the character set): strings, dates, times, UIDs, codes,
  PersonName components;
- DS and IS strings that are plain decimal / integer numbers;
- US, SS, UL, SL, FL, FD, SV, UV and AT, in either byte order;
- binary values (OB, OW, OF, OD, OL, OV) up to the bulk data threshold;
- sequences: pydicom splits the items, whose elements are decoded here in turn.

Anything else (other character sets, escapes, ambiguous or UN VRs, implicit-VR private tags,
LUT descriptors, malformed numbers, NUL characters, deferred or bulk values, values pydicom
must fix) goes through :func:`.dataset.naturalize_element`, the pydicom path, so the result is
the same by construction; ``tests/test_normalize_fast.py`` checks it file by file.
"""

from __future__ import annotations

import base64
import math
import re
import struct
from functools import cache
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from ..validation import clean_text
from .dataset import naturalize_element, with_file_meta
from .values import (
    BINARY_VRS,
    BULK_DATA_THRESHOLD,
    BulkDataURI,
    Metadata,
    element_key,
    natural_value,
    tagged_value,
)

_NUMBER_FORMATS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d",
                   "SV": "q", "UV": "Q", "AT": "HH"}  # fmt: skip
_INLINE_BINARY = frozenset({"OB", "OD", "OF", "OL", "OV", "OW"})
_CHARSET_FREE = frozenset({"AS", "CS", "DA", "DT", "TM", "UI"})  # pydicom: default encoding
_CHARSET_TEXT = frozenset({"SH", "LO", "UC"})  # split on backslash, decoded with the charset
_SINGLE_TEXT = frozenset({"ST", "LT", "UT"})  # never split
_SIMPLE_CODECS = {"iso8859": "latin-1", "latin_1": "latin-1", "iso_ir_100": "latin-1",
                  "UTF8": "utf-8", "utf_8": "utf-8", "ascii": "ascii"}  # fmt: skip
_PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")
_LUT_DESCRIPTORS = frozenset({0x00281101, 0x00281102, 0x00281103, 0x00283002})
"""pydicom rewrites the first value of these (a negative US read as SS): left to pydicom."""

_DS = re.compile(r" *[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)? *")
_IS = re.compile(r" *[+-]?[0-9]+ *")
_ESC = 0x1B
_UNDEFINED = 0xFFFFFFFF


class _Fallback(Exception):
    """This element is left to pydicom."""


def naturalize_dataset_fast(ds: Dataset, bulk_data_uri: BulkDataURI | None = None) -> Metadata:
    """The stored form of ``ds`` (file meta included), equal to ``naturalize_dataset(ds)``."""
    return with_file_meta(ds, bulk_data_uri, _naturalize_into)


def _naturalize_into(out: Metadata, ds: Dataset, bulk: BulkDataURI | None) -> None:
    codec: str | None = None  # looked up on the first text element that needs it
    for tag in ds.keys():  # noqa: SIM118 (keys() leaves the raw elements raw)
        raw = ds.get_item(tag, keep_deferred=True)
        if raw is None:
            continue
        try:
            if raw.VR == "SQ" or (raw.VR is None and _implicit_vr(tag) == "SQ"):
                _sequence_into(out, ds, tag, bulk)
                continue
            if isinstance(raw, RawDataElement):
                if codec is None:
                    codec = _codec(ds)
                key, value = _decode(raw, codec)
                out[key] = value
                continue
        except Exception:  # anything unusual is for pydicom to decode
            pass
        naturalize_element(out, ds, tag, raw, bulk)


def _sequence_into(out: Metadata, ds: Dataset, tag: int, bulk: BulkDataURI | None) -> None:
    """pydicom splits a sequence into item Datasets; their elements are decoded here."""
    elem = ds[tag]
    if elem.VR != "SQ":
        raise _Fallback
    key, kw = element_key(BaseTag(tag))
    items = [naturalize_dataset_fast(item, bulk) for item in elem.value or ()]
    out[key] = natural_value("SQ", items) if kw else tagged_value("SQ", items)


def _codec(ds: Dataset) -> str:
    """The Python codec of the data set's text, or "" when it is not a simple one."""
    encodings = ds.original_character_set or ds._character_set
    if isinstance(encodings, str):
        encodings = [encodings]
    return _SIMPLE_CODECS.get(encodings[0], "") if encodings else ""


@cache
def _implicit_vr(tag: int) -> str | None:
    """The VR of an implicit-VR element, when the dictionary gives exactly one."""
    if BaseTag(tag).is_private:
        return None
    try:
        vr = str(dictionary_VR(tag))
    except KeyError:
        return None
    return None if " or " in vr or vr == "UN" else vr


@cache
def _tag_key(tag: int) -> tuple[str, bool]:
    key, kw = element_key(BaseTag(tag))
    return key, kw is not None


def _decode(raw: RawDataElement, codec: str) -> tuple[str, Any]:
    """Key and stored value of one raw element; :class:`_Fallback` when pydicom must do it."""
    vr = raw.VR or _implicit_vr(raw.tag)
    data = raw.value
    if data is None and raw.length == 0 and vr not in BINARY_VRS:
        data = b""  # empty, not deferred (an empty binary value is a BulkDataURI: pydicom path)
    if vr is None or data is None or raw.length == _UNDEFINED or raw.tag in _LUT_DESCRIPTORS:
        raise _Fallback
    key, is_keyword = _tag_key(raw.tag)
    if vr in _INLINE_BINARY:
        if len(data) > BULK_DATA_THRESHOLD:
            raise _Fallback
        binary = {"InlineBinary": base64.b64encode(data).decode("ascii")} if data else {}
        return key, (binary or None) if is_keyword else {"vr": vr, **binary}
    values = _values(vr, data, raw.is_little_endian, codec) if data else []
    return key, natural_value(vr, values) if is_keyword else tagged_value(vr, values)


def _values(vr: str, data: bytes, little: bool, codec: str) -> list[Any]:
    """The stored values of a non-empty element, as :func:`normalize._element_values`."""
    fmt = _NUMBER_FORMATS.get(vr)
    if fmt is not None:
        return _numbers(vr, fmt, data, little)
    if vr in _CHARSET_FREE or vr in ("DS", "IS", "AE", "UR"):
        text = data.decode("latin-1")
    elif codec and _ESC not in data and (vr in _CHARSET_TEXT or vr in _SINGLE_TEXT or vr == "PN"):
        text = data.decode(codec)
    else:
        raise _Fallback
    if vr == "PN":
        return _person_names(text)
    if vr in _SINGLE_TEXT:
        text = text.rstrip("\x00 ")
        return [clean_text(text)] if text else []
    if vr == "UR":
        text = text.rstrip()
        return [clean_text(text)] if text else []
    if vr == "DS":
        text = text.strip()
    items = text.rstrip(" \x00").split("\\")
    if vr == "AE":
        items = [item.strip() for item in data.decode("latin-1").split("\\")]
    if len(items) == 1 and not items[0]:
        return []
    if vr == "DS":
        return [_float(item) for item in items]
    if vr == "IS":
        return [_int(item) for item in items]
    if vr in _CHARSET_TEXT or vr == "AE":  # pydicom strips each item: blank ones are empty
        return [clean_text(item) or None for item in items]
    return [None if item == "" else clean_text(item) for item in items]


def _numbers(vr: str, fmt: str, data: bytes, little: bool) -> list[Any]:
    size = struct.calcsize("=" + fmt)
    if len(data) % size:
        raise _Fallback  # pydicom: BytesLengthException
    count = len(data) // size
    values = struct.unpack(f"{'<' if little else '>'}{count * fmt}", data)
    if vr == "AT":
        pairs = zip(values[::2], values[1::2], strict=True)
        return [f"{(group << 16) | element:08X}" for group, element in pairs]
    if vr in ("FL", "FD") and not all(math.isfinite(v) for v in values):
        raise _Fallback  # NaN and infinity: rejected, naming the element, by the pydicom path
    return list(values)


def _float(item: str) -> float:
    if not _DS.fullmatch(item):
        raise _Fallback
    number = float(item)
    if number in (float("inf"), float("-inf")):
        raise _Fallback
    return number


def _int(item: str) -> int:
    if not _IS.fullmatch(item):
        raise _Fallback
    return int(item)


def _person_names(text: str) -> list[Any]:
    items = text.rstrip("\x00 ").split("\\")
    if len(items) == 1 and not items[0]:
        return []
    names: list[Any] = []
    for item in items:
        parts = item.split("=")
        if len(parts) > 3:
            raise _Fallback  # pydicom warns and keeps extra groups
        pairs = zip(_PN_GROUPS, parts, strict=False)
        groups = {name: clean_text(part) for name, part in pairs if part}
        names.append(groups or None)
    return names
