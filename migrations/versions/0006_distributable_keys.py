"""distributable keys: every table of a study carries its StudyInstanceUID; sop_instance

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 13:00:00

``series_list``, ``series``, ``instance`` and ``instance_dicom_json`` get a ``study_instance_uid``
column (filled from their study), and it joins their foreign keys and unique constraints; each
parent gets a unique ``(id, study_instance_uid)`` the foreign keys point at. On plain PostgreSQL
and SQLite this changes no answer (a study's id and UID go together) and lets study-level reads
go by key; on Citus the UID is the distribution column, so one study's rows share one shard
(``dicom-repo db distribute``, :mod:`repository.citus`).

``sop_instance`` keeps, per data source, the study and series each SOP Instance UID is stored
under, written in the same transaction as the instance: its primary key refuses a second study
for one SOP Instance UID under concurrency, on Citus too (distributed by the SOP UID). It takes
over from the unique index of migration 0005 on ``instance (sop_instance_uid, data_source)``,
which Citus could not keep (it lacks the distribution column): that index stays, not unique,
for lookups by SOP Instance UID.

The reporting views are rebuilt to correlate on the study's UID (the SQL Citus runs on each
shard); the instance cache's trigger writes the UID as well. On SQLite the tables are rebuilt
(batch mode), which drops views, triggers and expression indexes: they are made again.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UID = sa.String(length=64)
SOP_INDEX = "ix_instance_sop_instance_uid_data_source"

# child table, its parent key column, the parent, the unique constraints before and after
CHILDREN = (
    ("series_list", "study_id", "study", ("study_id", "data_source"),
     ("study_instance_uid", "data_source")),
    ("series", "series_list_id", "series_list", ("series_list_id", "series_instance_uid"),
     ("study_instance_uid", "series_list_id", "series_instance_uid")),
    ("instance", "series_id", "series", ("series_id", "sop_instance_uid"),
     ("study_instance_uid", "series_id", "sop_instance_uid")),
)  # fmt: skip

STUDY_VIEW = """
CREATE VIEW v_study AS SELECT
    st.study_instance_uid, st.patient_id, st.patient_name, st.patient_birth_date,
    st.patient_sex, st.study_date, st.study_time, st.accession_number, st.study_description,
    st.modalities_in_study,
    (SELECT COUNT(DISTINCT se.series_instance_uid) FROM series se
      WHERE se.study_instance_uid = st.study_instance_uid) AS number_of_series,
    (SELECT COUNT(DISTINCT i.sop_instance_uid) FROM instance i
      WHERE i.study_instance_uid = st.study_instance_uid) AS number_of_instances,
    {data_sources} AS data_sources,
    st.created_at, st.updated_at
FROM study st
"""

SQLITE_DATA_SOURCES = """(SELECT group_concat(ds, ',') FROM (
        SELECT sl.data_source AS ds FROM series_list sl
        WHERE sl.study_instance_uid = st.study_instance_uid ORDER BY sl.data_source))"""

PG_DATA_SOURCES = """(SELECT string_agg(sl.data_source, ',' ORDER BY sl.data_source)
       FROM series_list sl WHERE sl.study_instance_uid = st.study_instance_uid)"""

SERIES_VIEW = """
CREATE VIEW v_series AS
SELECT se.series_instance_uid, se.study_instance_uid, sl.data_source, se.modality,
    se.series_number, se.series_description, se.series_date, se.body_part_examined,
    se.metadata ->> 'Manufacturer' AS manufacturer,
    se.metadata ->> 'ManufacturerModelName' AS manufacturer_model_name,
    se.metadata ->> 'StationName' AS station_name,
    (SELECT COUNT(*) FROM instance i
      WHERE i.study_instance_uid = se.study_instance_uid AND i.series_id = se.id)
        AS number_of_instances,
    (SELECT COALESCE(SUM({frames}), 0) FROM instance i
      WHERE i.study_instance_uid = se.study_instance_uid AND i.series_id = se.id)
        AS number_of_frames
FROM series se
JOIN series_list sl ON sl.study_instance_uid = se.study_instance_uid AND sl.id = se.series_list_id
"""

INSTANCE_VIEW = """
CREATE VIEW v_instance AS
SELECT i.sop_instance_uid, se.series_instance_uid, i.study_instance_uid, sl.data_source,
    se.modality, i.sop_class_uid, sc.name AS sop_class_name, i.instance_number, i.rows,
    i.columns, {frames} AS number_of_frames, i.transfer_syntax_uid,
    {content_date} AS content_date,
    {slice_thickness} AS slice_thickness
FROM instance i
JOIN series se ON se.study_instance_uid = i.study_instance_uid AND se.id = i.series_id
JOIN series_list sl ON sl.study_instance_uid = se.study_instance_uid AND sl.id = se.series_list_id
LEFT JOIN sop_class sc ON sc.uid = i.sop_class_uid
"""

TOMBSTONE = """
INSERT INTO instance_dicom_json (instance_id, study_instance_uid, generation, json)
VALUES (NEW.id, NEW.study_instance_uid, 1, NULL)
ON CONFLICT (instance_id, study_instance_uid) DO UPDATE
SET generation = instance_dicom_json.generation + 1, json = NULL
"""

SQLITE_TRIGGER = f"""
CREATE TRIGGER instance_dicom_json_stale AFTER UPDATE OF metadata ON instance
BEGIN {TOMBSTONE}; END
"""

PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION dicom_repo_instance_dicom_json_stale() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN {TOMBSTONE}; RETURN NULL; END $$
"""


def _sibling(name: str) -> Any:
    """An earlier migration of this directory, for the SQL pieces it defines."""
    path = Path(__file__).with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"dicom_repo_migration_{name[:4]}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _postgresql() -> bool:
    return bool(op.get_bind().dialect.name == "postgresql")


def _drop_dependents(indexes: dict[str, tuple[str, str]]) -> None:
    """Views, expression indexes and the SQLite trigger: a table rebuild would lose them."""
    for view in ("v_instance", "v_series", "v_study"):
        op.execute(f"DROP VIEW IF EXISTS {view}")
    for name in indexes:
        op.execute(f"DROP INDEX IF EXISTS {name}")
    if not _postgresql():
        op.execute("DROP TRIGGER IF EXISTS instance_dicom_json_stale")


def _create_dependents(m0002: Any, new_views: bool) -> None:
    postgresql = _postgresql()
    frames: str = m0002.FRAMES
    if new_views:
        sources = PG_DATA_SOURCES if postgresql else SQLITE_DATA_SOURCES
        op.execute(STUDY_VIEW.format(data_sources=sources))
        op.execute(SERIES_VIEW.format(frames=frames))
        instance_view = INSTANCE_VIEW
    else:
        sources = getattr(m0002, "PG_DATA_SOURCES" if postgresql else "SQLITE_DATA_SOURCES")
        op.execute(
            f"CREATE VIEW v_study AS SELECT "
            f"{m0002.STUDY_COLUMNS.format(data_sources=sources)} FROM study st"
        )
        op.execute(m0002.SERIES_SQL.format(frames=frames))
        instance_view = m0002.INSTANCE_SQL
    prefix = "PG" if postgresql else "SQLITE"
    op.execute(instance_view.format(
        frames=frames,
        content_date=getattr(m0002, f"{prefix}_CONTENT_DATE"),
        slice_thickness=getattr(m0002, f"{prefix}_SLICE_THICKNESS"),
    ))  # fmt: skip
    for name, (table, keyword) in m0002.INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON {table} ((metadata ->> '{keyword}'))")


def _fill_study_uid(table: str, key: str, parent: str) -> None:
    op.add_column(table, sa.Column("study_instance_uid", UID, nullable=True))
    op.execute(
        f"UPDATE {table} SET study_instance_uid = (SELECT p.study_instance_uid FROM {parent} p "
        f"WHERE p.id = {table}.{key})"
    )


def upgrade() -> None:
    """Apply this revision."""
    m0002 = _sibling("0002_reporting_views")
    _drop_dependents(m0002.INDEXES)
    with op.batch_alter_table("study") as batch:
        batch.create_unique_constraint(batch.f("uq_study_id_study_instance_uid"),
                                       ["id", "study_instance_uid"])  # fmt: skip
    for table, key, parent, before, after in CHILDREN:
        _fill_study_uid(table, key, parent)
        with op.batch_alter_table(table) as batch:
            batch.alter_column("study_instance_uid", existing_type=UID, nullable=False)
            batch.drop_constraint(f"fk_{table}_{key}_{parent}", type_="foreignkey")
            batch.drop_constraint(f"uq_{table}_{'_'.join(before)}", type_="unique")
            batch.create_foreign_key(
                f"fk_{table}_{key}_{parent}", parent, [key, "study_instance_uid"],
                ["id", "study_instance_uid"], ondelete="CASCADE",
            )  # fmt: skip
            batch.create_unique_constraint(f"uq_{table}_{'_'.join(after)}", list(after))
            batch.create_unique_constraint(f"uq_{table}_id_study_instance_uid",
                                           ["id", "study_instance_uid"])  # fmt: skip
    _instance_dicom_json_keys()
    _sop_instance()
    _sop_index(unique=False)
    _create_dependents(m0002, new_views=True)


def _sop_index(unique: bool) -> None:
    """Migration 0005's index on (sop_instance_uid, data_source): unique there, not here."""
    op.drop_index(SOP_INDEX, table_name="instance")
    op.create_index(SOP_INDEX, "instance", ["sop_instance_uid", "data_source"], unique=unique)


def _instance_dicom_json_keys() -> None:
    _fill_study_uid("instance_dicom_json", "instance_id", "instance")
    with op.batch_alter_table("instance_dicom_json") as batch:
        batch.alter_column("study_instance_uid", existing_type=UID, nullable=False)
        batch.drop_constraint("fk_instance_dicom_json_instance_id_instance", type_="foreignkey")
        batch.drop_constraint("pk_instance_dicom_json", type_="primary")
        batch.create_primary_key("pk_instance_dicom_json", ["instance_id", "study_instance_uid"])
        batch.create_foreign_key(
            "fk_instance_dicom_json_instance_id_instance", "instance",
            ["instance_id", "study_instance_uid"], ["id", "study_instance_uid"],
            ondelete="CASCADE",
        )  # fmt: skip
    if _postgresql():
        op.execute(PG_FUNCTION)
    else:
        op.execute(SQLITE_TRIGGER)


def _sop_instance() -> None:
    op.create_table(
        "sop_instance",
        sa.Column("sop_instance_uid", UID, nullable=False),
        sa.Column("data_source", sa.String(length=64), nullable=False),
        sa.Column("study_instance_uid", UID, nullable=False),
        sa.Column("series_instance_uid", UID, nullable=False),
        sa.PrimaryKeyConstraint("sop_instance_uid", "data_source", name=op.f("pk_sop_instance")),
    )
    op.execute(
        "INSERT INTO sop_instance (sop_instance_uid, data_source, study_instance_uid, "
        "series_instance_uid) SELECT i.sop_instance_uid, sl.data_source, "
        "MIN(i.study_instance_uid), MIN(se.series_instance_uid) FROM instance i "
        "JOIN series se ON se.id = i.series_id JOIN series_list sl ON sl.id = se.series_list_id "
        "GROUP BY i.sop_instance_uid, sl.data_source"
    )


def _refuse_distributed() -> None:
    """Keys without the distribution column cannot exist on Citus: no way down from here."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    citus = bind.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'citus'")).first()
    if citus and bind.execute(sa.text(
        "SELECT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = to_regclass('study'))"
    )).scalar():  # fmt: skip
        from repository.errors import RepositoryError

        raise RepositoryError(
            "cannot downgrade below 0006: the tables are distributed over Citus, and the keys "
            "before 0006 lack the distribution column (undistribute_table them first)"
        )


def downgrade() -> None:
    """Revert this revision."""
    _refuse_distributed()
    m0002 = _sibling("0002_reporting_views")
    _drop_dependents(m0002.INDEXES)
    _sop_index(unique=True)
    op.drop_table("sop_instance")
    with op.batch_alter_table("instance_dicom_json") as batch:
        batch.drop_constraint("fk_instance_dicom_json_instance_id_instance", type_="foreignkey")
        batch.drop_constraint("pk_instance_dicom_json", type_="primary")
        batch.create_primary_key("pk_instance_dicom_json", ["instance_id"])
        batch.create_foreign_key("fk_instance_dicom_json_instance_id_instance", "instance",
                                 ["instance_id"], ["id"], ondelete="CASCADE")  # fmt: skip
        batch.drop_column("study_instance_uid")
    for table, key, parent, before, after in reversed(CHILDREN):
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"uq_{table}_id_study_instance_uid", type_="unique")
            batch.drop_constraint(f"uq_{table}_{'_'.join(after)}", type_="unique")
            batch.drop_constraint(f"fk_{table}_{key}_{parent}", type_="foreignkey")
            batch.create_foreign_key(f"fk_{table}_{key}_{parent}", parent, [key], ["id"],
                                     ondelete="CASCADE")  # fmt: skip
            batch.create_unique_constraint(f"uq_{table}_{'_'.join(before)}", list(before))
            batch.drop_column("study_instance_uid")
    with op.batch_alter_table("study") as batch:
        batch.drop_constraint("uq_study_id_study_instance_uid", type_="unique")
    old_tombstone = getattr(
        _sibling("0003_instance_dicom_json"), "PG_FUNCTION" if _postgresql() else "SQLITE_TRIGGER"
    )
    op.execute(old_tombstone.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION"))
    _create_dependents(m0002, new_views=False)
