"""The relational schema: study, series_list, series, instance, the change log, and a cache.

Typed columns hold what reports filter and sort on (they are declared once, in
:mod:`repository.columns`, and added here by name); the ``metadata`` column holds the full
naturalized metadata as JSONB on PostgreSQL and JSON text on SQLite. Alembic migrations in
``migrations/`` create exactly these tables (a test compares them).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ColumnElement,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .columns import INSTANCE_COLUMNS, SERIES_COLUMNS, STUDY_COLUMNS, UID_TYPE, sql_columns

UID = UID_TYPE.make()

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
}

JSONDocument = JSON().with_variant(JSONB(), "postgresql")
"""JSON text on SQLite, JSONB on PostgreSQL."""

BigId = BigInteger().with_variant(Integer(), "sqlite")
"""A 64-bit key; INTEGER on SQLite so that it aliases the rowid and autoincrements."""


def _now() -> Any:
    return func.current_timestamp()


class Base(DeclarativeBase):
    """Declarative base with stable constraint and index names."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _study_key(table: str, column: str) -> ForeignKeyConstraint:
    """A foreign key ``(column, study_instance_uid)`` to ``table (id, study_instance_uid)``.

    Every table of a study carries the study's UID, the distribution column on Citus: keys
    include it, so one study's rows can live on one shard (see :mod:`repository.citus`).
    """
    return ForeignKeyConstraint(
        [column, "study_instance_uid"], [f"{table}.id", f"{table}.study_instance_uid"],
        ondelete="CASCADE",
    )  # fmt: skip


class StudyRow(Base):
    """One DICOM study, whatever data sources it came from."""

    __tablename__ = "study"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    study_instance_uid: Mapped[str] = mapped_column(UID, unique=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONDocument)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=_now())

    __table_args__ = (*sql_columns(STUDY_COLUMNS), UniqueConstraint("id", "study_instance_uid"))


class SeriesListRow(Base):
    """The series of one study that came from one data source (backend)."""

    __tablename__ = "series_list"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    study_instance_uid: Mapped[str] = mapped_column(UID)
    study_id: Mapped[int] = mapped_column(BigId)
    data_source: Mapped[str] = mapped_column(String(64))
    wado_root: Mapped[str | None] = mapped_column(Text)
    wado_uri: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=_now())

    __table_args__ = (
        _study_key("study", "study_id"),
        UniqueConstraint("study_instance_uid", "data_source"),
        UniqueConstraint("id", "study_instance_uid"),
    )


class SeriesRow(Base):
    """One series within one series list."""

    __tablename__ = "series"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    study_instance_uid: Mapped[str] = mapped_column(UID)
    series_list_id: Mapped[int] = mapped_column(BigId)
    series_instance_uid: Mapped[str] = mapped_column(UID, index=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONDocument)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=_now())

    __table_args__ = (
        *sql_columns(SERIES_COLUMNS),
        _study_key("series_list", "series_list_id"),
        UniqueConstraint("study_instance_uid", "series_list_id", "series_instance_uid"),
        UniqueConstraint("id", "study_instance_uid"),
    )


class InstanceRow(Base):
    """One SOP instance within one series.

    ``data_source`` is its series list's, copied for lookups by SOP Instance UID and data
    source (one SOP Instance UID is one instance per data source: :class:`SopInstanceRow`).
    """

    __tablename__ = "instance"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    study_instance_uid: Mapped[str] = mapped_column(UID)
    series_id: Mapped[int] = mapped_column(BigId)
    image_id: Mapped[str] = mapped_column(Text, index=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONDocument)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    data_source: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        *sql_columns(INSTANCE_COLUMNS),
        _study_key("series", "series_id"),
        UniqueConstraint("study_instance_uid", "series_id", "sop_instance_uid"),
        UniqueConstraint("id", "study_instance_uid"),
        # SOP Instance UID lookups (one SOP UID, one instance per data source: sop_instance)
        Index(None, "sop_instance_uid", "data_source"),
        # Display sets group a series' instances by SOP class: this index answers that alone.
        Index(None, "series_id", "sop_class_uid", "instance_number"),
    )


class InstanceDicomJsonRow(Base):
    """One instance's DICOM JSON as WADO-RS metadata serves it, kept so that it is built once.

    ``json`` holds the bytes of the instance's DICOM JSON object with every ``BulkDataURI``
    relative to the DICOMweb root (``studies/.../bulkdata/7FE00010``); the server prefixes the
    root the request came to. ``json`` NULL is a tombstone: a trigger of migration 0003 writes
    one, with ``generation`` + 1, whenever the instance's ``metadata`` is updated. See
    :mod:`repository.web.metadata_cache`.
    """

    __tablename__ = "instance_dicom_json"

    instance_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    study_instance_uid: Mapped[str] = mapped_column(UID, primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    json: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (_study_key("instance", "instance_id"),)


class SopInstanceRow(Base):
    """Which study and series each SOP Instance UID of a data source is stored under.

    Written in the same transaction as the instance: its primary key makes one SOP Instance UID
    one instance per data source, also when two writers race to file it under two studies. On
    Citus it is distributed by SOP Instance UID (a unique index on ``instance`` could not be:
    it would lack the distribution column). Deleting an instance deletes its row.
    """

    __tablename__ = "sop_instance"

    sop_instance_uid: Mapped[str] = mapped_column(UID, primary_key=True)
    data_source: Mapped[str] = mapped_column(String(64), primary_key=True)
    study_instance_uid: Mapped[str] = mapped_column(UID)
    series_instance_uid: Mapped[str] = mapped_column(UID)


class ChangeRow(Base):
    """One committed change, written in the same transaction as the data it describes."""

    __tablename__ = "change"

    seq: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    study_instance_uid: Mapped[str] = mapped_column(UID)
    series_instance_uid: Mapped[str | None] = mapped_column(UID)
    data_source: Mapped[str | None] = mapped_column(String(64))
    made_in_client: Mapped[bool] = mapped_column(Boolean, default=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=_now())


class ChangeCompactionRow(Base):
    """One compaction of the change log: every change with ``seq <= through_seq`` was removed.

    The largest ``through_seq`` is the feed's horizon: a follower whose position is below it has
    missed changes and gets :class:`~repository.errors.FeedGapError` instead of a silent gap.
    """

    __tablename__ = "change_compaction"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    through_seq: Mapped[int] = mapped_column(BigInteger)
    removed: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=_now())


class SopClassRow(Base):
    """A SOP class of the DICOM standard: its UID and name (filled by the migrations from
    pydicom's UID dictionary; the reporting view ``v_instance`` reads names from it)."""

    __tablename__ = "sop_class"

    uid: Mapped[str] = mapped_column(UID, primary_key=True)
    name: Mapped[str] = mapped_column(Text)


def same_study(a: Any, b: Any) -> ColumnElement[bool]:
    """``a.study_instance_uid = b.study_instance_uid``: added to every join of two tables of a
    study, so that Citus runs it on one shard (joins on the distribution column)."""
    return cast(ColumnElement[bool], a.study_instance_uid == b.study_instance_uid)


study_table = cast(Table, StudyRow.__table__)
series_list_table = cast(Table, SeriesListRow.__table__)
series_table = cast(Table, SeriesRow.__table__)
instance_table = cast(Table, InstanceRow.__table__)
instance_dicom_json_table = cast(Table, InstanceDicomJsonRow.__table__)
"""The tables, for access to their typed columns by name (``instance_table.c.rows``)."""

INSTANCE_IN_SERIES = same_study(InstanceRow, SeriesRow) & (InstanceRow.series_id == SeriesRow.id)
"""The join of an instance to its series (on the study's UID too: one shard on Citus)."""
