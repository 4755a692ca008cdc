"""Property: any naturalized dataset in stored form round-trips through the store unchanged.

``add_instances([md])`` then ``get_instance(...).metadata`` gives ``md`` back, with the same
types (an int stays an int, a float a float), on SQLite and PostgreSQL. The only change is the
store's documented normalization of naturalized input (tests/strategies.py,
:func:`expected_stored_form`): trailing DICOM padding (spaces, NULs) is removed from text.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from pydicom.dataset import Dataset
from strategies import datasets, expected_stored_form, strictly_equal

from repository import Store
from repository.normalize import to_dicom_json

PROPERTY_SETTINGS = settings(
    max_examples=50,
    deadline=None,
    derandomize=True,  # the same examples in every run: CI stays deterministic
    database=None,  # no .hypothesis folder is read or written
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _read_back(store: Store, md: dict[str, Any]) -> dict[str, Any]:
    uids = (md["StudyInstanceUID"], md["SeriesInstanceUID"], md["SOPInstanceUID"])
    inst = store.get_instance(*uids)
    assert inst is not None
    return dict(inst.metadata)


def test_naturalized_datasets_round_trip_unchanged(module_store: Store) -> None:
    @PROPERTY_SETTINGS
    @given(md=datasets())
    def round_trip(md: dict[str, Any]) -> None:
        result = module_store.add_instances([md])
        assert (result.added, result.already_present) == (1, 0)
        stored = _read_back(module_store, md)
        expected = expected_stored_form(md)
        assert strictly_equal(stored, expected), (stored, expected)

    round_trip()


def test_stored_form_re_added_elsewhere_is_stored_identically(module_store: Store) -> None:
    """What the store returns is valid input: re-adding it (under new UIDs, as when copying a
    study between stores) stores exactly the same metadata."""

    @PROPERTY_SETTINGS
    @given(md=datasets(), copy=datasets(depth=0))
    def copy_round_trip(md: dict[str, Any], copy: dict[str, Any]) -> None:
        module_store.add_instances([md])
        stored = _read_back(module_store, md)
        moved = {**stored, **{k: copy[k] for k in ("StudyInstanceUID", "SeriesInstanceUID",
                                                   "SOPInstanceUID")}}  # fmt: skip
        module_store.add_instances([moved])
        expected = expected_stored_form(moved)
        assert strictly_equal(_read_back(module_store, moved), expected)

    copy_round_trip()


# --------------------------------------------------------------------------- regressions
# Each was found by the properties above, minimized, and fixed.


def test_a_private_sequence_read_from_a_file_can_be_added_again(store: Store) -> None:
    """Found by the round trip (``{"00091000": {"vr": "SQ", "Value": [{"RetrieveAETitle":
    None}]}}`` was rejected): the store returns a private sequence's items naturalized, and
    refused them as input ("DICOM JSON key 'RetrieveAETitle' is not an 8-hex-digit tag"), so
    the metadata of a file with a private sequence could not be copied to another store."""
    ds = Dataset()
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = "1.2.3", "1.2.3.4", "1.2.3.5"
    item = Dataset()
    item.add_new(0x00080054, "AE", "ARCHIVE")
    ds.add_new(0x00091000, "SQ", [item])
    store.add_instances([ds])
    stored = _read_back(store, {"StudyInstanceUID": "1.2.3", "SeriesInstanceUID": "1.2.3.4",
                                "SOPInstanceUID": "1.2.3.5"})  # fmt: skip
    assert stored["00091000"] == {"vr": "SQ", "Value": [{"RetrieveAETitle": "ARCHIVE"}]}

    copy = {**stored, "SOPInstanceUID": "1.2.3.6"}
    store.add_instances([copy])
    assert _read_back(store, copy) == copy


@pytest.mark.parametrize("value", [1e16, -1.5e17, 2.0**64, 1e300, 1.2345678901234568e16])
def test_a_large_integral_float_stays_a_float(store: Store, value: float) -> None:
    """Found by the round trip on PostgreSQL (``{"00091000": {"vr": "DS", "Value":
    [1e+16]}}``): orjson writes 1e16 as ``1e+16``, and JSONB kept it as the numeric
    10000000000000000, which read back as the int 10000000000000000 (a DS value of 16
    characters, ``1e16`` or ``1.5e17``, is legal DICOM). Such floats are now written out with
    ``.0`` (repository.serialized.to_json), on every write path; a string that looks like one
    is left as it is."""
    md = {"StudyInstanceUID": "1.2.3", "SeriesInstanceUID": "1.2.3.4", "SOPInstanceUID": "1.2.3.5",
          "SliceThickness": value, "ImageComments": "1e+16 \\\" 2e+20",
          "PixelSpacing": [value, 0.5]}  # fmt: skip
    store.add_instances([md])
    back = _read_back(store, md)
    assert strictly_equal(back, md)
    study = store.get_study("1.2.3")
    assert study is not None
    (series,) = study.series
    assert strictly_equal(series.instances[0].metadata["SliceThickness"], value)


def test_a_public_tag_given_as_dicom_json_is_stored_under_its_keyword(store: Store) -> None:
    """Found while writing the round trip: a public element given by its hex tag in DICOM JSON
    form inside a naturalized dict (``"00100010": {"vr": "PN", "Value": [...]}``) was stored
    under its keyword with the DICOM JSON wrapper left in (``PatientName: {"vr": "PN",
    "Value": [...]}``), so the study's patient_name column was empty. It is naturalized as a
    private element in that form is."""
    md = {"StudyInstanceUID": "1.2.3", "SeriesInstanceUID": "1.2.3.4", "SOPInstanceUID": "1.2.3.5",
          "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]},
          "00280030": {"vr": "DS", "Value": [0.5, 0.5]}}  # fmt: skip
    store.add_instances([md])
    stored = _read_back(store, md)
    assert stored["PatientName"] == {"Alphabetic": "Doe^Jane"}
    assert stored["PixelSpacing"] == [0.5, 0.5]
    study = store.get_study("1.2.3")
    assert study is not None and study.patient_name == "Doe^Jane"  # the typed column


def test_stored_form_sent_as_dicom_json_is_stored_identically(module_store: Store) -> None:
    """``to_dicom_json`` of the stored form (what a DICOMweb server built on the store would
    send) is accepted as input and stored exactly as the naturalized form is."""

    @PROPERTY_SETTINGS
    @given(md=datasets())
    def dicom_json_round_trip(md: dict[str, Any]) -> None:
        canonical = expected_stored_form(md)  # no padding: the stored form itself
        module_store.add_instances([to_dicom_json(canonical)])
        stored = _read_back(module_store, canonical)
        assert strictly_equal(stored, expected_stored_form(canonical))

    dicom_json_round_trip()
