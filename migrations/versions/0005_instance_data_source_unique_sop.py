"""instance.data_source: one SOP Instance UID, one instance per data source, by a unique index

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 12:45:00

Storing a SOP Instance UID that is already stored under another study or series of the same data
source is refused (``ConflictError``). Until now only a probe before the insert guarded that
rule, so on PostgreSQL two transactions adding the same SOP Instance UID under two studies at
the same moment both passed it and both stored it. This revision copies each instance's data
source (its series list's) into ``instance.data_source`` and replaces the index on
``sop_instance_uid`` with a unique one on ``(sop_instance_uid, data_source)``: the database now
refuses the second copy, and the writer that loses the race gets ``ConflictError``. The same
SOP Instance UID stays allowed in two data sources (OHIF keeps one series list per data source).

A database that already holds such duplicates cannot get the index: the upgrade stops, changing
nothing, with an error naming them (remove one copy of each, ``dicom-repo`` delete commands or
SQL, then upgrade again).

On SQLite the column is added with ``DEFAULT ''`` (SQLite adds a NOT NULL column only with a
default, and drops one only by rebuilding the table); every writer sets it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from repository.errors import ConflictError

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DUPLICATES = """
SELECT i.sop_instance_uid, l.data_source, COUNT(*) AS copies
FROM instance i JOIN series s ON s.id = i.series_id JOIN series_list l ON l.id = s.series_list_id
GROUP BY i.sop_instance_uid, l.data_source HAVING COUNT(*) > 1
ORDER BY i.sop_instance_uid, l.data_source
"""

FILL = """
UPDATE instance SET data_source = (
    SELECT l.data_source FROM series s JOIN series_list l ON l.id = s.series_list_id
    WHERE s.id = instance.series_id
)
"""


def _refuse_duplicates() -> None:
    rows = op.get_bind().execute(sa.text(DUPLICATES)).all()
    if rows:
        shown = "; ".join(f"{sop} ({copies} copies in data source {ds!r})"
                          for sop, ds, copies in rows[:20])  # fmt: skip
        more = f" and {len(rows) - 20} more" if len(rows) > 20 else ""
        raise ConflictError(
            f"cannot upgrade to 0005: {len(rows)} SOP Instance UIDs are stored more than once in "
            f"one data source: {shown}{more}. Keep one copy of each, then upgrade again."
        )


def upgrade() -> None:
    """Apply this revision."""
    _refuse_duplicates()
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.add_column(
        "instance",
        sa.Column("data_source", sa.String(length=64), nullable=not sqlite,
                  server_default=sa.text("''") if sqlite else None),
    )  # fmt: skip
    op.execute(FILL)
    if not sqlite:
        op.alter_column("instance", "data_source", nullable=False)
    op.drop_index("ix_instance_sop_instance_uid", table_name="instance")
    op.create_index(
        "ix_instance_sop_instance_uid_data_source",
        "instance",
        ["sop_instance_uid", "data_source"],
        unique=True,
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_instance_sop_instance_uid_data_source", table_name="instance")
    op.create_index("ix_instance_sop_instance_uid", "instance", ["sop_instance_uid"])
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE instance DROP COLUMN data_source")
    else:
        op.drop_column("instance", "data_source")
