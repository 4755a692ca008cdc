"""One rule per kind of value, the same wherever the value enters."""

from __future__ import annotations

import re
from pathlib import Path

import data_store  # type: ignore[import-untyped]
import pydicom
import pytest
from conftest import PYDICOM_FILES
from pydicom.uid import UID

from repository import InvalidUIDError, InvalidValueError, Store
from repository.normalize import naturalize_dataset, naturalize_dicom_json
from repository.sop_class_handlers.handler import InvalidHandlerError, SopClassHandler
from repository.sources import DicomWebSource
from repository.validation import check_uid, is_uid, strip_credentials

PYDICOM_DATA = Path(data_store.__file__).parent / "data"


def _uids(ds: pydicom.Dataset) -> list[str]:
    found = []
    for elem in ds.iterall():
        if elem.VR == "UI" and elem.value:
            values = elem.value if isinstance(elem.value, list) else [elem.value]
            found += [str(v).rstrip("\x00 ") for v in values if isinstance(v, str)]
    return found


def test_every_uid_in_the_pydicom_test_corpora_passes_the_uid_rule() -> None:
    checked, leading_zero = 0, 0
    for root in (PYDICOM_FILES, PYDICOM_DATA):
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            try:
                uids = _uids(pydicom.dcmread(path, stop_before_pixels=True, force=True))
            except Exception:
                continue  # not DICOM, or deliberately broken past reading
            for uid in uids:
                if re.fullmatch("[0-9a-f]{64}", uid):
                    assert not is_uid(uid)  # anonymized with hex digests in place of UIDs
                    continue
                assert is_uid(uid), (path.name, uid)
                checked += 1
                leading_zero += not UID(uid).is_valid  # pydicom's strict PS3.5 check
    assert checked > 1000
    assert leading_zero > 0  # the tolerance is needed for these files


@pytest.mark.parametrize("bad", ["", "1..2", ".1.2", "1.2.", "1.2.a", "1" * 65, "1.2 3"])
def test_malformed_uids_are_refused_with_the_keyword_named(bad: str) -> None:
    with pytest.raises(InvalidUIDError, match="SOPClassUID"):
        check_uid(bad, "SOPClassUID")


def test_a_leading_zero_component_is_tolerated_everywhere() -> None:
    # PS3.5 forbids it, real data has it: the store and the handler registry agree on it.
    assert check_uid("1.2.03\x00", "SOPClassUID") == "1.2.03"
    handler = SopClassHandler("zero", ("1.2.03",), lambda instances, context: [])
    assert handler.claims == {"1.2.03"}
    with pytest.raises(InvalidHandlerError):
        SopClassHandler("bad", ("1..2",), lambda instances, context: [])


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://u:p@h:1/a?b=c", "https://h:1/a?b=c"),
        ("http://alice@pacs/dicom-web", "http://pacs/dicom-web"),
        ("postgresql+psycopg://bob:s%40cret@db:5432/x", "postgresql+psycopg://db:5432/x"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
        ("https://pacs/dicom-web", "https://pacs/dicom-web"),
    ],
)
def test_credentials_are_stripped_from_any_url(url: str, expected: str) -> None:
    assert strip_credentials(url) == expected


def test_database_errors_never_show_the_password(tmp_path: Path) -> None:
    import repository

    with pytest.raises(repository.RepositoryError) as error:
        repository.connect("postgresql+psycopg://bob:hunter2@127.0.0.1:1/none")
    assert "hunter2" not in str(error.value) and "bob" not in str(error.value)


@pytest.mark.parametrize("name", ["", "   ", "x" * 65])
def test_store_and_dicomweb_source_refuse_a_bad_data_source_name_alike(
    name: str, store: Store
) -> None:
    instance = {"StudyInstanceUID": "1.2", "SeriesInstanceUID": "1.2.1", "SOPInstanceUID": "1.3"}
    with pytest.raises(InvalidValueError, match="1-64 characters"):
        store.add_instances([instance], data_source=name)
    with pytest.raises(InvalidValueError, match="1-64 characters"):
        DicomWebSource("http://pacs/dicom-web", name=name or " ")


def test_one_scalar_converter_gives_one_stored_form_for_both_inputs() -> None:
    ds = pydicom.Dataset()
    ds.SliceThickness = "1.50"
    ds.InstanceNumber = "7"
    ds.PatientName = "Doe^Jane"
    ds.ImageType = ["ORIGINAL", "", "AXIAL"]
    as_json = {
        "00180050": {"vr": "DS", "Value": ["1.50"]},
        "00200013": {"vr": "IS", "Value": ["7"]},
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]},
        "00080008": {"vr": "CS", "Value": ["ORIGINAL", "", "AXIAL"]},
    }
    assert naturalize_dataset(ds) == naturalize_dicom_json(as_json)
    assert naturalize_dataset(ds)["ImageType"] == ["ORIGINAL", None, "AXIAL"]
