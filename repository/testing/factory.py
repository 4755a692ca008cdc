"""Realistic studies for tests: pydicom Datasets, naturalized dicts or Part-10 files.

Image series get geometry that makes them reconstructable (CT, MR and PT: parallel axial slices
at an even spacing); SEG and SR series reference the first image series of their study, as
real derived objects do. UIDs are valid and fresh; everything else is deterministic.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import generate_uid

from ..normalize import naturalize_dataset

IMAGE_CLASSES = {
    "CT": uid.CTImageStorage,
    "MR": uid.MRImageStorage,
    "PT": uid.PositronEmissionTomographyImageStorage,
    "CR": uid.ComputedRadiographyImageStorage,
    "DX": uid.DigitalXRayImageStorageForPresentation,
    "MG": uid.DigitalMammographyXRayImageStorageForPresentation,
    "US": uid.UltrasoundImageStorage,
    "OT": uid.SecondaryCaptureImageStorage,
}
"""Image modalities the factory makes, with their SOP classes."""

DERIVED = ("SEG", "SR")
"""Derived modalities: one series each, referencing the study's first image series."""

VOLUMES = frozenset({"CT", "MR", "PT"})


@dataclass
class DicomFactory:
    """Builds studies of ``rows`` x ``columns`` images; each study gets its own patient."""

    rows: int = 16
    columns: int = 16
    counter: int = field(default=0, init=False)

    def study(
        self,
        modalities: Sequence[str] = ("CT",),
        *,
        series: int = 1,
        instances: int = 10,
        pixels: bool = False,
        **attributes: Any,
    ) -> list[dict[str, Any]]:
        """One study as naturalized dicts (what ``Store.add_instances`` takes).

        ``series`` image series cycle through the image modalities given, ``instances`` each;
        every derived modality (SEG, SR) adds one series. ``attributes`` (keywords) override
        patient and study attributes, e.g. ``PatientName="Doe^Jane"``.
        """
        return [
            naturalize_dataset(ds)
            for ds in self.datasets(modalities, series=series, instances=instances,
                                    pixels=pixels, **attributes)
        ]  # fmt: skip

    def files(
        self, folder: str | Path, modalities: Sequence[str] = ("CT",), **kw: Any
    ) -> list[Path]:
        """The same study written as Part-10 files (with pixel data) under ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for ds in self.datasets(modalities, pixels=True, **kw):
            path = folder / f"{ds.SOPInstanceUID}.dcm"
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
        return paths

    def datasets(
        self,
        modalities: Sequence[str] = ("CT",),
        *,
        series: int = 1,
        instances: int = 10,
        pixels: bool = False,
        **attributes: Any,
    ) -> list[Dataset]:
        """The study as pydicom Datasets (with file meta)."""
        images = [m for m in modalities if m not in DERIVED] or ["CT"]
        unknown = [m for m in images if m not in IMAGE_CLASSES]
        if unknown:
            known = ", ".join([*IMAGE_CLASSES, *DERIVED])
            raise ValueError(f"the factory cannot make {unknown}; it makes {known}")
        self.counter += 1
        study = _Study(self, attributes)
        out: list[Dataset] = []
        for number in range(series):
            modality = images[number % len(images)]
            out += study.image_series(modality, number + 1, instances, pixels)
        source = out[:instances] if out else []
        for offset, modality in enumerate(m for m in modalities if m in DERIVED):
            number = series + offset + 1
            out.append(study.segmentation(number, source, pixels) if modality == "SEG"
                       else study.report(number, source))  # fmt: skip
        return out


class _Study:
    """The shared attributes of one study being built."""

    def __init__(self, factory: DicomFactory, attributes: dict[str, Any]) -> None:
        self.factory = factory
        index = factory.counter
        self.common: dict[str, Any] = {
            "PatientName": f"Factory^Patient{index}",
            "PatientID": f"FACTORY-{index:04d}",
            "PatientBirthDate": "19700101",
            "PatientSex": "O",
            "StudyInstanceUID": generate_uid(),
            "StudyDate": "20260101",
            "StudyTime": "120000",
            "StudyID": str(index),
            "AccessionNumber": f"ACC{index:05d}",
            "StudyDescription": "Factory study",
            "FrameOfReferenceUID": generate_uid(),
            **attributes,
        }

    def base(self, sop_class: str, modality: str, series_uid: str, series_number: int,
             number: int) -> Dataset:  # fmt: skip
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = uid.UID(sop_class)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        for keyword, value in self.common.items():
            setattr(ds, keyword, value)
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = series_number
        ds.SeriesDescription = f"{modality} series {series_number}"
        ds.Modality = modality
        ds.InstanceNumber = number
        ds.Manufacturer = "dicom-repo factory"
        ds.ContentDate, ds.ContentTime = self.common["StudyDate"], f"1200{number % 60:02d}"
        return ds

    def image_series(self, modality: str, series_number: int, count: int,
                     pixels: bool) -> list[Dataset]:  # fmt: skip
        series_uid = generate_uid()
        return [self.image(modality, series_uid, series_number, n + 1, pixels)
                for n in range(count)]  # fmt: skip

    def image(self, modality: str, series_uid: str, series_number: int, number: int,
              pixels: bool) -> Dataset:  # fmt: skip
        ds = self.base(IMAGE_CLASSES[modality], modality, series_uid, series_number, number)
        rows, columns = self.factory.rows, self.factory.columns
        ds.Rows, ds.Columns = rows, columns
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelSpacing = [0.5, 0.5]
        if modality in VOLUMES:
            ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
            ds.ImagePositionPatient = [-0.25 * columns, -0.25 * rows, 2.5 * (number - 1)]
            ds.SliceThickness, ds.SliceLocation = 2.5, 2.5 * (number - 1)
        if pixels:
            ds.PixelData = _gradient(rows, columns, number)
        return ds

    def segmentation(self, series_number: int, source: list[Dataset], pixels: bool) -> Dataset:
        ds = self.base(uid.SegmentationStorage, "SEG", generate_uid(), series_number, 1)
        ds.SegmentationType = "BINARY"
        ds.Rows, ds.Columns = self.factory.rows, self.factory.columns
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 1
        ds.HighBit, ds.PixelRepresentation = 0, 0
        ds.NumberOfFrames = max(1, len(source))
        ds.ReferencedSeriesSequence = [_item(
            SeriesInstanceUID=source[0].SeriesInstanceUID if source else generate_uid(),
            ReferencedInstanceSequence=[_item(ReferencedSOPClassUID=s.SOPClassUID,
                                              ReferencedSOPInstanceUID=s.SOPInstanceUID)
                                        for s in source],
        )]  # fmt: skip
        ds.SegmentSequence = [_item(SegmentNumber=1, SegmentLabel="Lesion",
                                    SegmentAlgorithmType="MANUAL")]  # fmt: skip
        ds.SharedFunctionalGroupsSequence = [_item(
            PlaneOrientationSequence=[_item(ImageOrientationPatient=[1, 0, 0, 0, 1, 0])],
            PixelMeasuresSequence=[_item(PixelSpacing=[0.5, 0.5], SliceThickness=2.5)],
        )]  # fmt: skip
        ds.PerFrameFunctionalGroupsSequence = [_item(
            PlanePositionSequence=[_item(ImagePositionPatient=s.get("ImagePositionPatient",
                                                                    [0, 0, 0]))],
            SegmentIdentificationSequence=[_item(ReferencedSegmentNumber=1)],
        ) for s in source] or [_item()]  # fmt: skip
        if pixels:
            frame_bits = ds.Rows * ds.Columns * ds.NumberOfFrames
            ds.PixelData = bytes((frame_bits + 7) // 8 + ((frame_bits + 7) // 8) % 2)
        return ds

    def report(self, series_number: int, source: list[Dataset]) -> Dataset:
        ds = self.base(uid.ComprehensiveSRStorage, "SR", generate_uid(), series_number, 1)
        ds.ValueType, ds.CompletionFlag, ds.VerificationFlag = "CONTAINER", "COMPLETE", "UNVERIFIED"
        ds.ConceptNameCodeSequence = [_item(CodeValue="126000", CodingSchemeDesignator="DCM",
                                            CodeMeaning="Imaging Measurement Report")]  # fmt: skip
        ds.ContentSequence = [_item(RelationshipType="CONTAINS", ValueType="TEXT",
                                    TextValue="Factory finding")]  # fmt: skip
        ds.CurrentRequestedProcedureEvidenceSequence = [_item(
            StudyInstanceUID=self.common["StudyInstanceUID"],
            ReferencedSeriesSequence=[_item(
                SeriesInstanceUID=source[0].SeriesInstanceUID if source else generate_uid(),
                ReferencedSOPSequence=[_item(ReferencedSOPClassUID=s.SOPClassUID,
                                             ReferencedSOPInstanceUID=s.SOPInstanceUID)
                                       for s in source],
            )],
        )]  # fmt: skip
        return ds


def _item(**values: Any) -> Dataset:
    ds = Dataset()
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def _gradient(rows: int, columns: int, number: int) -> bytes:
    """12-bit grey levels (little endian) that differ per slice: a viewer shows structure."""
    values = array("H", ((x * 37 + y * 11 + number * 29) % 4096
                         for y in range(rows) for x in range(columns)))  # fmt: skip
    if sys.byteorder == "big":
        values.byteswap()
    return values.tobytes()
