"""Real DICOM files made with pydicom, for the SOP classes no package ships test files of.

Each function returns a Dataset with a file meta header; :func:`write` saves it as a Part 10
file, so tests ingest them exactly as they would files from a modality.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import generate_uid

STUDY = "1.2.826.0.1.3680043.10.1011.1"


def sequence(*items: dict[str, Any]) -> list[Dataset]:
    """A sequence value from dicts of keyword -> value."""
    out = []
    for values in items:
        ds = Dataset()
        for key, value in values.items():
            setattr(ds, key, value)
        out.append(ds)
    return out


def base(
    sop_class: str,
    modality: str,
    series: str,
    *,
    study: str = STUDY,
    sop: str | None = None,
    number: int = 1,
    series_number: int = 1,
    description: str | None = None,
    transfer_syntax: str = uid.ExplicitVRLittleEndian,
) -> Dataset:
    """Patient, study, series and SOP common modules, with a file meta header."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop or generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientName = "Factory^Test"
    ds.PatientID = "FACTORY-1"
    ds.StudyInstanceUID = study
    ds.StudyDate = "20260101"
    ds.StudyTime = "120000"
    ds.AccessionNumber = "A1"
    ds.SeriesInstanceUID = series
    ds.SeriesNumber = series_number
    ds.Modality = modality
    if description:
        ds.SeriesDescription = description
    ds.InstanceNumber = number
    ds.ContentDate = "20260101"
    ds.ContentTime = f"1200{number:02d}"
    return ds


def image(ds: Dataset, rows: int = 4, columns: int = 4, frames: int = 1) -> Dataset:
    """Add a small native monochrome image (``frames`` frames) to ``ds``."""
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelData = bytes(rows * columns * frames)
    return ds


def ct_slice(series: str, number: int, z: float, **kw: Any) -> Dataset:
    """An axial CT slice at height ``z``."""
    ds = image(base(uid.CTImageStorage, "CT", series, number=number, **kw))
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [0, 0, z]
    ds.PixelSpacing = [0.5, 0.5]
    ds.SliceThickness = 1
    return ds


def enhanced_ct(series: str, zs: Sequence[float], **kw: Any) -> Dataset:
    """An enhanced multi-frame CT, one axial frame per height in ``zs``."""
    ds = image(base(uid.EnhancedCTImageStorage, "CT", series, **kw), frames=len(zs))
    ds.SharedFunctionalGroupsSequence = sequence(
        {"PlaneOrientationSequence": sequence({"ImageOrientationPatient": [1, 0, 0, 0, 1, 0]})}
    )
    ds.PerFrameFunctionalGroupsSequence = sequence(
        *({"PlanePositionSequence": sequence({"ImagePositionPatient": [0, 0, z]})} for z in zs)
    )
    return ds


def projection(modality: str, series: str, number: int, **kw: Any) -> Dataset:
    """A CR, DX or MG image."""
    sop_class = {
        "CR": uid.ComputedRadiographyImageStorage,
        "DX": uid.DigitalXRayImageStorageForPresentation,
        "MG": uid.DigitalMammographyXRayImageStorageForPresentation,
    }[modality]
    return image(base(sop_class, modality, series, number=number, **kw))


def secondary_capture(series: str, number: int, frames: int = 1, **kw: Any) -> Dataset:
    """A still secondary capture (multi-frame when ``frames`` > 1)."""
    sop_class = (
        uid.SecondaryCaptureImageStorage
        if frames == 1
        else uid.MultiFrameGrayscaleByteSecondaryCaptureImageStorage
    )
    return image(base(sop_class, "OT", series, number=number, **kw), frames=frames)


def video(series: str, number: int, sop_class: str = uid.VideoEndoscopicImageStorage,
          transfer_syntax: str = uid.MPEG4HP41, **kw: Any) -> Dataset:  # fmt: skip
    """A video instance: H.264 in an encapsulated pixel data element."""
    ds = base(sop_class, "ES", series, number=number, transfer_syntax=transfer_syntax, **kw)
    ds.Rows, ds.Columns, ds.NumberOfFrames = 480, 640, 250
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "YBR_PARTIAL_420"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = encapsulate([b"\x00\x00\x00\x01\x67" + bytes(2043)])
    ds["PixelData"].VR = "OB"
    return ds


def pdf(series: str, number: int = 1, title: str = "Referral letter", **kw: Any) -> Dataset:
    """An Encapsulated PDF document (about 2 KiB, so its content becomes a bulk data URI)."""
    ds = base(uid.EncapsulatedPDFStorage, "DOC", series, number=number, **kw)
    body = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n" + b"%" * 2000 + b"\n%%EOF\n"
    ds.EncapsulatedDocument = body + b"\0" * (len(body) % 2)
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.DocumentTitle = title
    ds.BurnedInAnnotation = "YES"
    return ds


def whole_slide_level(series: str, number: int, size: int, **kw: Any) -> Dataset:
    """One pyramid level of a whole-slide image: ``size`` x ``size`` pixels in 256-pixel tiles."""
    ds = base(uid.VLWholeSlideMicroscopyImageStorage, "SM", series, number=number, **kw)
    tiles = max(1, (size // 256) ** 2)
    image(ds, rows=16, columns=16, frames=tiles)
    ds.TotalPixelMatrixColumns = size
    ds.TotalPixelMatrixRows = size
    ds.ImageType = ["ORIGINAL", "PRIMARY", "VOLUME" if number == 1 else "RESAMPLED", "NONE"]
    return ds


def key_objects(series: str, referenced_series: str, referenced_sops: Sequence[str],
                **kw: Any) -> Dataset:  # fmt: skip
    """A Key Object Selection document selecting images of another series."""
    ds = base(uid.KeyObjectSelectionDocumentStorage, "KO", series, **kw)
    ds.CurrentRequestedProcedureEvidenceSequence = sequence({
        "StudyInstanceUID": ds.StudyInstanceUID,
        "ReferencedSeriesSequence": sequence({
            "SeriesInstanceUID": referenced_series,
            "ReferencedSOPSequence": sequence(*(
                {"ReferencedSOPClassUID": uid.CTImageStorage, "ReferencedSOPInstanceUID": s}
                for s in referenced_sops
            )),
        }),
    })  # fmt: skip
    ds.ValueType = "CONTAINER"
    return ds


def presentation_state(series: str, referenced_series: str, **kw: Any) -> Dataset:
    """A Grayscale Softcopy Presentation State applying to another series."""
    ds = base(uid.GrayscaleSoftcopyPresentationStateStorage, "PR", series, **kw)
    ds.ReferencedSeriesSequence = sequence({"SeriesInstanceUID": referenced_series})
    ds.PresentationCreationDate = "20260101"
    ds.ContentLabel = "ANNOTATIONS"
    return ds


def parametric_map(series: str, source_sops: Sequence[str], **kw: Any) -> Dataset:
    """A parametric map derived from source images (referenced only through derivation)."""
    ds = image(base(uid.ParametricMapStorage, "MR", series, **kw), frames=len(source_sops))
    ds.SharedFunctionalGroupsSequence = sequence({
        "DerivationImageSequence": sequence({
            "SourceImageSequence": sequence(*(
                {"ReferencedSOPClassUID": uid.CTImageStorage, "ReferencedSOPInstanceUID": s}
                for s in source_sops
            )),
        }),
    })  # fmt: skip
    return ds


def sr_3d(series: str, referenced_series: str, **kw: Any) -> Dataset:
    """A Comprehensive 3D SR with evidence in another series."""
    ds = base(uid.Comprehensive3DSRStorage, "SR", series, **kw)
    ds.ValueType = "CONTAINER"
    ds.CurrentRequestedProcedureEvidenceSequence = sequence({
        "StudyInstanceUID": ds.StudyInstanceUID,
        "ReferencedSeriesSequence": sequence({"SeriesInstanceUID": referenced_series}),
    })  # fmt: skip
    return ds


def write(ds: Dataset, folder: Path) -> Path:
    """Save ``ds`` as a Part 10 file named after its SOP Instance UID."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{ds.SOPInstanceUID}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path
