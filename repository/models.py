"""Immutable, typed read models returned by the store.

The fields holding typed columns are derived, by name, from :mod:`repository.columns`.
Instance metadata is fetched as JSON text and decoded on first access (decoding is most of the
cost of a read), so listing a big study is cheap until its metadata is used.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, make_dataclass
from functools import cached_property
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import orjson

from .columns import INSTANCE_COLUMNS, SERIES_COLUMNS, STUDY_COLUMNS, TypedColumn
from .normalize import to_dataset

if TYPE_CHECKING:
    from pydicom.dataset import Dataset


def _decode(raw: str | bytes | Mapping[str, Any] | None) -> Mapping[str, Any]:
    if raw is None:
        return MappingProxyType({})
    if isinstance(raw, Mapping):
        return MappingProxyType(dict(raw))
    return MappingProxyType(orjson.loads(raw))


def read_model(
    name: str, base: type, columns: Iterable[TypedColumn], module: str = __name__
) -> type:
    """A frozen dataclass: ``base``'s fields, then one field per typed column (by name).

    ``module`` is where the class is bound under ``name``, so that pickle finds it.
    """
    fields = [(c.name, c.python_type) for c in columns]
    model = make_dataclass(name, fields, bases=(base,), frozen=True)
    model.__module__ = module
    model.__doc__ = base.__doc__
    return model


@dataclass(frozen=True)
class InstanceBase:
    """One SOP instance; ``metadata`` maps DICOM keywords (or tags) to naturalized values.

    Besides these fields it has one per typed instance column (:data:`INSTANCE_COLUMNS`).
    """

    study_instance_uid: str
    series_instance_uid: str
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
class SeriesBase:
    """One series of one data source, with its instances ordered by InstanceNumber.

    Besides these fields it has one per typed series column (:data:`SERIES_COLUMNS`).
    """

    study_instance_uid: str
    series_instance_uid: str
    data_source: str
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
class StudyBase:
    """One study with one series list per data source.

    Besides these fields it has one per typed study column (:data:`STUDY_COLUMNS`).
    """

    study_instance_uid: str
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


if TYPE_CHECKING:
    # What mypy sees: the typed-column attributes spelled out for precise types (shared with the
    # summaries). At run time the classes are built from repository.columns, so a new column
    # needs no edit here until typed code wants a precise type for it.

    class InstanceColumns:
        sop_instance_uid: str
        sop_class_uid: str | None
        instance_number: int | None
        number_of_frames: int | None
        rows: int | None
        columns: int | None
        transfer_syntax_uid: str | None

    class SeriesColumns:
        modality: str | None
        series_number: int | None
        series_description: str | None
        series_date: dt.date | None
        series_time: str | None
        body_part_examined: str | None

    class StudyColumns:
        patient_id: str | None
        patient_name: str | None
        patient_birth_date: dt.date | None
        patient_sex: str | None
        study_date: dt.date | None
        study_time: str | None
        accession_number: str | None
        study_description: str | None
        modalities_in_study: tuple[str, ...]

    @dataclass(frozen=True)
    class Instance(InstanceBase, InstanceColumns): ...

    @dataclass(frozen=True)
    class Series(SeriesBase, SeriesColumns): ...

    @dataclass(frozen=True)
    class Study(StudyBase, StudyColumns): ...

else:
    Instance = read_model("Instance", InstanceBase, INSTANCE_COLUMNS)
    Series = read_model("Series", SeriesBase, SERIES_COLUMNS)
    Study = read_model("Study", StudyBase, STUDY_COLUMNS)


@dataclass(frozen=True)
class AddResult:
    """What :meth:`Store.add_instances` did: how many instances were new, how many were known."""

    added: int
    already_present: int
    already_present_uids: frozenset[str] = frozenset()
    studies_added: tuple[str, ...] = ()
    patient_conflicts: tuple[tuple[str, str], ...] = ()
    """(SOP Instance UID, why) for each new instance whose PatientID or PatientName differs
    from its study's, which keeps the first (see :mod:`repository.patients`)."""


@dataclass(frozen=True)
class DeleteResult:
    """What a ``delete_*`` call removed (committed when the call returns).

    ``files`` are the ``dicomfile:`` paths of the removed instances: the server unlinks those in
    its own storage folder after the commit; files read in place by ``ingest`` are never touched.
    """

    studies: tuple[str, ...] = ()
    """Studies that no data source holds any more (their ``study`` row went)."""
    series: tuple[tuple[str, str], ...] = ()
    """(data source, SeriesInstanceUID) of each series removed."""
    instances: int = 0
    files: tuple[str, ...] = ()
