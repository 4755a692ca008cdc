"""Data sets, sequences and elements from a file's bytes straight to the stored form.

:class:`Parser` reads little-endian data sets (explicit or implicit VR) the way pydicom's
``dcmread(path, defer_size=BULK_DATA_THRESHOLD)`` reads them and stores each element as
:func:`.dataset.naturalize_element` stores what pydicom made of it: the same keys, values and
BulkDataURIs (offsets as pydicom records them: inside a sequence of defined length, pydicom
parses the items from the sequence's bytes, so offsets there count from its first byte).
Values are decoded by :mod:`.decode`. Whatever it does not handle, or anything that pydicom
would read differently from a well-formed file (an unknown VR, a switch between explicit and
implicit VR, an element running past its item, sequence or file, tags out of order, a top-level
item delimiter, sequences nested deeper than the store accepts), raises
:class:`~.decode._NotHandled`: :mod:`.reader` then leaves the whole file to pydicom.
"""

from __future__ import annotations

import os
import struct
import warnings
from functools import lru_cache
from typing import Any

from .dataset import dictionary_vr
from .decode import (
    NUMBER_FORMATS,
    TEXT_VRS,
    _NotHandled,
    codec_of,
    decode_value,
    implicit_vr,
    inline_binary,
    tag_key,
)
from .dictionary import (
    AMBIGUOUS_US_SS_TAGS,
    EXPLICIT_VR_LENGTH_32,
    LUT_DESCRIPTOR_TAGS,
    VRS,
    dictionary_VR,
    private_dictionary_VR,
)
from .values import (
    BINARY_VRS,
    BULK_DATA_THRESHOLD,
    MAX_SEQUENCE_DEPTH,
    BulkDataURI,
    Metadata,
    RawElement,
    tagged_value,
)

_EXPLICIT = struct.Struct("<HH2sH")
_IMPLICIT = struct.Struct("<HHL")
_LENGTH = struct.Struct("<L")
_VRS = {vr.encode(): vr for vr in VRS}
_LONG = EXPLICIT_VR_LENGTH_32
_SHORT_VRS = {raw: vr for raw, vr in _VRS.items() if vr not in _LONG}
_PLAIN = frozenset(NUMBER_FORMATS) | frozenset(TEXT_VRS)
"""VRs decoded in :meth:`Parser.elements` itself (not binary, not sequences, not UN)."""
UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_ITEM_BYTES, _SEQUENCE_END_BYTES = b"\xfe\xff\x00\xe0", b"\xfe\xff\xdd\xe0"
CHARSET = 0x00080005
_PIXEL_REPRESENTATION = 0x00280103


class _Short(Exception):
    """The bytes read so far end inside this element: read more of the file and retry it
    (internal: caught by :mod:`.reader`)."""


class Scope:
    """What a data set's elements need from the ones before them: its text codec, its private
    creators (for implicit-VR private tags), the last tag (tags must ascend), and ``floor``:
    below it, only numbers (no text, which needs the character set, and no sequences)."""

    __slots__ = ("codec", "creators", "floor", "last")

    def __init__(self, codec: str, floor: int = CHARSET) -> None:
        self.codec, self.floor = codec, floor
        self.creators: dict[int, Any] = {}
        self.last = -1


class Parser:
    """Reads elements from ``data``, the part of a file that starts at byte ``base``.

    Positions are indexes into ``data``; ``origin`` is the file position from which pydicom
    counts the offsets of the current sequence's elements (0 outside defined-length ones).
    When the elements run past ``data`` (and the file goes on), :class:`_Short` is raised and
    ``mark`` holds the position of the top-level element to read again with more bytes.
    """

    __slots__ = ("base", "bulk", "data", "fd", "implicit", "mark", "whole")

    def __init__(self, fd: int, data: bytes, base: int, size: int, bulk: BulkDataURI) -> None:
        self.fd, self.bulk, self.implicit, self.mark = fd, bulk, False, 0
        self.data, self.base = data, base
        self.whole = base + len(data) >= size  # the rest of the file is in data

    def header(self, pos: int, limit: int) -> tuple[int, str | None, int, int]:
        """Tag, VR (None if implicit), value length and value position of the element at pos."""
        if pos + 12 > len(self.data) and not self.whole:
            raise _Short
        if pos + 8 > limit:
            raise _NotHandled
        if self.implicit:
            group, elem, length = _IMPLICIT.unpack_from(self.data, pos)
            return group << 16 | elem, None, length, pos + 8
        group, elem, raw_vr, length = _EXPLICIT.unpack_from(self.data, pos)
        vr = _SHORT_VRS.get(raw_vr) if group != 0xFFFE else None
        at = pos + 8
        if vr is None:
            vr, length, at = self._long_header(pos, limit)
        return group << 16 | elem, vr, length, at

    def _long_header(self, pos: int, limit: int) -> tuple[str | None, int, int]:
        """VR, length and value position of an explicit-VR element with a 4-byte length (or an
        item tag, without VR)."""
        group, _, raw_vr, _ = _EXPLICIT.unpack_from(self.data, pos)
        if group == 0xFFFE:  # item and delimiter tags have no VR
            return None, _LENGTH.unpack_from(self.data, pos + 4)[0], pos + 8
        vr = _VRS.get(raw_vr)
        if vr not in _LONG or pos + 12 > limit:  # pydicom would guess: implicit VR, or...
            raise _NotHandled
        return vr, _LENGTH.unpack_from(self.data, pos + 8)[0], pos + 12

    def elements(self, out: Metadata, scope: Scope, pos: int, stop: int, origin: int,
                 depth: int, delimited: bool = False) -> int:  # fmt: skip
        """Store the elements from ``pos`` to ``stop`` (to an item delimiter if ``delimited``)
        into ``out``; the position after them. Common elements are decoded here, the others
        by :meth:`element`."""
        data, size, implicit, floor = self.data, len(self.data), self.implicit, scope.floor
        last, codec = scope.last, scope.codec
        try:
            while pos < stop:
                if pos + 12 > size and not self.whole:
                    raise _Short
                if pos + 8 > stop:
                    raise _NotHandled
                if implicit:
                    group, elem, length = _IMPLICIT.unpack_from(data, pos)
                    tag, at = group << 16 | elem, pos + 8
                    vr = implicit_vr(tag)
                else:
                    group, elem, raw_vr, length = _EXPLICIT.unpack_from(data, pos)
                    tag, at = group << 16 | elem, pos + 8
                    vr = _SHORT_VRS.get(raw_vr) if group != 0xFFFE else None
                    if vr is None:
                        vr, length, at = self._long_header(pos, stop)
                end = at + length
                if (vr in _PLAIN and last < tag and floor < tag and end <= stop and end <= size
                        and tag & 0x1FF00 != 0x10000):  # fmt: skip
                    key, out[key] = decode_value(tag, vr, data[at:end], True, codec)
                elif delimited and tag == _ITEM_END:
                    if length:
                        raise _NotHandled
                    return at
                else:
                    scope.last = last
                    raw_vr = None if implicit else vr
                    end = self.element(out, scope, tag, raw_vr, length, at, stop, origin, depth)
                    codec = scope.codec
                last, pos = tag, end
        except _Short:
            self.mark, scope.last = pos, last
            raise
        if delimited or pos != stop:
            raise _NotHandled
        return pos

    def element(self, out: Metadata, scope: Scope, tag: int, vr: str | None, length: int,
                at: int, limit: int, origin: int, depth: int) -> int:  # fmt: skip
        """Store the element whose value starts at ``at`` into ``out``; the position after it."""
        if tag <= scope.last or tag >> 16 == 0xFFFE:
            raise _NotHandled  # out of order, repeated, or an item tag outside a sequence
        if tag < scope.floor and (tag < 0x00080000 or (vr and vr not in NUMBER_FORMATS)):
            raise _NotHandled  # pydicom: a command set; text before the character set
        if length == UNDEFINED:
            return self._undefined(out, scope, tag, vr, at, limit, origin, depth)
        end = at + length
        if end > limit:
            raise _NotHandled
        bulk_vr = vr or _bulk_vr(tag)  # naturalize_element's test, before any conversion
        if bulk_vr in BINARY_VRS and length > BULK_DATA_THRESHOLD:  # an empty value is not bulk
            self._bulk(out, tag, bulk_vr, length, self.base + at - origin)
            return end
        if end > len(self.data):
            raise _Short
        data = self.data[at:end]
        if vr is None or vr == "UN":
            resolved = _resolved_vr(tag, vr, scope)
            if resolved == "SQ" and vr == "UN":
                raise _NotHandled  # pydicom would read a UN sequence's items in explicit VR
            vr = resolved
        if vr == "SQ":
            items = self.items(at, end, end, self.base + at, scope.codec, depth)[0]
            key, is_keyword = tag_key(tag, "SQ")
            out[key] = items if is_keyword else tagged_value("SQ", items)
            return end
        key, value = self._value(tag, vr, data, scope, out)
        out[key] = value
        if tag == CHARSET:
            scope.codec = _charset_codec(data)
        elif tag & 0x10000 and 0x10 <= tag & 0xFFFF <= 0xFF:
            scope.creators[tag] = _single(value)
        return end

    @staticmethod
    def _value(tag: int, vr: str, data: bytes, scope: Scope, out: Metadata) -> tuple[str, Any]:
        if vr == "UN":
            return inline_binary(tag, vr, data)
        if vr == "OB or OW":
            if not tag_key(tag)[1]:
                raise _NotHandled  # tag-keyed: the VR pydicom settles on is stored
            return inline_binary(tag, "OB", data)
        if vr == "US or SS":
            vr = _pixel_vr(tag, out)
        return decode_value(tag, vr, data, True, scope.codec)

    def _bulk(self, out: Metadata, tag: int, vr: str, length: int, tell: int) -> None:
        raw = RawElement(tag, vr, length, None, tell, self.implicit, True)
        ref = {"BulkDataURI": self.bulk(raw)}
        key, is_keyword = tag_key(tag, vr)
        out[key] = ref if is_keyword else {"vr": vr, **ref}

    def _undefined(self, out: Metadata, scope: Scope, tag: int, vr: str | None, at: int,
                   limit: int, origin: int, depth: int) -> int:  # fmt: skip
        """An element of undefined length: a sequence, or a value read up to its delimiter."""
        bulk_vr = vr or _bulk_vr(tag)
        if vr is None:
            try:
                vr = dictionary_VR(tag)
            except KeyError:  # pydicom looks for an item: a sequence, else a value
                if at + 4 > len(self.data) and not self.whole:
                    raise _Short from None
                vr = "SQ" if self.data[at : at + 4] == _ITEM_BYTES else None
        elif vr == "UN":
            raise _NotHandled  # pydicom reads it as a sequence, in implicit VR
        if vr == "SQ":
            if tag < scope.floor:
                raise _NotHandled
            items, end = self.items(at, None, limit, origin, scope.codec, depth)
            key, is_keyword = tag_key(tag, "SQ")
            out[key] = items if is_keyword else tagged_value("SQ", items)
            return end
        if bulk_vr not in BINARY_VRS:
            raise _NotHandled
        end = self.encapsulated(at, limit)
        self._bulk(out, tag, bulk_vr, UNDEFINED, self.base + at - origin)
        return end

    def items(self, pos: int, end: int | None, limit: int, origin: int, codec: str,
              depth: int) -> tuple[list[Metadata], int]:  # fmt: skip
        """A sequence's items from pos to ``end``, or to its delimiter if ``end`` is None."""
        if depth >= MAX_SEQUENCE_DEPTH:
            raise _NotHandled  # refused, or too deep for pydicom: its message is the one given
        items: list[Metadata] = []
        stop = limit if end is None else end
        while end is None or pos < end:
            if pos + 8 > len(self.data) and not self.whole:
                raise _Short
            if pos + 8 > stop:
                raise _NotHandled
            group, elem, length = _IMPLICIT.unpack_from(self.data, pos)
            tag, pos = group << 16 | elem, pos + 8
            if tag == _SEQUENCE_END and end is None:
                return items, pos
            if tag != _ITEM:
                raise _NotHandled
            item: Metadata = {}
            if length == UNDEFINED:
                pos = self.elements(item, Scope(codec), pos, stop, origin, depth + 1, True)
            elif pos + length <= stop:
                pos = self.elements(item, Scope(codec), pos, pos + length, origin, depth + 1)
            else:
                raise _NotHandled
            items.append(item)
        if pos != end:
            raise _NotHandled
        return items, pos

    def encapsulated(self, pos: int, limit: int) -> int:
        """The end of a value of undefined length, walked as pydicom walks encapsulated pixel
        data (fragment headers only; the fragments are not read)."""
        while True:
            if pos + 8 > limit:
                raise _NotHandled  # pydicom would scan the bytes for a delimiter
            head = self._peek(pos, 8)
            if head[:4] == _SEQUENCE_END_BYTES:
                return pos + 8
            if head[:4] != _ITEM_BYTES:
                raise _NotHandled
            pos += 8 + _LENGTH.unpack_from(head, 4)[0]

    def _peek(self, pos: int, size: int) -> bytes:
        if pos + size <= len(self.data):
            return self.data[pos : pos + size]
        return os.pread(self.fd, size, self.base + pos)


def _resolved_vr(tag: int, vr: str | None, scope: Scope) -> str:
    """The VR pydicom gives an implicit-VR or UN element (``hooks.raw_element_vr``)."""
    if tag & 0x10000:  # private
        return _private_vr(tag, scope.creators)
    try:
        return _dictionary_vr(tag)
    except KeyError:
        if vr is None and tag & 0xFFFF == 0:
            return "UL"  # group length
        return "UN"


def _private_vr(tag: int, creators: dict[int, Any]) -> str:
    element = tag & 0xFFFF
    if 0x10 <= element <= 0xFF:
        return "LO"  # a private creator
    creator = creators.get((tag & 0xFFFF0000) | element >> 8) if element > 0xFF else None
    if not isinstance(creator, str):
        return "UN"
    try:
        return _private_dictionary_vr(tag, creator)
    except KeyError:
        return "UN"


def _single(tagged: Any) -> Any:
    """The one value of a tag-keyed element (a private creator), else None or the list."""
    values = tagged.get("Value") if isinstance(tagged, dict) else None
    return values[0] if values and len(values) == 1 else values


def _pixel_vr(tag: int, out: Metadata) -> str:
    """US or SS, as pydicom corrects an ambiguous element by the PixelRepresentation of its
    data set (read before it); _NotHandled when pydicom would look further."""
    pixel_representation = out.get("PixelRepresentation")
    if tag not in AMBIGUOUS_US_SS_TAGS or tag < _PIXEL_REPRESENTATION:
        raise _NotHandled
    if type(pixel_representation) is not int:
        raise _NotHandled
    if pixel_representation == 0:
        return "US"
    if tag in LUT_DESCRIPTOR_TAGS:
        raise _NotHandled  # corrected to SS after the LUT fix (which :mod:`.decode` applies)
    return "SS"


@lru_cache(maxsize=4096)
def _dictionary_vr(tag: int) -> str:
    return str(dictionary_VR(tag))


@lru_cache(maxsize=4096)
def _bulk_vr(tag: int) -> str:
    return dictionary_vr(tag)


@lru_cache(maxsize=1024)
def _private_dictionary_vr(tag: int, creator: str) -> str:
    return str(private_dictionary_VR(tag, creator))


PLAIN_CHARSETS = {"": "latin-1", "ISO_IR 6": "latin-1", "ISO_IR 100": "latin-1",
                  "ISO 2022 IR 6": "latin-1", "ISO 2022 IR 100": "latin-1",
                  "ISO_IR 192": "utf-8"}  # fmt: skip
"""The common (0008,0005) values and the codec of :func:`_charset_codec` for each (what
``tests/test_dictionary.py`` finds pydicom makes of them)."""


@lru_cache(maxsize=64)
def _charset_codec(data: bytes) -> str:
    """The codec of text after a (0008,0005) element holding ``data``, as pydicom finds it."""
    codec = PLAIN_CHARSETS.get(data.decode("latin-1").rstrip(" \x00"))  # as convert_string
    if codec is not None:
        return codec
    from pydicom.charset import convert_encodings  # other values: pydicom's rules
    from pydicom.values import convert_string

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unknown character sets: left to pydicom, warning
        return codec_of(convert_encodings(convert_string(data, True)))
