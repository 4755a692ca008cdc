"""Immutable, typed read models returned by the store.

Instance metadata is fetched as JSON text and decoded on first access (decoding is most of the
cost of a read), so listing a big study is cheap until its metadata is used.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any

import orjson
from pydicom.dataset import Dataset

from .normalize import to_dataset


def _decode(raw: str | bytes | Mapping[str, Any] | None) -> Mapping[str, Any]:
    if raw is None:
        return MappingProxyType({})
    if isinstance(raw, Mapping):
        return MappingProxyType(dict(raw))
    return MappingProxyType(orjson.loads(raw))


@dataclass(frozen=True)
class Instance:
    """One SOP instance; ``metadata`` maps DICOM keywords (or tags) to naturalized values."""

    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str | None
    instance_number: int | None
    number_of_frames: int | None
    rows: int | None
    columns: int | None
    transfer_syntax_uid: str | None
    image_id: str
    data_source: str
    wado_root: str | None
    wado_uri: str | None
    raw_metadata: str | bytes | Mapping[str, Any] = field(repr=False, compare=False)

    @cached_property
    def metadata(self) -> Mapping[str, Any]:
        """The full naturalized metadata (read-only), decoded on first access."""
        return _decode(self.raw_metadata)

    def to_dataset(self) -> Dataset:
        """A pydicom Dataset of the metadata; bulk data references become empty values."""
        return to_dataset(self.metadata)


@dataclass(frozen=True)
class Series:
    """One series of one data source, with its instances ordered by InstanceNumber."""

    study_instance_uid: str
    series_instance_uid: str
    data_source: str
    modality: str | None
    series_number: int | None
    series_description: str | None
    series_date: dt.date | None
    series_time: str | None
    body_part_examined: str | None
    wado_root: str | None
    instances: tuple[Instance, ...]
    raw_metadata: str | bytes | Mapping[str, Any] = field(repr=False, compare=False)

    @cached_property
    def metadata(self) -> Mapping[str, Any]:
        """Series summary metadata (read-only)."""
        return _decode(self.raw_metadata)


@dataclass(frozen=True)
class SeriesList:
    """The series of a study that came from one data source."""

    data_source: str
    wado_root: str | None
    wado_uri: str | None
    series: tuple[Series, ...]


@dataclass(frozen=True)
class Study:
    """One study with one series list per data source."""

    study_instance_uid: str
    patient_id: str | None
    patient_name: str | None
    patient_birth_date: dt.date | None
    patient_sex: str | None
    study_date: dt.date | None
    study_time: str | None
    accession_number: str | None
    study_description: str | None
    modalities_in_study: tuple[str, ...]
    series_lists: tuple[SeriesList, ...]
    raw_metadata: str | bytes | Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def series(self) -> tuple[Series, ...]:
        """All series of all series lists."""
        return tuple(s for lst in self.series_lists for s in lst.series)

    @cached_property
    def metadata(self) -> Mapping[str, Any]:
        """Study-level metadata (read-only)."""
        return _decode(self.raw_metadata)


@dataclass(frozen=True)
class AddResult:
    """What :meth:`Store.add_instances` did: how many instances were new, how many were known."""

    added: int
    already_present: int
    already_present_uids: frozenset[str] = frozenset()
    studies_added: tuple[str, ...] = ()
