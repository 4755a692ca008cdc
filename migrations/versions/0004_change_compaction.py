"""change_compaction: where the change log was compacted, so followers behind it are told

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 12:40:00

``dicom-repo changes compact`` (``Store.compact_changes``) deletes old rows of ``change`` and
records here the largest seq it removed. A follower, ``subscribe(since=...)``, ``changes --since``
or an SSE client whose position is below that seq gets ``FeedGapError`` (HTTP 410 Gone) rather
than a silent gap. PostgreSQL sequences skip numbers when transactions roll back, so the oldest
kept seq alone cannot tell a compaction from a rolled-back writer: the horizon is kept here.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "change_compaction",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("through_seq", sa.BigInteger(), nullable=False),
        sa.Column("removed", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_compaction")),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("change_compaction")
