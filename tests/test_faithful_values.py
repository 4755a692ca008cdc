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


MISMATCHED = [(0x00081140, "US", [1, 0]), (0x00100010, "US", [1, 2]), (0x00280030, "LO", "abc")]
"""A sequence, a person name and a DS written with a VR of another kind."""


@pytest.mark.parametrize("via", ["reader", "fast", "pydicom"])
def test_an_element_written_with_a_vr_of_another_kind_keeps_its_tag_and_vr(
    store: repository.Store, tmp_path: Path, via: str
) -> None:
    from repository.normalize import to_dicom_json
    from repository.reading import read_file

    ds = factory.ct_slice(generate_uid(), 1, 0.0)
    for tag, vr, value in MISMATCHED:
        ds.add(DataElement(tag, vr, value))
    path = factory.write(ds, tmp_path)
    stored = dict(read_file(path, via=via).metadata)
    assert stored["00081140"] == {"vr": "US", "Value": [1, 0]}  # as a private element is kept
    assert stored["00100010"] == {"vr": "US", "Value": [1, 2]}
    assert stored["00280030"] == {"vr": "LO", "Value": ["abc"]}
    assert not {"ReferencedImageSequence", "PatientName", "PixelSpacing"} & stored.keys()
    sent = to_dicom_json(stored)  # what WADO-RS metadata sends: each with the file's VR
    assert sent["00081140"] == {"vr": "US", "Value": [1, 0]}
    assert sent["00100010"] == {"vr": "US", "Value": [1, 2]}
    report = ingest(store, [path], workers=1, keep_json=True)
    assert report.ingested == 1, report.skipped
    instance = store.get_instance(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    assert instance is not None and instance.metadata["00100010"]["vr"] == "US"


def test_dicom_json_and_vr_maps_of_another_kind_keep_the_tag(store: repository.Store) -> None:
    uids = {"StudyInstanceUID": "1.2.3", "SeriesInstanceUID": "1.2.3.4"}
    from_json = {**{f"{k}": v for k, v in {"0020000D": {"vr": "UI", "Value": ["1.2.3"]},
                 "0020000E": {"vr": "UI", "Value": ["1.2.3.4"]},
                 "00080018": {"vr": "UI", "Value": ["1.2.3.4.1"]},
                 "00081140": {"vr": "US", "Value": [7]}}.items()}}  # fmt: skip
    mapped = {**uids, "SOPInstanceUID": "1.2.3.4.2", "PatientName": [3],
              "_vrMap": {"PatientName": "US"}}  # fmt: skip
    store.add_instances([from_json, mapped])
    first = store.get_instance("1.2.3", "1.2.3.4", "1.2.3.4.1")
    second = store.get_instance("1.2.3", "1.2.3.4", "1.2.3.4.2")
    assert first is not None and first.metadata["00081140"] == {"vr": "US", "Value": [7]}
    assert second is not None and second.metadata["00100010"] == {"vr": "US", "Value": [3]}
