"""Raw DICOM values straight to their stored form, without pydicom's value classes.

Shared by the two fast entries to the stored form, which give exactly what the pydicom path
(:func:`.dataset.naturalize_element`) gives: :mod:`.fast` walks the raw elements of a pydicom
Dataset, :mod:`.reader` reads a file's bytes. What is decoded here:

- text VRs, when the value has no ISO 2022 escape and the data set's character set is Latin-1,
  ASCII or UTF-8 (or the VR ignores the character set): strings, dates, times, UIDs, codes,
  PersonName components;
- DS and IS strings that are plain decimal / integer numbers;
- US, SS, UL, SL, FL, FD, SV, UV and AT, in either byte order;
- binary values (OB, OW, OF, OD, OL, OV) up to the bulk data threshold.

Anything else (other character sets, escapes, UN, ambiguous VRs, malformed
numbers, NUL characters, values pydicom must fix) raises :class:`_NotHandled`: the caller leaves
that element (or file) to pydicom, so the result is the same by construction.
"""

from __future__ import annotations

import base64
import math
import re
import struct
import sys
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

from ..validation import clean_text
from .dictionary import LUT_DESCRIPTOR_TAGS, dictionary_VR
from .values import BULK_DATA_THRESHOLD, element_key, natural_value, tagged_value

NUMBER_FORMATS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d",
                  "SV": "q", "UV": "Q", "AT": "HH"}  # fmt: skip
"""struct formats of the binary number VRs."""
INLINE_BINARY = frozenset({"OB", "OD", "OF", "OL", "OV", "OW"})
"""Binary VRs whose bytes are stored as they are (base64), up to the bulk data threshold."""
_CHARSET_FREE = frozenset({"AS", "CS", "DA", "DT", "TM"})  # pydicom: default encoding, as UI
_CHARSET_TEXT = frozenset({"SH", "LO", "UC"})  # split on backslash, decoded with the charset
_SINGLE_TEXT = frozenset({"ST", "LT", "UT"})  # never split
TEXT_VRS = _CHARSET_FREE | _CHARSET_TEXT | _SINGLE_TEXT | {"AE", "DS", "IS", "PN", "UI", "UR"}
"""Text VRs :func:`decode_value` decodes (others: UN, SQ, binary and number VRs)."""
_SIMPLE_CODECS = {"iso8859": "latin-1", "latin_1": "latin-1", "iso_ir_100": "latin-1",
                  "UTF8": "utf-8", "utf_8": "utf-8", "ascii": "ascii"}  # fmt: skip
_PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")

_DS = r" *[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)? *"
_DS_VALUES = re.compile(rf"{_DS}(?:\\{_DS})*")
_IS = r" *[+-]?[0-9]+ *"
_IS_VALUES = re.compile(rf"{_IS}(?:\\{_IS})*")
_INFINITY = float("inf")
_ESC = 0x1B


class _NotHandled(Exception):
    """This element (or file) is left to pydicom (internal: caught by :mod:`.reader`)."""


def codec_of(encodings: str | Sequence[str] | None) -> str:
    """The Python codec of text in a data set with pydicom ``encodings``, "" if not simple."""
    if isinstance(encodings, str):
        encodings = [encodings]
    return _SIMPLE_CODECS.get(encodings[0], "") if encodings else ""


@cache
def implicit_vr(tag: int) -> str | None:
    """The VR of an implicit-VR public element, when the dictionary gives exactly one."""
    if tag >> 16 & 1:  # private
        return None
    try:
        vr = str(dictionary_VR(tag))
    except KeyError:
        return None
    return None if " or " in vr or vr == "UN" else vr


@cache
def tag_key(tag: int, vr: str | None = None) -> tuple[str, bool]:
    """The stored key of ``tag`` read with ``vr`` and whether it is a keyword (else an
    8-hex-digit tag: see :func:`.values.element_key`)."""
    key, kw = element_key(tag, vr)
    return key, kw is not None


def decode_value(tag: int, vr: str, data: bytes, little: bool, codec: str) -> tuple[str, Any]:
    """Key and stored value of an element whose whole value is ``data`` (not deferred).

    ``vr`` is the element's VR as pydicom resolves it; ``codec`` is from :func:`codec_of`.
    Raises :class:`_NotHandled` when pydicom must decode it.
    """
    if tag in LUT_DESCRIPTOR_TAGS and vr != "US":
        return _lut_descriptor(tag, vr, data, little)
    decoder = _DECODERS.get(vr)
    if decoder is None:
        if vr in INLINE_BINARY:
            return inline_binary(tag, vr, data)
        raise _NotHandled
    key, is_keyword = tag_key(tag, vr)
    values = decoder(data, little, codec) if data else []
    return key, natural_value(vr, values) if is_keyword else tagged_value(vr, values)


def _lut_descriptor(tag: int, vr: str, data: bytes, little: bool) -> tuple[str, Any]:
    """A LUT descriptor read as SS: pydicom adds 65536 to a negative first of several values
    (hooks.raw_element_value); read with another VR, it is left to pydicom."""
    if vr != "SS":
        raise _NotHandled
    values = _DECODERS["SS"](data, little, "") if data else []
    if len(values) > 1 and values[0] < 0:
        values[0] += 65536
    key, is_keyword = tag_key(tag, vr)
    return key, natural_value(vr, values) if is_keyword else tagged_value(vr, values)


def inline_binary(tag: int, vr: str, data: bytes) -> tuple[str, Any]:
    """Key and stored value of a binary element kept inline (base64)."""
    if len(data) > BULK_DATA_THRESHOLD:
        raise _NotHandled
    key, is_keyword = tag_key(tag, vr)
    binary = {"InlineBinary": base64.b64encode(data).decode("ascii")} if data else {}
    return key, (binary or None) if is_keyword else {"vr": vr, **binary}


# The stored values of a non-empty element, one decoder per VR, as pydicom's value for that VR
# becomes in :func:`.dataset._element_values`.


def _charset_free(data: bytes, little: bool, codec: str) -> list[Any]:
    text = data.decode("latin-1").rstrip(" \x00")
    if "\\" not in text:  # one value (the common case)
        return [clean_text(text)] if text else []
    return [None if item == "" else clean_text(item) for item in text.split("\\")]


def _uids(data: bytes, little: bool, codec: str) -> list[Any]:
    items = data.decode("latin-1").rstrip(" \x00").split("\\")
    if len(items) == 1:  # pydicom's UID strips whitespace, all of it, on both sides
        uid = items[0].strip()
        return [clean_text(uid)] if uid else []
    return [clean_text(uid) if (uid := item.strip()) else None for item in items]


def _decimals(data: bytes, little: bool, codec: str) -> list[Any]:
    text = data.decode("latin-1").strip().rstrip(" \x00")
    if not text:
        return []
    if not _DS_VALUES.fullmatch(text):
        raise _NotHandled
    numbers = [float(item) for item in text.split("\\")] if "\\" in text else [float(text)]
    if _INFINITY in numbers or -_INFINITY in numbers:
        raise _NotHandled
    return numbers


def _integers(data: bytes, little: bool, codec: str) -> list[Any]:
    text = data.decode("latin-1").rstrip(" \x00")
    if not text:
        return []
    if not _IS_VALUES.fullmatch(text):
        raise _NotHandled
    return [int(item) for item in text.split("\\")]


def _titles(data: bytes, little: bool, codec: str) -> list[Any]:
    items = [item.strip() for item in data.decode("latin-1").split("\\")]
    return [] if len(items) == 1 and not items[0] else [clean_text(i) or None for i in items]


def _uri(data: bytes, little: bool, codec: str) -> list[Any]:
    text = data.decode("latin-1").rstrip()
    return [clean_text(text)] if text else []


def _text(data: bytes, codec: str) -> str:
    """Text in the data set's character set (not when there is none simple, or an escape)."""
    if not codec or _ESC in data:
        raise _NotHandled
    return data.decode(codec)


def _strings(data: bytes, little: bool, codec: str) -> list[Any]:
    text = _text(data, codec).rstrip(" \x00")
    if "\\" not in text:  # one value (the common case)
        return [clean_text(text)] if text else []
    return [clean_text(item) or None for item in text.split("\\")]  # blank ones are empty


def _single_text(data: bytes, little: bool, codec: str) -> list[Any]:
    text = _text(data, codec).rstrip("\x00 ")
    return [clean_text(text)] if text else []


def _person_names(data: bytes, little: bool, codec: str) -> list[Any]:
    items = _text(data, codec).rstrip("\x00 ").split("\\")
    if len(items) == 1 and not items[0]:
        return []
    names: list[Any] = []
    for item in items:
        parts = item.split("=")
        if len(parts) > 3:
            raise _NotHandled  # pydicom warns and keeps extra groups
        pairs = zip(_PN_GROUPS, parts, strict=False)
        groups = {name: clean_text(part) for name, part in pairs if part}
        names.append(groups or None)
    return names


def _numbers_decoder(vr: str) -> Callable[[bytes, bool, str], list[Any]]:
    fmt = NUMBER_FORMATS[vr]
    size = struct.calcsize("=" + fmt)
    one = struct.Struct("<" + fmt)
    cast = "H" if vr == "AT" else _NATIVE[vr]  # the memoryview format of the same size
    check = vr in ("FL", "FD")  # NaN and infinity: rejected, naming the element, by pydicom

    def numbers(data: bytes, little: bool, codec: str) -> list[Any]:
        if len(data) == size and little:
            values = [*one.unpack(data)]
        elif len(data) % size:
            raise _NotHandled  # pydicom: BytesLengthException
        elif little and _LITTLE_HOST:
            values = memoryview(data).cast(cast).tolist()  # type: ignore[call-overload]
        else:
            values = [*struct.unpack(f"{'<' if little else '>'}{len(data) // size * fmt}", data)]
        if check and not all(map(math.isfinite, values)):
            raise _NotHandled
        if vr == "AT":
            pairs = zip(values[::2], values[1::2], strict=True)
            return [f"{(group << 16) | element:08X}" for group, element in pairs]
        return values

    return numbers


_NATIVE = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d", "SV": "q", "UV": "Q"}
_LITTLE_HOST = sys.byteorder == "little"
_DECODERS: dict[str, Callable[[bytes, bool, str], list[Any]]] = {
    **dict.fromkeys(_CHARSET_FREE, _charset_free),
    **dict.fromkeys(_CHARSET_TEXT, _strings),
    **dict.fromkeys(_SINGLE_TEXT, _single_text),
    **{vr: _numbers_decoder(vr) for vr in NUMBER_FORMATS},
    "DS": _decimals, "IS": _integers, "AE": _titles, "UR": _uri, "PN": _person_names,
    "UI": _uids,
}  # fmt: skip
