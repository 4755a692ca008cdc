"""SQL for the read path: a fixed number of queries per call, whatever the study size."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Text, bindparam, cast, select

from .image_id import lookup_keys
from .models import Instance, Series, SeriesList, Study
from .schema import InstanceRow, SeriesListRow, SeriesRow, StudyRow


def json_text(column: Any) -> ColumnElement[str]:
    """A JSON column as text, so that decoding is left to the read model (lazily)."""
    return cast(column, Text)


_INSTANCE_COLUMNS = (
    StudyRow.study_instance_uid,
    SeriesRow.series_instance_uid,
    InstanceRow.sop_instance_uid,
    InstanceRow.sop_class_uid,
    InstanceRow.instance_number,
    InstanceRow.number_of_frames,
    InstanceRow.rows,
    InstanceRow.columns,
    InstanceRow.transfer_syntax_uid,
    InstanceRow.image_id,
    SeriesListRow.data_source,
    SeriesListRow.wado_root,
    SeriesListRow.wado_uri,
    json_text(InstanceRow.metadata_),
)

_SERIES_COLUMNS = (
    SeriesRow.id,
    StudyRow.study_instance_uid,
    SeriesRow.series_instance_uid,
    SeriesListRow.data_source,
    SeriesRow.modality,
    SeriesRow.series_number,
    SeriesRow.series_description,
    SeriesRow.series_date,
    SeriesRow.series_time,
    SeriesRow.body_part_examined,
    SeriesListRow.wado_root,
    json_text(SeriesRow.metadata_),
)


def _instances_query() -> Any:
    return (
        select(InstanceRow.series_id, *_INSTANCE_COLUMNS)
        .join(SeriesRow, SeriesRow.id == InstanceRow.series_id)
        .join(SeriesListRow, SeriesListRow.id == SeriesRow.series_list_id)
        .join(StudyRow, StudyRow.id == SeriesListRow.study_id)
        .order_by(
            InstanceRow.series_id,
            InstanceRow.instance_number.is_(None),
            InstanceRow.instance_number,
            InstanceRow.sop_instance_uid,
        )
    )


def _series_query() -> Any:
    return (
        select(*_SERIES_COLUMNS)
        .join(SeriesListRow, SeriesListRow.id == SeriesRow.series_list_id)
        .join(StudyRow, StudyRow.id == SeriesListRow.study_id)
        .order_by(SeriesListRow.id, SeriesRow.series_number.is_(None), SeriesRow.series_number,
                  SeriesRow.id)
    )  # fmt: skip


def _instance(row: Sequence[Any]) -> Instance:
    values: tuple[Any, ...] = tuple(row)
    return Instance(*values[1:])


def _series(row: Sequence[Any], instances: Sequence[Instance]) -> Series:
    (_id, study, uid, source, modality, number, description, date, time, body_part, root,
     raw) = tuple(row)  # fmt: skip
    return Series(study, uid, source, modality, number, description, date, time, body_part, root,
                  tuple(instances), raw)  # fmt: skip


def study_instance_uids(conn: Connection) -> list[str]:
    """All study UIDs in insertion order."""
    return list(conn.scalars(select(StudyRow.study_instance_uid).order_by(StudyRow.id)))


def get_study(conn: Connection, study_uid: str, data_source: str | None = None) -> Study | None:
    """The study with all series lists, series and instances (three queries)."""
    row = conn.execute(
        select(StudyRow.id, StudyRow.study_instance_uid, StudyRow.patient_id,
               StudyRow.patient_name, StudyRow.patient_birth_date, StudyRow.patient_sex,
               StudyRow.study_date, StudyRow.study_time, StudyRow.accession_number,
               StudyRow.study_description, StudyRow.modalities_in_study,
               json_text(StudyRow.metadata_))
        .where(StudyRow.study_instance_uid == study_uid)
    ).first()  # fmt: skip
    if row is None:
        return None
    study_id = row[0]
    lists = conn.execute(
        select(SeriesListRow.id, SeriesListRow.data_source, SeriesListRow.wado_root,
               SeriesListRow.wado_uri)
        .where(SeriesListRow.study_id == study_id)
        .where(*([SeriesListRow.data_source == data_source] if data_source else []))
        .order_by(SeriesListRow.id)
    ).all()  # fmt: skip
    list_ids = [r[0] for r in lists]
    by_series: dict[int, list[Instance]] = defaultdict(list)
    for inst in conn.execute(_instances_query().where(SeriesRow.series_list_id.in_(list_ids))):
        by_series[inst[0]].append(_instance(inst))
    series_by_list: dict[str, list[Series]] = defaultdict(list)
    for s in conn.execute(_series_query().where(SeriesRow.series_list_id.in_(list_ids))):
        series_by_list[s.data_source].append(_series(s, by_series[s[0]]))
    series_lists = tuple(
        SeriesList(source, root, uri, tuple(series_by_list[source]))
        for _id, source, root, uri in lists
    )
    modalities = tuple(m for m in (row[10] or "").split("\\") if m)
    return Study(*row[1:10], modalities, series_lists, row[11])


def get_series(
    conn: Connection, study_uid: str | None, series_uid: str, data_source: str | None = None
) -> Series | None:
    """One series with its instances; the first data source's copy unless one is named."""
    query = _series_query().where(SeriesRow.series_instance_uid == series_uid)
    if study_uid is not None:
        query = query.where(StudyRow.study_instance_uid == study_uid)
    if data_source is not None:
        query = query.where(SeriesListRow.data_source == data_source)
    found = min(conn.execute(query.add_columns(SeriesListRow.id).order_by(None)).all(),
                key=lambda r: r[-1], default=None)  # fmt: skip
    if found is None:
        return None
    row: tuple[Any, ...] = tuple(found)[:-1]
    instances = [_instance(r) for r in conn.execute(_instances_query().where(
        InstanceRow.series_id == row[0]))]  # fmt: skip
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
        tuple(r)
        for r in conn.execute(_BY_IDS, {"ids": ids})
        if (r.study_instance_uid, r.series_instance_uid) == (study_uid, series_uid)
        and (data_source is None or r.data_source == data_source)
    ]
    return _instance(min(rows, key=lambda r: r[-1])[:-2]) if rows else None


def get_instance_from_image_id(conn: Connection, image_id: str) -> Instance | None:
    """The instance an imageId (instance- or frame-level) refers to (the first stored)."""
    ids = conn.scalars(_IDS_BY_IMAGE_ID, {"keys": lookup_keys(image_id)}).all()
    if not ids:
        return None
    rows = [tuple(r) for r in conn.execute(_BY_IDS, {"ids": ids})]
    return _instance(min(rows, key=lambda r: r[-2])[:-2]) if rows else None


# Lookups find instance ids through the looked-up column's own index first, then join by
# primary key: a plan that stays an index lookup at any table size, with or without planner
# statistics (one joined query with ORDER BY ... LIMIT 1 let PostgreSQL walk the whole primary
# key for recently added rows). The statements are built once; values are bound per call.
_IDS_BY_SOP_UID = select(InstanceRow.id).where(InstanceRow.sop_instance_uid == bindparam("uid"))
_IDS_BY_IMAGE_ID = select(InstanceRow.id).where(
    InstanceRow.image_id.in_(bindparam("keys", expanding=True))
)
_BY_IDS = (
    _instances_query()
    .add_columns(InstanceRow.id, SeriesListRow.id)  # appended: [-2] instance, [-1] series list
    .where(InstanceRow.id.in_(bindparam("ids", expanding=True)))
    .order_by(None)
)
