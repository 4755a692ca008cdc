"""SQL for the read path: a fixed number of queries per call, whatever the study size.

Read models are built from the selected rows by column label, never by position.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import fields
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, Table, Text, bindparam, cast, select

from .columns import INSTANCE_COLUMNS, SERIES_COLUMNS, STUDY_COLUMNS, TypedColumn, loaded
from .image_id import frame_in_range, lookup_keys, requested_frame
from .models import Instance, Series, SeriesList, Study
from .schema import (
    INSTANCE_IN_SERIES,
    instance_table,
    same_study,
    series_list_table,
    series_table,
    study_table,
)


def json_text(column: Any) -> ColumnElement[str]:
    """A JSON column as text, so that decoding is left to the read model (lazily)."""
    return cast(column, Text)


def instance_columns(
    instance: Table = instance_table, columns: Iterable[TypedColumn] = INSTANCE_COLUMNS
) -> list[Any]:
    """The labelled columns an :class:`Instance` is built from, by name."""
    return [
        study_table.c.study_instance_uid,
        series_table.c.series_instance_uid,
        *(instance.c[c.name] for c in columns),
        instance.c.image_id,
        series_list_table.c.data_source,
        series_list_table.c.wado_root,
        series_list_table.c.wado_uri,
        json_text(instance.c.metadata).label("raw_metadata"),
    ]


_SERIES_COLUMNS = (
    series_table.c.id.label("series_id"),
    study_table.c.study_instance_uid,
    series_table.c.series_instance_uid,
    series_list_table.c.data_source,
    *(series_table.c[c.name] for c in SERIES_COLUMNS),
    series_list_table.c.wado_root,
    json_text(series_table.c.metadata).label("raw_metadata"),
)

_STUDY_COLUMNS = (
    study_table.c.id,
    study_table.c.study_instance_uid,
    *(study_table.c[c.name] for c in STUDY_COLUMNS),
    json_text(study_table.c.metadata).label("raw_metadata"),
)

_INSTANCE_FIELDS = frozenset(f.name for f in fields(Instance))
_SERIES_FIELDS = frozenset(f.name for f in fields(Series)) - {"instances"}


def _instances_query() -> Any:
    return (
        select(instance_table.c.series_id, *instance_columns())
        .join(series_table, INSTANCE_IN_SERIES)
        .join(
            series_list_table,
            same_study(series_list_table, series_table)
            & (series_list_table.c.id == series_table.c.series_list_id),
        )
        .join(
            study_table,
            same_study(study_table, series_list_table)
            & (study_table.c.id == series_list_table.c.study_id),
        )
        .order_by(
            instance_table.c.series_id,
            instance_table.c.instance_number.is_(None),
            instance_table.c.instance_number,
            instance_table.c.sop_instance_uid,
        )
    )


def _series_query() -> Any:
    return (
        select(*_SERIES_COLUMNS)
        .join(series_list_table, same_study(series_list_table, series_table)
              & (series_list_table.c.id == series_table.c.series_list_id))
        .join(study_table, same_study(study_table, series_list_table)
              & (study_table.c.id == series_list_table.c.study_id))
        .order_by(series_list_table.c.id, series_table.c.series_number.is_(None),
                  series_table.c.series_number, series_table.c.id)
    )  # fmt: skip


def _instance(row: Row[Any]) -> Instance:
    values = row._mapping
    return Instance(**{name: values[name] for name in _INSTANCE_FIELDS})


def _series(row: Row[Any], instances: Sequence[Instance]) -> Series:
    values = row._mapping
    return Series(**{name: values[name] for name in _SERIES_FIELDS}, instances=tuple(instances))


def study_instance_uids(conn: Connection) -> list[str]:
    """All study UIDs in insertion order."""
    return list(conn.scalars(select(study_table.c.study_instance_uid).order_by(study_table.c.id)))


def get_study(conn: Connection, study_uid: str, data_source: str | None = None) -> Study | None:
    """The study with all series lists, series and instances (three queries)."""
    row = conn.execute(
        select(*_STUDY_COLUMNS).where(study_table.c.study_instance_uid == study_uid)
    ).first()
    if row is None:
        return None
    study_id = row.id
    lists = conn.execute(
        select(series_list_table.c.id, series_list_table.c.data_source,
               series_list_table.c.wado_root, series_list_table.c.wado_uri)
        .where(series_list_table.c.study_instance_uid == study_uid,
               series_list_table.c.study_id == study_id)
        .where(*([series_list_table.c.data_source == data_source] if data_source else []))
        .order_by(series_list_table.c.id)
    ).all()  # fmt: skip
    list_ids = [r[0] for r in lists]
    by_series: dict[int, list[Instance]] = defaultdict(list)
    in_study = instance_table.c.study_instance_uid == study_uid
    for inst in conn.execute(
        _instances_query().where(in_study, series_table.c.series_list_id.in_(list_ids))
    ):
        by_series[inst.series_id].append(_instance(inst))
    series_by_list: dict[str, list[Series]] = defaultdict(list)
    for s in conn.execute(
        _series_query().where(
            series_table.c.study_instance_uid == study_uid,
            series_table.c.series_list_id.in_(list_ids),
        )
    ):
        series_by_list[s.data_source].append(_series(s, by_series[s.series_id]))
    series_lists = tuple(
        SeriesList(source, root, uri, tuple(series_by_list[source]))
        for _id, source, root, uri in lists
    )
    values = row._mapping
    return Study(
        study_instance_uid=row.study_instance_uid,
        **loaded(STUDY_COLUMNS, values),
        series_lists=series_lists,
        raw_metadata=row.raw_metadata,
    )


def get_series(
    conn: Connection, study_uid: str | None, series_uid: str, data_source: str | None = None
) -> Series | None:
    """One series with its instances; the first data source's copy unless one is named."""
    query = _series_query().where(series_table.c.series_instance_uid == series_uid)
    if study_uid is not None:
        query = query.where(series_table.c.study_instance_uid == study_uid)
    if data_source is not None:
        query = query.where(series_list_table.c.data_source == data_source)
    found = conn.execute(query.add_columns(series_list_table.c.id.label("list_id")).order_by(None))
    row = min(found, key=lambda r: r.list_id, default=None)
    if row is None:
        return None
    instances = [_instance(r) for r in conn.execute(_instances_query().where(
        instance_table.c.study_instance_uid == row.study_instance_uid,
        instance_table.c.series_id == row.series_id))]  # fmt: skip
    return _series(row, instances)


def get_instance(
    conn: Connection,
    study_uid: str,
    series_uid: str,
    sop_uid: str,
    data_source: str | None = None,
) -> Instance | None:
    """One instance by its three UIDs (the first data source's copy unless one is named)."""
    ids = conn.scalars(_IDS_BY_SOP_UID, {"uid": sop_uid}).all()
    if not ids:
        return None
    rows = [
        r
        for r in conn.execute(_BY_IDS, {"ids": ids})
        if (r.study_instance_uid, r.series_instance_uid) == (study_uid, series_uid)
        and (data_source is None or r.data_source == data_source)
    ]
    return _instance(min(rows, key=lambda r: r.list_id)) if rows else None


def get_instance_from_image_id(conn: Connection, image_id: str) -> Instance | None:
    """The instance an imageId (instance- or frame-level) refers to (the first stored)."""
    ids = conn.scalars(_IDS_BY_IMAGE_ID, {"keys": lookup_keys(image_id)}).all()
    if not ids:
        return None
    rows = conn.execute(_BY_IDS, {"ids": ids}).all()
    if not rows:
        return None
    found = _instance(min(rows, key=lambda r: r.instance_id))
    # a frame number beyond NumberOfFrames (or 0) names no image of the instance
    return found if frame_in_range(requested_frame(image_id), found.number_of_frames) else None


# Lookups find instance ids through the looked-up column's own index first, then join by
# primary key: a plan that stays an index lookup at any table size, with or without planner
# statistics (one joined query with ORDER BY ... LIMIT 1 let PostgreSQL walk the whole primary
# key for recently added rows). The statements are built once; values are bound per call.
_IDS_BY_SOP_UID = select(instance_table.c.id).where(
    instance_table.c.sop_instance_uid == bindparam("uid")
)
_IDS_BY_IMAGE_ID = select(instance_table.c.id).where(
    instance_table.c.image_id.in_(bindparam("keys", expanding=True))
)
_BY_IDS = (
    _instances_query()
    .add_columns(instance_table.c.id.label("instance_id"), series_list_table.c.id.label("list_id"))
    .where(instance_table.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(None)
)
