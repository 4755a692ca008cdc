"""Input that OHIF produces is accepted and stored as a file ingest stores the same data.

Each test names the OHIF function whose input it feeds: ``DicomMetadataStore.addInstances``
(from dcmjs's ``naturalizeDataset``, OHIF's ``DICOMFileLoader.getDataset``),
``addSeriesMetadata`` and ``addStudy``. The whole pydicom corpus through dcmjs itself is in
tests/test_dcmjs_input.py.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from repository import Store
from repository.errors import InvalidValueError
from repository.models import AddResult
from repository.normalize import BULK_DATA_THRESHOLD

UIDS = {"StudyInstanceUID": "1.2.3", "SeriesInstanceUID": "1.2.3.4", "SOPInstanceUID": "1.2.3.4.5"}


def _stored(store: Store, instance: Any, source: str) -> dict[str, Any]:
    store.add_instances([instance], data_source=source)
    found = store.get_instance("1.2.3", "1.2.3.4", "1.2.3.4.5", data_source=source)
    assert found is not None
    return dict(found.metadata)


def _dataset() -> Dataset:
    """The same instance as :data:`NON_CANONICAL`, as pydicom reads it from a file."""
    ds = Dataset()
    for key, value in UIDS.items():
        setattr(ds, key, value)
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.Modality = "CT"
    ds.PixelSpacing = [0.5, 0.5]
    ds.ImagePositionPatient = [0, 0, 3]
    ds.SliceThickness = "3"
    ds.InstanceNumber = "7"
    ds.Rows = 512
    ds.RecommendedDisplayFrameRateInFloat = 2.5
    ds.PatientName = "Doe^John"
    ds.ReferringPhysicianName = "Roe^Jane"
    ds.AccessionNumber = ""
    ds.PatientBirthDate = ""
    ds.StudyDate = "20240131"
    ds.FrameIncrementPointer = 0x00181063
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPInstanceUID = UIDS["SOPInstanceUID"]
    return ds


NON_CANONICAL = {
    **UIDS,
    "_vrMap": {"PixelData": "OW"},
    "SOPClassUID": "1.2.840.10008.5.1.4.1.1.2",
    "Modality": "CT",
    "PixelSpacing": "0.5\\0.5",  # DS backslash-joined
    "ImagePositionPatient": "0\\0\\3",
    "SliceThickness": "3",  # DS as a string
    "InstanceNumber": "7",  # IS as a string
    "Rows": "512",  # US as a string
    "RecommendedDisplayFrameRateInFloat": "2.5",  # FL as a string
    "PatientName": "Doe^John",  # PN as a string
    "ReferringPhysicianName": [{"Alphabetic": "Roe^Jane"}],  # dcmjs's one-element list
    "AccessionNumber": "",
    "PatientBirthDate": [],
    "StudyDate": "20240131",
    "FrameIncrementPointer": 0x00181063,  # AT as a number
    "PixelData": [{}],  # what an ArrayBuffer becomes in JSON
    "_meta": {
        "TransferSyntaxUID": {"vr": "UI", "Value": [ExplicitVRLittleEndian]},
        "MediaStorageSOPInstanceUID": {"vr": "UI", "Value": [UIDS["SOPInstanceUID"]]},
    },
    "AvailableTransferSyntaxUID": ExplicitVRLittleEndian,
    "url": "dicomfile:0",
}


def test_non_canonical_naturalized_values_are_stored_as_file_ingest_stores_them(
    store: Store,
) -> None:
    """DicomMetadataStore.addInstances with dcmjs-style values (OHIF DICOMFileLoader)."""
    from_file = _stored(store, _dataset(), "file")
    from_ohif = _stored(store, NON_CANONICAL, "ohif")
    from_ohif.pop("PixelData")  # absent from the Dataset: its value did not survive JSON
    assert from_ohif == from_file
    assert from_ohif["PixelSpacing"] == [0.5, 0.5]
    assert from_ohif["InstanceNumber"] == 7 and from_ohif["Rows"] == 512
    assert from_ohif["PatientName"] == {"Alphabetic": "Doe^John"}
    assert from_ohif["FrameIncrementPointer"] == "00181063"
    assert from_ohif["AccessionNumber"] is None and from_ohif["StudyDate"] == "20240131"
    assert from_ohif["TransferSyntaxUID"] == ExplicitVRLittleEndian
    for key in ("_vrMap", "_meta", "url", "AvailableTransferSyntaxUID"):
        assert key not in from_ohif
    instance = store.get_instance("1.2.3", "1.2.3.4", "1.2.3.4.5", data_source="ohif")
    assert instance is not None and instance.image_id == "dicomfile:0"  # OHIF's url
    assert instance.instance_number == 7 and instance.transfer_syntax_uid == ExplicitVRLittleEndian


def test_bare_private_values_take_their_vr_from_vrmap_or_the_value(store: Store) -> None:
    """dcmjs's naturalizeDataset keeps private tags as bare values under their tag."""
    md = _stored(store, {**UIDS, "00091001": "abc", "00091002": [1, 2], "00091003": 2.5,
                         "00091004": "x", "_vrMap": {"00091004": "SH"}}, "ohif")  # fmt: skip
    assert md["00091001"] == {"vr": "LO", "Value": ["abc"]}
    assert md["00091002"] == {"vr": "SL", "Value": [1, 2]}
    assert md["00091003"] == {"vr": "FD", "Value": [2.5]}
    assert md["00091004"] == {"vr": "SH", "Value": ["x"]}


def test_bare_private_values_take_the_vr_of_their_creators_private_dictionary(
    store: Store,
) -> None:
    """As pydicom reads them: through the block's private creator and pydicom's private
    dictionary (GEMS_IDEN_01 0009xx02 is SH, 0009xx27 SL; GEMS_ACQU_01 0019xx11 SS), in a
    sequence item through the item's own creator; then, for a value the dictionary's VR cannot
    hold or an element it does not know, by the value's type ("" is empty text, LO)."""
    item = {"00190010": "GEMS_ACQU_01", "00191011": 2}
    md = _stored(store, {**UIDS, "00090010": "GEMS_IDEN_01", "00091002": "CT01",
                         "00091027": 862399669, "00091004": 5, "00091099": "", "00091098": None,
                         "00091030": "", "00111011": [item]}, "dcmjs")  # fmt: skip
    assert md["00090010"] == {"vr": "LO", "Value": ["GEMS_IDEN_01"]}
    assert md["00091002"] == {"vr": "SH", "Value": ["CT01"]}
    assert md["00091027"] == {"vr": "SL", "Value": [862399669]}
    assert md["00091030"] == {"vr": "SH"}
    assert md["00091004"] == {"vr": "SL", "Value": [5]}  # SH in the dictionary, not a number
    assert md["00091099"] == {"vr": "LO"}
    assert md["00091098"] == {"vr": "UN"}
    assert md["00111011"]["Value"][0]["00191011"] == {"vr": "SS", "Value": [2]}


def test_dcmjs_names_of_retired_and_repeating_group_elements_are_accepted(store: Store) -> None:
    """dcmjs names retired elements RETIRED_<Keyword>, overlays by the group's keyword."""
    md = _stored(store, {**UIDS, "RETIRED_StudyStatusID": "DONE", "OverlayRows": 4}, "ohif")
    assert md["StudyStatusID"] == "DONE"
    assert md["60000010"] == {"vr": "US", "Value": [4]}


@pytest.mark.parametrize("size", [BULK_DATA_THRESHOLD // 2, BULK_DATA_THRESHOLD * 4])
def test_inline_binary_is_kept_inline_never_a_null_reference(store: Store, size: int) -> None:
    """DICOM JSON InlineBinary, small and above the bulk-data threshold (no bulk store)."""
    data = base64.b64encode(bytes(range(256)) * (size // 256)).decode()
    json_instance = {f"{0x0020000D:08X}": {"vr": "UI", "Value": ["1.2.3"]},
                     f"{0x0020000E:08X}": {"vr": "UI", "Value": ["1.2.3.4"]},
                     f"{0x00080018:08X}": {"vr": "UI", "Value": ["1.2.3.4.5"]},
                     "00420011": {"vr": "OB", "InlineBinary": data}}  # fmt: skip
    assert _stored(store, json_instance, "json")["EncapsulatedDocument"] == {"InlineBinary": data}
    natural = {**UIDS, "EncapsulatedDocument": {"InlineBinary": data}}
    assert _stored(store, natural, "natural")["EncapsulatedDocument"] == {"InlineBinary": data}


def test_bad_binary_and_values_are_rejected_naming_the_element(store: Store) -> None:
    with pytest.raises(InvalidValueError, match=r"EncapsulatedDocument.*base64"):
        store.add_instances([{**UIDS, "EncapsulatedDocument": {"InlineBinary": "%%%"}}])
    with pytest.raises(InvalidValueError, match=r"Rows.*'abc' is not a US number"):
        store.add_instances([{**UIDS, "Rows": "abc"}])
    with pytest.raises(InvalidValueError, match="_vrMap"):
        store.add_instances([{**UIDS, "_vrMap": "OW"}])
    assert store.get_study_instance_uids() == []


def test_empty_inputs_are_no_ops(store: Store) -> None:
    """OHIF's addInstances([]) and addSeriesMetadata([]) do nothing."""
    assert store.add_instances([]) == AddResult(0, 0)
    store.add_series_metadata([])
    assert store.get_study_instance_uids() == [] and store.changes() == []


def test_add_study_takes_every_field_ohif_copies(store: Store) -> None:
    """DicomMetadataStore.addStudy copies PatientID, PatientName, StudyDate,
    ModalitiesInStudy, StudyDescription, AccessionNumber and NumInstances."""
    created = store.add_study({"StudyInstanceUID": "1.2.3", "PatientID": "P1",
                               "PatientName": "Doe^John", "StudyDate": "20240131",
                               "ModalitiesInStudy": ["CT", "SR"], "StudyDescription": "Chest",
                               "AccessionNumber": "A1", "NumInstances": 12})  # fmt: skip
    assert created
    study = store.get_study("1.2.3")
    assert study is not None
    assert (study.patient_id, study.patient_name, study.accession_number) == ("P1", "Doe^John",
                                                                              "A1")  # fmt: skip
    assert study.modalities_in_study == ("CT", "SR")
    assert study.metadata["NumberOfStudyRelatedInstances"] == 12
    with pytest.raises(InvalidValueError, match="NumInstances"):
        store.add_study({"StudyInstanceUID": "1.2.4", "NumInstances": "many"})


def test_bulk_data_references_of_dicomweb_instances_are_kept(store: Store) -> None:
    """OHIF's DicomWebDataSource naturalizes WADO-RS metadata: bulk data stays a reference."""
    uri = "https://pacs.example/dicom-web/studies/1.2.3/series/1.2.3.4/instances/1.2.3.4.5/bulk"
    md = _stored(store, {**UIDS, "_vrMap": {"PixelData": "OW"}, "PixelData": {"BulkDataURI": uri},
                         "wadoRoot": "https://pacs.example/dicom-web"}, "web")  # fmt: skip
    assert md["PixelData"] == {"BulkDataURI": uri}
    with pytest.raises(InvalidValueError, match="PixelData"):
        store.add_instances([{**UIDS, "PixelData": {"BulkDataURI": None}}], data_source="bad")
