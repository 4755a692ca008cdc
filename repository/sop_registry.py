"""One SOP Instance UID, one study and series per data source: the ``sop_instance`` table.

A writer registers every instance it adds (:func:`register`) in the transaction that adds it:
``INSERT ... ON CONFLICT DO NOTHING`` on the primary key (SOP Instance UID, data source), then a
read of the rows that were there. A UID already filed under another study or series is refused
(:class:`~repository.errors.ConflictError`). Two writers filing one UID under two studies at once
queue on that key: the second waits for the first to commit, then reads its row and is refused.
That holds on Citus too, where ``sop_instance`` is distributed by the SOP UID and ``instance``
by the study's UID (a unique index on ``instance`` alone would lack the distribution column).
Deletes unregister what they remove (:func:`unregister`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Connection, delete, select

from .engine import insert_or_skip
from .errors import ConflictError
from .normalize import NormalizedInstance
from .schema import sop_instance_table

CHUNK = 900  # bound parameters per IN list, under SQLite's default limit


def register(
    conn: Connection, instances: Sequence[NormalizedInstance], data_source: str
) -> set[str]:
    """Register ``instances`` under their study and series in ``data_source``.

    Returns the SOP Instance UIDs that were registered already, where they belong (stored
    before); raises ConflictError, naming the UID and both places, for one filed elsewhere.
    """
    wanted = {i.sop_instance_uid: i for i in instances}
    rows = [
        {"sop_instance_uid": sop, "data_source": data_source,
         "study_instance_uid": i.study_instance_uid, "series_instance_uid": i.series_instance_uid}
        for sop, i in sorted(wanted.items())  # one lock order for concurrent writers
    ]  # fmt: skip
    stmt = insert_or_skip(conn, sop_instance_table).on_conflict_do_nothing()
    new = set(conn.execute(stmt.returning(sop_instance_table.c.sop_instance_uid), rows).scalars())
    before = sorted(set(wanted) - new)
    present: set[str] = set()
    for start in range(0, len(before), CHUNK):
        for sop, study, series in conn.execute(
            select(sop_instance_table.c.sop_instance_uid, sop_instance_table.c.study_instance_uid,
                   sop_instance_table.c.series_instance_uid)
            .where(sop_instance_table.c.data_source == data_source,
                   sop_instance_table.c.sop_instance_uid.in_(before[start : start + CHUNK]))
        ):  # fmt: skip
            inst = wanted[sop]
            if (inst.study_instance_uid, inst.series_instance_uid) != (study, series):
                raise ConflictError(
                    f"SOPInstanceUID {sop} is already stored in study {study} series {series} "
                    f"(data source {data_source!r}); refusing to file it under study "
                    f"{inst.study_instance_uid} series {inst.series_instance_uid}"
                )
            present.add(sop)
    return present


def unregister(conn: Connection, removed: Iterable[tuple[str, str]]) -> None:
    """Forget the (SOP Instance UID, data source) pairs of instances deleted."""
    by_source: dict[str, list[str]] = {}
    for sop, source in removed:
        by_source.setdefault(source, []).append(sop)
    for source, sops in by_source.items():
        for start in range(0, len(sops), CHUNK):
            conn.execute(
                delete(sop_instance_table).where(
                    sop_instance_table.c.data_source == source,
                    sop_instance_table.c.sop_instance_uid.in_(sops[start : start + CHUNK]),
                )
            )
