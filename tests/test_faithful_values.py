"""Values are stored as given or rejected with a reason naming the element, never changed
silently: from files (pydicom), DICOM JSON and naturalized dicts alike."""

from __future__ import annotations

import math
from pathlib import Path

import dicom_factory as factory
import pydicom
import pytest
from pydicom.dataelem import DataElement
from pydicom.uid import generate_uid

import repository
from repository.ingest import ingest


def _ct(tmp_path: Path, name: str, **values: object) -> Path:
    ds = factory.ct_slice(generate_uid(), 1, 0.0)
    for key, value in values.items():
        setattr(ds, key, value)
    folder = tmp_path / name
    folder.mkdir()
    return factory.write(ds, folder)


def test_a_nul_inside_patient_name_rejects_the_file_naming_the_element(
    store: repository.Store, tmp_path: Path
) -> None:
    bad = _ct(tmp_path, "bad", PatientName="Doe\x00John")
    good = _ct(tmp_path, "good")
    report = ingest(store, [bad.parent, good.parent], workers=1)
    assert report.ingested == 1
    [(path, reason)] = report.skipped
    assert path.endswith(bad.name)
    assert "PatientName" in reason and "NUL" in reason
    # the good file's study keeps its typed patient name; no binary PatientName anywhere
    [uid] = store.get_study_instance_uids()
    study = store.get_study(uid)
    assert study is not None and study.patient_name == "Factory^Test"


def test_a_non_finite_binary_float_rejects_the_file_naming_the_element(
    store: repository.Store, tmp_path: Path
) -> None:
    bad = _ct(tmp_path, "bad", ExposureInmAs=math.nan)  # FD: a binary float, NaN is not JSON
    report = ingest(store, [bad], workers=1)
    [(_, reason)] = report.skipped
    assert "ExposureInmAs" in reason and "finite" in reason
    assert store.get_study_instance_uids() == []


@pytest.mark.parametrize("text", ["inf", "-Infinity"])
def test_a_non_finite_decimal_string_is_kept_verbatim(
    store: repository.Store, tmp_path: Path, text: str
) -> None:
    path = _ct(tmp_path, "ds")
    ds = pydicom.dcmread(path)
    ds["SliceThickness"] = DataElement(0x00180050, "DS", text.encode(), validation_mode=0)
    ds.save_as(path)
    report = ingest(store, [path], workers=1)
    assert report.ingested == 1, report.skipped
    [uid] = store.get_study_instance_uids()
    study = store.get_study(uid)
    assert study is not None
    [stored] = [i for sl in study.series_lists for se in sl.series for i in se.instances]
    assert stored.metadata["SliceThickness"] == text  # not null, not a float
