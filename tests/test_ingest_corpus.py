"""Ingest of every file pydicom and pydicom-data ship, checked against pydicom's own reading.

The two folders hold good instances in many transfer syntaxes, the same instance in several
files, DICOMDIRs, text dumps, JSON, an ICC profile, a gzip and deliberately broken files. What
pydicom reads as an instance with valid UIDs must be stored; everything else must be reported.
"""

from __future__ import annotations

import base64
import functools
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import data_store  # type: ignore[import-untyped]
import orjson
import pydicom
from conftest import PYDICOM_FILES
from pydicom.dataelem import RawDataElement
from sqlalchemy import text

from repository import Store
from repository.ingest import IngestReport, ingest
from repository.normalize import BULK_DATA_THRESHOLD
from repository.validation import is_uid

PYDICOM_DATA = Path(data_store.__file__).parent / "data"
CORPUS = (PYDICOM_FILES, PYDICOM_DATA)
MAX_METADATA_BYTES = 200_000


@dataclass(frozen=True)
class FileFacts:
    """What pydicom says about one file of the corpus."""

    path: Path
    uids: tuple[str, str, str] | None  # (study, series, SOP instance); None if not an instance
    rows: int | None
    columns: int | None
    pixel_data: bytes | None

    @property
    def readable(self) -> bool:
        return self.uids is not None


def _valid_uid(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    uid = value.rstrip("\x00 ")
    return uid if is_uid(uid) else None


def _cut_short(ds: pydicom.Dataset) -> bool:
    """True if a value read holds fewer bytes than its header declares (a truncated file)."""
    return any(
        isinstance(elem, RawDataElement) and elem.value is not None
        and elem.length != 0xFFFFFFFF and len(elem.value) < elem.length
        for elem in ds._dict.values()
    )  # fmt: skip


def _facts(path: Path) -> FileFacts:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, force=True)
            whole = not _cut_short(ds)  # before any value is converted
            found = [
                _valid_uid(ds.get(k))
                for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
            ]
            rows, columns = ds.get("Rows"), ds.get("Columns")
            pixel_data = ds.PixelData if "PixelData" in ds else None
    except Exception:
        return FileFacts(path, None, None, None, None)
    study, series, sop = found
    uids = (study, series, sop) if study and series and sop and whole else None
    return FileFacts(path, uids, rows, columns, pixel_data)


@functools.cache
def corpus() -> dict[Path, FileFacts]:
    """Every file under the corpus folders, with pydicom's view of it."""
    files = [p.resolve() for folder in CORPUS for p in sorted(folder.rglob("*")) if p.is_file()]
    return {p: _facts(p) for p in files}


def readable() -> list[FileFacts]:
    return [f for f in corpus().values() if f.readable]


def stored(store: Store) -> dict[str, tuple[str, str, int | None, int | None, str]]:
    """SOP UID -> (study UID, series UID, rows, columns, imageId), straight from the tables."""
    with store.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT i.sop_instance_uid, st.study_instance_uid, s.series_instance_uid, i.rows,"
            " i.columns, i.image_id FROM instance i"
            " JOIN series s ON s.id = i.series_id"
            " JOIN series_list sl ON sl.id = s.series_list_id"
            " JOIN study st ON st.id = sl.study_id"
        )).all()  # fmt: skip
    result = {sop: (study, series, r, c, image_id) for sop, study, series, r, c, image_id in rows}
    assert len(result) == len(rows), "one SOP instance stored twice in a single data source"
    return result


def ingest_corpus(store: Store) -> IngestReport:
    return ingest(store, list(CORPUS), workers=2)


def test_the_corpus_has_good_and_bad_files() -> None:
    files = corpus()
    assert len(files) > 200
    assert 100 < len(readable()) < len(files)
    assert not files[(PYDICOM_FILES / "README.txt").resolve()].readable
    assert files[(PYDICOM_FILES / "CT_small.dcm").resolve()].readable


def test_every_readable_file_is_stored_under_its_study_and_series(store: Store) -> None:
    report = ingest_corpus(store)
    in_db = stored(store)

    for facts in readable():
        assert facts.uids is not None
        study, series, sop = facts.uids
        assert sop in in_db, f"{facts.path} ({sop}) was not stored"
        assert in_db[sop][:2] == (study, series), facts.path

    expected_sops = {f.uids[2] for f in readable() if f.uids}
    assert set(in_db) == expected_sops
    assert report.ingested == len(expected_sops)


def test_typed_rows_and_columns_match_the_file_the_instance_came_from(store: Store) -> None:
    ingest_corpus(store)
    files = corpus()
    for sop, (_study, _series, rows, columns, image_id) in stored(store).items():
        assert image_id.startswith("dicomfile:"), image_id
        source = files[Path(image_id.removeprefix("dicomfile:"))]
        assert source.uids is not None and source.uids[2] == sop, image_id
        assert rows == source.rows, image_id
        assert columns == source.columns, image_id


def test_every_unreadable_file_is_skipped_with_a_reason_naming_it(store: Store) -> None:
    report = ingest_corpus(store)
    skipped = dict(report.skipped)
    assert len(skipped) == len(report.skipped), "a file was reported twice"

    unreadable = {str(f.path) for f in corpus().values() if not f.readable}
    assert set(skipped) == unreadable
    for path, reason in skipped.items():
        assert path in reason, reason
        assert reason.removeprefix(f"{path}:").strip(), f"empty reason for {path}"
    assert report.failed


def test_report_counts_add_up_to_the_number_of_files(store: Store) -> None:
    report = ingest_corpus(store)
    files = report.ingested + report.already_present + report.duplicates + len(report.skipped)
    assert files == len(corpus())
    readable_files = readable()
    distinct = {f.uids[2] for f in readable_files if f.uids}
    assert (report.ingested, report.already_present) == (len(distinct), 0)
    assert report.duplicates == len(readable_files) - len(distinct)


def test_the_database_holds_one_instance_per_distinct_sop_uid(store: Store) -> None:
    ingest_corpus(store)
    with store.engine.connect() as conn:
        sops, rows = conn.execute(
            text("SELECT count(DISTINCT sop_instance_uid), count(*) FROM instance")
        ).one()
        studies = conn.execute(text("SELECT count(*) FROM study")).scalar_one()
        series = conn.execute(text("SELECT count(*) FROM series")).scalar_one()
    facts = readable()
    assert sops == rows == len({f.uids[2] for f in facts if f.uids})
    assert studies == len({f.uids[0] for f in facts if f.uids})
    assert series == len({f.uids[:2] for f in facts if f.uids})


def test_ingesting_the_corpus_twice_adds_nothing(store: Store) -> None:
    first = ingest_corpus(store)
    with store.engine.connect() as conn:
        before = conn.execute(text("SELECT count(*) FROM instance")).scalar_one()
    second = ingest_corpus(store)
    with store.engine.connect() as conn:
        after = conn.execute(text("SELECT count(*) FROM instance")).scalar_one()
    assert after == before
    assert second.ingested == 0
    assert second.already_present == first.ingested + first.duplicates
    assert second.duplicates == 0
    assert sorted(second.skipped) == sorted(first.skipped)


# ------------------------------------------------------------------------------------ bulk data


def _binary_values(md: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every binary value ({"InlineBinary"|"BulkDataURI": ...}) in stored metadata."""
    if isinstance(md, dict):
        if "InlineBinary" in md or "BulkDataURI" in md:
            yield where, md
            return
        for key, value in md.items():
            yield from _binary_values(value, f"{where}.{key}" if where else key)
    elif isinstance(md, list):
        for index, item in enumerate(md):
            yield from _binary_values(item, f"{where}[{index}]")


def test_ingest_never_stores_bulk_data_inline(store: Store) -> None:
    ingest_corpus(store)
    with store.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT sop_instance_uid, CAST(metadata AS TEXT) FROM instance")
        ).all()
    assert rows
    for sop, md_text in rows:
        assert len(md_text) < MAX_METADATA_BYTES, f"{sop}: {len(md_text)} bytes of metadata"
        for where, value in _binary_values(orjson.loads(md_text)):
            if "InlineBinary" in value:
                size = len(base64.b64decode(value["InlineBinary"]))
                assert size <= BULK_DATA_THRESHOLD, f"{sop} {where}: {size} bytes inline"


def test_large_pixel_data_is_a_reference_into_the_source_file(store: Store) -> None:
    ingest_corpus(store)
    files = corpus()
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT image_id, CAST(metadata AS TEXT) FROM instance")).all()
    referenced = inline = 0
    for image_id, md_text in rows:
        source = files[Path(image_id.removeprefix("dicomfile:"))]
        md = orjson.loads(md_text)
        if source.pixel_data is None:
            assert "PixelData" not in md, image_id
            continue
        stored_value = md["PixelData"]
        if "InlineBinary" in stored_value:  # only small native pixel data may be kept inline
            assert len(source.pixel_data) <= BULK_DATA_THRESHOLD, image_id
            assert base64.b64decode(stored_value["InlineBinary"]) == source.pixel_data
            inline += 1
            continue
        assert set(stored_value) == {"BulkDataURI"}, image_id
        uri = urlparse(stored_value["BulkDataURI"])
        assert uri.scheme == "file"
        assert Path(unquote(uri.path)) == source.path
        referenced += 1
    assert referenced > 40
    assert inline >= 1


NATIVE_FILES = [  # uncompressed pixel data, one SOP instance each, in three transfer syntaxes
    PYDICOM_FILES / "CT_small.dcm",
    PYDICOM_FILES / "MR_small.dcm",
    PYDICOM_FILES / "ExplVR_BigEnd.dcm",
    PYDICOM_FILES / "rtdose.dcm",  # Implicit VR Little Endian
    PYDICOM_DATA / "SC_rgb_16bit_2frame.dcm",
    PYDICOM_DATA / "US1_UNCR.dcm",
]


def test_native_pixel_data_reference_gives_offset_and_length_of_the_bytes(
    store: Store,
) -> None:
    report = ingest(store, NATIVE_FILES, workers=1)
    assert report.ingested == len(NATIVE_FILES) and not report.skipped
    with store.engine.connect() as conn:
        select_all = text("SELECT image_id, CAST(metadata AS TEXT) FROM instance")
        rows = {image_id: md for image_id, md in conn.execute(select_all)}
    for path in (p.resolve() for p in NATIVE_FILES):
        uri = orjson.loads(rows[f"dicomfile:{path}"])["PixelData"]["BulkDataURI"]
        parsed = urlparse(uri)
        assert uri.startswith("file://") and Path(unquote(parsed.path)) == path
        query = parse_qs(parsed.query)
        assert set(query) == {"offset", "length"}, uri
        offset, length = int(query["offset"][0]), int(query["length"][0])
        with path.open("rb") as f:
            f.seek(offset)
            data = f.read(length)
        assert len(data) == length, uri
        assert data == pydicom.dcmread(path).PixelData, uri
