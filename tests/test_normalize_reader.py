"""The reader (a file's bytes straight to the stored form) on hand-encoded files.

Each file is built here, byte by byte, in explicit and in implicit VR little endian, with the
shapes the reader must get right: sequences and items of defined and undefined length, empty
ones, nested ones, a sequence of defined length longer than the defer size (pydicom reads it
again, and counts the offsets of its large values from the sequence's first byte), private
elements found in pydicom's private dictionary or not, a UN element of a known tag, group
lengths, US-or-SS elements (a LUT descriptor among them), encapsulated pixel data, metadata
longer than the reader's first read. Every file must be taken by the reader and stored as the
pydicom path stores it; cut at any point, it must be refused with the pydicom path's message;
mutated at random, it must get the pydicom path's outcome, whichever way it is read.
"""

from __future__ import annotations

import os
import random
import struct
from pathlib import Path

import pydicom
import pytest
from test_normalize_fast import _outcome, assert_same_outcomes

from repository.normalize import file_bulk_uri
from repository.normalize.reader import HEAD, read_metadata
from repository.reading import read_file

UNDEFINED = 0xFFFFFFFF
EXPLICIT, IMPLICIT = "1.2.840.10008.1.2.1", "1.2.840.10008.1.2"
_LONG_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT", "SV", "UV"}


def element(tag: int, vr: str, value: bytes, implicit: bool, length: int | None = None) -> bytes:
    length = len(value) if length is None else length
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF)
    if implicit:
        return head + struct.pack("<L", length) + value
    if vr in _LONG_VRS:
        return head + vr.encode() + struct.pack("<HL", 0, length) + value
    return head + vr.encode() + struct.pack("<H", length) + value


def item(body: bytes, defined: bool = True) -> bytes:
    if defined:
        return struct.pack("<HHL", 0xFFFE, 0xE000, len(body)) + body
    end = struct.pack("<HHL", 0xFFFE, 0xE00D, 0)
    return struct.pack("<HHL", 0xFFFE, 0xE000, UNDEFINED) + body + end


def sequence(tag: int, items: list[bytes], implicit: bool, defined: bool = True) -> bytes:
    body = b"".join(items)
    if defined:
        return element(tag, "SQ", body, implicit)
    end = struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
    return element(tag, "SQ", b"", implicit, UNDEFINED) + body + end


def dataset(elements: list[tuple[int, bytes]]) -> bytes:
    return b"".join(encoded for _, encoded in sorted(elements))


def dicom_file(path: Path, body: bytes, syntax: str) -> Path:
    meta = b"".join(element(t, vr, v, False) for t, vr, v in [
        (0x00020001, "OB", b"\x00\x01"),
        (0x00020002, "UI", b"1.2.840.10008.5.1.4.1.1.7\x00"),
        (0x00020003, "UI", b"1.2.3.4.3\x00"),
        (0x00020010, "UI", syntax.encode() + b"\x00" * (len(syntax) % 2)),
    ])  # fmt: skip
    length = element(0x00020000, "UL", struct.pack("<L", len(meta)), False)
    path.write_bytes(b"\x00" * 128 + b"DICM" + length + meta + body)
    return path


def _referenced_images(imp: bool) -> bytes:
    """A defined-length sequence: a defined and an undefined item, a large value in the second."""
    first = dataset([(0x00081150, element(0x00081150, "UI", b"1.2.840.10008.5.1.4.1.1.2\x00", imp)),
                     (0x00081155, element(0x00081155, "UI", b"1.2.3.9\x00", imp))])  # fmt: skip
    second = dataset([
        (0x00081150, element(0x00081150, "UI", b"1.2.3\x00", imp)),
        (0x00280103, element(0x00280103, "US", b"\x01\x00", imp)),
        (0x00280106, element(0x00280106, "SS", b"\xfe\xff", imp)),  # US or SS: SS in implicit
        (0x00420011, element(0x00420011, "OB", bytes(range(256)) * 8, imp)),  # bulk
    ])  # fmt: skip
    return sequence(0x00081140, [item(first), item(second, defined=False)], imp)


def _referenced_series(imp: bool) -> bytes:
    """An undefined-length sequence holding a defined-length one, private elements (known to
    pydicom's private dictionary and not), an empty binary value and a private sequence."""
    inner = dataset([
        (0x00081150, element(0x00081150, "UI", b"1.2.3\x00", imp)),
        (0x00090010, element(0x00090010, "LO", b"GEMS_IDEN_01", imp)),
        (0x00091001, element(0x00091001, "LO", b"FF", imp)),
        (0x00091002, element(0x00091002, "SH", b"SUITE ", imp)),
        (0x00110010, element(0x00110010, "LO", b"ACME 1.0", imp)),
        (0x00111001, element(0x00111001, "UN", b"\x01\x02\x03\x04", imp)),
        (0x00111002, sequence(0x00111002, [item(element(0x00080100, "SH", b"X ", imp), False)],
                              imp, defined=False)),
        (0x00420011, element(0x00420011, "OB", b"", imp)),  # empty binary: a BulkDataURI
    ])  # fmt: skip
    nested = sequence(0x00081140, [item(inner)], imp)
    return sequence(0x00081115, [item(nested, defined=False)], imp, defined=False)


def _requests(imp: bool) -> bytes:
    """A defined-length sequence longer than the defer size, a large value in its second item."""
    first = element(0x00400007, "LO", b"Step " * 300, imp)
    second = dataset([(0x00400007, element(0x00400007, "LO", b"Two ", imp)),
                      (0x00420011, element(0x00420011, "OB", b"\x07" * 1500, imp))])  # fmt: skip
    return sequence(0x00400275, [item(first), item(second, defined=False)], imp)


def _pixel_data(imp: bool) -> bytes:
    if imp:  # native pixel data
        return element(0x7FE00010, "OW", b"\x01\x02" * 2048, imp)
    fragments = item(b"") + item(b"\xff" * 100) + item(b"\x11" * 3000)
    end = struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
    return element(0x7FE00010, "OB", b"", imp, UNDEFINED) + fragments + end


def structures(imp: bool, extra: list[tuple[int, bytes]] = ()) -> bytes:  # type: ignore[assignment]
    """The hand-encoded data set (``imp``: implicit VR)."""
    e = element
    return dataset([
        (0x00080000, e(0x00080000, "UL", b"\x00\x00\x00\x00", imp)),  # a group length
        (0x00080005, e(0x00080005, "CS", b"ISO_IR 192", imp)),
        (0x00080016, e(0x00080016, "UI", b"1.2.840.10008.5.1.4.1.1.7\x00", imp)),
        (0x00080018, e(0x00080018, "UI", b"1.2.3.4.3\x00", imp)),
        (0x00080070, e(0x00080070, "UN", b"ACME", imp)),  # UN of a known tag: read as LO
        (0x00081115, _referenced_series(imp)),
        (0x00081140, _referenced_images(imp)),
        (0x00081250, sequence(0x00081250, [item(b""), item(b"", defined=False)], imp)),
        (0x00082112, sequence(0x00082112, [], imp)),
        (0x00100010, e(0x00100010, "PN", "Müller^Jörg=ミュラー".encode(), imp)),
        (0x00104000, e(0x00104000, "LT", b"A long comment. " * 100, imp)),  # deferred text
        (0x00180000, e(0x00180000, "UL", b"\x10\x00\x00\x00", imp)),
        (0x0020000D, e(0x0020000D, "UI", b"1.2.3.4.1\x00", imp)),
        (0x0020000E, e(0x0020000E, "UI", b"1.2.3.4.2\x00", imp)),
        (0x00280103, e(0x00280103, "US", b"\x00\x00", imp)),
        (0x00280106, e(0x00280106, "US", b"\xfe\xff", imp)),  # US or SS: US in implicit
        (0x00281101, e(0x00281101, "SS", b"\x00\x80\x00\x00\x10\x00", imp)),  # + 65536 if SS
        (0x00290010, e(0x00290010, "LO", b"SIEMENS CSA HEADER", imp)),
        (0x00291010, e(0x00291010, "OB", b"CSA1" * 10, imp)),  # OB in the private dictionary
        (0x00291020, e(0x00291020, "OB", b"CSA2" * 750, imp)),  # a private bulk value
        (0x00400275, _requests(imp)),
        (0x7FE00010, _pixel_data(imp)),
        (0xFFFCFFFC, e(0xFFFCFFFC, "OB", b"\x00" * 2000, imp)),  # trailing padding
        *extra,
    ])  # fmt: skip


@pytest.mark.parametrize("syntax", [EXPLICIT, IMPLICIT], ids=["explicit", "implicit"])
def test_the_reader_stores_what_pydicom_stores_for_each_structure(
    tmp_path: Path, syntax: str
) -> None:
    path = dicom_file(tmp_path / "structures.dcm", structures(syntax == IMPLICIT), syntax)
    assert _outcome(path, "pydicom")[0] == "ok"
    assert_same_outcomes(path)
    md = read_metadata(path, file_bulk_uri(path))
    assert md is not None  # taken by the reader, not left to pydicom
    uri = path.resolve().as_uri()
    # offsets count from the start of the enclosing defined-length sequence, as pydicom counts
    document = md["ReferencedImageSequence"][1]["EncapsulatedDocument"]["BulkDataURI"]
    assert document.startswith(f"{uri}?offset=") and int(document.split("=")[1][:-7]) < 400
    if syntax == EXPLICIT:
        assert md["PixelData"] == {"BulkDataURI": f"{uri}?tag=7FE00010"}


@pytest.mark.parametrize("syntax", [EXPLICIT, IMPLICIT], ids=["explicit", "implicit"])
def test_metadata_longer_than_the_first_read_is_read_on(tmp_path: Path, syntax: str) -> None:
    imp = syntax == IMPLICIT
    items = [item(element(0x00081155, "UI", f"1.2.3.{n}".encode().ljust(12, b"\0"), imp))
             for n in range(HEAD // 20)]  # fmt: skip
    many = [(0x00081199, sequence(0x00081199, items, imp, defined=False)),
            (0x00089121, sequence(0x00089121, items, imp))]  # fmt: skip
    path = dicom_file(tmp_path / "long.dcm", structures(imp, many), syntax)
    assert path.stat().st_size > 3 * HEAD
    assert_same_outcomes(path)
    md = read_metadata(path, file_bulk_uri(path))
    assert md is not None and len(md["ReferencedSOPSequence"]) == HEAD // 20


@pytest.mark.parametrize("syntax", [EXPLICIT, IMPLICIT], ids=["explicit", "implicit"])
def test_a_cut_file_is_refused_as_the_pydicom_path_refuses_it(tmp_path: Path, syntax: str) -> None:
    whole = dicom_file(tmp_path / "whole.dcm", structures(syntax == IMPLICIT), syntax).read_bytes()
    path = tmp_path / "cut.dcm"
    cuts = sorted({*range(140, 1200, 37), *range(1200, len(whole), 251), len(whole) - 3})
    refused = 0
    for cut in cuts:
        path.write_bytes(whole[:cut])
        slow, reader = _outcome(path, "pydicom"), _outcome(path, "reader")
        assert reader == slow, (cut, slow, reader)
        refused += slow[0] == "error"
    assert refused == len(cuts)


def test_the_reader_reads_no_pixel_data(monkeypatch: pytest.MonkeyPatch) -> None:
    import data_store  # pydicom-data, a test dependency

    path = Path(data_store.__file__).parent / "data" / "eCT_Supplemental.dcm"
    read: list[int] = []
    pread = os.pread

    def counting(fd: int, count: int, offset: int) -> bytes:
        read.append(count)
        return pread(fd, count, offset)

    monkeypatch.setattr(os, "pread", counting)
    inst = read_file(path)
    assert inst.metadata["PixelData"]["BulkDataURI"].endswith("&length=1048576")
    assert sum(read) <= HEAD < path.stat().st_size / 10


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2.4.50", IMPLICIT], ids=["jpeg", "implicit"])
def test_encapsulated_fragments_are_walked_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, syntax: str
) -> None:
    imp = syntax == IMPLICIT
    fragments = [item(b"")] + [item(bytes([n]) * 300_000) for n in range(4)]
    end = struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
    pixels = element(0x7FE00010, "OB", b"", imp, UNDEFINED) + b"".join(fragments) + end
    body = structures(imp).replace(_pixel_data(imp), pixels)
    path = dicom_file(tmp_path / "encapsulated.dcm", body, syntax)
    assert_same_outcomes(path)
    read: list[int] = []
    pread = os.pread
    monkeypatch.setattr(os, "pread", lambda *a: read.append(a[1]) or pread(*a))
    assert read_metadata(path, file_bulk_uri(path)) is not None
    assert sum(read) < path.stat().st_size / 10  # the first read and a few fragment headers


def test_pydicom_files_taken_by_the_reader() -> None:
    folder = Path(pydicom.__file__).parent / "data" / "test_files"
    for name in ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "JPEG2000.dcm"):
        assert read_metadata(folder / name, file_bulk_uri(folder / name)) is not None, name


def test_a_value_cut_short_by_its_sequence_is_stored_as_pydicom_stores_it(tmp_path: Path) -> None:
    # pydicom reads the items of a defined-length sequence from the sequence's bytes: a value
    # whose length runs past them is read short, and stored by its declared length (a
    # BulkDataURI here), not by the bytes read; the reader leaves such a file to that path.
    inner = element(0x00081150, "UI", b"1.2.3\x00", False)
    inner += element(0x00420011, "OB", b"\x01" * 10, False, length=5000)
    body = dataset([(0x00081140, sequence(0x00081140, [item(inner)], False)),
                    *[(t, e) for t, e in _identity(False)]])  # fmt: skip
    path = dicom_file(tmp_path / "short.dcm", body, EXPLICIT)
    assert_same_outcomes(path)
    stored = read_file(path, via="pydicom").metadata["ReferencedImageSequence"][0]
    assert stored["EncapsulatedDocument"]["BulkDataURI"].endswith("length=5000")
    assert read_metadata(path, file_bulk_uri(path)) is None


def _identity(imp: bool) -> list[tuple[int, bytes]]:
    return [(tag, element(tag, "UI", value, imp)) for tag, value in [
        (0x00080016, b"1.2.840.10008.5.1.4.1.1.7\x00"), (0x00080018, b"1.2.3.4.3\x00"),
        (0x0020000D, b"1.2.3.4.1\x00"), (0x0020000E, b"1.2.3.4.2\x00")]]  # fmt: skip


MUTATION_SEEDS = ["CT_small.dcm", "MR_small_implicit.dcm", "rtplan.dcm", "JPEG2000.dcm"]


def test_mutated_files_are_stored_or_refused_as_pydicom_does(tmp_path: Path) -> None:
    """Bytes changed, inserted, removed or cut at random (seeded): whatever the reader takes
    it stores as the pydicom path does, and what it leaves gets that path's outcome."""
    rng = random.Random(13)
    folder = Path(pydicom.__file__).parent / "data" / "test_files"
    seeds = [(folder / name).read_bytes() for name in MUTATION_SEEDS]
    seeds += [dicom_file(tmp_path / "s.dcm", structures(imp), s).read_bytes()
              for imp, s in ((False, EXPLICIT), (True, IMPLICIT))]  # fmt: skip
    path, taken, different = tmp_path / "mutant.dcm", 0, []
    for number in range(150):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.choice([1, 1, 2, 3])):
            _mutate(rng, data)
        path.write_bytes(bytes(data))
        if _outcome(path, "reader") != _outcome(path, "pydicom"):
            different.append(number)
        taken += read_metadata(path, file_bulk_uri(path)) is not None
    assert different == []
    assert taken >= 15  # and so exercised: most mutants are refused, or left to pydicom


def _mutate(rng: random.Random, data: bytearray) -> None:
    at = rng.randrange(132, min(len(data), rng.choice([400, 3000, 20000])))
    kind = rng.randrange(5)
    if kind == 0:
        data[at] = rng.randrange(256)
    elif kind == 1:
        lengths = [0, UNDEFINED, rng.randrange(2000), 0x4000]
        data[at : at + 4] = struct.pack("<L", rng.choice(lengths))
    elif kind == 2:
        del data[at : at + rng.randrange(1, 20)]
    elif kind == 3:
        data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 12)))
    else:
        del data[at:]


def test_a_lut_descriptor_read_as_signed_by_its_pixel_representation(tmp_path: Path) -> None:
    # implicit VR: pydicom reads US-or-SS by PixelRepresentation, after its fix of negative LUT
    # descriptors (which then does not apply): -32768 stays; the reader leaves it to pydicom
    lut = [(0x00280103, element(0x00280103, "US", b"\x01\x00", True)),
           (0x00281101, element(0x00281101, "SS", b"\x00\x80\x00\x00\x10\x00", True))]  # fmt: skip
    path = dicom_file(tmp_path / "lut.dcm", dataset(_identity(True) + lut), IMPLICIT)
    assert_same_outcomes(path)
    stored = read_file(path, via="pydicom").metadata
    assert stored["RedPaletteColorLookupTableDescriptor"] == [-32768, 0, 16]
    assert read_metadata(path, file_bulk_uri(path)) is None


def test_what_is_not_a_regular_file_is_left_to_pydicom(tmp_path: Path) -> None:
    pipe = tmp_path / "pipe.dcm"
    os.mkfifo(pipe)
    assert read_metadata(pipe, file_bulk_uri(pipe)) is None  # without waiting for a writer
    assert read_metadata(tmp_path, file_bulk_uri(tmp_path)) is None
    assert read_metadata(tmp_path / "missing.dcm", file_bulk_uri(tmp_path)) is None
