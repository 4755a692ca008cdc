"""instance_dicom_json: each instance's DICOM JSON, kept for WADO-RS metadata, and its trigger

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 19:00:00

A cache, filled by the DICOMweb server the first time it serves an instance's metadata
(repository/web/metadata_cache.py). The trigger makes it safe: any UPDATE of an instance's
``metadata``, by this library or by hand, turns that instance's cached row into a tombstone
(``json`` NULL, ``generation`` + 1) in the same transaction, and a server that read the old
metadata can only fill a row whose generation it saw, so a stale fill is never kept. Deleting an
instance deletes its row (ON DELETE CASCADE).

On PostgreSQL ``json`` is stored uncompressed out of line (STORAGE EXTERNAL): reading a series of
1000 instances of 57 KB (base64 pixel data inline) measured about twice as fast as with the
default pglz compression; lz4 read 12 KB instances as fast, in half the space, but is not on
every server.

A change to what the server writes into ``json`` ships with a migration that empties the cache
the same way: ``UPDATE instance_dicom_json SET json = NULL, generation = generation + 1``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TOMBSTONE = """
INSERT INTO instance_dicom_json (instance_id, generation, json) VALUES (NEW.id, 1, NULL)
ON CONFLICT (instance_id) DO UPDATE
SET generation = instance_dicom_json.generation + 1, json = NULL
"""

SQLITE_TRIGGER = f"""
CREATE TRIGGER instance_dicom_json_stale AFTER UPDATE OF metadata ON instance
BEGIN {TOMBSTONE}; END
"""

# SECURITY DEFINER: a role that may update instances need not be granted the cache table (one
# given its privileges table by table before this migration would otherwise fail to update);
# the search path is fixed to this schema's, as for any SECURITY DEFINER function.
PG_FUNCTION = f"""
CREATE FUNCTION dicom_repo_instance_dicom_json_stale() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN {TOMBSTONE}; RETURN NULL; END $$
"""

PG_TRIGGER = """
CREATE TRIGGER instance_dicom_json_stale AFTER UPDATE OF metadata ON instance
FOR EACH ROW EXECUTE FUNCTION dicom_repo_instance_dicom_json_stale()
"""


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "instance_dicom_json",
        sa.Column(
            "instance_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("generation", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("json", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["instance.id"],
            name=op.f("fk_instance_dicom_json_instance_id_instance"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("instance_id", name=op.f("pk_instance_dicom_json")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE instance_dicom_json ALTER COLUMN json SET STORAGE EXTERNAL")
        op.execute(PG_FUNCTION)
        op.execute(PG_TRIGGER)
    else:
        op.execute(SQLITE_TRIGGER)


def downgrade() -> None:
    """Revert this revision."""
    op.execute("DROP TRIGGER instance_dicom_json_stale" + (
        " ON instance" if op.get_bind().dialect.name == "postgresql" else ""
    ))  # fmt: skip
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION dicom_repo_instance_dicom_json_stale()")
    op.drop_table("instance_dicom_json")
