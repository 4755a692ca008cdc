"""The store's delete commands: validate, then return the work that removes rows in one transaction.

Every delete first locks the study row (``SELECT ... FOR UPDATE``), as every add to an existing
study does (:func:`repository._writes.upsert_studies`), so a delete and an add of the same study
by two processes run one after the other: the add either lands before the delete (and goes with
it) or after (and creates the study again). Rows go bottom-up (kept DICOM JSON, instances,
series, series lists, the study), explicitly rather than by ``ON DELETE CASCADE``, so the counts
in the events are the rows removed. A series, series list or study left empty goes with the
last thing under it; a study that stays gets its derived values recomputed
(:mod:`repository.derived`) and a series that stays its reported instance count lowered.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, Connection, delete, func, select, update

from . import derived, events, sop_registry
from .commands import Work
from .errors import InvalidValueError, NotFoundError
from .image_id import FILE_PREFIX
from .models import DeleteResult
from .schema import (
    instance_dicom_json_table,
    instance_table,
    same_study,
    series_list_table,
    series_table,
    study_table,
)
from .unit_of_work import Transaction, UnitOfWork
from .validation import as_int, check_data_source, check_items, check_uid

_inst, _series, _lists = instance_table.c, series_table.c, series_list_table.c
"""The columns of the tables a delete walks."""
CHUNK = 900


@dataclass
class _Removal:
    """What one delete removed so far, for its events and its result."""

    files: list[str] = field(default_factory=list)
    instances: int = 0
    series: list[tuple[str, str]] = field(default_factory=list)
    studies: list[str] = field(default_factory=list)

    def result(self) -> DeleteResult:
        return DeleteResult(tuple(self.studies), tuple(self.series), self.instances,
                            tuple(self.files))  # fmt: skip


@dataclass(frozen=True)
class _SeriesRow:
    list_id: int
    data_source: str
    series_id: int | None
    series_uid: str | None


def _where(data_source: str | None) -> str:
    return f" in data source {data_source!r}" if data_source is not None else ""


def delete_study(study_uid: str, data_source: str | None) -> Work[DeleteResult]:
    """Remove the study (or only its series list of ``data_source``) with all under it."""
    uid = check_uid(study_uid, "StudyInstanceUID")
    source = None if data_source is None else check_data_source(data_source)

    def work(tx: Transaction) -> DeleteResult:
        study_id = _lock_study(tx.conn, uid, source)
        rows = _series_rows(tx.conn, (uid, study_id), source, None)
        if source is not None and not rows:
            raise NotFoundError(f"study {uid} is not stored{_where(source)}")
        removal = _Removal()
        lists: dict[int, list[_SeriesRow]] = {}
        for row in rows:
            lists.setdefault(row.list_id, []).append(row)
        counts = _remove_series(tx.conn, uid, [r.series_id for r in rows if r.series_id], removal)
        _remove_lists(tx.conn, uid, list(lists))
        gone = _remove_study_if_empty(tx.conn, study_id, uid, removal, known_empty=source is None)
        for members in lists.values():
            series = [r.series_uid for r in members if r.series_uid]
            count = sum(counts.get(r.series_id, 0) for r in members if r.series_id)
            tx.changes.append(
                events.study_deleted(uid, members[0].data_source, series, count, gone)
            )
            removal.series += [(members[0].data_source, s) for s in series]
        if not gone:
            derived.refresh_studies(tx.conn, [uid])
        return removal.result()

    return work


def delete_series(study_uid: str, series_uid: str, data_source: str | None) -> Work[DeleteResult]:
    """Remove the series (from every data source, or from ``data_source``) with its instances."""
    uid = check_uid(study_uid, "StudyInstanceUID")
    series_uid = check_uid(series_uid, "SeriesInstanceUID")
    source = None if data_source is None else check_data_source(data_source)

    def work(tx: Transaction) -> DeleteResult:
        study_id = _lock_study(tx.conn, uid, None)
        rows = _series_rows(tx.conn, (uid, study_id), source, series_uid)
        if not rows:
            raise NotFoundError(f"series {series_uid} of study {uid} is not stored{_where(source)}")
        removal = _Removal()
        counts = _remove_series(tx.conn, uid, [r.series_id for r in rows if r.series_id], removal)
        for row in rows:
            count = counts.get(row.series_id or 0, 0)
            tx.changes.append(events.series_deleted(uid, series_uid, row.data_source, count))
            removal.series.append((row.data_source, series_uid))
        _finish(tx, study_id, uid, {r.list_id: r.data_source for r in rows}, removal)
        return removal.result()

    return work


def delete_instances(
    study_uid: str, series_uid: str, sop_uids: Iterable[str], data_source: str | None
) -> Work[DeleteResult]:
    """Remove these instances from the series (in every data source, or in ``data_source``);
    all of them must be stored there, else NotFoundError and nothing is removed."""
    uid = check_uid(study_uid, "StudyInstanceUID")
    series_uid = check_uid(series_uid, "SeriesInstanceUID")
    wanted = sorted({check_uid(s, "SOPInstanceUID") for s in check_items(sop_uids, "sop_uids")})
    if not wanted:
        raise InvalidValueError("delete_instances needs at least one SOP Instance UID")
    source = None if data_source is None else check_data_source(data_source)

    def work(tx: Transaction) -> DeleteResult:
        study_id = _lock_study(tx.conn, uid, None)
        rows = [
            r for r in _series_rows(tx.conn, (uid, study_id), source, series_uid) if r.series_id
        ]
        found = _instances_of(tx.conn, uid, [r.series_id for r in rows if r.series_id], wanted)
        missing = sorted(set(wanted) - {sop for _, sop, _, _ in found})
        if not rows:
            raise NotFoundError(f"series {series_uid} of study {uid} is not stored{_where(source)}")
        if missing:
            what = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if missing[5:] else "")
            raise NotFoundError(
                f"instance(s) {what} not stored in series {series_uid} of study {uid}"
                f"{_where(source)}; nothing was deleted"
            )
        removal = _Removal()
        _remove_instances(tx.conn, uid, [id_ for id_, *_ in found], removal)
        emptied = _drop_empty_series(tx, uid, rows, found, removal)
        lists = {r.list_id: r.data_source for r in rows if r.series_id in emptied}
        _finish(tx, study_id, uid, lists, removal)
        return removal.result()

    return work


# --------------------------------------------------------------------------- SQL


def _lock_study(conn: Connection, uid: str, source: str | None) -> int:
    study_id = conn.execute(
        select(study_table.c.id).where(study_table.c.study_instance_uid == uid).with_for_update()
    ).scalar()
    if study_id is None:
        raise NotFoundError(f"study {uid} is not stored{_where(source)}")
    return int(study_id)


def _series_rows(
    conn: Connection, study: tuple[str, int], source: str | None, series_uid: str | None
) -> list[_SeriesRow]:
    """The series lists (of ``source``) of the study (UID, id) and their series (``series_uid``
    only)."""
    stmt = (
        select(_lists.id, _lists.data_source, _series.id, _series.series_instance_uid)
        .outerjoin(series_table, same_study(series_table, series_list_table)
                   & (_series.series_list_id == _lists.id))
        .where(_lists.study_instance_uid == study[0], _lists.study_id == study[1])
        .order_by(_lists.id, _series.id)
    )  # fmt: skip
    if source is not None:
        stmt = stmt.where(_lists.data_source == source)
    if series_uid is not None:
        stmt = stmt.where(_series.series_instance_uid == series_uid)
    return [_SeriesRow(*row) for row in conn.execute(stmt)]


def _instances_of(
    conn: Connection, uid: str, series_ids: Sequence[int], sop_uids: Sequence[str]
) -> list[tuple[int, str, int, str]]:
    """(id, SOP Instance UID, series id, imageId) of these instances of these series."""
    found: list[tuple[int, str, int, str]] = []
    for start in range(0, len(sop_uids), CHUNK):
        chunk = sop_uids[start : start + CHUNK]
        found += [
            (int(id_), str(sop), int(series), str(image))
            for id_, sop, series, image in conn.execute(
                select(_inst.id, _inst.sop_instance_uid, _inst.series_id, _inst.image_id)
                .where(_inst.study_instance_uid == uid, _inst.series_id.in_(series_ids),
                       _inst.sop_instance_uid.in_(chunk))
            )
        ]  # fmt: skip
    return found


def _files(conn: Connection, where: ColumnElement[bool]) -> list[str]:
    rows = conn.execute(select(_inst.image_id).where(where, _inst.image_id.startswith(FILE_PREFIX)))
    return [image_id.removeprefix(FILE_PREFIX) for (image_id,) in rows]


def _remove_series(
    conn: Connection, uid: str, series_ids: list[int], removal: _Removal
) -> dict[int, int]:
    """Delete these series of study ``uid`` and their instances; instance counts by series id."""
    if not series_ids:
        return {}
    in_study = _inst.study_instance_uid == uid
    of_series = in_study & _inst.series_id.in_(series_ids)
    counts: dict[int, int] = {}
    registered: list[tuple[str, str]] = []
    for series, image_id, sop, source in conn.execute(
        select(_inst.series_id, _inst.image_id,
               _inst.sop_instance_uid, _inst.data_source).where(of_series)
    ):  # fmt: skip
        counts[series] = counts.get(series, 0) + 1
        registered.append((sop, source))
        if image_id.startswith(FILE_PREFIX):
            removal.files.append(image_id.removeprefix(FILE_PREFIX))
    sop_registry.unregister(conn, registered)
    ids = select(_inst.id).where(of_series)
    conn.execute(delete(instance_dicom_json_table).where(
        instance_dicom_json_table.c.study_instance_uid == uid,
        instance_dicom_json_table.c.instance_id.in_(ids),
    ))  # fmt: skip
    conn.execute(delete(instance_table).where(of_series))
    conn.execute(
        delete(series_table).where(_series.study_instance_uid == uid, _series.id.in_(series_ids))
    )
    removal.instances += sum(counts.values())
    return counts


def _registered(conn: Connection, where: ColumnElement[bool]) -> list[tuple[str, str]]:
    """(SOP Instance UID, data source) of the instances ``where`` selects."""
    rows = conn.execute(select(_inst.sop_instance_uid, _inst.data_source).where(where))
    return [(str(sop), str(source)) for sop, source in rows]


def _remove_instances(
    conn: Connection, uid: str, instance_ids: list[int], removal: _Removal
) -> None:
    for start in range(0, len(instance_ids), CHUNK):
        chunk = instance_ids[start : start + CHUNK]
        these = (_inst.study_instance_uid == uid) & _inst.id.in_(chunk)
        removal.files += _files(conn, these)
        sop_registry.unregister(conn, _registered(conn, these))
        conn.execute(delete(instance_dicom_json_table).where(
            instance_dicom_json_table.c.study_instance_uid == uid,
            instance_dicom_json_table.c.instance_id.in_(chunk),
        ))  # fmt: skip
        conn.execute(delete(instance_table).where(these))
    removal.instances += len(instance_ids)


def _drop_empty_series(
    tx: Transaction,
    study_uid: str,
    rows: list[_SeriesRow],
    found: list[tuple[int, str, int, str]],
    removal: _Removal,
) -> set[int]:
    """INSTANCES_DELETED per series; a series left empty goes (SERIES_DELETED), one that stays
    has its reported instance count lowered. Returns the ids of the series removed."""
    emptied: set[int] = set()
    for row in rows:
        assert row.series_id is not None and row.series_uid is not None
        sops = [sop for _, sop, series, _ in found if series == row.series_id]
        if not sops:
            continue
        tx.changes.append(
            events.instances_deleted(study_uid, row.series_uid, row.data_source, sops)
        )
        this = (study_uid, row.series_id)
        left = tx.conn.execute(
            select(func.count()).where(
                _inst.study_instance_uid == study_uid,
                _inst.series_id == row.series_id,
            )
        ).scalar_one()
        if left:
            _lower_reported(tx.conn, this, len(sops), int(left))
            continue
        tx.conn.execute(delete(series_table).where(_series_is(this)))
        tx.changes.append(events.series_deleted(study_uid, row.series_uid, row.data_source, 0))
        removal.series.append((row.data_source, row.series_uid))
        emptied.add(row.series_id)
    return emptied


def _series_is(series: tuple[str, int]) -> ColumnElement[bool]:
    return (_series.study_instance_uid == series[0]) & (_series.id == series[1])


def _lower_reported(conn: Connection, series: tuple[str, int], removed: int, left: int) -> None:
    """A series summary's NumberOfSeriesRelatedInstances, less the instances removed."""
    md = conn.execute(select(_series.metadata).where(_series_is(series))).scalar_one()
    reported = as_int((md or {}).get("NumberOfSeriesRelatedInstances"))
    if reported is None:
        return
    new = {**md, "NumberOfSeriesRelatedInstances": max(reported - removed, left)}
    conn.execute(update(series_table).where(_series_is(series)).values(metadata=new))


def _remove_lists(conn: Connection, uid: str, list_ids: list[int]) -> None:
    if list_ids:
        conn.execute(delete(series_list_table).where(
            _lists.study_instance_uid == uid, _lists.id.in_(list_ids)
        ))  # fmt: skip


def _finish(
    tx: Transaction, study_id: int, uid: str, lists: dict[int, str], removal: _Removal
) -> None:
    """Drop the series lists left empty, then the study if nothing is left, else refresh it."""
    empty = [
        list_id
        for list_id in lists
        if not tx.conn.execute(
            select(func.count()).where(
                _series.study_instance_uid == uid, _series.series_list_id == list_id
            )
        ).scalar_one()
    ]
    _remove_lists(tx.conn, uid, empty)
    gone = _remove_study_if_empty(tx.conn, study_id, uid, removal)
    tx.changes += [events.study_deleted(uid, lists[list_id], [], 0, gone) for list_id in empty]
    if not gone:
        derived.refresh_studies(tx.conn, [uid])


def _remove_study_if_empty(
    conn: Connection, study_id: int, uid: str, removal: _Removal, *, known_empty: bool = False
) -> bool:
    if (
        not known_empty
        and conn.execute(
            select(func.count()).where(
                _lists.study_instance_uid == uid,
                _lists.study_id == study_id,
            )
        ).scalar_one()
    ):
        return False
    conn.execute(
        delete(study_table).where(
            study_table.c.study_instance_uid == uid, study_table.c.id == study_id
        )
    )
    removal.studies.append(uid)
    return True


class DeleteMethods:
    """The delete methods of :class:`~repository.Store` (each one transaction, retried)."""

    _uow: UnitOfWork

    def delete_study(self, study_uid: str, *, data_source: str | None = None) -> DeleteResult:
        """Delete the study with its series and instances (only its series list of
        ``data_source`` if given); fires STUDY_DELETED. :class:`NotFoundError` if absent."""
        return self._uow.write(delete_study(study_uid, data_source))

    def delete_series(
        self, study_uid: str, series_uid: str, *, data_source: str | None = None
    ) -> DeleteResult:
        """Delete the series with its instances, from every data source or ``data_source``;
        fires SERIES_DELETED (and STUDY_DELETED for a study left empty)."""
        return self._uow.write(delete_series(study_uid, series_uid, data_source))

    def delete_instances(
        self,
        study_uid: str,
        series_uid: str,
        sop_uids: Iterable[str],
        *,
        data_source: str | None = None,
    ) -> DeleteResult:
        """Delete these instances of the series (every one must be stored, else
        :class:`NotFoundError` and nothing goes); fires INSTANCES_DELETED (and SERIES_DELETED,
        STUDY_DELETED for what is left empty)."""
        work = delete_instances(study_uid, series_uid, sop_uids, data_source)
        return self._uow.write(work)
