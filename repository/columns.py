"""THE table of typed columns: what reports filter and sort on, taken from the metadata.

Each :class:`TypedColumn` names a column of ``study``, ``series`` or ``instance``, its SQL type,
where its value comes from in the naturalized metadata (keywords, first present wins, and a
converter) and whether it is indexed. Everything else is derived from these tuples by name:

- the SQLAlchemy tables (:mod:`repository.schema`, through :func:`sql_columns`),
- the values written on insert and update (:func:`column_values`; :class:`NormalizedInstance`
  carries the instance's in ``typed``), the PostgreSQL COPY column list included,
- the read models' fields (:mod:`repository.models`) and the columns the reads select.

Adding a typed column is one entry here plus its alembic migration (see the README's
"Contributing: adding a typed column").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Date, Integer, String, Text
from sqlalchemy.types import TypeEngine

from .errors import MissingAttributeError
from .validation import as_float, as_int, as_text, check_uid, optional_uid, parse_date

UID = String(64)
"""A UID column: at most 64 characters (PS3.5 9.1)."""

Converter = Callable[[Any, str], Any]
"""``convert(value, keyword) -> column value``; ``value`` is None when no keyword is present.

The converters below wrap :mod:`repository.validation`'s: ``_int`` (IS, US...), ``_float`` (DS,
FD...), ``_text``, ``_date`` (DA), ``optional_uid`` and ``_required_uid`` (UI)."""


@dataclass(frozen=True)
class TypedColumn:
    """One typed column: name, SQL type, source keywords and converter, index."""

    name: str
    sql_type: TypeEngine[Any]
    keywords: tuple[str, ...]
    convert: Converter
    python_type: Any
    """The read model's field type (documentation and dataclass introspection)."""
    index: bool = False
    nullable: bool = True
    load: Callable[[Any], Any] | None = None
    """Turns the stored value into the read model's value (None: as stored)."""

    def value(self, md: Mapping[str, Any]) -> Any:
        """This column's value for naturalized metadata ``md`` (texts cut to the column size)."""
        keyword = next((k for k in self.keywords if md.get(k) not in (None, "", [])), None)
        if keyword is None:
            value = self.convert(None, self.keywords[0])
        else:
            value = self.convert(md[keyword], keyword)
        length = getattr(self.sql_type, "length", None)
        if isinstance(value, str) and length:
            return value[:length]  # the JSON keeps the full value
        return value


def _int(value: Any, keyword: str) -> int | None:
    return as_int(value)


def _float(value: Any, keyword: str) -> float | None:
    return as_float(value)


def _text(value: Any, keyword: str) -> str | None:
    return as_text(value)


def _date(value: Any, keyword: str) -> dt.date | None:
    return parse_date(value)


def _required_uid(value: Any, keyword: str) -> str:
    if value is None:
        raise MissingAttributeError(f"{keyword} is missing")
    return check_uid(value, keyword)


def _modalities(value: Any, keyword: str) -> str | None:
    if isinstance(value, list):
        value = "\\".join(sorted({str(m) for m in value if m}))
    return as_text(value)


def _split_modalities(text: str | None) -> tuple[str, ...]:
    return tuple(m for m in (text or "").split("\\") if m)


Col = TypedColumn

INSTANCE_COLUMNS: tuple[TypedColumn, ...] = (
    # indexed with its data source, uniquely: repository.schema.instance_table
    Col("sop_instance_uid", UID, ("SOPInstanceUID",), _required_uid, str, nullable=False),
    Col("sop_class_uid", UID, ("SOPClassUID",), optional_uid, str | None),
    Col("instance_number", Integer(), ("InstanceNumber",), _int, int | None),
    Col("number_of_frames", Integer(), ("NumberOfFrames",), _int, int | None),
    Col("rows", Integer(), ("Rows",), _int, int | None),
    Col("columns", Integer(), ("Columns",), _int, int | None),
    Col("transfer_syntax_uid", UID, ("TransferSyntaxUID", "AvailableTransferSyntaxUID"),
        optional_uid, str | None),
)  # fmt: skip
"""Typed columns of ``instance``, from the instance's metadata."""

SERIES_COLUMNS: tuple[TypedColumn, ...] = (
    Col("modality", String(16), ("Modality",), _text, str | None),
    Col("series_number", Integer(), ("SeriesNumber",), _int, int | None),
    Col("series_description", Text(), ("SeriesDescription",), _text, str | None),
    Col("series_date", Date(), ("SeriesDate",), _date, dt.date | None),
    Col("series_time", String(32), ("SeriesTime",), _text, str | None),
    Col("body_part_examined", String(64), ("BodyPartExamined",), _text, str | None),
)  # fmt: skip
"""Typed columns of ``series``, from the series' summary metadata."""

STUDY_COLUMNS: tuple[TypedColumn, ...] = (
    Col("patient_id", String(64), ("PatientID",), _text, str | None, index=True),
    Col("patient_name", Text(), ("PatientName",), _text, str | None),
    Col("patient_birth_date", Date(), ("PatientBirthDate",), _date, dt.date | None),
    Col("patient_sex", String(16), ("PatientSex",), _text, str | None),
    Col("study_date", Date(), ("StudyDate",), _date, dt.date | None, index=True),
    Col("study_time", String(32), ("StudyTime",), _text, str | None),
    Col("accession_number", String(64), ("AccessionNumber",), _text, str | None, index=True),
    Col("study_description", Text(), ("StudyDescription",), _text, str | None),
    Col("modalities_in_study", String(256), ("ModalitiesInStudy",), _modalities,
        tuple[str, ...], load=_split_modalities),
)  # fmt: skip
"""Typed columns of ``study``, from the study's metadata."""


def sql_columns(columns: Iterable[TypedColumn]) -> list[Column[Any]]:
    """New SQLAlchemy Column objects for ``columns`` (for one Table each time)."""
    return [Column(c.name, c.sql_type, index=c.index or None, nullable=c.nullable) for c in columns]


def column_values(columns: Iterable[TypedColumn], md: Mapping[str, Any]) -> dict[str, Any]:
    """Column name -> value for naturalized metadata ``md``."""
    return {c.name: c.value(md) for c in columns}


def loaded(columns: Iterable[TypedColumn], row: Mapping[Any, Any]) -> dict[str, Any]:
    """The typed values of a selected row as the read model holds them."""
    return {c.name: c.load(row[c.name]) if c.load else row[c.name] for c in columns}
