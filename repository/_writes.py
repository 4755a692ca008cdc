"""SQL for the write path: bulk upserts on natural keys.

Every function takes an open Connection inside a transaction and never commits. Rows are written
with ``INSERT ... ON CONFLICT DO NOTHING`` on the natural keys, so a row that exists is never
written twice, even by concurrent writers; existing rows are locked (``FOR UPDATE`` on
PostgreSQL) before they are merged. Rows are inserted and locked sorted by natural key, so
concurrent transactions take their locks in one order (deadlocks stay rare; the store retries
the ones that happen).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, func, select, tuple_, update

from . import sop_registry
from .citus import by_study
from .columns import INSTANCE_COLUMNS, SERIES_COLUMNS, STUDY_COLUMNS, column_values
from .db_errors import is_unique_violation, translate_errors
from .engine import dumps, insert_or_skip
from .errors import TransactionConflictError
from .image_id import instance_image_id
from .normalize import SERIES_KEYWORDS, STUDY_KEYWORDS, Metadata, NormalizedInstance, pick
from .schema import instance_table, series_list_table, series_table, study_table

STUDY_KEY = "study_instance_uid"
"""The column every table of a study carries (the distribution column on Citus)."""

CHUNK = 900  # bound parameters per IN list, under SQLite's default limit

Roots = tuple[str | None, str | None]
"""A series list's (WADO-RS root, WADO-URI root)."""


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def study_columns(md: Mapping[str, Any]) -> dict[str, Any]:
    """Typed study columns from study-level metadata."""
    return column_values(STUDY_COLUMNS, md)


def series_columns(md: Mapping[str, Any]) -> dict[str, Any]:
    """Typed series columns from series-level metadata."""
    return column_values(SERIES_COLUMNS, md)


# --------------------------------------------------------------------------- studies


def upsert_studies(
    conn: Connection, studies: Mapping[str, Metadata]
) -> tuple[dict[str, int], list[str]]:
    """Create missing studies and fill attributes existing ones lack (first value wins).

    Returns the id of every study and the UIDs of those created, in input order.
    """
    rows = [
        {"study_instance_uid": uid, **study_columns(md), "metadata": md}
        for uid, md in sorted(studies.items())
    ]
    stmt = insert_or_skip(conn, study_table).on_conflict_do_nothing(
        index_elements=["study_instance_uid"]
    )
    created = {
        uid: id_
        for id_, uid in conn.execute(
            stmt.returning(study_table.c.id, study_table.c.study_instance_uid), rows
        )
    }
    ids = dict(created)
    existing = sorted(uid for uid in studies if uid not in created)
    for chunk in by_study(conn, existing, str, CHUNK):
        found = conn.execute(
            select(study_table.c.id, study_table.c.study_instance_uid, study_table.c.metadata)
            .where(study_table.c.study_instance_uid.in_(chunk))
            .order_by(study_table.c.study_instance_uid)
            .with_for_update()
        ).all()
        if len(found) < len(chunk):  # deleted by a concurrent transaction since the insert
            gone = sorted(set(chunk) - {uid for _, uid, _ in found})
            raise TransactionConflictError(f"study {gone[0]} was deleted meanwhile")
        for id_, uid, old in found:
            ids[uid] = id_
            merged = {**studies[uid], **old}
            if merged != old:
                conn.execute(
                    update(study_table)
                    .where(study_table.c.study_instance_uid == uid, study_table.c.id == id_)
                    .values(**study_columns(merged), metadata=merged, updated_at=func.now())
                )
    return ids, [uid for uid in studies if uid in created]


# --------------------------------------------------------------------------- series lists


def upsert_series_lists(
    conn: Connection,
    study_ids: Mapping[str, int],
    data_source: str,
    wado_root: str | None = None,
    wado_uri: str | None = None,
) -> dict[int, tuple[int, Roots]]:
    """Create the (study, data_source) series lists that are missing.

    ``study_ids`` maps StudyInstanceUID to study id (:func:`upsert_studies`). Returns study
    id -> (series list id, the list's WADO-RS and WADO-URI roots).

    A list created without DICOMweb roots gets them when a later call knows them.
    """
    uids = sorted(study_ids)
    if not uids:
        return {}
    rows = [
        {STUDY_KEY: uid, "study_id": study_ids[uid], "data_source": data_source,
         "wado_root": wado_root, "wado_uri": wado_uri}
        for uid in uids
    ]  # fmt: skip
    stmt = insert_or_skip(conn, series_list_table).on_conflict_do_nothing(
        index_elements=[STUDY_KEY, "data_source"]
    )
    conn.execute(stmt, rows)
    lists = series_list_table.c
    where = and_(lists.study_instance_uid.in_(uids), lists.data_source == data_source)
    if wado_root or wado_uri:
        roots = {"wado_root": wado_root} if wado_root else {}
        roots |= {"wado_uri": wado_uri} if wado_uri else {}
        conn.execute(
            update(series_list_table)
            .where(where, lists.wado_root.is_(None) | lists.wado_uri.is_(None))
            .values(**roots)
        )
    result: dict[int, tuple[int, Roots]] = {}
    for chunk in _chunks(uids):
        for study_id, list_id, root, uri in conn.execute(
            select(lists.study_id, lists.id, lists.wado_root, lists.wado_uri).where(
                lists.study_instance_uid.in_(chunk), lists.data_source == data_source
            )
        ):
            result[study_id] = (list_id, (root, uri))
    return result


# --------------------------------------------------------------------------- series


@dataclass(frozen=True)
class SeriesUpsert:
    """Outcome of :func:`upsert_series`: ids by (list id, UID), and which were new or changed."""

    ids: dict[tuple[int, str], int]
    created: list[tuple[int, str]]
    changed: list[tuple[int, str]]


def upsert_series(
    conn: Connection,
    series: Mapping[tuple[int, str], Metadata],
    study_of: Mapping[int, str],
    *,
    incoming_wins: bool,
) -> SeriesUpsert:
    """Create missing series (keyed by series list id and UID) and merge metadata into existing
    ones; ``study_of`` maps each series list id to its StudyInstanceUID.

    ``incoming_wins`` merges a series summary over what is stored (OHIF's addSeriesMetadata);
    otherwise only missing attributes are filled in (metadata taken from instances).
    """
    rows = [
        {STUDY_KEY: study_of[list_id], "series_list_id": list_id, "series_instance_uid": uid,
         **series_columns(md), "metadata": md}
        for (list_id, uid), md in sorted(series.items())
    ]  # fmt: skip
    stmt = insert_or_skip(conn, series_table).on_conflict_do_nothing(
        index_elements=[STUDY_KEY, "series_list_id", "series_instance_uid"]
    )
    col = series_table.c
    returned = stmt.returning(col.id, col.series_list_id, col.series_instance_uid)
    ids = {(list_id, uid): id_ for id_, list_id, uid in conn.execute(returned, rows)}
    created = [key for key in series if key in ids]
    changed: list[tuple[int, str]] = []
    existing = sorted(key for key in series if key not in ids)
    for chunk in by_study(conn, existing, lambda key: study_of[key[0]], CHUNK // 2):
        studies = sorted({study_of[list_id] for list_id, _ in chunk})
        found = conn.execute(
            select(col.id, col.series_list_id, col.series_instance_uid, col.metadata)
            .where(col.study_instance_uid.in_(studies),
                   tuple_(col.series_list_id, col.series_instance_uid).in_(chunk))
            .order_by(col.series_list_id, col.series_instance_uid)
            .with_for_update()
        )  # fmt: skip
        for id_, list_id, uid, old in found:
            key = (list_id, uid)
            ids[key] = id_
            incoming = series[key]
            merged = {**old, **incoming} if incoming_wins else {**incoming, **old}
            if merged != old:
                changed.append(key)
                conn.execute(
                    update(series_table)
                    .where(col.study_instance_uid == study_of[list_id], col.id == id_)
                    .values(**series_columns(merged), metadata=merged, updated_at=func.now())
                )
    return SeriesUpsert(ids, created, changed)


# --------------------------------------------------------------------------- instances


def check_conflicts(
    conn: Connection, instances: Sequence[NormalizedInstance], data_source: str
) -> set[str]:
    """Raise ConflictError if a SOP instance is already stored under another study or series
    (:func:`repository.sop_registry.register`, which registers the others).

    Returns the SOP Instance UIDs already stored where they belong.
    """
    return sop_registry.register(conn, instances, data_source)


def insert_instances(
    conn: Connection,
    instances: Sequence[tuple[int, NormalizedInstance, str | None]],
    data_source: str,
    wado_roots: Mapping[int, Roots],
    present: Collection[str] = (),
) -> set[tuple[int, str]]:
    """Insert (series id, instance, source path) rows that are new; return (series id, SOP UID).

    ``wado_roots`` maps series id to the series list's WADO-RS and WADO-URI roots, used to
    build the imageIds of instances given without one.
    ``present`` (from :func:`check_conflicts`) are known to be stored already and skipped.
    ``check_conflicts`` registered the others under this transaction, so a concurrent writer
    cannot file them elsewhere (:mod:`repository.sop_registry`).
    """
    return _insert_new(conn, instances, data_source, wado_roots, present)


def _insert_new(
    conn: Connection,
    instances: Sequence[tuple[int, NormalizedInstance, str | None]],
    data_source: str,
    wado_roots: Mapping[int, Roots],
    present: Collection[str],
) -> set[tuple[int, str]]:
    rows: list[dict[str, Any]] = []
    for series_id, inst, path in instances:
        if inst.sop_instance_uid in present:
            continue
        root, uri = wado_roots.get(series_id, (None, None))
        image_id = inst.image_id or instance_image_id(
            inst.study_instance_uid, inst.series_instance_uid, inst.sop_instance_uid,
            wado_root=inst.wado_root or root, wado_uri=inst.wado_uri or uri, path=path,
        )  # fmt: skip
        rows.append(instance_row(series_id, inst, image_id, data_source))
    if not rows:
        return set()
    rows.sort(key=lambda row: (row["series_id"], row["sop_instance_uid"]))  # lock order
    if conn.dialect.name == "postgresql" and len(rows) >= COPY_THRESHOLD and _copy(conn, rows):
        return {(row["series_id"], row["sop_instance_uid"]) for row in rows}
    if conn.dialect.name == "sqlite" and _sqlite_executemany(conn, rows):
        return {(row["series_id"], row["sop_instance_uid"]) for row in rows}
    stmt = insert_or_skip(conn, instance_table).on_conflict_do_nothing(
        index_elements=[STUDY_KEY, "series_id", "sop_instance_uid"]
    )
    result = conn.execute(
        stmt.returning(instance_table.c.series_id, instance_table.c.sop_instance_uid), rows
    )
    return {(series_id, uid) for series_id, uid in result}


COPY_THRESHOLD = 64
"""From this many new instances on, PostgreSQL inserts use COPY."""

_COPY_COLUMNS = (
    STUDY_KEY, "series_id", *(c.name for c in INSTANCE_COLUMNS), "image_id", "data_source"
)  # fmt: skip


def instance_row(
    series_id: int, inst: NormalizedInstance, image_id: str, data_source: str
) -> dict[str, Any]:
    """The ``instance`` row of ``inst``: its typed column values by name, and the rest."""
    return {STUDY_KEY: inst.study_instance_uid, "series_id": series_id, **inst.typed,
            "image_id": image_id, "data_source": data_source,
            "metadata": inst.metadata}  # fmt: skip


def _copy(conn: Connection, rows: list[dict[str, Any]]) -> bool:
    """PostgreSQL: COPY new instance rows straight into ``instance``; False if one exists.

    The rows are known to be absent (``check_conflicts``). If a concurrent writer inserted one
    of them since, the COPY fails with a unique violation and is rolled back to its savepoint;
    the caller then inserts them with ``ON CONFLICT DO NOTHING``, as for small batches.
    """

    driver = conn.connection.driver_connection
    assert driver is not None
    columns = ", ".join(f'"{c}"' for c in (*_COPY_COLUMNS, "metadata"))
    try:
        with (
            translate_errors("COPY into instance failed"),
            conn.begin_nested(),
            driver.cursor() as cur,
            cur.copy(f"COPY instance ({columns}) FROM STDIN") as copy,
        ):
            for row in rows:
                metadata = dumps(row["metadata"])
                copy.write_row([row[c] for c in _COPY_COLUMNS] + [metadata])
    except TransactionConflictError as error:
        if not is_unique_violation(error):
            raise
        return False
    return True


def _sqlite_executemany(conn: Connection, rows: list[dict[str, Any]]) -> bool:
    """SQLite: the driver's executemany, without RETURNING; False if a row was not inserted.

    A SQLite writer holds the database's write lock (``BEGIN IMMEDIATE``) since before
    ``check_conflicts``, so the rows are new; should the row count say otherwise, the insert is
    rolled back to its savepoint and the caller inserts with RETURNING, as for PostgreSQL.
    """
    columns = (*_COPY_COLUMNS, "metadata")
    names = ", ".join(f'"{c}"' for c in columns)
    stmt = (
        f"INSERT INTO instance ({names}) VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT ({STUDY_KEY}, series_id, sop_instance_uid) DO NOTHING"
    )
    params = [(*(row[c] for c in _COPY_COLUMNS), dumps(row["metadata"])) for row in rows]
    savepoint = conn.begin_nested()
    result = conn.exec_driver_sql(stmt, params)
    if result.rowcount != len(rows):
        savepoint.rollback()
        return False
    savepoint.commit()
    return True


# --------------------------------------------------------------------------- metadata


def study_metadata(md: Mapping[str, Any]) -> Metadata:
    """Study-level attributes of an instance or summary."""
    return pick(md, STUDY_KEYWORDS)


def series_metadata(md: Mapping[str, Any]) -> Metadata:
    """Series-level attributes of an instance or summary."""
    return pick(md, SERIES_KEYWORDS)
