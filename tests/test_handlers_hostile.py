"""Odd but storable metadata never breaks what the store builds from it, on both databases:
display sets and imageIds are built (an odd instance left out or unsupported as OHIF's code
would leave it), never a Python error; input nested too deeply is refused with a clear error.
Found by fuzzing the store."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from repository import InvalidValueError, Store

CT, SEG, PDF, KO = ("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.66.4",
                    "1.2.840.10008.5.1.4.1.1.104.1", "1.2.840.10008.5.1.4.1.1.88.59")  # fmt: skip
STUDY = "1.2.826.0.1.77.1"
_numbers = itertools.count(1)


def _instance(
    series: str, sop_class: str = CT, modality: str = "CT", **extra: Any
) -> dict[str, Any]:
    number = next(_numbers)
    return {"StudyInstanceUID": STUDY, "SeriesInstanceUID": series,
            "SOPInstanceUID": f"{series}.{number}", "SOPClassUID": sop_class,
            "Modality": modality, "Rows": 4, "Columns": 4, "InstanceNumber": number,
            "ImagePositionPatient": [0, 0, number],
            "ImageOrientationPatient": [1, 0, 0, 0, 1, 0], **extra}  # fmt: skip


def _handlers(store: Store) -> dict[str, str]:
    return {ds.series_instance_uid: ds.sop_class_handler_id for ds in store.get_display_sets(STUDY)}


def test_odd_values_leave_images_in_their_stacks(store: Store) -> None:
    store.add_instances([
        _instance("1.2.826.0.1.77.2", InstanceNumber="9" * 5000),  # past int()'s 4300 digits
        _instance("1.2.826.0.1.77.2"),
        _instance("1.2.826.0.1.77.3", Modality=["CT", "MR"]),  # several values
        _instance("1.2.826.0.1.77.4", NumberOfFrames="Infinity"),  # kept verbatim
    ], wado_root="http://x/dicom-web")  # fmt: skip
    handlers = _handlers(store)
    assert set(handlers.values()) == {"stack"}, handlers
    assert len(store.get_image_ids(STUDY)) == 4


def test_a_reference_uid_stored_as_several_values_references_nothing(store: Store) -> None:
    series = "1.2.826.0.1.77.5"
    seg = _instance("1.2.826.0.1.77.6", SEG, "SEG", ReferencedSeriesSequence=[{
        "SeriesInstanceUID": [series, "1.2.3"],
        "ReferencedInstanceSequence": [{"ReferencedSOPInstanceUID": ["1.2.3", "1.2.4"]}],
    }])  # fmt: skip
    store.add_instances([_instance(series), _instance(series), seg])
    assert len(store.get_display_sets(STUDY)) == 2
    assert len(store.get_image_ids(STUDY)) == 2


def test_display_sets_without_images_list_no_image_ids(store: Store) -> None:
    store.add_instances([
        _instance("1.2.826.0.1.77.7", PDF, "DOC", NumberOfFrames="2147483647"),
        _instance("1.2.826.0.1.77.8", KO, "KO"),
        _instance("1.2.826.0.1.77.9"),
    ], wado_root="http://x/dicom-web")  # fmt: skip
    assert len(store.get_display_sets(STUDY)) == 3
    (image_id,) = store.get_image_ids(STUDY)  # the CT's only (as OHIF: no `images`, no ids)
    assert "1.2.826.0.1.77.9" in image_id
    huge = image_id.replace("/frames/1", "/frames/" + "9" * 5000)
    assert store.get_instance_from_image_id(huge) is None


@pytest.mark.parametrize("form", ["naturalized", "dicom json"])
def test_sequences_nested_past_the_limit_are_refused_clearly(store: Store, form: str) -> None:
    item: dict[str, Any] = {"ValueType": "TEXT"}
    for _ in range(90):
        item = {"ValueType": "CONTAINER", "ContentSequence": [item]}
    md: dict[str, Any] = _instance("1.2.826.0.1.77.10", ContentSequence=[item])
    if form == "dicom json":
        from repository.normalize import to_dicom_json

        md = to_dicom_json({**md, "ContentSequence": [item]})
    with pytest.raises(InvalidValueError, match="nested more than 80 levels deep"):
        store.add_instances([md])
    assert store.get_study(STUDY) is None
