"""Known data for the reporting tests: a small archive described in Python, stored with the
Store API, and the facts the reports must find computed from the description alone.

The archive has several patients, dates over three months, CT/MR/SEG/SR/XA/OT series, stations
and manufacturers, a private tag, one study in two data sources, a series known only from a
summary, a study claiming a modality it has no series of, and a series changed by
``update_metadata_for_series`` (its station is renamed after the instances are stored).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from pydicom import uid

import repository

ROOT = "1.2.826.0.1.3680043.10.1015"
PRIVATE_TAG = "00091001"
SR_CLASS = uid.BasicTextSRStorage


@dataclass
class Inst:
    """One instance: frames None is single-frame; rows None means no pixel data."""

    number: int
    sop_class: str
    rows: int | None = 512
    frames: int | None = None
    thickness: float | None = None
    content_date: str | None = None
    private: str | None = None
    transfer_syntax: str = uid.ExplicitVRLittleEndian


@dataclass
class Ser:
    """One series in one data source; ``instances`` empty means a summary only."""

    key: str
    modality: str
    instances: list[Inst]
    source: str = "default"
    station: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    body_part: str | None = None
    number: int = 1

    @property
    def uid(self) -> str:
        """The Series Instance UID (shared by the same key in several data sources)."""
        return f"{ROOT}.2.{self.key}"


@dataclass
class Stu:
    """One study: patient, date, the modalities it claims beyond its series, its series."""

    key: int
    patient_id: str | None
    patient_name: str | None
    date: str | None
    series: list[Ser] = field(default_factory=list)
    claims: tuple[str, ...] = ()

    @property
    def uid(self) -> str:
        """The Study Instance UID."""
        return f"{ROOT}.1.{self.key}"


def ct(n: int, thickness: float, **kw: Any) -> list[Inst]:
    """``n`` CT slices of one thickness."""
    return [Inst(i, uid.CTImageStorage, thickness=thickness, **kw) for i in range(1, n + 1)]


def archive() -> list[Stu]:
    """The archive every reporting test stores."""
    ge, siemens = ("GE MEDICAL SYSTEMS", "LightSpeed"), ("SIEMENS", "Avanto")
    ct1 = ct(5, 1.25, content_date="20240115")
    ct1[0].private = ct1[3].private = "ALPHA"
    ct3 = ct(4, 2.5, content_date="20240203")
    ct3[1].private = "BETA"
    ct4 = ct(3, 5.0, transfer_syntax=uid.JPEG2000Lossless)
    return [
        Stu(1, "P1", "Doe^Jane", "20240115", [
            Ser("11", "CT", ct1, station="CT1", manufacturer=ge[0], model=ge[1],
                body_part="CHEST"),
            Ser("12", "SEG", [Inst(1, uid.SegmentationStorage, rows=64, frames=5)], number=2),
        ]),
        Stu(2, "P1", "Doe^Jane", "20240120", [
            Ser("21", "MR", [Inst(i, uid.MRImageStorage, thickness=4.0) for i in (1, 2, 3)],
                station="MR1", manufacturer=siemens[0], model=siemens[1], body_part="HEAD"),
        ]),
        Stu(3, "P2", "Roe^Rick", "20240203", [
            Ser("31", "CT", ct3, station="CT1", manufacturer=ge[0], model=ge[1],
                body_part="CHEST"),
            Ser("32", "SR", [Inst(1, SR_CLASS, rows=None)], number=2),
        ], claims=("PT",)),
        Stu(4, "P3", "Poe^Ann", "20240228", [
            Ser("41", "CT", ct4, source="pacs", station="CT2", manufacturer=ge[0],
                model=ge[1], body_part="ABDOMEN"),
            Ser("41", "CT", ct4[:2], source="default", station="CT2", manufacturer=ge[0],
                model=ge[1], body_part="ABDOMEN"),
        ]),
        Stu(5, "P2", "Roe^Rick", "20240305", [
            Ser("51", "MR", [], station="MR1", manufacturer=siemens[0], model=siemens[1]),
        ]),
        Stu(6, None, None, None, [
            Ser("61", "XA", [Inst(1, uid.XRayAngiographicImageStorage, frames=30)],
                station="XA1"),
            Ser("62", "OT", [Inst(1, uid.SecondaryCaptureImageStorage, rows=32)], number=2),
        ]),
    ]  # fmt: skip


RENAMED_STATION = ("21", "MR1", "MR9")
"""update_metadata_for_series renames the station of series 21 from MR1 to MR9."""


def stations_after_update(archive: list[Stu]) -> None:
    """Apply the update to the description, as the store applies it to the database."""
    for study in archive:
        for series in study.series:
            if series.key == RENAMED_STATION[0]:
                series.station = RENAMED_STATION[2]


def archive_as_stored() -> list[Stu]:
    """The archive as the database holds it after :func:`store_archive` (update applied)."""
    studies = archive()
    stations_after_update(studies)
    return studies


def instance_dict(study: Stu, series: Ser, inst: Inst) -> dict[str, Any]:
    """The naturalized instance the store is given."""
    md: dict[str, Any] = {
        "StudyInstanceUID": study.uid, "SeriesInstanceUID": series.uid,
        "SOPInstanceUID": f"{series.uid}.{inst.number}", "SOPClassUID": inst.sop_class,
        "Modality": series.modality, "SeriesNumber": series.number,
        "InstanceNumber": inst.number, "TransferSyntaxUID": inst.transfer_syntax,
        "PatientID": study.patient_id, "StudyDate": study.date,
        "PatientName": {"Alphabetic": study.patient_name} if study.patient_name else None,
        "StationName": series.station, "Manufacturer": series.manufacturer,
        "ManufacturerModelName": series.model, "BodyPartExamined": series.body_part,
        "Rows": inst.rows, "Columns": inst.rows, "NumberOfFrames": inst.frames,
        "SliceThickness": inst.thickness, "ContentDate": inst.content_date,
    }  # fmt: skip
    if study.claims:  # the study claims modalities beyond those of its series
        md["ModalitiesInStudy"] = sorted({se.modality for se in study.series} | set(study.claims))
    if inst.private:
        md["00090010"] = {"vr": "LO", "Value": ["ACME_1"]}
        md[PRIVATE_TAG] = {"vr": "LO", "Value": [inst.private]}
    return {k: v for k, v in md.items() if v is not None}


def summary_dict(study: Stu, series: Ser) -> dict[str, Any]:
    """A series summary (as a QIDO-RS series search returns it) for a series without instances."""
    md = {
        "StudyInstanceUID": study.uid, "SeriesInstanceUID": series.uid,
        "Modality": series.modality, "SeriesNumber": series.number, "StationName": series.station,
        "Manufacturer": series.manufacturer, "ManufacturerModelName": series.model,
        "PatientID": study.patient_id, "StudyDate": study.date,
        "PatientName": {"Alphabetic": study.patient_name} if study.patient_name else None,
        "NumberOfSeriesRelatedInstances": 12,
    }  # fmt: skip
    return {k: v for k, v in md.items() if v is not None}


def store_archive(store: repository.Store, studies: list[Stu]) -> None:
    """Store the archive through the public API: instances, a summary, then the update."""
    for study in studies:
        for series in study.series:
            if series.instances:
                store.add_instances(
                    [instance_dict(study, series, i) for i in series.instances],
                    data_source=series.source,
                )
            else:
                store.add_series_metadata([summary_dict(study, series)], data_source=series.source)
    key, _, new = RENAMED_STATION
    study = next(s for s in studies if any(se.key == key for se in s.series))
    store.update_metadata_for_series(study.uid, f"{ROOT}.2.{key}", {"StationName": new})
    stations_after_update(studies)


def iso(date: str | None) -> dt.date | None:
    """A DICOM date of the description as a date."""
    return dt.date(int(date[:4]), int(date[4:6]), int(date[6:])) if date else None
