"""reporting views: sop_class lookup table, v_study / v_series / v_instance, report indexes

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 22:30:00

The views have the same names, columns and meaning on SQLite and PostgreSQL; only the SQL that
builds them differs (JSON functions, string aggregation, date parsing). Dates are DATE on
PostgreSQL and ISO 8601 text ('YYYY-MM-DD') on SQLite, which compares, sorts and groups the same
way. Counts are computed when the view is read, never cached, so they are exact after any write.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from pydicom.uid import UID_dictionary

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VIEWS = ("v_instance", "v_series", "v_study")

# Series-level lookups the cookbook makes ("busiest stations", "series by manufacturer").
INDEXES = {
    "ix_series_station_name": ("series", "StationName"),
    "ix_series_manufacturer": ("series", "Manufacturer"),
}

# A DA value ('YYYYMMDD', or ACR-NEMA 'YYYY.MM.DD') as a date, NULL when it is not a valid date.
PG_DATE_FUNCTION = r"""
CREATE FUNCTION dicom_repo_date(value text) RETURNS date
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE digits text := replace(btrim(value), '.', '');
BEGIN
    IF digits !~ '^[0-9]{8}$' THEN
        RETURN NULL;
    END IF;
    RETURN make_date(substr(digits, 1, 4)::int, substr(digits, 5, 2)::int,
                     substr(digits, 7, 2)::int);
EXCEPTION WHEN others THEN
    RETURN NULL;
END $$
"""

STUDY_COLUMNS = """
    st.study_instance_uid, st.patient_id, st.patient_name, st.patient_birth_date,
    st.patient_sex, st.study_date, st.study_time, st.accession_number, st.study_description,
    st.modalities_in_study,
    (SELECT COUNT(DISTINCT se.series_instance_uid)
       FROM series_list sl JOIN series se ON se.series_list_id = sl.id
      WHERE sl.study_id = st.id) AS number_of_series,
    (SELECT COUNT(DISTINCT i.sop_instance_uid)
       FROM series_list sl JOIN series se ON se.series_list_id = sl.id
       JOIN instance i ON i.series_id = se.id
      WHERE sl.study_id = st.id) AS number_of_instances,
    {data_sources} AS data_sources,
    st.created_at, st.updated_at
"""

SQLITE_DATA_SOURCES = """(SELECT group_concat(ds, ',') FROM (
        SELECT sl.data_source AS ds FROM series_list sl WHERE sl.study_id = st.id
        ORDER BY sl.data_source))"""

PG_DATA_SOURCES = """(SELECT string_agg(sl.data_source, ',' ORDER BY sl.data_source)
       FROM series_list sl WHERE sl.study_id = st.id)"""

SERIES_SQL = """
CREATE VIEW v_series AS
SELECT se.series_instance_uid, st.study_instance_uid, sl.data_source, se.modality,
    se.series_number, se.series_description, se.series_date, se.body_part_examined,
    se.metadata ->> 'Manufacturer' AS manufacturer,
    se.metadata ->> 'ManufacturerModelName' AS manufacturer_model_name,
    se.metadata ->> 'StationName' AS station_name,
    (SELECT COUNT(*) FROM instance i WHERE i.series_id = se.id) AS number_of_instances,
    (SELECT COALESCE(SUM({frames}), 0) FROM instance i WHERE i.series_id = se.id)
        AS number_of_frames
FROM series se
JOIN series_list sl ON sl.id = se.series_list_id
JOIN study st ON st.id = sl.study_id
"""

INSTANCE_SQL = """
CREATE VIEW v_instance AS
SELECT i.sop_instance_uid, se.series_instance_uid, st.study_instance_uid, sl.data_source,
    se.modality, i.sop_class_uid, sc.name AS sop_class_name, i.instance_number, i.rows,
    i.columns, {frames} AS number_of_frames, i.transfer_syntax_uid,
    {content_date} AS content_date,
    {slice_thickness} AS slice_thickness
FROM instance i
JOIN series se ON se.id = i.series_id
JOIN series_list sl ON sl.id = se.series_list_id
JOIN study st ON st.id = sl.study_id
LEFT JOIN sop_class sc ON sc.uid = i.sop_class_uid
"""

# Frames of one instance: NumberOfFrames, else 1 for an image (it has Rows), else 0 (no pixels).
FRAMES = "COALESCE(i.number_of_frames, CASE WHEN i.rows IS NOT NULL THEN 1 ELSE 0 END)"

PG_CONTENT_DATE = "dicom_repo_date(i.metadata ->> 'ContentDate')"
PG_SLICE_THICKNESS = """CASE WHEN jsonb_typeof(i.metadata -> 'SliceThickness') = 'number'
        THEN CAST(i.metadata ->> 'SliceThickness' AS DOUBLE PRECISION) END"""

# SQLite has no DATE type: an ISO 'YYYY-MM-DD' text, kept only if date() maps it to itself
# ('+0 days' makes date() normalize: '2024-02-30' becomes '2024-03-01', so it is rejected).
SQLITE_ISO = "substr({d}, 1, 4) || '-' || substr({d}, 5, 2) || '-' || substr({d}, 7, 2)".format(
    d="replace(trim(i.metadata ->> 'ContentDate'), '.', '')"
)
SQLITE_CONTENT_DATE = f"""CASE WHEN json_type(i.metadata, '$.ContentDate') = 'text'
        AND length(replace(trim(i.metadata ->> 'ContentDate'), '.', '')) = 8
        AND date({SQLITE_ISO}, '+0 days') = {SQLITE_ISO} THEN {SQLITE_ISO} END"""
SQLITE_SLICE_THICKNESS = """CASE WHEN json_type(i.metadata, '$.SliceThickness')
        IN ('integer', 'real') THEN CAST(i.metadata ->> 'SliceThickness' AS REAL) END"""


def upgrade() -> None:
    """Apply this revision."""
    sop_class = op.create_table(
        "sop_class",
        sa.Column("uid", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("uid", name=op.f("pk_sop_class")),
    )
    op.bulk_insert(
        sop_class,
        [
            {"uid": str(uid), "name": entry[0]}
            for uid, entry in sorted(UID_dictionary.items())
            if entry[1] == "SOP Class"
        ],
    )
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        op.execute(PG_DATE_FUNCTION)
    data_sources = PG_DATA_SOURCES if postgresql else SQLITE_DATA_SOURCES
    study_columns = STUDY_COLUMNS.format(data_sources=data_sources)
    op.execute(f"CREATE VIEW v_study AS SELECT {study_columns} FROM study st")
    op.execute(SERIES_SQL.format(frames=FRAMES))
    op.execute(
        INSTANCE_SQL.format(
            frames=FRAMES,
            content_date=PG_CONTENT_DATE if postgresql else SQLITE_CONTENT_DATE,
            slice_thickness=PG_SLICE_THICKNESS if postgresql else SQLITE_SLICE_THICKNESS,
        )
    )
    for name, (table, keyword) in INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON {table} ((metadata ->> '{keyword}'))")


def downgrade() -> None:
    """Revert this revision."""
    for name in INDEXES:
        op.execute(f"DROP INDEX {name}")
    for view in VIEWS:
        op.execute(f"DROP VIEW {view}")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION dicom_repo_date(text)")
    op.drop_table("sop_class")
