"""The store API on both databases: adds, reads, idempotence, imageIds and data sources."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pydicom
import pytest
from conftest import PYDICOM_FILES
from sqlalchemy import text

import repository
from repository import NotFoundError, Store


def count(store: Store, table: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(text(f'SELECT count(*) FROM "{table}"')).scalar_one())


def instance(study: str, series: str, sop: str, **extra: Any) -> dict[str, Any]:
    """A naturalized instance dict as OHIF holds them."""
    return {
        "StudyInstanceUID": study,
        "SeriesInstanceUID": series,
        "SOPInstanceUID": sop,
        "SOPClassUID": "1.2.840.10008.5.1.4.1.1.2",
        "Modality": "CT",
        **extra,
    }


def test_adds_a_pydicom_dataset_and_reads_it_back(store: Store) -> None:
    ds = pydicom.dcmread(PYDICOM_FILES / "CT_small.dcm")
    result = store.add_instances([ds])
    assert (result.added, result.already_present) == (1, 0)

    study = store.get_study(ds.StudyInstanceUID)
    assert study is not None
    assert study.patient_name == "CompressedSamples^CT1"
    assert study.patient_id == ds.PatientID
    assert study.study_date == dt.date(2004, 1, 19)
    assert study.modalities_in_study == ("CT",)
    [series] = study.series
    assert series.modality == "CT" and series.data_source == "default"
    [inst] = series.instances
    assert inst.sop_class_uid == ds.SOPClassUID
    assert (inst.rows, inst.columns) == (128, 128)
    assert inst.transfer_syntax_uid == ds.file_meta.TransferSyntaxUID
    assert inst.metadata["PatientName"] == {"Alphabetic": "CompressedSamples^CT1"}
    assert inst.metadata["ImagePositionPatient"] == [float(v) for v in ds.ImagePositionPatient]
    assert inst.image_id == f"dicomfile:{PYDICOM_FILES / 'CT_small.dcm'}"


def test_to_dataset_round_trips_the_attributes(store: Store) -> None:
    ds = pydicom.dcmread(PYDICOM_FILES / "MR_small.dcm")
    store.add_instances([ds])
    inst = store.get_instance(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    assert inst is not None
    back = inst.to_dataset()
    for keyword in ("PatientName", "Rows", "PixelSpacing", "ImageOrientationPatient",
                    "SeriesInstanceUID", "EchoTime"):  # fmt: skip
        assert back[keyword].value == ds[keyword].value, keyword
    assert back.file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID
    assert back.PixelData == b""  # bulk data is a reference, never stored


def test_accepts_dicom_json_as_a_wado_rs_metadata_response_gives_it(store: Store) -> None:
    ds = pydicom.dcmread(PYDICOM_FILES / "CT_small.dcm")
    dicom_json = ds.to_json_dict(bulk_data_element_handler=lambda e: "http://pacs/bulk/1")
    store.add_instances([dicom_json], data_source="pacs", wado_root="http://pacs/dicom-web")

    inst = store.get_instance(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    assert inst is not None
    assert inst.metadata["PatientName"] == {"Alphabetic": "CompressedSamples^CT1"}
    assert inst.metadata["PixelData"] == {"BulkDataURI": "http://pacs/bulk/1"}
    assert inst.image_id == (
        f"wadors:http://pacs/dicom-web/studies/{ds.StudyInstanceUID}/series/"
        f"{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}/frames/1"
    )
    assert inst.wado_root == "http://pacs/dicom-web"
    private = [k for k in inst.metadata if k.startswith("0043")]
    assert private and all("vr" in inst.metadata[k] for k in private)


def test_mixed_batch_is_grouped_by_study_and_series(store: Store) -> None:
    batch = [
        instance("1.2.3", "1.2.3.1", "1.2.3.1.1", InstanceNumber=2),
        instance("1.2.4", "1.2.4.1", "1.2.4.1.1"),
        instance("1.2.3", "1.2.3.2", "1.2.3.2.1", Modality="MR"),
        instance("1.2.3", "1.2.3.1", "1.2.3.1.2", InstanceNumber=1),
    ]
    result = store.add_instances(batch)
    assert result.added == 4
    assert store.get_study_instance_uids() == ["1.2.3", "1.2.4"]
    study = store.get_study("1.2.3")
    assert study is not None
    assert [s.series_instance_uid for s in study.series] == ["1.2.3.1", "1.2.3.2"]
    first = study.series[0]
    assert [i.sop_instance_uid for i in first.instances] == ["1.2.3.1.2", "1.2.3.1.1"]
    assert study.modalities_in_study == ("CT", "MR")
    assert count(store, "series") == 3


def test_re_adding_is_idempotent_and_first_copy_wins(store: Store) -> None:
    store.add_instances([instance("1.2.3", "1.2.3.1", "1.2.3.1.1", SeriesDescription="first")])
    again = store.add_instances(
        [
            instance("1.2.3", "1.2.3.1", "1.2.3.1.1", SeriesDescription="second"),
            instance("1.2.3", "1.2.3.1", "1.2.3.1.2"),
        ]
    )
    assert (again.added, again.already_present) == (1, 1)
    assert again.already_present_uids == {"1.2.3.1.1"}
    inst = store.get_instance("1.2.3", "1.2.3.1", "1.2.3.1.1")
    assert inst is not None and inst.metadata["SeriesDescription"] == "first"
    assert count(store, "instance") == 2


def test_duplicates_inside_one_batch_keep_the_first(store: Store) -> None:
    result = store.add_instances(
        [instance("1.2.3", "1.2.3.1", "1.2.3.1.1", InstanceNumber=1),
         instance("1.2.3", "1.2.3.1", "1.2.3.1.1", InstanceNumber=9)]
    )  # fmt: skip
    assert result.added == 1
    inst = store.get_instance("1.2.3", "1.2.3.1", "1.2.3.1.1")
    assert inst is not None and inst.instance_number == 1


def test_same_study_from_two_data_sources_gets_two_series_lists(store: Store) -> None:
    one = instance("1.2.3", "1.2.3.1", "1.2.3.1.1")
    store.add_instances([one], data_source="pacs-a", wado_root="http://a/dicom-web")
    store.add_instances([one], data_source="pacs-b", wado_root="http://b/dicom-web")
    study = store.get_study("1.2.3")
    assert study is not None
    assert [(sl.data_source, sl.wado_root) for sl in study.series_lists] == [
        ("pacs-a", "http://a/dicom-web"),
        ("pacs-b", "http://b/dicom-web"),
    ]
    assert len(study.series) == 2
    from_b = store.get_series("1.2.3", "1.2.3.1", data_source="pacs-b")
    assert from_b is not None and from_b.instances[0].image_id.startswith("wadors:http://b/")
    assert count(store, "study") == 1


def test_get_series_without_study_uid_searches_every_study(store: Store) -> None:
    store.add_instances([instance("1.2.3", "1.2.3.1", "1.2.3.1.1")])
    found = store.get_series(None, "1.2.3.1")
    assert found is not None and found.study_instance_uid == "1.2.3"
    assert store.get_series("9.9", "1.2.3.1") is None
    assert store.get_series(None, "9.9.9") is None


def test_missing_things_are_none(store: Store) -> None:
    assert store.get_study("1.2.3") is None
    assert store.get_instance("1.2.3", "1.2.3.1", "1.2.3.1.1") is None
    assert store.get_instance_from_image_id("wadors:/nothing") is None
    assert store.get_study_instance_uids() == []


@pytest.mark.parametrize(
    "stored, asked",
    [
        ("wadors:http://x/studies/1/series/2/instances/3/frames/1",
         "wadors:http://x/studies/1/series/2/instances/3/frames/7"),
        ("dicomweb:http://x/wado?requestType=WADO&studyUID=1&seriesUID=2&objectUID=3",
         "dicomweb:http://x/wado?requestType=WADO&studyUID=1&seriesUID=2&objectUID=3&frame=4"),
        ("dicomfile:/data/a.dcm", "dicomfile:/data/a.dcm&frame=2"),
        ("dicomfile:/data/a.dcm", "dicomfile:/data/a.dcm?frame=2"),
        ("dicomfile:/data/a.dcm", "dicomfile:/data/a.dcm"),
    ],
)  # fmt: skip
def test_image_id_lookup_is_frame_aware(store: Store, stored: str, asked: str) -> None:
    store.add_instances(
        [instance("1.2.3", "1.2.3.1", "1.2.3.1.1", imageId=stored, NumberOfFrames=8),
         instance("1.2.3", "1.2.3.1", "1.2.3.1.2", imageId=stored + "x")]
    )  # fmt: skip
    found = store.get_instance_from_image_id(asked)
    assert found is not None and found.sop_instance_uid == "1.2.3.1.1"
    assert found.image_id == stored


def test_add_study_creates_only_once(store: Store) -> None:
    assert store.add_study({"StudyInstanceUID": "1.2.3", "PatientID": "P1",
                            "StudyDate": "20200131", "AccessionNumber": "A1"}) is True  # fmt: skip
    assert store.add_study({"StudyInstanceUID": "1.2.3", "PatientID": "other"}) is False
    study = store.get_study("1.2.3")
    assert study is not None
    assert (study.patient_id, study.study_date, study.accession_number) == (
        "P1", dt.date(2020, 1, 31), "A1")  # fmt: skip
    assert [sl.data_source for sl in study.series_lists] == ["default"]


def test_unparseable_dates_are_null_in_columns_and_verbatim_in_json(store: Store) -> None:
    store.add_study({"StudyInstanceUID": "1.2.3", "StudyDate": "2020-13-45",
                     "PatientBirthDate": "unknown"})  # fmt: skip
    study = store.get_study("1.2.3")
    assert study is not None
    assert study.study_date is None and study.patient_birth_date is None
    assert study.metadata["StudyDate"] == "2020-13-45"
    assert study.metadata["PatientBirthDate"] == "unknown"


def test_add_series_metadata_merges_summaries_and_creates_the_study(store: Store) -> None:
    store.add_series_metadata(
        [
            {"StudyInstanceUID": "1.2.3", "SeriesInstanceUID": "1.2.3.1", "Modality": "CT",
             "SeriesNumber": 1, "StudyDescription": "Chest"},
            {"StudyInstanceUID": "1.2.3", "SeriesInstanceUID": "1.2.3.2", "Modality": "SR"},
        ]
    )  # fmt: skip
    study = store.get_study("1.2.3")
    assert study is not None
    assert study.study_description == "Chest"
    assert study.modalities_in_study == ("CT", "SR")
    assert [s.instances for s in study.series] == [(), ()]
    store.add_series_metadata(
        {"StudyInstanceUID": "1.2.3", "SeriesInstanceUID": "1.2.3.1", "SeriesDescription": "Ax"}
    )
    series = store.get_series("1.2.3", "1.2.3.1")
    assert series is not None
    assert (series.series_description, series.series_number) == ("Ax", 1)
    # instances then land in the summarised series, not a new one
    store.add_instances([instance("1.2.3", "1.2.3.1", "1.2.3.1.1")])
    assert count(store, "series") == 2


def test_update_metadata_for_series_merges_into_every_instance(store: Store) -> None:
    store.add_instances(
        [instance("1.2.3", "1.2.3.1", f"1.2.3.1.{n}", PixelSpacing=[1.0, 1.0], InstanceNumber=n)
         for n in (1, 2)]
    )  # fmt: skip
    patch = {"PixelSpacing": [0.5, 0.7], "SeriesDescription": "fixed"}
    store.update_metadata_for_series("1.2.3", "1.2.3.1", patch)
    series = store.get_series("1.2.3", "1.2.3.1")
    assert series is not None
    assert [i.metadata["PixelSpacing"] for i in series.instances] == [[0.5, 0.7], [0.5, 0.7]]
    assert [i.instance_number for i in series.instances] == [1, 2]
    assert series.series_description == "fixed"


def test_update_metadata_for_a_missing_series_is_a_clear_error(store: Store) -> None:
    with pytest.raises(NotFoundError, match=r"1\.2\.3\.9"):
        store.update_metadata_for_series("1.2.3", "1.2.3.9", {"PixelSpacing": [1, 1]})


def test_a_fresh_sqlite_file_is_created_and_migrated(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    with repository.connect(url) as store:
        store.add_instances([instance("1.2.3", "1.2.3.1", "1.2.3.1.1")])
    with repository.connect(url) as store:
        assert store.get_study_instance_uids() == ["1.2.3"]


def test_connect_uses_the_environment_url(tmp_path: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("DICOM_REPO_URL", f"sqlite:///{tmp_path / 'env.db'}")
    with repository.connect() as store:
        assert store.engine.url.database == str(tmp_path / "env.db")
    monkeypatch.delenv("DICOM_REPO_URL")
    monkeypatch.chdir(tmp_path)
    with repository.connect() as store:
        assert store.engine.url.database == "dicom-repo.db"
    assert (tmp_path / "dicom-repo.db").exists()


def test_lookups_pick_the_right_copy_and_reject_wrong_uids(store: Store) -> None:
    inst = instance("1.2.3", "1.2.3.1", "1.2.3.1.1", NumberOfFrames=7)
    store.add_instances([inst], data_source="a")
    store.add_instances([inst], data_source="b", wado_root="https://b.example/dicom-web")
    assert store.get_instance("1.2.3", "1.2.3.1", "1.2.3.1.1").data_source == "a"  # type: ignore[union-attr]
    from_b = store.get_instance("1.2.3", "1.2.3.1", "1.2.3.1.1", data_source="b")
    assert from_b is not None and from_b.wado_root == "https://b.example/dicom-web"
    assert store.get_instance("1.2.3", "1.2.3.9", "1.2.3.1.1") is None
    assert store.get_instance("1.2.9", "1.2.3.1", "1.2.3.1.1") is None
    assert store.get_instance("1.2.3", "1.2.3.1", "1.2.3.1.1", data_source="c") is None
    frame = from_b.image_id.replace("/frames/1", "/frames/7")
    found = store.get_instance_from_image_id(frame)
    assert found is not None and found.data_source == "b"


def test_add_instances_goes_one_way_down_never_back_through_the_store(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """store -> command -> unit of work: add_instances does not call back into the store."""

    def back_through_the_store(*args: object, **kwargs: object) -> None:
        raise AssertionError("add_instances went back through Store.add_normalized")

    monkeypatch.setattr(Store, "add_normalized", back_through_the_store)
    result = store.add_instances([{"StudyInstanceUID": "1.2", "SeriesInstanceUID": "1.2.1",
                                   "SOPInstanceUID": "1.2.1.1"}])  # fmt: skip
    assert result.added == 1
