"""A study whose files disagree on the patient keeps the first patient, and says so: in the
AddResult, the INSTANCES_ADDED change payload and the ingest summary."""

from __future__ import annotations

from pathlib import Path

import dicom_factory as factory
from click.testing import CliRunner
from pydicom.uid import generate_uid

import repository
from repository.cli import main

STUDY, SERIES = "1.2.3", "1.2.3.4"


def _instance(sop: str, patient_id: str, name: str) -> dict[str, object]:
    return {"StudyInstanceUID": STUDY, "SeriesInstanceUID": SERIES, "SOPInstanceUID": sop,
            "PatientID": patient_id, "PatientName": name}  # fmt: skip


def test_a_second_patient_in_a_study_is_stored_but_reported(store: repository.Store) -> None:
    first = store.add_instances([_instance("1.1", "P1", "Doe^Jane")])
    assert first.patient_conflicts == ()
    second = store.add_instances(
        [_instance("1.2", "P1", "Doe^Jane"), _instance("1.3", "P2", "Roe^Richard")]
    )
    [(sop, why)] = second.patient_conflicts
    assert sop == "1.3"
    assert "PatientID 'P2'" in why and "'P1'" in why and "PatientName 'Roe^Richard'" in why
    study = store.get_study(STUDY)
    assert study is not None
    assert (study.patient_id, study.patient_name) == ("P1", "Doe^Jane")  # the first wins
    instance = store.get_instance(STUDY, SERIES, "1.3")
    assert instance is not None and instance.metadata["PatientID"] == "P2"  # kept as given
    last = store.changes()[-1]
    assert last.kind == repository.EVENTS.INSTANCES_ADDED
    assert last.payload["count"] == 2
    assert last.payload["patient_conflicts"] == [why]
    assert "patient_conflicts" not in store.changes()[1].payload  # none when all agree


def test_ingest_summary_warns_about_files_of_another_patient(db_url: str, tmp_path: Path) -> None:
    series = generate_uid()
    for number, patient in enumerate(["FACTORY-1", "FACTORY-1", "INTRUDER"], start=1):
        ds = factory.ct_slice(series, number, float(number))
        ds.PatientID = patient
        factory.write(ds, tmp_path / patient)  # the intruder comes in a later ingest
    for folder in ("FACTORY-1", "INTRUDER"):
        result = CliRunner().invoke(main, ["--db", db_url, "ingest", str(tmp_path / folder),
                                           "--workers", "1", "-q"])  # fmt: skip
        assert result.exit_code == 0, result.output
    assert "1 ingested, 0 already present, 0 skipped, 1 patient conflicts" in result.output
    assert "warning" in result.output and "PatientID 'INTRUDER'" in result.output
