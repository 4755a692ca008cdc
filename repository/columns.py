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
from typing import TYPE_CHECKING, Any, Literal

from .errors import MissingAttributeError
from .validation import as_float, as_int, as_text, check_uid, optional_uid, parse_date

if TYPE_CHECKING:
    from sqlalchemy import Column
    from sqlalchemy.types import TypeEngine


@dataclass(frozen=True)
class SqlType:
    """A typed column's SQL type, by name: SQLAlchemy's type is made by :meth:`make`, so that
    the file-reading workers, which compute column values, never import SQLAlchemy."""

    kind: Literal["string", "integer", "float", "text", "date"]
    length: int | None = None

    def make(self) -> TypeEngine[Any]:
        """The SQLAlchemy type."""
        from sqlalchemy import Date, Float, Integer, String, Text

        if self.kind == "string":
            return String(self.length)
        kinds: dict[str, type[TypeEngine[Any]]] = {
            "integer": Integer, "float": Float, "text": Text, "date": Date,
        }  # fmt: skip
        return kinds[self.kind]()


UID_TYPE = SqlType("string", 64)
"""A UID column: at most 64 characters (PS3.5 9.1)."""
_INT, _TEXT, _DATE = SqlType("integer"), SqlType("text"), SqlType("date")


def _chars(length: int) -> SqlType:
    return SqlType("string", length)


Converter = Callable[[Any, str], Any]
"""``convert(value, keyword) -> column value``; ``value`` is None when no keyword is present.

The converters below wrap :mod:`repository.validation`'s: ``_int`` (IS, US...), ``_float`` (DS,
FD...), ``_text``, ``_date`` (DA), ``optional_uid`` and ``_required_uid`` (UI)."""


@dataclass(frozen=True)
class TypedColumn:
    """One typed column: name, SQL type, source keywords and converter, index."""

    name: str
    sql_type: SqlType
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
        length = self.sql_type.length
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
    Col("sop_instance_uid", UID_TYPE, ("SOPInstanceUID",), _required_uid, str, nullable=False),
    Col("sop_class_uid", UID_TYPE, ("SOPClassUID",), optional_uid, str | None),
    Col("instance_number", _INT, ("InstanceNumber",), _int, int | None),
    Col("number_of_frames", _INT, ("NumberOfFrames",), _int, int | None),
    Col("rows", _INT, ("Rows",), _int, int | None),
    Col("columns", _INT, ("Columns",), _int, int | None),
    Col("transfer_syntax_uid", UID_TYPE, ("TransferSyntaxUID", "AvailableTransferSyntaxUID"),
        optional_uid, str | None),
)  # fmt: skip
"""Typed columns of ``instance``, from the instance's metadata."""

SERIES_COLUMNS: tuple[TypedColumn, ...] = (
    Col("modality", _chars(16), ("Modality",), _text, str | None),
    Col("series_number", _INT, ("SeriesNumber",), _int, int | None),
    Col("series_description", _TEXT, ("SeriesDescription",), _text, str | None),
    Col("series_date", _DATE, ("SeriesDate",), _date, dt.date | None),
    Col("series_time", _chars(32), ("SeriesTime",), _text, str | None),
    Col("body_part_examined", _chars(64), ("BodyPartExamined",), _text, str | None),
)  # fmt: skip
"""Typed columns of ``series``, from the series' summary metadata."""

STUDY_COLUMNS: tuple[TypedColumn, ...] = (
    Col("patient_id", _chars(64), ("PatientID",), _text, str | None, index=True),
    Col("patient_name", _TEXT, ("PatientName",), _text, str | None),
    Col("patient_birth_date", _DATE, ("PatientBirthDate",), _date, dt.date | None),
    Col("patient_sex", _chars(16), ("PatientSex",), _text, str | None),
    Col("study_date", _DATE, ("StudyDate",), _date, dt.date | None, index=True),
    Col("study_time", _chars(32), ("StudyTime",), _text, str | None),
    Col("accession_number", _chars(64), ("AccessionNumber",), _text, str | None, index=True),
    Col("study_description", _TEXT, ("StudyDescription",), _text, str | None),
    Col("modalities_in_study", _chars(256), ("ModalitiesInStudy",), _modalities,
        tuple[str, ...], load=_split_modalities),
)  # fmt: skip
"""Typed columns of ``study``, from the study's metadata."""


def sql_columns(columns: Iterable[TypedColumn]) -> list[Column[Any]]:
    """New SQLAlchemy Column objects for ``columns`` (for one Table each time)."""
    from sqlalchemy import Column

    return [
        Column(c.name, c.sql_type.make(), index=c.index or None, nullable=c.nullable)
        for c in columns
    ]


def column_values(columns: Iterable[TypedColumn], md: Mapping[str, Any]) -> dict[str, Any]:
    """Column name -> value for naturalized metadata ``md``."""
    return {c.name: c.value(md) for c in columns}


def loaded(columns: Iterable[TypedColumn], row: Mapping[Any, Any]) -> dict[str, Any]:
    """The typed values of a selected row as the read model holds them."""
    return {c.name: c.load(row[c.name]) if c.load else row[c.name] for c in columns}
