"""The metadata store: OHIF's DicomMetadataStore API over a relational database.

A :class:`Store` owns an engine and a unit of work per thread. Every ``add_*`` call runs in a
transaction (its own, or the caller's :meth:`Store.transaction`); the changes it makes are
appended to the ``change`` table in that same transaction, and the matching events are handed to
subscribers only after the commit returned. A rollback discards them. Subscribers get the
events of other processes' commits too, through the change log (see :mod:`repository.feed`);
a write in its own transaction is retried when a concurrent writer conflicts with it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydicom.dataset import Dataset
from sqlalchemy import Connection, Engine, exc, func, select, update

from . import _reads, _writes, changelog
from ._writes import PendingChange
from .errors import (
    ConflictError,
    DatabaseError,
    InvalidValueError,
    NotFoundError,
    RepositoryError,
)
from .events import EVENTS, Callback, Event, Subscription
from .feed import Feed
from .models import AddResult, Instance, Series, Study
from .normalize import (
    NormalizedInstance,
    as_int,
    check_uid,
    file_bulk_uri,
    normalize_instance,
    require_uid,
    to_naturalized,
)
from .retry import DEFAULT_ATTEMPTS, run_with_retries, translate
from .schema import InstanceRow, SeriesListRow, SeriesRow, StudyRow
from .sop_class_handlers import DisplaySet, HandlerRegistry, build_display_sets, default_registry
from .sop_class_handlers.registry import HandlerLike
from .summaries import StudySummary, study_summaries

InstanceInput = Dataset | Mapping[str, Any] | NormalizedInstance
"""What :meth:`Store.add_instances` accepts: a Dataset, DICOM JSON or a naturalized dict."""

T = TypeVar("T")
DEFAULT_DATA_SOURCE = "default"


@dataclass
class _UnitOfWork:
    conn: Connection
    changes: list[PendingChange] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


def _check_data_source(data_source: str) -> str:
    if not isinstance(data_source, str) or not data_source.strip() or len(data_source) > 64:
        raise InvalidValueError(f"data_source {data_source!r} must be a name of 1-64 characters")
    return data_source


class Store:
    """A DICOM metadata store backed by SQLite or PostgreSQL. Create it with ``connect()``."""

    def __init__(self, engine: Engine, *, poll_interval: float | None = None) -> None:
        self.engine = engine
        self._feed = Feed(engine, poll_interval=poll_interval)
        self._local = threading.local()
        self._channel: str | None = None
        self._handlers: HandlerRegistry | None = None

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Stop the change-feed follower thread and release the database connections."""
        self._feed.close()
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    # ------------------------------------------------------------------ transactions

    @property
    def in_transaction(self) -> bool:
        """True inside ``with store.transaction():`` in the calling thread."""
        return getattr(self._local, "uow", None) is not None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group several adds into one commit; events are delivered after it, or never.

        Nested use joins the outer transaction. A failed ``add_*`` inside it is rolled back to
        its own savepoint, so the caller may catch the error and go on. If a concurrent writer
        makes the transaction fail, :class:`TransactionConflictError` is raised and nothing is
        committed; the block cannot be replayed from here (:meth:`run_in_transaction` can).
        """
        if getattr(self._local, "uow", None) is not None:
            yield
            return
        try:
            conn = self.engine.connect().execution_options(dicom_repo_write=True)
        except exc.DBAPIError as error:
            raise DatabaseError(f"cannot connect to the database: {error.orig}") from error
        uow = _UnitOfWork(conn)
        self._local.uow = uow
        try:
            try:
                trans = conn.begin()
            except exc.DBAPIError as error:
                raise translate(error, "cannot begin a transaction") from error
            try:
                yield
                if uow.changes:  # last, so the change-log lock is held only until commit
                    channel = self._notify_channel(conn)
                    uow.events = _writes.record_changes(conn, uow.changes, channel)
            except BaseException as error:
                trans.rollback()
                if isinstance(error, exc.DBAPIError):
                    raise translate(error) from error
                raise
            try:
                trans.commit()
            except exc.DBAPIError as error:
                raise translate(error, "commit failed") from error
        finally:
            self._local.uow = None
            conn.close()
        if uow.events:
            self._feed.after_commit()

    def run_in_transaction(self, fn: Callable[[], T], *, attempts: int = DEFAULT_ATTEMPTS) -> T:
        """Run ``fn()`` in one transaction; run it again if a concurrent writer conflicts.

        Use it instead of ``with store.transaction():`` when several processes write the same
        studies. ``fn`` may be called up to ``attempts`` times, so it should only call the
        store (or be safe to repeat); events are delivered once, after the commit that
        succeeded. Inside an enclosing transaction ``fn`` just joins it (no retry).
        """
        if getattr(self._local, "uow", None) is not None:
            return fn()

        def attempt() -> T:
            with self.transaction():
                return fn()

        return run_with_retries(attempt, attempts=attempts)

    def _notify_channel(self, conn: Connection) -> str | None:
        if self._channel is None and conn.dialect.name == "postgresql":
            self._channel = changelog.current_channel(conn)
        return self._channel

    def _write(self, work: Callable[[_UnitOfWork], T]) -> T:
        """Run ``work`` in the current transaction (under a savepoint) or in a new one."""
        with self.transaction():
            uow: _UnitOfWork = self._local.uow
            mark = len(uow.changes)
            try:
                with uow.conn.begin_nested():
                    return work(uow)
            except BaseException:
                del uow.changes[mark:]
                raise

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        uow = getattr(self._local, "uow", None)
        if uow is not None:  # read your own writes inside a transaction
            yield uow.conn
            return
        try:
            with self.engine.connect() as conn:
                yield conn
        except exc.DBAPIError as error:
            raise DatabaseError(f"query failed: {error.orig}") from error

    # ------------------------------------------------------------------ events

    def subscribe(
        self,
        event: str,
        callback: Callback,
        *,
        include_made_in_client: bool = False,
        since: int | None = None,
    ) -> Subscription:
        """Call ``callback(Event)`` after each commit that fired ``event`` (see ``EVENTS``;
        ``"*"`` for all of them), whichever process (using this library on this database)
        made it.

        Each subscription gets each change once, in commit order. ``since=None`` starts with
        changes committed from now on; ``since=N`` first replays every change after seq N (a
        restarted worker passes the last seq it handled). Callbacks run in the thread that
        committed, before its ``add_*`` returns, for this store's own commits, and in the
        store's follower thread (started here) for other processes' commits and replays.
        Events from ``made_in_client=True`` writes are delivered only if
        ``include_made_in_client`` is set.
        """
        return self._feed.subscribe(event, callback, include_made_in_client, since)

    def changes(self, since: int = 0, limit: int = 1000) -> list[Event]:
        """Committed changes with seq greater than ``since``, in commit order (at most
        ``limit``): the change log as a durable, replayable feed.

        Page through it with ``since=changes[-1].seq``. Seqs are handed out in commit order,
        so a change that commits late never lands below a seq already read: a follower that
        remembers the last seq it saw misses nothing.
        """
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            raise InvalidValueError(f"since must be a seq number (an int >= 0), not {since!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidValueError(f"limit must be a positive int, not {limit!r}")
        with self._read() as conn:
            return changelog.read_changes(conn, since, limit)

    # ------------------------------------------------------------------ writes

    def add_study(
        self,
        study: Dataset | Mapping[str, Any],
        *,
        data_source: str = DEFAULT_DATA_SOURCE,
        wado_root: str | None = None,
        wado_uri: str | None = None,
    ) -> bool:
        """Create the study if it is new (OHIF ``addStudy``); returns True if it was created.

        Fires STUDY_ADDED for a new study. The study's series list for ``data_source`` is
        created too, with the DICOMweb roots if given.
        """
        _check_data_source(data_source)
        md = _writes.study_metadata(to_naturalized(study))
        uid = require_uid(md, "StudyInstanceUID")

        def work(uow: _UnitOfWork) -> bool:
            ids, created = _writes.upsert_studies(uow.conn, {uid: md})
            _writes.upsert_series_lists(uow.conn, ids.values(), data_source, wado_root, wado_uri)
            for new in created:
                uow.changes.append(_study_added(new, data_source, False))
            return bool(created)

        return self._guard(work)

    def add_series_metadata(
        self,
        summaries: Iterable[Mapping[str, Any]] | Mapping[str, Any],
        *,
        data_source: str = DEFAULT_DATA_SOURCE,
        made_in_client: bool = False,
        wado_root: str | None = None,
        wado_uri: str | None = None,
    ) -> None:
        """Merge series summaries onto their series (OHIF ``addSeriesMetadata``).

        Creates studies, series lists and series as needed. Fires SERIES_ADDED once per study
        whose series were created or changed.
        """
        _check_data_source(data_source)
        items = [summaries] if isinstance(summaries, Mapping) else list(summaries)
        by_study: dict[str, dict[str, dict[str, Any]]] = {}
        study_md: dict[str, dict[str, Any]] = {}
        for index, summary in enumerate(items):
            md = to_naturalized(summary)
            md.pop("imageId", None)
            try:
                study_uid = require_uid(md, "StudyInstanceUID")
                series_uid = require_uid(md, "SeriesInstanceUID")
            except InvalidValueError as error:
                raise type(error)(f"series summary #{index}: {error}") from None
            by_study.setdefault(study_uid, {})[series_uid] = md
            study_md.setdefault(study_uid, _writes.study_metadata(md))
        for study_uid, series in by_study.items():
            study_md[study_uid].setdefault("NumberOfStudyRelatedSeries", len(series))

        def work(uow: _UnitOfWork) -> None:
            ids, created = _writes.upsert_studies(uow.conn, study_md)
            lists = _writes.upsert_series_lists(
                uow.conn, ids.values(), data_source, wado_root, wado_uri
            )
            wanted = {
                (lists[ids[study]][0], uid): md
                for study, series in by_study.items()
                for uid, md in series.items()
            }
            result = _writes.upsert_series(uow.conn, wanted, incoming_wins=True)
            _writes.refresh_modalities(uow.conn, ids.values())
            touched = set(result.created) | set(result.changed)
            for study in created:
                uow.changes.append(_study_added(study, data_source, made_in_client))
            for study, series in by_study.items():
                uids = [uid for uid in series if (lists[ids[study]][0], uid) in touched]
                if uids:
                    uow.changes.append(PendingChange(
                        EVENTS.SERIES_ADDED, study, None, data_source, made_in_client,
                        {"StudyInstanceUID": study, "SeriesInstanceUIDs": uids,
                         "data_source": data_source, "madeInClient": made_in_client},
                    ))  # fmt: skip

        self._guard(work)

    def add_instances(
        self,
        instances: Iterable[InstanceInput],
        *,
        data_source: str = DEFAULT_DATA_SOURCE,
        made_in_client: bool = False,
        wado_root: str | None = None,
        wado_uri: str | None = None,
    ) -> AddResult:
        """Add instances, grouped by study and series (OHIF ``addInstances``).

        All instances are validated before anything is written; one bad instance rejects the
        batch with an error naming it. A SOP instance already in its series (for this data
        source) is left as it is and counted as already present. Fires STUDY_ADDED for new
        studies and INSTANCES_ADDED once per series that gained instances.
        """
        _check_data_source(data_source)
        normalized: list[NormalizedInstance] = []
        paths: dict[str, str] = {}
        for index, item in enumerate(instances):
            if isinstance(item, NormalizedInstance):
                normalized.append(item)
                continue
            filename = getattr(item, "filename", None) if isinstance(item, Dataset) else None
            bulk = file_bulk_uri(filename) if isinstance(filename, str) else None
            inst = normalize_instance(item, source=filename or f"instance #{index}", bulk=bulk)
            if isinstance(filename, str):
                paths.setdefault(inst.sop_instance_uid, filename)
            normalized.append(inst)
        return self.add_normalized(
            normalized,
            data_source=data_source,
            made_in_client=made_in_client,
            wado_root=wado_root,
            wado_uri=wado_uri,
            paths=paths,
        )

    def add_normalized(
        self,
        instances: list[NormalizedInstance],
        *,
        data_source: str = DEFAULT_DATA_SOURCE,
        made_in_client: bool = False,
        wado_root: str | None = None,
        wado_uri: str | None = None,
        paths: Mapping[str, str] | None = None,
    ) -> AddResult:
        """:meth:`add_instances` for already normalized instances (used by file ingest).

        ``paths`` maps SOP Instance UID to the file it was read from, for ``dicomfile:`` ids.
        """
        _check_data_source(data_source)
        unique = _dedupe(instances)
        if not unique:
            return AddResult(0, 0)
        paths = paths or {}
        root = wado_root or next((i.wado_root for i in unique if i.wado_root), None)
        uri = wado_uri or next((i.wado_uri for i in unique if i.wado_uri), None)
        study_md: dict[str, dict[str, Any]] = {}
        series_md: dict[tuple[str, str], dict[str, Any]] = {}
        for inst in unique:  # the first instance of each study and series describes it
            if inst.study_instance_uid not in study_md:
                study_md[inst.study_instance_uid] = _writes.study_metadata(inst.metadata)
            key = (inst.study_instance_uid, inst.series_instance_uid)
            if key not in series_md:
                series_md[key] = _writes.series_metadata(inst.metadata)

        def work(uow: _UnitOfWork) -> AddResult:
            conn = uow.conn
            ids, created = _writes.upsert_studies(conn, study_md)
            lists = _writes.upsert_series_lists(conn, ids.values(), data_source, root, uri)
            list_of = {study: lists[study_id][0] for study, study_id in ids.items()}
            wanted = {(list_of[st], se): md for (st, se), md in series_md.items()}
            series = _writes.upsert_series(conn, wanted, incoming_wins=False)
            if series.created:
                _writes.refresh_modalities(conn, ids.values())
            present = _writes.check_conflicts(conn, unique, data_source)
            series_id = {key: series.ids[(list_of[key[0]], key[1])] for key in series_md}
            list_roots = {series_id[key]: lists[ids[key[0]]][1] for key in series_md}
            rows = [
                (series_id[(i.study_instance_uid, i.series_instance_uid)], i,
                 paths.get(i.sop_instance_uid))
                for i in unique
            ]  # fmt: skip
            inserted = _writes.insert_instances(conn, rows, list_roots, present)
            for study in created:
                uow.changes.append(_study_added(study, data_source, made_in_client))
            counts: dict[tuple[str, str], int] = {}
            for inst in unique:
                key = (inst.study_instance_uid, inst.series_instance_uid)
                if (series_id[key], inst.sop_instance_uid) in inserted:
                    counts[key] = counts.get(key, 0) + 1
            for (study, se), count in counts.items():
                uow.changes.append(PendingChange(
                    EVENTS.INSTANCES_ADDED, study, se, data_source, made_in_client,
                    {"StudyInstanceUID": study, "SeriesInstanceUID": se, "count": count,
                     "data_source": data_source, "madeInClient": made_in_client},
                ))  # fmt: skip
            already = frozenset(
                i.sop_instance_uid
                for i in unique
                if (series_id[(i.study_instance_uid, i.series_instance_uid)], i.sop_instance_uid)
                not in inserted
            )
            return AddResult(len(inserted), len(already), already, tuple(created))

        return self._guard(work)

    def update_metadata_for_series(
        self, study_uid: str, series_uid: str, metadata: Mapping[str, Any]
    ) -> None:
        """Merge ``metadata`` into every instance of a series (OHIF ``updateMetadataForSeries``).

        Top-level attributes are replaced (a list replaces a list). Applies to the series in
        every data source. Raises :class:`NotFoundError` if the series is not stored.
        Fires SERIES_UPDATED.
        """
        check_uid(study_uid, "StudyInstanceUID")
        check_uid(series_uid, "SeriesInstanceUID")
        patch = to_naturalized(metadata)
        for key in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "imageId"):
            if key in patch:
                raise InvalidValueError(f"update_metadata_for_series cannot change {key}")

        def work(uow: _UnitOfWork) -> None:
            conn = uow.conn
            targets = conn.execute(
                select(SeriesRow.id, SeriesRow.metadata_, SeriesListRow.data_source)
                .join(SeriesListRow, SeriesListRow.id == SeriesRow.series_list_id)
                .join(StudyRow, StudyRow.id == SeriesListRow.study_id)
                .where(StudyRow.study_instance_uid == study_uid,
                       SeriesRow.series_instance_uid == series_uid)
                .order_by(SeriesRow.id)
                .with_for_update()
            ).all()  # fmt: skip
            if not targets:
                raise NotFoundError(f"series {series_uid} of study {study_uid} is not stored")
            for series_id, series_md, source in targets:
                rows = conn.execute(
                    select(InstanceRow.id, InstanceRow.metadata_)
                    .where(InstanceRow.series_id == series_id)
                    .order_by(InstanceRow.id)
                    .with_for_update()
                ).all()
                for instance_id, md in rows:
                    merged = {**md, **patch}
                    conn.execute(
                        update(InstanceRow)
                        .where(InstanceRow.id == instance_id)
                        .values(metadata_=merged, **_instance_columns(merged))
                    )
                series_patch = _writes.series_metadata(patch)
                if series_patch:
                    merged_series = {**series_md, **series_patch}
                    conn.execute(
                        update(SeriesRow)
                        .where(SeriesRow.id == series_id)
                        .values(**_writes.series_columns(merged_series),
                                metadata_=merged_series, updated_at=func.now())
                    )  # fmt: skip
                uow.changes.append(PendingChange(
                    EVENTS.SERIES_UPDATED, study_uid, series_uid, source, False,
                    {"StudyInstanceUID": study_uid, "SeriesInstanceUID": series_uid,
                     "data_source": source, "keys": sorted(patch)},
                ))  # fmt: skip

        self._guard(work)

    def _guard(self, work: Callable[[_UnitOfWork], T]) -> T:
        """Run a write, translating driver errors into ours.

        A write in its own transaction is run again (with backoff, a bounded number of times)
        when a concurrent writer conflicts; inside the caller's transaction it cannot be.
        """
        if getattr(self._local, "uow", None) is None:
            return run_with_retries(lambda: self._write(work))
        try:
            return self._write(work)
        except RepositoryError:
            raise
        except exc.DBAPIError as error:
            raise translate(error) from error

    # ------------------------------------------------------------------ reads

    def get_study_instance_uids(self) -> list[str]:
        """All study UIDs, in the order they were added (OHIF ``getStudyInstanceUIDs``)."""
        with self._read() as conn:
            return _reads.study_instance_uids(conn)

    def get_study_summaries(self) -> list[StudySummary]:
        """Every study with its series and their instance counts, in one query (no instances)."""
        with self._read() as conn:
            return study_summaries(conn)

    def get_study(self, study_uid: str) -> Study | None:
        """The study with all its series lists, series and instances (OHIF ``getStudy``)."""
        with self._read() as conn:
            return _reads.get_study(conn, study_uid)

    def get_series(
        self, study_uid: str | None, series_uid: str, *, data_source: str | None = None
    ) -> Series | None:
        """A series with its instances (OHIF ``getSeries``); ``study_uid=None`` searches all."""
        with self._read() as conn:
            return _reads.get_series(conn, study_uid, series_uid, data_source)

    def get_instance(
        self,
        study_uid: str,
        series_uid: str,
        sop_instance_uid: str,
        *,
        data_source: str | None = None,
    ) -> Instance | None:
        """One instance by its UIDs (OHIF ``getInstance``)."""
        with self._read() as conn:
            return _reads.get_instance(conn, study_uid, series_uid, sop_instance_uid, data_source)

    def get_instance_from_image_id(self, image_id: str) -> Instance | None:
        """The instance an imageId refers to, frame-level imageIds included
        (OHIF ``getInstanceByImageId``)."""
        with self._read() as conn:
            return _reads.get_instance_from_image_id(conn, image_id)

    # ------------------------------------------------------------------ display sets

    @property
    def handlers(self) -> HandlerRegistry:
        """The SOP class handlers used by default: plug-ins (entry points), then built-ins.

        Loaded on first use; ``store.handlers.register(handler, before="stack")`` adds one.
        """
        if self._handlers is None:
            self._handlers = default_registry()
        return self._handlers

    def get_display_sets(
        self,
        study_uid: str,
        *,
        handlers: Sequence[str | HandlerLike] | None = None,
        data_source: str | None = None,
        authorization_headers: Mapping[str, str] | None = None,
        dicom_web_client: object = None,
    ) -> list[DisplaySet]:
        """The study's display sets, computed from the database with a fixed number of queries.

        ``handlers`` (ids of registered handlers or handler objects) replaces the default list
        for this call, in the order given. ``authorization_headers`` are copied onto the display
        sets, never stored. Raises :class:`NotFoundError` if the study is not stored.
        """
        chosen = tuple(self.handlers) if handlers is None else self.handlers.resolve(handlers)
        with self._read() as conn:
            study = _reads.get_study(conn, study_uid, data_source)
        if study is None or not study.series_lists:
            where = f" from data source {data_source!r}" if data_source else ""
            raise NotFoundError(f"study {study_uid}{where} is not in the store")
        return build_display_sets(
            study,
            chosen,
            authorization_headers=authorization_headers,
            dicom_web_client=dicom_web_client,
        )


def _study_added(study_uid: str, data_source: str, made_in_client: bool) -> PendingChange:
    return PendingChange(
        EVENTS.STUDY_ADDED, study_uid, None, data_source, made_in_client,
        {"StudyInstanceUID": study_uid, "data_source": data_source},
    )  # fmt: skip


def _instance_columns(md: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "instance_number": as_int(md.get("InstanceNumber")),
        "number_of_frames": as_int(md.get("NumberOfFrames")),
        "rows": as_int(md.get("Rows")),
        "columns": as_int(md.get("Columns")),
    }


def _dedupe(instances: Iterable[NormalizedInstance]) -> list[NormalizedInstance]:
    """First copy of each SOP instance wins; one SOP UID in two series is a conflict."""
    seen: dict[str, NormalizedInstance] = {}
    for inst in instances:
        first = seen.setdefault(inst.sop_instance_uid, inst)
        if first is not inst and (first.study_instance_uid, first.series_instance_uid) != (
            inst.study_instance_uid,
            inst.series_instance_uid,
        ):
            raise ConflictError(
                f"SOPInstanceUID {inst.sop_instance_uid} appears in series "
                f"{first.series_instance_uid} and {inst.series_instance_uid} of one batch"
            )
    return list(seen.values())
