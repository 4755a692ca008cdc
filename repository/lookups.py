"""Instances by SOP Instance UID, many at once, with a plan that does not depend on statistics.

``WHERE sop_instance_uid IN (900 values)`` is planned from table statistics. Right after a
large first load PostgreSQL has none yet (autovacuum analyzes later), estimates that 900 values
match most of the table and scans all of it, once per chunk: re-adding N known instances then
costs O(N^2) (see ``python -m bench.readd``). On PostgreSQL the UIDs are therefore looked up one
by one through a LATERAL subquery on the unique index, a nested loop at any size, whatever the
statistics say (``OFFSET 0`` keeps the planner from flattening the subquery back into a join it
would plan from statistics again).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, select, text

from .schema import instance_table

_POSTGRES = text(
    "SELECT i.series_id, i.sop_instance_uid FROM unnest(CAST(:uids AS text[])) AS u(uid) "
    "CROSS JOIN LATERAL (SELECT series_id, sop_instance_uid FROM instance "
    "WHERE sop_instance_uid = u.uid OFFSET 0) AS i"
)


def series_of_sop_instances(conn: Connection, uids: Sequence[str]) -> list[tuple[int, str]]:
    """(series id, SOP Instance UID) of every stored copy of the instances ``uids``."""
    if conn.dialect.name == "postgresql":
        rows = conn.execute(_POSTGRES, {"uids": list(uids)})
    else:
        rows = conn.execute(
            select(instance_table.c.series_id, instance_table.c.sop_instance_uid).where(
                instance_table.c.sop_instance_uid.in_(uids)
            )
        )
    return [(int(series_id), str(uid)) for series_id, uid in rows]


def explain(conn: Connection, uids: Sequence[str]) -> list[str]:
    """The plan of :func:`series_of_sop_instances` for ``uids`` (PostgreSQL; for benchmarks)."""
    return list(conn.execute(text(f"EXPLAIN {_POSTGRES.text}"), {"uids": list(uids)}).scalars())
