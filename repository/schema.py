"""The relational schema: study, series_list, series, instance and the change log.

Typed columns hold what reports filter and sort on; the ``metadata`` column holds the full
naturalized metadata as JSONB on PostgreSQL and JSON text on SQLite. Alembic migrations in
``migrations/`` create exactly these tables (a test compares them).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

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

UID = String(64)


def _now() -> Any:
    return func.current_timestamp()


class Base(DeclarativeBase):
    """Declarative base with stable constraint and index names."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class StudyRow(Base):
    """One DICOM study, whatever data sources it came from."""

    __tablename__ = "study"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    study_instance_uid: Mapped[str] = mapped_column(UID, unique=True)
    patient_id: Mapped[str | None] = mapped_column(String(64))
    patient_name: Mapped[str | None] = mapped_column(Text)
    patient_birth_date: Mapped[dt.date | None] = mapped_column(Date)
    patient_sex: Mapped[str | None] = mapped_column(String(16))
    study_date: Mapped[dt.date | None] = mapped_column(Date, index=True)
    study_time: Mapped[str | None] = mapped_column(String(32))
    accession_number: Mapped[str | None] = mapped_column(String(64), index=True)
    study_description: Mapped[str | None] = mapped_column(Text)
    modalities_in_study: Mapped[str | None] = mapped_column(String(256))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONDocument)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=_now())

    __table_args__ = (Index(None, "patient_id"),)


class SeriesListRow(Base):
    """The series of one study that came from one data source (backend)."""

    __tablename__ = "series_list"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id", ondelete="CASCADE"))
    data_source: Mapped[str] = mapped_column(String(64))
    wado_root: Mapped[str | None] = mapped_column(Text)
    wado_uri: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=_now())

    __table_args__ = (UniqueConstraint("study_id", "data_source"),)


class SeriesRow(Base):
    """One series within one series list."""

    __tablename__ = "series"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    series_list_id: Mapped[int] = mapped_column(ForeignKey("series_list.id", ondelete="CASCADE"))
    series_instance_uid: Mapped[str] = mapped_column(UID, index=True)
    modality: Mapped[str | None] = mapped_column(String(16))
    series_number: Mapped[int | None] = mapped_column(Integer)
    series_description: Mapped[str | None] = mapped_column(Text)
    series_date: Mapped[dt.date | None] = mapped_column(Date)
    series_time: Mapped[str | None] = mapped_column(String(32))
    body_part_examined: Mapped[str | None] = mapped_column(String(64))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONDocument)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=_now())

    __table_args__ = (UniqueConstraint("series_list_id", "series_instance_uid"),)


class InstanceRow(Base):
    """One SOP instance within one series."""

    __tablename__ = "instance"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id", ondelete="CASCADE"))
    sop_instance_uid: Mapped[str] = mapped_column(UID, index=True)
    sop_class_uid: Mapped[str | None] = mapped_column(UID)
    instance_number: Mapped[int | None] = mapped_column(Integer)
    number_of_frames: Mapped[int | None] = mapped_column(Integer)
    rows: Mapped[int | None] = mapped_column(Integer)
    columns: Mapped[int | None] = mapped_column(Integer)
    transfer_syntax_uid: Mapped[str | None] = mapped_column(UID)
    image_id: Mapped[str] = mapped_column(Text, index=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONDocument)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=_now())

    __table_args__ = (
        UniqueConstraint("series_id", "sop_instance_uid"),
        # Display sets group a series' instances by SOP class: this index answers that alone.
        Index(None, "series_id", "sop_class_uid", "instance_number"),
    )


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


class SopClassRow(Base):
    """A SOP class of the DICOM standard: its UID and name (filled by the migrations from
    pydicom's UID dictionary; the reporting view ``v_instance`` reads names from it)."""

    __tablename__ = "sop_class"

    uid: Mapped[str] = mapped_column(UID, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
