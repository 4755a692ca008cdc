"""DICOM files straight from their bytes to the stored form, without ``pydicom.dcmread``.

:func:`read_metadata` gives what the pydicom path stores for a file (``dcmread(path,
defer_size=BULK_DATA_THRESHOLD)``, then :func:`.dataset.naturalize_dataset` with
:func:`.dataset.file_bulk_uri`), for the common case: a 128-byte preamble, ``DICM``, the file
meta group in explicit VR little endian, then a data set in explicit or implicit VR little
endian (encapsulated transfer syntaxes included). Elements are parsed by :mod:`.parse` and
decoded by :mod:`.decode`; values longer than the bulk data threshold are not read, only
skipped (a value of undefined length, encapsulated pixel data, is walked fragment header by
fragment header, as pydicom walks it), so the pixel data of a large file is never read.

Anything else (no preamble, big endian, deflate, a private transfer syntax, other character
sets, anything malformed or truncated, anything :mod:`.parse` does not handle) gives None: the
caller reads that file with pydicom, which stores or refuses it as it always has, so the stored
form and the errors are the same by construction (``tests/test_normalize_fast.py``).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .decode import _NotHandled
from .dictionary import (
    DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
    EXPLICIT_VR_BIG_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
    private_transfer_syntaxes,
)
from .parse import Parser, Scope, _Short
from .values import BINARY_VRS, BulkDataURI, Metadata

HEAD = 64 * 1024
"""Bytes read at first (the whole of most files); more are read only if the metadata is longer."""
_PREAMBLE = 128
_LATIN_1 = "latin-1"  # pydicom's default character set (ISO-IR 6 read as ISO 8859-1)
_LEFT_TO_PYDICOM = frozenset({EXPLICIT_VR_BIG_ENDIAN, DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN})


def read_metadata(path: str | Path, bulk: BulkDataURI) -> Metadata | None:
    """The stored form of the DICOM file at ``path`` (file meta included), BulkDataURIs made
    by ``bulk``; None when the file is one to leave to pydicom."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a named pipe must not block
    except (OSError, ValueError):
        return None
    try:
        return read_open(fd, bulk)
    except Exception:  # _NotHandled, or anything unforeseen: pydicom reads it, and decides
        return None
    finally:
        os.close(fd)


def read_open(fd: int, bulk: BulkDataURI) -> Metadata:
    """:func:`read_metadata` of an open file; raises (_NotHandled...) when pydicom must read it."""
    status = os.fstat(fd)
    if not stat.S_ISREG(status.st_mode):
        raise _NotHandled
    size = status.st_size
    data = os.pread(fd, min(size, HEAD), 0)
    if len(data) < min(size, HEAD) or data[_PREAMBLE : _PREAMBLE + 4] != b"DICM":
        raise _NotHandled  # no preamble: pydicom reads it as a bare data set
    parser = Parser(fd, data, 0, size, bulk)
    out: Metadata = {}
    pos = _file_meta(parser, out, _PREAMBLE + 4)
    parser.implicit = _is_implicit(out)
    if parser.implicit and (pos + 6 > len(data) or _looks_explicit(data, pos)):
        raise _NotHandled  # pydicom would read it in explicit VR
    _data_set(parser, out, pos, size)
    return out


def _file_meta(parser: Parser, out: Metadata, pos: int) -> int:
    """Read the (0002,eeee) elements into ``out``; the position of the data set."""
    scope = Scope(_LATIN_1, floor=0)
    data = parser.data
    try:
        while data[pos : pos + 2] == b"\x02\x00":  # group 2 (the data set may be implicit VR)
            tag, vr, length, at = parser.header(pos, len(data))
            if not out and vr in BINARY_VRS:
                raise _NotHandled  # pydicom has decoded the first element: stored differently
            pos = parser.element(out, scope, tag, vr, length, at, len(data), 0, 0)
            scope.last = tag
    except _Short:
        raise _NotHandled from None  # a file meta group longer than HEAD
    if not out or pos + 8 > len(data):
        raise _NotHandled  # no file meta, or no data set (or none in the bytes read)
    return pos


def _is_implicit(meta: Metadata) -> bool:
    """Whether the data set is in implicit VR, as pydicom decides from the transfer syntax."""
    syntax = meta.get("TransferSyntaxUID")
    if not isinstance(syntax, str) or syntax in _LEFT_TO_PYDICOM:
        raise _NotHandled  # none (pydicom guesses), several, or not little endian
    if syntax in private_transfer_syntaxes():
        raise _NotHandled  # registered with pydicom, which reads it as registered
    return syntax == IMPLICIT_VR_LITTLE_ENDIAN  # any other: explicit VR little endian


def _looks_explicit(data: bytes, pos: int) -> bool:
    """pydicom's test of the first element: two capital letters where an explicit VR would be."""
    vr = data[pos + 4 : pos + 6]
    return len(vr) == 2 and all(0x40 < byte < 0x5B for byte in vr)


def _data_set(parser: Parser, out: Metadata, pos: int, size: int) -> None:
    """Read the data set's elements from file position ``pos`` to the end of the file."""
    scope = Scope(_LATIN_1)
    while True:
        try:
            parser.elements(out, scope, pos - parser.base, size - parser.base, 0, 0)
            return
        except _Short:
            if parser.whole:
                raise _NotHandled from None  # cannot happen: a value past the end is refused
            pos = parser.base + parser.mark
            _read_more(parser, pos, size)


def _read_more(parser: Parser, pos: int, size: int) -> None:
    """Hold the file from ``pos`` in ``parser``: twice as much as it held from there."""
    held = parser.base + len(parser.data) - pos
    count = min(size - pos, max(HEAD, 2 * held))
    data = os.pread(parser.fd, count, pos)
    if len(data) < count:
        raise _NotHandled  # the file shrank under us
    parser.data, parser.base = data, pos
    parser.whole = pos + count >= size
