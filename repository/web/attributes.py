"""The three QIDO-RS levels: which attributes each holds, its typed columns, its defaults.

An attribute named in a query (keyword or tag number) belongs to the study level if the store
copies it into study metadata, to the series level if it copies it into series metadata, else to
the instance level. Matching uses the level's typed, indexed column when there is one and the
level's JSON metadata otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..columns import INSTANCE_COLUMNS, SERIES_COLUMNS, STUDY_COLUMNS, TypedColumn
from ..normalize import SERIES_KEYWORDS, STUDY_KEYWORDS
from ..normalize.dictionary import dictionary_VR, keyword_for_tag, tag_for_keyword
from ..schema import instance_table, series_table, study_table
from .errors import bad_request

COMPUTED = {
    "NumberOfStudyRelatedSeries": "00201206",
    "NumberOfStudyRelatedInstances": "00201208",
    "NumberOfSeriesRelatedInstances": "00201209",
}
"""Attributes the server computes (counts); ModalitiesInStudy has its own column."""

RETRIEVE_URL = "00081190"


@dataclass(frozen=True)
class Level:
    """One QIDO-RS level: its table, UID, typed columns and default return attributes."""

    name: str
    rank: int
    table: Any
    uid_keyword: str
    columns: Mapping[str, Any]
    defaults: tuple[str, ...]


def _typed(uid: tuple[str, Any], table: Any, columns: tuple[TypedColumn, ...]) -> dict[str, Any]:
    """Keyword -> SQL column: the level's UID and its typed columns (from repository.columns)."""
    typed = {c.keywords[0]: table.c[c.name] for c in columns if c.name != "modalities_in_study"}
    return {uid[0]: uid[1], **typed}


STUDY = Level(
    "study", 0, study_table, "StudyInstanceUID",
    _typed(("StudyInstanceUID", study_table.c.study_instance_uid), study_table, STUDY_COLUMNS),
    ("SpecificCharacterSet", "StudyDate", "StudyTime", "AccessionNumber", "ModalitiesInStudy",
     "ReferringPhysicianName", "TimezoneOffsetFromUTC", "PatientName", "PatientID",
     "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyID",
     "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances"),
)  # fmt: skip
SERIES = Level(
    "series", 1, series_table, "SeriesInstanceUID",
    _typed(("SeriesInstanceUID", series_table.c.series_instance_uid), series_table, SERIES_COLUMNS),
    ("SpecificCharacterSet", "Modality", "TimezoneOffsetFromUTC", "SeriesDescription",
     "SeriesInstanceUID", "SeriesNumber", "NumberOfSeriesRelatedInstances",
     "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime",
     "RequestAttributesSequence"),
)  # fmt: skip
INSTANCE = Level(
    "instance", 2, instance_table, "SOPInstanceUID",
    _typed(("SOPInstanceUID", instance_table.c.sop_instance_uid), instance_table,
           INSTANCE_COLUMNS),
    ("SpecificCharacterSet", "SOPClassUID", "SOPInstanceUID", "TimezoneOffsetFromUTC",
     "InstanceNumber", "Rows", "Columns", "BitsAllocated", "NumberOfFrames"),
)  # fmt: skip
LEVELS = (STUDY, SERIES, INSTANCE)

_STUDY_ONLY = frozenset(STUDY_KEYWORDS) | {"StudyInstanceUID"}
_SERIES_ONLY = frozenset(SERIES_KEYWORDS) - _STUDY_ONLY | {
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
}


@dataclass(frozen=True)
class Attribute:
    """An attribute named in a request: its keyword (or tag key), tag, VR and level."""

    key: str
    tag: str
    vr: str
    level: Level


def level_of(keyword: str) -> Level:
    """The level an attribute keyword belongs to."""
    if keyword in _STUDY_ONLY:
        return STUDY
    if keyword in _SERIES_ONLY:
        return SERIES
    return INSTANCE


def attribute(name: str) -> Attribute:
    """Resolve a query key (keyword or 8-hex-digit tag) to an :class:`Attribute`, else 400."""
    tag: int | None
    if len(name) == 8 and all(c in "0123456789abcdefABCDEF" for c in name):
        tag = int(name, 16)
        keyword = keyword_for_tag(tag) or name.upper()
    else:
        tag = tag_for_keyword(name)
        keyword = name
        if tag is None:
            raise bad_request(f"{name!r} is neither a DICOM keyword nor a tag number")
    try:
        vr = dictionary_VR(tag).split(" or ")[0]
    except KeyError:
        vr = "UN"
    return Attribute(keyword, f"{tag:08X}", vr, level_of(keyword))
