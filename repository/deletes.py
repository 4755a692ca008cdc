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

from . import derived, events
from .commands import Work
from .errors import InvalidValueError, NotFoundError
from .image_id import FILE_PREFIX
from .models import DeleteResult
from .schema import (
    InstanceDicomJsonRow,
    InstanceRow,
    SeriesListRow,
    SeriesRow,
    StudyRow,
    instance_table,
)
from .unit_of_work import Transaction, UnitOfWork
from .validation import as_int, check_data_source, check_items, check_uid

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
        rows = _series_rows(tx.conn, study_id, source, None)
        if source is not None and not rows:
            raise NotFoundError(f"study {uid} is not stored{_where(source)}")
        removal = _Removal()
        lists: dict[int, list[_SeriesRow]] = {}
        for row in rows:
            lists.setdefault(row.list_id, []).append(row)
        counts = _remove_series(tx.conn, [r.series_id for r in rows if r.series_id], removal)
        _remove_lists(tx.conn, list(lists))
        gone = _remove_study_if_empty(tx.conn, study_id, uid, removal, known_empty=source is None)
        for members in lists.values():
            series = [r.series_uid for r in members if r.series_uid]
            count = sum(counts.get(r.series_id, 0) for r in members if r.series_id)
            tx.changes.append(
                events.study_deleted(uid, members[0].data_source, series, count, gone)
            )
            removal.series += [(members[0].data_source, s) for s in series]
        if not gone:
            derived.refresh_studies(tx.conn, [study_id])
        return removal.result()

    return work


def delete_series(study_uid: str, series_uid: str, data_source: str | None) -> Work[DeleteResult]:
    """Remove the series (from every data source, or from ``data_source``) with its instances."""
    uid = check_uid(study_uid, "StudyInstanceUID")
    series_uid = check_uid(series_uid, "SeriesInstanceUID")
    source = None if data_source is None else check_data_source(data_source)

    def work(tx: Transaction) -> DeleteResult:
        study_id = _lock_study(tx.conn, uid, None)
        rows = _series_rows(tx.conn, study_id, source, series_uid)
        if not rows:
            raise NotFoundError(f"series {series_uid} of study {uid} is not stored{_where(source)}")
        removal = _Removal()
        counts = _remove_series(tx.conn, [r.series_id for r in rows if r.series_id], removal)
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
        rows = [r for r in _series_rows(tx.conn, study_id, source, series_uid) if r.series_id]
        found = _instances_of(tx.conn, [r.series_id for r in rows if r.series_id], wanted)
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
        _remove_instances(tx.conn, [id_ for id_, *_ in found], removal)
        emptied = _drop_empty_series(tx, uid, rows, found, removal)
        lists = {r.list_id: r.data_source for r in rows if r.series_id in emptied}
        _finish(tx, study_id, uid, lists, removal)
        return removal.result()

    return work


# --------------------------------------------------------------------------- SQL


def _lock_study(conn: Connection, uid: str, source: str | None) -> int:
    study_id = conn.execute(
        select(StudyRow.id).where(StudyRow.study_instance_uid == uid).with_for_update()
    ).scalar()
    if study_id is None:
        raise NotFoundError(f"study {uid} is not stored{_where(source)}")
    return int(study_id)


def _series_rows(
    conn: Connection, study_id: int, source: str | None, series_uid: str | None
) -> list[_SeriesRow]:
    """The study's series lists (of ``source``) and their series (``series_uid`` only)."""
    stmt = (
        select(SeriesListRow.id, SeriesListRow.data_source, SeriesRow.id,
               SeriesRow.series_instance_uid)
        .outerjoin(SeriesRow, SeriesRow.series_list_id == SeriesListRow.id)
        .where(SeriesListRow.study_id == study_id)
        .order_by(SeriesListRow.id, SeriesRow.id)
    )  # fmt: skip
    if source is not None:
        stmt = stmt.where(SeriesListRow.data_source == source)
    if series_uid is not None:
        stmt = stmt.where(SeriesRow.series_instance_uid == series_uid)
    return [_SeriesRow(*row) for row in conn.execute(stmt)]


def _instances_of(
    conn: Connection, series_ids: Sequence[int], sop_uids: Sequence[str]
) -> list[tuple[int, str, int, str]]:
    """(id, SOP Instance UID, series id, imageId) of these instances of these series."""
    found: list[tuple[int, str, int, str]] = []
    for start in range(0, len(sop_uids), CHUNK):
        chunk = sop_uids[start : start + CHUNK]
        found += [
            (int(id_), str(sop), int(series), str(image))
            for id_, sop, series, image in conn.execute(
                select(InstanceRow.id, instance_table.c.sop_instance_uid, InstanceRow.series_id,
                       InstanceRow.image_id)
                .where(InstanceRow.series_id.in_(series_ids),
                       instance_table.c.sop_instance_uid.in_(chunk))
            )
        ]  # fmt: skip
    return found


def _files(conn: Connection, where: ColumnElement[bool]) -> list[str]:
    rows = conn.execute(
        select(InstanceRow.image_id).where(where, InstanceRow.image_id.startswith(FILE_PREFIX))
    )
    return [image_id.removeprefix(FILE_PREFIX) for (image_id,) in rows]


def _remove_series(conn: Connection, series_ids: list[int], removal: _Removal) -> dict[int, int]:
    """Delete these series and their instances; instance counts by series id."""
    if not series_ids:
        return {}
    counts: dict[int, int] = {}
    for series, image_id in conn.execute(
        select(InstanceRow.series_id, InstanceRow.image_id).where(
            InstanceRow.series_id.in_(series_ids)
        )
    ):
        counts[series] = counts.get(series, 0) + 1
        if image_id.startswith(FILE_PREFIX):
            removal.files.append(image_id.removeprefix(FILE_PREFIX))
    ids = select(InstanceRow.id).where(InstanceRow.series_id.in_(series_ids))
    conn.execute(delete(InstanceDicomJsonRow).where(InstanceDicomJsonRow.instance_id.in_(ids)))
    conn.execute(delete(InstanceRow).where(InstanceRow.series_id.in_(series_ids)))
    conn.execute(delete(SeriesRow).where(SeriesRow.id.in_(series_ids)))
    removal.instances += sum(counts.values())
    return counts


def _remove_instances(conn: Connection, instance_ids: list[int], removal: _Removal) -> None:
    for start in range(0, len(instance_ids), CHUNK):
        chunk = instance_ids[start : start + CHUNK]
        removal.files += _files(conn, InstanceRow.id.in_(chunk))
        conn.execute(
            delete(InstanceDicomJsonRow).where(InstanceDicomJsonRow.instance_id.in_(chunk))
        )
        conn.execute(delete(InstanceRow).where(InstanceRow.id.in_(chunk)))
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
        left = tx.conn.execute(
            select(func.count()).where(InstanceRow.series_id == row.series_id)
        ).scalar_one()
        if left:
            _lower_reported(tx.conn, row.series_id, len(sops), int(left))
            continue
        tx.conn.execute(delete(SeriesRow).where(SeriesRow.id == row.series_id))
        tx.changes.append(events.series_deleted(study_uid, row.series_uid, row.data_source, 0))
        removal.series.append((row.data_source, row.series_uid))
        emptied.add(row.series_id)
    return emptied


def _lower_reported(conn: Connection, series_id: int, removed: int, left: int) -> None:
    """A series summary's NumberOfSeriesRelatedInstances, less the instances removed."""
    md = conn.execute(select(SeriesRow.metadata_).where(SeriesRow.id == series_id)).scalar_one()
    reported = as_int((md or {}).get("NumberOfSeriesRelatedInstances"))
    if reported is None:
        return
    new = {**md, "NumberOfSeriesRelatedInstances": max(reported - removed, left)}
    conn.execute(update(SeriesRow).where(SeriesRow.id == series_id).values(metadata_=new))


def _remove_lists(conn: Connection, list_ids: list[int]) -> None:
    if list_ids:
        conn.execute(delete(SeriesListRow).where(SeriesListRow.id.in_(list_ids)))


def _finish(
    tx: Transaction, study_id: int, uid: str, lists: dict[int, str], removal: _Removal
) -> None:
    """Drop the series lists left empty, then the study if nothing is left, else refresh it."""
    empty = [
        list_id
        for list_id in lists
        if not tx.conn.execute(
            select(func.count()).where(SeriesRow.series_list_id == list_id)
        ).scalar_one()
    ]
    _remove_lists(tx.conn, empty)
    gone = _remove_study_if_empty(tx.conn, study_id, uid, removal)
    tx.changes += [events.study_deleted(uid, lists[list_id], [], 0, gone) for list_id in empty]
    if not gone:
        derived.refresh_studies(tx.conn, [study_id])


def _remove_study_if_empty(
    conn: Connection, study_id: int, uid: str, removal: _Removal, *, known_empty: bool = False
) -> bool:
    if (
        not known_empty
        and conn.execute(
            select(func.count()).where(SeriesListRow.study_id == study_id)
        ).scalar_one()
    ):
        return False
    conn.execute(delete(StudyRow).where(StudyRow.id == study_id))
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
