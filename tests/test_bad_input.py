"""Bad input gets a clear error naming the UID or file, and leaves the database unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydicom
import pytest
from conftest import PYDICOM_FILES
from sqlalchemy import text

from repository import (
    ConflictError,
    InvalidInputError,
    InvalidUIDError,
    InvalidValueError,
    MissingAttributeError,
    NotDicomError,
    Store,
)
from repository.reading import read_file


def instance(study: str, series: str, sop: str, **extra: Any) -> dict[str, Any]:
    return {"StudyInstanceUID": study, "SeriesInstanceUID": series, "SOPInstanceUID": sop,
            **extra}  # fmt: skip


def snapshot(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to show that a failed call changed nothing."""
    out = {}
    with store.engine.connect() as conn:
        for table in ("study", "series_list", "series", "instance", "change"):
            rows = conn.execute(text(f'SELECT * FROM "{table}" ORDER BY 1'))
            out[table] = [tuple(str(v) for v in r) for r in rows]
    return out


@pytest.fixture
def seeded(store: Store) -> Store:
    store.add_instances([instance("1.2.3", "1.2.3.1", "1.2.3.1.1", PatientName="Doe^Jane")])
    return store


@pytest.mark.parametrize(
    "bad, error, names",
    [
        (instance("1.2.9", "1.2.9.1", ""), MissingAttributeError, "SOPInstanceUID"),
        ({"StudyInstanceUID": "1.2.9", "SOPInstanceUID": "1.2.9.1.1"}, MissingAttributeError,
         "SeriesInstanceUID"),
        ({"SeriesInstanceUID": "1.2.9.1", "SOPInstanceUID": "1.2.9.1.1"}, MissingAttributeError,
         "StudyInstanceUID"),
        (instance("1.2.9", "1.2.9.1", "1.2.abc"), InvalidUIDError, r"1\.2\.abc"),
        (instance("1.2.9", "1.2.9.1", "1." + "2" * 70), InvalidUIDError, "SOPInstanceUID"),
        (instance("1.2.9'; DROP TABLE study; --", "1.2.9.1", "1.2.9.1.1"), InvalidUIDError,
         "DROP TABLE"),
        (instance("1.2.9", "1.2.9.1", "1.2.9.1.1", NotAKeyword=1), InvalidValueError,
         "NotAKeyword"),
        (instance("1.2.9", "1.2.9.1", "1.2.9.1.1", PatientID=object()), InvalidValueError,
         "PatientID"),
        (instance("1.2.9", "1.2.9.1", "1.2.9.1.1", PatientID="A\x00B"), InvalidValueError,
         "PatientID.*NUL"),
        (instance("1.2.3", "1.2.3.7", "1.2.3.1.1"), ConflictError, r"1\.2\.3\.1\.1"),
        ("not an instance", InvalidValueError, "str"),
    ],
)  # fmt: skip
def test_a_bad_instance_rejects_the_batch_and_changes_nothing(
    seeded: Store, bad: Any, error: type[Exception], names: str
) -> None:
    before = snapshot(seeded)
    good = instance("1.2.8", "1.2.8.1", "1.2.8.1.1")
    with pytest.raises(error, match=names):
        seeded.add_instances([good, bad])
    assert snapshot(seeded) == before


def test_errors_are_value_errors_and_name_the_position(store: Store) -> None:
    with pytest.raises(ValueError, match=r"instance #1: SOPInstanceUID is missing"):
        store.add_instances([instance("1.2", "1.2.1", "1.2.1.1"), instance("1.2", "1.2.1", "")])


def test_one_sop_instance_in_two_series_of_a_batch_is_a_conflict(store: Store) -> None:
    with pytest.raises(ConflictError, match=r"1\.2\.1\.1"):
        store.add_instances([instance("1.2", "1.2.1", "1.2.1.1"),
                             instance("1.2", "1.2.2", "1.2.1.1")])  # fmt: skip
    assert store.get_study_instance_uids() == []


def test_hostile_strings_are_stored_verbatim(store: Store) -> None:
    hostile = "O'Brien\"; DROP TABLE instance; -- \\ % _ 💥 <script>"
    fields = {"PatientID": hostile[:64], "StudyDescription": hostile,
              "PatientName": {"Alphabetic": hostile}}  # fmt: skip
    store.add_instances([instance("1.2.3", "1.2.3.1", "1.2.3.1.1", **fields)])
    study = store.get_study("1.2.3")
    assert study is not None
    assert study.study_description == hostile
    assert study.metadata["PatientName"] == {"Alphabetic": hostile}
    assert study.series[0].instances[0].metadata["PatientID"] == hostile[:64]


def test_overlong_values_are_kept_in_json_and_cut_only_in_typed_columns(store: Store) -> None:
    long_id = "P" * 300
    store.add_instances([instance("1.2.3", "1.2.3.1", "1.2.3.1.1", PatientID=long_id)])
    study = store.get_study("1.2.3")
    assert study is not None
    assert study.patient_id == long_id[:64]
    assert study.metadata["PatientID"] == long_id


def test_bad_data_source_name_is_rejected(store: Store) -> None:
    with pytest.raises(InvalidInputError, match="data_source"):
        store.add_instances([instance("1.2", "1.2.1", "1.2.1.1")], data_source="")


def test_a_text_file_is_not_dicom(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello, not DICOM\n" * 20)
    with pytest.raises(NotDicomError, match=r"notes\.txt"):
        read_file(path)


def test_a_truncated_file_is_reported_with_its_name(tmp_path: Path) -> None:
    path = tmp_path / "cut.dcm"
    path.write_bytes((PYDICOM_FILES / "CT_small.dcm").read_bytes()[:300])
    with pytest.raises(InvalidInputError, match=r"cut\.dcm"):
        read_file(path)


def test_a_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(NotDicomError, match=r"nope\.dcm"):
        read_file(tmp_path / "nope.dcm")


def test_a_file_whose_uid_is_invalid_is_rejected_with_its_name(tmp_path: Path) -> None:
    ds = pydicom.dcmread(PYDICOM_FILES / "CT_small.dcm")
    ds.SOPInstanceUID = "1.2.x.4"
    path = tmp_path / "bad_uid.dcm"
    ds.save_as(path)
    with pytest.raises(InvalidUIDError, match=r"bad_uid\.dcm.*1\.2\.x\.4"):
        read_file(path)
