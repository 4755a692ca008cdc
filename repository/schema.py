"""The relational schema: study, series_list, series, instance, the change log, and a cache.

Typed columns hold what reports filter and sort on (they are declared once, in
:mod:`repository.columns`, and added here by name); the ``metadata`` column holds the full
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
    Column,
    ColumnElement,
    DateTime,
    ForeignKeyConstraint,
    FromClause,
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
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from .columns import INSTANCE_COLUMNS, SERIES_COLUMNS, STUDY_COLUMNS, UID_TYPE, sql_columns

UID = UID_TYPE.make()

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
}


class JSONDocument(TypeDecorator[Any]):
    """JSON text on SQLite, JSONB on PostgreSQL.

    SQLAlchemy's PostgreSQL dialect (which defines JSONB) is imported when a PostgreSQL engine
    first uses the type, not with the schema: a SQLite command does not load it (start-up).
    """

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """JSONB on PostgreSQL, JSON elsewhere."""
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(JSON())


BigId = BigInteger().with_variant(Integer(), "sqlite")
"""A 64-bit key; INTEGER on SQLite so that it aliases the rowid and autoincrements."""


def _now() -> Any:
    return func.current_timestamp()


metadata_obj = MetaData(naming_convention=NAMING_CONVENTION)
"""The tables below, with stable constraint and index names (alembic compares it to databases)."""


def _study_key(table: str, column: str) -> ForeignKeyConstraint:
    """A foreign key ``(column, study_instance_uid)`` to ``table (id, study_instance_uid)``.

    Every table of a study carries the study's UID, the distribution column on Citus: keys
    include it, so one study's rows can live on one shard (see :mod:`repository.citus`).
    """
    return ForeignKeyConstraint(
        [column, "study_instance_uid"], [f"{table}.id", f"{table}.study_instance_uid"],
        ondelete="CASCADE",
    )  # fmt: skip


def _id() -> Column[int]:
    return Column("id", BigId, primary_key=True)


def _uid(name: str, **kwargs: Any) -> Column[str]:
    return Column(name, UID, nullable=False, **kwargs)


def _big(name: str) -> Column[int]:
    return Column(name, BigId, nullable=False)


def _data_source(nullable: bool = False) -> Column[str]:
    return Column("data_source", String(64), nullable=nullable)


def _document(name: str = "metadata") -> Column[Any]:
    return Column(name, JSONDocument(), nullable=False)


def _timestamp(name: str) -> Column[dt.datetime]:
    return Column(name, DateTime(timezone=True), nullable=False, server_default=_now())


study_table = Table(
    "study", metadata_obj,
    _id(),
    _uid("study_instance_uid", unique=True),
    _document(),
    _timestamp("created_at"),
    _timestamp("updated_at"),
    *sql_columns(STUDY_COLUMNS),
    UniqueConstraint("id", "study_instance_uid"),
)  # fmt: skip
"""One DICOM study, whatever data sources it came from."""

series_list_table = Table(
    "series_list", metadata_obj,
    _id(),
    _uid("study_instance_uid"),
    _big("study_id"),
    _data_source(),
    Column("wado_root", Text),
    Column("wado_uri", Text),
    _timestamp("created_at"),
    _study_key("study", "study_id"),
    UniqueConstraint("study_instance_uid", "data_source"),
    UniqueConstraint("id", "study_instance_uid"),
)  # fmt: skip
"""The series of one study that came from one data source (backend)."""

series_table = Table(
    "series", metadata_obj,
    _id(),
    _uid("study_instance_uid"),
    _big("series_list_id"),
    _uid("series_instance_uid", index=True),
    _document(),
    _timestamp("created_at"),
    _timestamp("updated_at"),
    *sql_columns(SERIES_COLUMNS),
    _study_key("series_list", "series_list_id"),
    UniqueConstraint("study_instance_uid", "series_list_id", "series_instance_uid"),
    UniqueConstraint("id", "study_instance_uid"),
)  # fmt: skip
"""One series within one series list."""

instance_table = Table(
    "instance", metadata_obj,
    _id(),
    _uid("study_instance_uid"),
    _big("series_id"),
    Column("image_id", Text, nullable=False, index=True),
    _document(),
    _timestamp("created_at"),
    _data_source(),
    *sql_columns(INSTANCE_COLUMNS),
    _study_key("series", "series_id"),
    UniqueConstraint("study_instance_uid", "series_id", "sop_instance_uid"),
    UniqueConstraint("id", "study_instance_uid"),
    # SOP Instance UID lookups (one SOP UID, one instance per data source: sop_instance)
    Index(None, "sop_instance_uid", "data_source"),
    # Display sets group a series' instances by SOP class: this index answers that alone.
    Index(None, "series_id", "sop_class_uid", "instance_number"),
)  # fmt: skip
"""One SOP instance within one series.

``data_source`` is its series list's, copied for lookups by SOP Instance UID and data source
(one SOP Instance UID is one instance per data source: :data:`sop_instance_table`).
"""

instance_dicom_json_table = Table(
    "instance_dicom_json", metadata_obj,
    Column("instance_id", BigId, primary_key=True),
    Column("study_instance_uid", UID, primary_key=True),
    Column("generation", Integer, nullable=False, server_default=text("0")),
    Column("json", Text),
    _study_key("instance", "instance_id"),
)  # fmt: skip
"""One instance's DICOM JSON as WADO-RS metadata serves it, kept so that it is built once.

``json`` holds the bytes of the instance's DICOM JSON object with every ``BulkDataURI``
relative to the DICOMweb root (``studies/.../bulkdata/7FE00010``); the server prefixes the
root the request came to. ``json`` NULL is a tombstone: a trigger of migration 0003 writes
one, with ``generation`` + 1, whenever the instance's ``metadata`` is updated. See
:mod:`repository.web.metadata_cache`.
"""

sop_instance_table = Table(
    "sop_instance", metadata_obj,
    Column("sop_instance_uid", UID, primary_key=True),
    Column("data_source", String(64), primary_key=True),
    _uid("study_instance_uid"),
    _uid("series_instance_uid"),
)  # fmt: skip
"""Which study and series each SOP Instance UID of a data source is stored under.

Written in the same transaction as the instance: its primary key makes one SOP Instance UID
one instance per data source, also when two writers race to file it under two studies. On
Citus it is distributed by SOP Instance UID (a unique index on ``instance`` could not be:
it would lack the distribution column). Deleting an instance deletes its row.
"""

change_table = Table(
    "change", metadata_obj,
    Column("seq", BigId, primary_key=True),
    Column("kind", String(32), nullable=False),
    _uid("study_instance_uid"),
    Column("series_instance_uid", UID),
    _data_source(nullable=True),
    Column("made_in_client", Boolean, nullable=False, default=False),
    _document("payload"),
    _timestamp("created_at"),
)  # fmt: skip
"""One committed change, written in the same transaction as the data it describes."""

change_compaction_table = Table(
    "change_compaction", metadata_obj,
    _id(),
    Column("through_seq", BigInteger, nullable=False),
    Column("removed", BigInteger, nullable=False),
    _timestamp("created_at"),
)  # fmt: skip
"""One compaction of the change log: every change with ``seq <= through_seq`` was removed.

The largest ``through_seq`` is the feed's horizon: a follower whose position is below it has
missed changes and gets :class:`~repository.errors.FeedGapError` instead of a silent gap.
"""

sop_class_table = Table(
    "sop_class", metadata_obj,
    Column("uid", UID, primary_key=True),
    Column("name", Text, nullable=False),
)  # fmt: skip
"""A SOP class of the DICOM standard: its UID and name (filled by the migrations from pydicom's
UID dictionary; the reporting view ``v_instance`` reads names from it)."""


def same_study(a: FromClause, b: FromClause) -> ColumnElement[bool]:
    """``a.study_instance_uid = b.study_instance_uid``: added to every join of two tables of a
    study, so that Citus runs it on one shard (joins on the distribution column)."""
    return a.c.study_instance_uid == b.c.study_instance_uid


INSTANCE_IN_SERIES = same_study(instance_table, series_table) & (
    instance_table.c.series_id == series_table.c.id
)
"""The join of an instance to its series (on the study's UID too: one shard on Citus)."""
