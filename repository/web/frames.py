"""Frames of a stored instance: in its stored transfer syntax, or decoded to explicit VR little
endian where pydicom can decode it.

Native (uncompressed) pixel data is cut into frames by size; encapsulated pixel data is split
into frames by pydicom (basic or extended offset table, or one fragment per frame).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames, get_frame
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.utils import pixel_array
from pydicom.uid import UID

from .errors import WebError, bad_request, not_acceptable, not_found
from .negotiation import EXPLICIT_VR_LITTLE_ENDIAN
from .numbers import parse_int


def frame_numbers(text: str, available: int) -> list[int]:
    """``"1,3,5"`` as frame numbers, each checked against the instance's frame count.

    A list may name at most as many frames as the instance has (repeats included): a URL of a
    few kilobytes must not ask for an answer hundreds of times the size of the instance.
    """
    parts = text.split(",")
    if len(parts) > available:
        raise bad_request(
            f"the frame list names {len(parts)} frames; the instance has {available} "
            "(ask for each frame at most once)"
        )
    numbers = [parse_int(f"frame list {text[:80]!r}: frame", part, minimum=1) for part in parts]
    for number in numbers:
        if number > available:
            raise not_found(f"frame {number} does not exist (the instance has {available})")
    return numbers


def stored_syntax(ds: Dataset) -> str:
    """The transfer syntax the file's pixel data is stored in."""
    meta = getattr(ds, "file_meta", None)
    uid = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    return str(uid or "1.2.840.10008.1.2")


UNDEFINED_LENGTH = 0xFFFFFFFF
DEFLATED = "1.2.840.10008.1.2.1.99"
_PIXEL_DATA_LE = b"\xe0\x7f\x10\x00"  # (7FE0,0010) in little endian
_ITEM = b"\xfe\xff\x00\xe0"  # (FFFE,E000)
_SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0"  # (FFFE,E0DD)
_LONG_VRS = (b"OB", b"OW", b"UN", b"OV", b"OL", b"OD", b"OF")


@dataclass(frozen=True)
class PixelValue:
    """Where an instance's Pixel Data value lies in its file, found without reading it."""

    ds: Dataset
    """The instance's attributes before its pixel data (pixel data not read)."""
    offset: int
    """Of the value's first byte (encapsulated: the Basic Offset Table item)."""
    length: int | None
    """The value's length; None for encapsulated pixel data (undefined length)."""


def locate(path: Path) -> PixelValue | None:
    """Pixel Data's place in a little-endian file, else None (no pixel data, big endian or
    deflated: the caller reads the whole dataset)."""
    with path.open("rb") as handle:
        ds = pydicom.dcmread(handle, stop_before_pixels=True, force=True)
        at = handle.tell()
        header = handle.read(12)
    if len(header) < 12 or header[:4] != _PIXEL_DATA_LE or stored_syntax(ds) == DEFLATED:
        return None
    explicit = header[4:6] in _LONG_VRS
    length = int.from_bytes(header[8:12] if explicit else header[4:8], "little")
    offset = at + (12 if explicit else 8)
    return PixelValue(ds, offset, None if length == UNDEFINED_LENGTH else length)


def pixel_data_span(path: Path) -> tuple[int, int] | None:
    """(offset, length) of the Pixel Data value in the file, for an encapsulated value too (its
    items up to the sequence delimiter, as pydicom reads the value); None where
    :func:`locate` finds none."""
    pixels = locate(path)
    if pixels is None:
        return None
    if pixels.length is not None:
        return pixels.offset, pixels.length
    with path.open("rb") as handle:
        handle.seek(pixels.offset)
        while len(header := handle.read(8)) == 8:
            tag, length = header[:4], int.from_bytes(header[4:], "little")
            if tag == _SEQUENCE_DELIMITER:
                return pixels.offset, handle.tell() - 8 - pixels.offset
            if tag != _ITEM or length == UNDEFINED_LENGTH:
                break
            handle.seek(length, os.SEEK_CUR)
    raise WebError(422, f"{path.name}: the encapsulated pixel data has no end")


def frames_from_file(
    path: Path, pixels: PixelValue, numbers: Sequence[int], count: int
) -> Iterator[bytes]:
    """The requested frames as stored, each read from its place in the file (a frame of a
    large multi-frame instance costs the frame, not the instance)."""
    with path.open("rb") as handle:
        if pixels.length is None:
            eot = _extended_offsets(pixels.ds)
            for number in numbers:
                handle.seek(pixels.offset)
                yield get_frame(handle, number - 1, number_of_frames=count, extended_offsets=eot)
            return
        size = _native_frame_size(pixels.ds)
        for number in numbers:
            if number * size > pixels.length:
                raise WebError(422, f"{path.name}: frame {number} lies past the pixel data")
            handle.seek(pixels.offset + (number - 1) * size)
            yield handle.read(size)


def _extended_offsets(ds: Dataset) -> tuple[bytes, bytes] | None:
    if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
        return bytes(ds.ExtendedOffsetTable), bytes(ds.ExtendedOffsetTableLengths)
    return None


def read(path: Path) -> Dataset:
    """The dataset of the instance's file, pixel data included."""
    ds = pydicom.dcmread(path, force=True)
    if "PixelData" not in ds:
        raise not_found(f"{ds.get('SOPInstanceUID', path.name)} has no pixel data")
    return ds


def _native_frame_size(ds: Dataset) -> int:
    bits = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1))
    bits *= int(ds.BitsAllocated)
    if ds.get("PhotometricInterpretation") == "YBR_FULL_422":  # two chroma values per two pixels
        bits = bits * 2 // 3
    if bits % 8:
        raise not_acceptable("frames of 1-bit pixel data that are not byte-aligned are not served")
    return bits // 8


MAX_DECODED_FRAME = 1 << 28
"""The most bytes one frame may decode to here (256 MiB: 8192 x 8192 x 32 bits)."""


def check_decoded_size(ds: Dataset, name: str) -> None:
    """422 for a frame that would decode to more than :data:`MAX_DECODED_FRAME` bytes, before
    any decoder allocates it: a few hundred bytes of RLE or JPEG may declare 65535 x 65535."""
    try:
        shape = [int(ds.get(k) or 1) for k in ("Rows", "Columns", "SamplesPerPixel")]
        bits = max(int(ds.get("BitsAllocated") or 8), 8)
    except (TypeError, ValueError):  # left to the decoder, which says what is wrong
        return
    size = shape[0] * shape[1] * shape[2] * bits // 8
    if size > MAX_DECODED_FRAME:
        raise WebError(422, f"{name}: a frame of {shape[0]} x {shape[1]} x {shape[2]} samples of "
                            f"{bits} bits ({size} bytes) is more than the {MAX_DECODED_FRAME} "
                            "bytes a frame is decoded to here")  # fmt: skip


def stored_frames(ds: Dataset, numbers: Sequence[int], count: int) -> Iterator[bytes]:
    """The requested frames as stored (compressed frames stay compressed)."""
    syntax = UID(stored_syntax(ds))
    if syntax.is_encapsulated:
        frames = list(generate_frames(ds.PixelData, number_of_frames=count))
        for number in numbers:
            yield frames[number - 1]
        return
    size = _native_frame_size(ds)
    data = ds.PixelData
    for number in numbers:
        yield data[(number - 1) * size : number * size]


def decoded_from_file(path: Path, syntax: str, numbers: Sequence[int]) -> list[bytes] | None:
    """The requested frames of a compressed file decoded to native pixel data, each read and
    decoded alone (pydicom's ``pixel_array`` of a path); None where that fails (pixel data
    pydicom reads only as a whole dataset) or no decoder is here."""
    if not get_decoder(UID(syntax)).is_available:
        return None
    try:
        arrays = [pixel_array(str(path), index=number - 1, raw=True) for number in numbers]
    except Exception:  # the whole dataset is read instead, which reports what is wrong
        return None
    return [array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes() for array in arrays]


def decoded_frames(ds: Dataset, numbers: Sequence[int], count: int) -> Iterator[bytes]:
    """The requested frames decoded to native pixel data (explicit VR little endian)."""
    syntax = UID(stored_syntax(ds))
    if not syntax.is_compressed:
        yield from stored_frames(ds, numbers, count)
        return
    check_decoded_size(ds, str(ds.get("SOPInstanceUID", "the instance")))
    decoder = get_decoder(syntax)
    if not decoder.is_available:
        raise not_acceptable(
            f"cannot decode {syntax.name} ({syntax}) to {EXPLICIT_VR_LITTLE_ENDIAN} here "
            "(no pydicom decoder plugin); ask for transfer-syntax=* to get the stored frames"
        )
    for number in numbers:
        array, _ = decoder.as_array(ds, index=number - 1, raw=True)
        yield array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
