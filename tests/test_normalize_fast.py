"""The fast paths store exactly what the pydicom path stores, file by file.

Every file of pydicom's test folder and of pydicom-data goes through the three ways of
:func:`read_file`: ``via="pydicom"`` (pydicom converts every element, then
``naturalize_dataset``), ``via="fast"`` (``dcmread``, then ``naturalize_dataset_fast`` decodes
the common raw elements itself) and ``via="reader"`` (the default: the file's bytes straight to
the stored form by ``repository.normalize.reader``, the others as ``"fast"``). The typed columns
and the naturalized JSON must be equal, or all paths must reject the file with the same message.
Known differences: none (``KNOWN_DIFFERENCES`` is empty; a file listed there would need its
reason written beside it).

The reader takes 190 of the 244 files. It leaves 54 to pydicom: big endian (19), deflated (1),
without a transfer syntax (1), without a preamble (14, non-DICOM files among them), DICOMDIRs
(7) and a private group below 0008 (1), UN sequences (4), a file meta group opening with a
binary element (1), encapsulated fragments overrunning the file (1), and 5 that are truncated,
malformed (an unknown VR, an IS 'abc') or in a character set with escapes. The count is kept
by ``test_the_reader_takes_most_of_the_corpus``.
"""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import orjson
import pydicom
import pytest

import repository
from repository.errors import InvalidInputError
from repository.ingest import ingest
from repository.normalize import BULK_DATA_THRESHOLD, file_bulk_uri, naturalize_dataset
from repository.normalize.dataset import naturalize_element
from repository.normalize.fast import naturalize_dataset_fast
from repository.normalize.reader import read_metadata
from repository.reading import Via, read_file

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def _pydicom_data() -> Path:
    import data_store  # pydicom-data, a test dependency

    return Path(data_store.__file__).parent / "data"


def _all_files() -> list[Path]:
    folders = [PYDICOM_FILES, _pydicom_data()]
    return sorted(p for folder in folders for p in folder.rglob("*") if p.is_file())


KNOWN_DIFFERENCES: dict[str, str] = {}
"""File name -> why the fast path may store something else for it (none today)."""


def _outcome(path: Path, via: Via) -> tuple[str, bytes]:
    try:
        inst = read_file(path, via=via)
    except InvalidInputError as error:
        return "error", f"{type(error).__name__}: {error}".encode()
    columns = {k: getattr(inst, k) for k in inst.__slots__ if k != "metadata"}
    return "ok", orjson.dumps([columns, inst.metadata], option=orjson.OPT_SORT_KEYS)


def test_the_corpus_is_the_whole_of_both_test_folders() -> None:
    files = _all_files()
    assert len(files) > 150
    assert any(p.name == "eCT_Supplemental.dcm" for p in files)  # pydicom-data is included


@pytest.mark.parametrize("path", _all_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_fast_paths_store_what_the_pydicom_path_stores(path: Path) -> None:
    if path.name in KNOWN_DIFFERENCES:
        pytest.skip(KNOWN_DIFFERENCES[path.name])
    assert_same_outcomes(path)


def assert_same_outcomes(path: Path) -> None:
    """``path`` is stored (or refused) alike via pydicom, the fast path and the reader."""
    slow = _outcome(path, "pydicom")
    for via in ("fast", "reader"):
        fast = _outcome(path, via)
        if slow != fast:
            a, b = (orjson.loads(x[1]) if x[0] == "ok" else x for x in (slow, fast))
            diff = _differences(a, b) if slow[0] == fast[0] == "ok" else [(slow, fast)]
            pytest.fail(f"{path.name}: {via} differs from pydicom at {diff[:5]}")


def test_the_reader_takes_most_of_the_corpus() -> None:
    files = _all_files()
    taken = [p for p in files if read_metadata(p, file_bulk_uri(p)) is not None]
    assert len(taken) >= 190, sorted({p.name for p in files} - {p.name for p in taken})
    assert len(taken) >= 0.75 * len(files)


def _differences(a: object, b: object, where: str = "") -> list[tuple[str, object, object]]:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(set(a) | set(b))
        return [d for k in keys for d in _differences(a.get(k), b.get(k), f"{where}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True))
                for d in _differences(x, y, f"{where}[{i}]")]  # fmt: skip
    return [] if a == b else [(where, a, b)]


def _read(path: Path) -> pydicom.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path, defer_size=BULK_DATA_THRESHOLD)


# Hand-encoded elements (tag, VR, raw bytes) with the values that need care: character sets
# (Latin-1, UTF-8, ISO 2022 escapes, invalid UTF-8), blank and padded items, malformed numbers,
# odd lengths, a LUT descriptor, private tags, a sequence, a deferred long text.
EDGE_ELEMENTS = [
    (0x00080060, "CS", b"CT\\ \\MR "),
    (0x00080020, "DA", b"20200101 "),
    (0x00080054, "AE", b" AE1 \\ AE2\x00"),
    (0x00080080, "LO", b"A\\ \\B "),
    (0x00080081, "ST", b"Line 1\\Line 2 \x00"),
    (0x00080190, "UR", b"http://x/y  "),
    (0x00081030, "LO", b"  "),
    (0x00081040, "LO", b"D" * 1500),  # longer than the defer size: read by pydicom
    (0x00100010, "PN", b"M\xfcller^J\xf6rg=\xc3\xa9=\\^B\\=\\A==C\\A===D"),
    (0x00100020, "LO", b"\x1b$B;3ED\x1b(B"),
    (0x00101001, "PN", b"\xff\xfe^X"),
    (0x00181310, "US", b"\x01\x00\x02\x00\x03\x00\x04\x00"),
    (0x00181020, "LO", b"\xc3\xa9t\xc3\xa9"),
    (0x00200011, "IS", b" 5 "),
    (0x00200012, "IS", b"1.0"),
    (0x00200013, "IS", b"+7\\ -3"),
    (0x00200100, "IS", b"abc"),
    (0x00280002, "US", b"\x01\x00\x02"),  # odd length: pydicom gives up, UN on both paths
    (0x00200052, "UI", b" 1.2.3\t\\ \\4.5\x85"),  # pydicom's UID strips all whitespace
    (0x00280009, "AT", b"\x18\x00\x63\x10\x20\x00\x13\x00"),
    (0x00280030, "DS", b" 0.5\\.5e1 "),
    (0x00281050, "DS", b"nan\\1"),
    (0x00281051, "DS", b"1\\ \\2"),
    (0x00281052, "DS", b"1.5e400"),
    (0x00283002, "US", b"\x00\x01\x00\x80\x10\x00"),
    (0x00091010, "LO", b"ACME 1.0"),
    (0x00091001, "FL", b"\x00\x00\xc0\x3f"),
    (0x00091002, "SL", b"\xff\xff\xff\xff\x01\x00\x00\x00"),
    (0x00091003, "OB", b"\x01\x02\x03\x04"),
    (0x00091004, "UN", b"ABCD"),
    (0x00091005, "PN", b"Doe^John"),
    (0x00091006, "FD", b"\x00" * 7 + b"\xf8\x7f"),  # 9 bytes
]
LEFT_TO_PYDICOM = {0x00100010, 0x00100020, 0x00101001, 0x00200012, 0x00200100, 0x00280002,
                   0x00281050, 0x00281051, 0x00281052, 0x00283002, 0x00091006}  # fmt: skip
"""Edge elements the reader leaves to pydicom (and with them the whole file): escapes, invalid
UTF-8, extra PN groups, malformed or blank numbers, odd lengths, an implicit-VR LUT descriptor."""
CHARSETS = [b"", b"ISO_IR 100", b"ISO_IR 192", b"ISO 2022 IR 6\\ISO 2022 IR 87", b"GB18030"]
TRANSFER_SYNTAXES = {"1.2.840.10008.1.2.1": (False, True), "1.2.840.10008.1.2": (True, True),
                     "1.2.840.10008.1.2.2": (False, False)}  # fmt: skip
_LONG_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT", "SV", "UV"}


def _element(tag: int, vr: str, value: bytes, implicit: bool, little: bool) -> bytes:
    e = "<" if little else ">"
    head = struct.pack(e + "HH", tag >> 16, tag & 0xFFFF)
    if implicit:
        return head + struct.pack(e + "L", len(value)) + value
    if vr in _LONG_VRS:
        return head + vr.encode() + struct.pack(e + "HL", 0, len(value)) + value
    return head + vr.encode() + struct.pack(e + "H", len(value)) + value


def _edge_file(
    folder: Path, charset: bytes, syntax: str, edge: list[tuple[int, str, bytes]] = EDGE_ELEMENTS
) -> Path:
    implicit, little = TRANSFER_SYNTAXES[syntax]
    meta = b"".join(_element(t, vr, v, False, True) for t, vr, v in [
        (0x00020001, "OB", b"\x00\x01"),
        (0x00020002, "UI", b"1.2.840.10008.5.1.4.1.1.7\x00"),
        (0x00020003, "UI", b"1.2.3.4.3\x00"),
        (0x00020010, "UI", syntax.encode() + b"\x00" * (len(syntax) % 2)),
    ])  # fmt: skip
    item = _element(0x00080100, "SH", b"\xc3\xa9\\X ", implicit, little)
    item += _element(0x00081150, "UI", b"1.2.3\x00", implicit, little)
    item_head = struct.pack("<HHL" if little else ">HHL", 0xFFFE, 0xE000, len(item))
    elements = [
        (0x00080005, "CS", charset),
        (0x00080016, "UI", b"1.2.840.10008.5.1.4.1.1.7\x00"),
        (0x00080018, "UI", b"1.2.3.4.3\x00"),
        (0x00081140, "SQ", item_head + item),
        (0x0020000D, "UI", b"1.2.3.4.1\x00"),
        (0x0020000E, "UI", b"1.2.3.4.2\x00"),
        *edge,
    ]
    body = b"".join(_element(t, vr, v, implicit, little) for t, vr, v in sorted(elements))
    group_length = _element(0x00020000, "UL", struct.pack("<L", len(meta)), False, True)
    path = folder / f"edge-{len(charset)}-{syntax}.dcm"
    path.write_bytes(b"\x00" * 128 + b"DICM" + group_length + meta + body)
    return path


@pytest.mark.parametrize("syntax", TRANSFER_SYNTAXES)
@pytest.mark.parametrize("charset", CHARSETS)
@pytest.mark.parametrize("handled", [False, True], ids=["all", "handled"])
def test_fast_paths_match_on_hand_encoded_edge_cases(
    tmp_path: Path, charset: bytes, syntax: str, handled: bool
) -> None:
    edge = [e for e in EDGE_ELEMENTS if not handled or e[0] not in LEFT_TO_PYDICOM]
    path = _edge_file(tmp_path, charset, syntax, edge)
    slow = _outcome(path, "pydicom")
    assert slow[0] == "ok", slow
    for via in ("fast", "reader"):
        fast = _outcome(path, via)
        assert fast == slow, (via, _differences(orjson.loads(slow[1]), orjson.loads(fast[1]))[:5])
    taken = read_metadata(path, file_bulk_uri(path)) is not None
    big_endian = syntax == "1.2.840.10008.1.2.2"
    assert taken == (handled and not big_endian and charset != b"GB18030")


def test_fast_path_decodes_the_common_elements_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    import repository.normalize.fast as fast_module

    left_to_pydicom: list[int] = []

    def spy(out: dict[str, object], ds: object, tag: int, *args: object) -> None:
        left_to_pydicom.append(tag)
        naturalize_element(out, ds, tag, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(fast_module, "naturalize_element", spy)
    path = PYDICOM_FILES / "CT_small.dcm"
    md = naturalize_dataset_fast(_read(path), file_bulk_uri(path))
    assert len(md) > 90
    # pydicom: the file meta it had already decoded, the character set, an ambiguous US/SS,
    # and two values too large to inline (a private OB and the pixel data).
    assert len(left_to_pydicom) <= 6, [f"{t:08X}" for t in left_to_pydicom]


def test_nul_inside_a_value_is_rejected_naming_the_element_on_both_paths(tmp_path: Path) -> None:
    # issue 16: it used to be kept as raw UN bytes, the element's value silently changed
    ds = _read(PYDICOM_FILES / "CT_small.dcm")
    ds.InstitutionName = "A\x00B"
    path = tmp_path / "nul.dcm"
    ds.save_as(path)
    for naturalize in (naturalize_dataset, naturalize_dataset_fast):
        with pytest.raises(repository.InvalidValueError, match=r"InstitutionName.*NUL"):
            naturalize(_read(path))


def test_pixel_data_is_never_read_by_the_fast_path(tmp_path: Path) -> None:
    path = _pydicom_data() / "eCT_Supplemental.dcm"
    ds = _read(path)
    md = naturalize_dataset_fast(ds, file_bulk_uri(path))
    assert md["PixelData"]["BulkDataURI"].startswith(path.resolve().as_uri() + "?offset=")
    assert ds.get_item(0x7FE00010, keep_deferred=True).value is None  # still deferred


def test_ingest_through_the_fast_path_stores_the_pydicom_form(store: repository.Store) -> None:
    files = [PYDICOM_FILES / "CT_small.dcm", PYDICOM_FILES / "MR_small.dcm"]
    files += [_pydicom_data() / "SC_rgb.dcm", _pydicom_data() / "eCT_Supplemental.dcm"]
    report = ingest(store, files, workers=1)
    assert report.ingested == len(files), report.skipped
    for path in files:
        expected = naturalize_dataset(_read(path), file_bulk_uri(path))
        got = store.get_instance(
            expected["StudyInstanceUID"], expected["SeriesInstanceUID"], expected["SOPInstanceUID"]
        )
        assert got is not None
        stored = orjson.loads(orjson.dumps(dict(got.metadata)))
        assert stored == orjson.loads(orjson.dumps(expected))


def test_fast_paths_agree_on_every_hostile_file(tmp_path: Path) -> None:
    from hostile_corpus import cases

    different, taken = [], 0
    for case in cases():
        try:
            path = case.make(tmp_path)
        except OSError:
            continue  # a file kind this file system cannot hold
        if not path.is_file():
            continue
        slow = _outcome(path, "pydicom")
        different += [f"{case.name} {via}" for via in ("fast", "reader")
                      if _outcome(path, via) != slow]  # fmt: skip
        taken += read_metadata(path, file_bulk_uri(path)) is not None
    assert different == []
    assert taken >= 10  # the good ones, and truncated files cut between two elements
