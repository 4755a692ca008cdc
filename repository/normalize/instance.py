"""One instance, whatever its input form, validated and with its typed column values."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..columns import INSTANCE_COLUMNS, TypedColumn, column_values
from ..errors import InvalidUIDError, InvalidValueError, MissingAttributeError
from ..pydicom_types import is_dataset
from ..validation import check_url, require_uid
from .dataset import naturalize_dataset
from .dicom_json import is_dicom_json, naturalize_dicom_json
from .naturalized import check_naturalized
from .values import OHIF_EXTRA_KEYS, BulkDataURI, Metadata

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

STUDY_KEYWORDS = (
    "StudyInstanceUID", "PatientName", "PatientID", "IssuerOfPatientID", "OtherPatientIDs",
    "PatientBirthDate", "PatientSex", "PatientAge", "PatientSize", "PatientWeight",
    "StudyDate", "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName",
    "StudyDescription", "ModalitiesInStudy", "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances", "SpecificCharacterSet",
)  # fmt: skip
"""Attributes copied from an instance (or a study input) into the study's metadata."""

SERIES_KEYWORDS = (
    "StudyInstanceUID", "SeriesInstanceUID", "Modality", "SeriesNumber", "SeriesDescription",
    "SeriesDate", "SeriesTime", "BodyPartExamined", "ProtocolName", "Laterality",
    "FrameOfReferenceUID", "Manufacturer", "ManufacturerModelName", "InstitutionName",
    "StationName", "OperatorsName", "PerformingPhysicianName",
    "NumberOfSeriesRelatedInstances", "SpecificCharacterSet",
)  # fmt: skip
"""Attributes copied from an instance into the series' summary metadata."""


@dataclass(frozen=True, slots=True)
class NormalizedInstance:
    """One instance in stored form; ``typed`` holds its typed column values by column name
    (:data:`repository.columns.INSTANCE_COLUMNS`)."""

    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    typed: Mapping[str, Any]
    image_id: str | None
    wado_root: str | None
    wado_uri: str | None
    metadata: Mapping[str, Any]  # a dict, or SerializedMetadata coming from a parse worker


DatasetNaturalizer = Callable[["Dataset", BulkDataURI | None], Metadata]
"""A function from a Dataset to its stored form (``naturalize_dataset`` or a faster equal one)."""


def to_naturalized(
    obj: Dataset | Mapping[str, Any],
    bulk: BulkDataURI | None = None,
    naturalize: DatasetNaturalizer = naturalize_dataset,
) -> Metadata:
    """Any accepted input (Dataset, DICOM JSON, naturalized dict) in stored form."""
    if is_dataset(obj):
        return naturalize(obj, bulk)
    if not isinstance(obj, Mapping):
        raise InvalidValueError(f"expected a pydicom Dataset or a dict, got {type(obj).__name__}")
    if is_dicom_json(obj):
        return naturalize_dicom_json(obj)
    return check_naturalized(obj)


def normalize_instance(
    obj: Dataset | Mapping[str, Any],
    *,
    source: str,
    bulk: BulkDataURI | None = None,
    columns: Iterable[TypedColumn] = INSTANCE_COLUMNS,
    naturalize: DatasetNaturalizer = naturalize_dataset,
) -> NormalizedInstance:
    """Validate one instance and extract its typed ``columns``; errors name ``source``."""
    with _named(source):
        return instance_from_metadata(to_naturalized(obj, bulk, naturalize), columns)


def stored_instance(
    md: Metadata, *, source: str, columns: Iterable[TypedColumn] = INSTANCE_COLUMNS
) -> NormalizedInstance:
    """:func:`normalize_instance` of metadata already in stored form (as a file is read)."""
    with _named(source):
        return instance_from_metadata(md, columns)


@contextmanager
def _named(source: str) -> Iterator[None]:
    """Errors about an instance name where it came from."""
    try:
        yield
    except (InvalidValueError, MissingAttributeError, InvalidUIDError) as exc:
        raise type(exc)(f"{source}: {exc}") from None


def instance_from_metadata(
    md: Metadata, columns: Iterable[TypedColumn] = INSTANCE_COLUMNS
) -> NormalizedInstance:
    """A :class:`NormalizedInstance` from stored-form metadata (OHIF extra keys taken out)."""
    extras = {k: md.pop(k) for k in OHIF_EXTRA_KEYS & md.keys()}
    sop_uid = require_uid(md, "SOPInstanceUID")  # checked first: it names the instance
    return NormalizedInstance(
        study_instance_uid=require_uid(md, "StudyInstanceUID"),
        series_instance_uid=require_uid(md, "SeriesInstanceUID"),
        sop_instance_uid=sop_uid,
        typed=column_values(columns, md),
        image_id=check_url(extras.get("imageId"), "imageId"),
        wado_root=check_url(extras.get("wadoRoot"), "wadoRoot"),
        wado_uri=check_url(extras.get("wadoUri"), "wadoUri"),
        metadata=md,
    )


def pick(md: Mapping[str, Any], keywords: Iterable[str]) -> Metadata:
    """The subset of ``md`` under ``keywords`` (those present)."""
    return {k: md[k] for k in keywords if k in md}
