"""Every imageId form OHIF builds finds its instance; get_image_ids lists frames as OHIF does.

Forms: ``getWADORSImageId`` (``wadors:.../frames/N``), ``buildInstanceWadoUrl`` behind
``dicomweb:`` (``&frame=N`` for frames), ``DicomLocalDataSource.getImageIdsForInstance``
(``dicomfile:...&frame=N``); ``getImageIdsForDisplaySet`` gives one id per frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from repository import InvalidValueError, Store
from repository.ingest import ingest

CT = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"
SR = "1.2.840.10008.5.1.4.1.1.88.22"
WADO_URI = "http://pacs.example/wado"
WADO_RS = "http://pacs.example/dicom-web"


def _instance(series: str, number: int, sop_class: str = CT, **extra: Any) -> dict[str, Any]:
    return {"StudyInstanceUID": "1.2.3", "SeriesInstanceUID": f"1.2.3.{series}",
            "SOPInstanceUID": f"1.2.3.{series}.{number}", "SOPClassUID": sop_class,
            "Modality": "SR" if sop_class == SR else "CT", "InstanceNumber": number,
            "Rows": 4, "Columns": 4, **extra}  # fmt: skip


def _sop(store: Store, image_id: str) -> str | None:
    found = store.get_instance_from_image_id(image_id)
    return None if found is None else found.sop_instance_uid


def test_wadors_ids_of_every_frame_resolve_and_others_do_not(store: Store) -> None:
    store.add_instances([_instance("1", 1, ENHANCED_CT, NumberOfFrames=3)], wado_root=WADO_RS)
    base = f"wadors:{WADO_RS}/studies/1.2.3/series/1.2.3.1/instances/1.2.3.1.1"
    instance = store.get_instance("1.2.3", "1.2.3.1", "1.2.3.1.1")
    assert instance is not None and instance.image_id == f"{base}/frames/1"
    for frame in (1, 2, 3):
        assert _sop(store, f"{base}/frames/{frame}") == "1.2.3.1.1"
    assert _sop(store, base) == "1.2.3.1.1"
    assert _sop(store, f"{base}/frames/4") is None  # beyond NumberOfFrames
    assert _sop(store, f"{base}/frames/0") is None


def test_wado_uri_ids_are_built_for_series_lists_with_a_wado_uri_root(store: Store) -> None:
    """buildInstanceWadoUrl: requestType=WADO&studyUID&seriesUID&objectUID&contentType&
    transferSyntax=*; a frame adds &frame=N."""
    store.add_instances([_instance("1", 1, ENHANCED_CT, NumberOfFrames=2)], wado_uri=WADO_URI)
    expected = (f"dicomweb:{WADO_URI}?requestType=WADO&studyUID=1.2.3&seriesUID=1.2.3.1"
                "&objectUID=1.2.3.1.1&contentType=application/dicom&transferSyntax=*")  # fmt: skip
    instance = store.get_instance("1.2.3", "1.2.3.1", "1.2.3.1.1")
    assert instance is not None and instance.image_id == expected
    assert _sop(store, expected) == "1.2.3.1.1"
    assert _sop(store, f"{expected}&frame=2") == "1.2.3.1.1"
    assert _sop(store, f"{expected}&frame=3") is None
    assert store.get_image_ids("1.2.3") == [f"{expected}&frame=1", f"{expected}&frame=2"]


def test_an_id_stored_with_frame_1_is_found_with_frame_2(store: Store) -> None:
    stored = "dicomweb:http://h/wado?objectUID=1.2.3.1.1&frame=1"
    store.add_instances([_instance("1", 1, ENHANCED_CT, NumberOfFrames=2, imageId=stored)])
    assert _sop(store, stored.replace("frame=1", "frame=2")) == "1.2.3.1.1"
    assert _sop(store, stored.replace("frame=1", "frame=3")) is None


def test_dicomfile_ids_resolve_with_and_without_a_frame(store: Store, tmp_path: Path) -> None:
    ds = pydicom.Dataset()
    for key, value in _instance("1", 1, ENHANCED_CT, NumberOfFrames=2).items():
        setattr(ds, key, value)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path = tmp_path / "mf.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert ingest(store, [path], workers=1).ingested == 1
    image_id = f"dicomfile:{path.resolve()}"
    assert _sop(store, image_id) == "1.2.3.1.1"
    assert _sop(store, f"{image_id}&frame=2") == "1.2.3.1.1"
    assert _sop(store, f"{image_id}&frame=3") is None
    assert store.get_image_ids("1.2.3") == [f"{image_id}&frame=1", f"{image_id}&frame=2"]


def test_get_image_ids_gives_one_id_per_frame_in_display_order(store: Store) -> None:
    """getImageIdsForDisplaySet over the study's display sets; SR has no images."""
    store.add_instances([_instance("1", n) for n in (3, 1, 2)]
                        + [_instance("2", 1, ENHANCED_CT, NumberOfFrames=3),
                           _instance("3", 1, SR)], wado_root=WADO_RS)  # fmt: skip

    def wadors(series: str, number: int, frame: int = 1) -> str:
        return (f"wadors:{WADO_RS}/studies/1.2.3/series/1.2.3.{series}/instances/"
                f"1.2.3.{series}.{number}/frames/{frame}")  # fmt: skip

    ct = [wadors("1", n) for n in (1, 2, 3)]
    enhanced = [wadors("2", 1, frame) for frame in (1, 2, 3)]
    assert sorted(store.get_image_ids("1.2.3")) == sorted(ct + enhanced)
    assert store.get_image_ids("1.2.3", "1.2.3.1") == ct
    assert store.get_image_ids("1.2.3", "1.2.3.2") == enhanced
    assert store.get_image_ids("1.2.3", "1.2.3.3") == []
    for image_id in ct + enhanced:
        assert store.get_instance_from_image_id(image_id) is not None


def test_get_image_ids_of_an_unknown_study_is_an_error(store: Store) -> None:
    from repository.errors import NotFoundError

    with pytest.raises(NotFoundError, match=r"1\.2\.9"):
        store.get_image_ids("1.2.9")


def test_an_instance_of_more_frames_than_can_be_listed_is_refused_at_once(store: Store) -> None:
    # NumberOfFrames up to 2^31 - 1 is a legal IS: listing an id per frame would never return
    store.add_instances([_instance("1", 1, ENHANCED_CT, NumberOfFrames="2147483647")],
                        wado_root=WADO_RS)  # fmt: skip
    with pytest.raises(InvalidValueError, match="NumberOfFrames 2147483647 is more than"):
        store.get_image_ids("1.2.3")
    store.add_instances([_instance("2", 1, ENHANCED_CT, NumberOfFrames=3)], wado_root=WADO_RS)
    assert len(store.get_image_ids("1.2.3", "1.2.3.2")) == 3
