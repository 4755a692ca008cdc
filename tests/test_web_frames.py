"""WADO-RS frames are read from their place in the file: a frame of a large multi-frame instance
costs about the frame in memory, not the instance (native, and encapsulated with a Basic Offset
Table, an Extended Offset Table or neither); each frame is the one pydicom cuts from the whole
dataset."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_factory import secondary_capture, write
from pydicom import uid
from pydicom.encaps import encapsulate, encapsulate_extended
from pydicom.uid import generate_uid

from repository.web import frames
from repository.web.errors import WebError
from repository.web.files import BulkLocation
from repository.web.retrieve import FILE_CHUNK, PIXEL_DATA, FileRegion, _bulk_value, _cut

FRAMES, SIDE = 48, 256
"""48 frames of 256 x 256 bytes (3 MB of pixel data; a frame is 64 KB)."""


def _instance(tmp_path: Path, kind: str, count: int = FRAMES) -> tuple[Path, list[bytes]]:
    """A multi-frame instance stored ``kind`` ("native", "bot", "eot", "none"), and its frames."""
    ds = secondary_capture(generate_uid(), 1, frames=count)
    ds.Rows = ds.Columns = SIDE
    wanted = [os.urandom(SIDE * SIDE) for _ in range(count)]
    if kind == "native":
        ds.PixelData = b"".join(wanted)
    else:  # stored as JPEG baseline: frames as stored are the fragments' bytes, never decoded
        ds.file_meta.TransferSyntaxUID = uid.JPEGBaseline8Bit
        if kind == "eot":
            ds.PixelData, ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths = (
                encapsulate_extended(wanted)
            )
        else:
            ds.PixelData = encapsulate(wanted, has_bot=kind == "bot")
        ds["PixelData"].VR = "OB"
    return write(ds, tmp_path), wanted


@pytest.mark.parametrize("kind", ["native", "bot", "eot", "none"])
def test_a_frame_costs_the_frame_not_the_instance(tmp_path: Path, kind: str) -> None:
    path, wanted = _instance(tmp_path, kind)
    syntax = frames.stored_syntax(pydicom.dcmread(path, stop_before_pixels=True))
    tracemalloc.start()
    try:
        got = list(_cut(path, [40, 2], FRAMES, syntax))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got == [wanted[39], wanted[1]]
    assert peak < 12 * SIDE * SIDE  # the two frames and some; reading the whole is 48 frames


def test_every_frame_equals_pydicoms_cut_of_the_whole_dataset(tmp_path: Path) -> None:
    for kind in ("native", "bot", "eot", "none"):
        path, _ = _instance(tmp_path / kind, kind)
        whole = frames.read(path)
        numbers = list(range(1, FRAMES + 1))
        syntax = frames.stored_syntax(whole)
        assert list(_cut(path, numbers, FRAMES, syntax)) == list(
            frames.stored_frames(whole, numbers, FRAMES)
        ), kind


def test_a_frame_past_the_stored_pixel_data_is_422_naming_the_file(tmp_path: Path) -> None:
    ds = secondary_capture(generate_uid(), 1, frames=4)
    ds.PixelData = bytes(3 * 16)  # 4 frames announced, 3 stored
    path = write(ds, tmp_path)
    with pytest.raises(WebError) as raised:
        list(_cut(path, [4], 4, str(ds.file_meta.TransferSyntaxUID)))
    assert raised.value.status_code == 422 and path.name in raised.value.detail


def test_a_compressed_frame_asked_decoded_is_decoded_alone(tmp_path: Path) -> None:
    ds = secondary_capture(generate_uid(), 1, frames=FRAMES)
    ds.Rows = ds.Columns = SIDE
    pixels = np.frombuffer(os.urandom(FRAMES * SIDE * SIDE), np.uint8).reshape(FRAMES, SIDE, SIDE)
    ds.compress(uid.RLELossless, pixels)
    path = write(ds, tmp_path)
    tracemalloc.start()
    try:
        got = list(_cut(path, [40, 2], FRAMES, uid.ExplicitVRLittleEndian))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got == [pixels[39].tobytes(), pixels[1].tobytes()]
    whole = frames.read(path)
    assert got == list(frames.decoded_frames(whole, [40, 2], FRAMES))
    assert peak < 12 * SIDE * SIDE  # decoding the whole dataset holds 48 frames twice over


@pytest.mark.parametrize("kind", ["native", "bot", "none"])
def test_the_pixel_data_bulk_value_is_sent_from_its_place_in_the_file(
    tmp_path: Path, kind: str
) -> None:
    path, _ = _instance(tmp_path, kind, count=160)  # 10 MB
    expected = frames.read(path).PixelData
    # only the tag known (as for an encapsulated value; a native one is recorded with offset
    # and length at ingest)
    location = BulkLocation(path, None, None, PIXEL_DATA)
    tracemalloc.start()
    try:
        value = _bulk_value(location)
        assert isinstance(value, FileRegion)
        size = sum(len(chunk) for chunk in value.chunks())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    again = FileRegion(value.path, value.offset, value.length)  # the first one is read
    assert size == len(expected) and b"".join(again.chunks()) == expected
    assert peak < 3 * FILE_CHUNK < len(expected) // 3  # a chunk at a time, never the whole
