"""The metadata store: OHIF's DicomMetadataStore API over a relational database.

:class:`Store` delegates: writes are built by :mod:`repository.commands` and run by a
:class:`~repository.unit_of_work.UnitOfWork` (transaction, retry, error mapping, events after
commit); :mod:`repository.feed` delivers the change log to subscribers; reads are in ``_reads``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from pydicom.dataset import Dataset
from sqlalchemy import Engine

from . import _reads, changelog, commands, deletes, retention
from .commands import DEFAULT_DATA_SOURCE, InstanceInput
from .errors import InvalidValueError, NotFoundError
from .events import Callback, Event, GapCallback, Subscription
from .feed import Feed
from .image_id import instance_frame_ids
from .models import AddResult, DeleteResult, Instance, Series, Study
from .normalize import NormalizedInstance
from .replicas import ReadRouter
from .summaries import StudySummary, study_summaries
from .unit_of_work import DEFAULT_ATTEMPTS, UnitOfWork
from .validation import check_data_source, check_flag, check_items, check_text, check_uid, check_url

if TYPE_CHECKING:  # the handlers are imported when display sets are first asked for
    from .sop_class_handlers import DisplaySet, HandlerRegistry
    from .sop_class_handlers.registry import HandlerLike

__all__ = ["DEFAULT_DATA_SOURCE", "InstanceInput", "Store"]

T = TypeVar("T")


class Store:
    """A DICOM metadata store backed by SQLite or PostgreSQL. Create it with ``connect()``."""

    def __init__(self, engine: Engine, *, poll_interval: float | None = None,
                 router: ReadRouter | None = None) -> None:  # fmt: skip
        self.engine = engine
        """The primary's engine: every write goes to it."""
        self.router = router or ReadRouter(engine, ())
        """Where reads go: a usable hot standby, else the primary (:mod:`repository.replicas`)."""
        self._feed = Feed(engine, poll_interval=poll_interval)
        self._uow = UnitOfWork(engine, self._feed.after_commit, self.router)
        self._handlers: HandlerRegistry | None = None

    def close(self) -> None:
        """Stop the change-feed follower thread and release the database connections."""
        self._feed.close()
        self.router.dispose()
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def retries(self) -> int:
        """How many transactions of this store were run again after a concurrent writer's
        conflict or a lost connection, since it was opened."""
        return self._uow.retries

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    @property
    def in_transaction(self) -> bool:
        """True inside ``with store.transaction():`` in the calling thread."""
        return self._uow.current is not None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group several adds into one commit; events are delivered after it, or never.

        Nested use joins the outer transaction. A failed ``add_*`` inside it is rolled back to
        its own savepoint, so the caller may catch the error and go on. A concurrent writer's
        conflict (or a lost connection) raises :class:`TransactionConflictError`
        (:class:`ConnectionLostError`), nothing committed: :meth:`run_in_transaction` retries.
        """
        with self._uow.transaction():
            yield

    def run_in_transaction(self, fn: Callable[[], T], *, attempts: int = DEFAULT_ATTEMPTS) -> T:
        """Run ``fn()`` in one transaction, again if a concurrent writer conflicts or the
        connection is lost (up to ``attempts`` calls: ``fn`` should be safe to repeat).

        Events are delivered once, after the commit that succeeded. Inside an enclosing
        transaction ``fn`` just joins it (no retry).
        """
        _check_callable(fn, "fn")
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise InvalidValueError(f"attempts must be an int >= 1, not {attempts!r}")
        return self._uow.run(fn, attempts=attempts)

    def subscribe(
        self,
        event: str,
        callback: Callback,
        *,
        include_made_in_client: bool = False,
        since: int | None = None,
        on_gap: GapCallback | None = None,
    ) -> Subscription:
        """Call ``callback(Event)`` after each commit (by any process) that fired ``event``:
        an ``EVENTS`` member, its OHIF name (``EVENTS.SERIES_ADDED.ohif_name``) or ``"*"``
        (all, including kinds written by a newer version).

        Each change once, in commit order, from ``since`` (None: from now; N: replay after
        seq N first). Callbacks run in the committing thread for this store's commits, else
        in the store's follower thread. ``made_in_client`` writes need
        ``include_made_in_client``.

        If changes after ``since`` were compacted away, :class:`FeedGapError` is raised; if
        that happens later to a lagging subscription, ``on_gap(error)`` is called (without it
        the subscription ends, logged). Resync: re-read the state, subscribe from ``newest``.
        """
        _check_callable(callback, "callback")
        check_flag(include_made_in_client, "include_made_in_client")
        if on_gap is not None:
            _check_callable(on_gap, "on_gap")
        if since is not None:
            changelog.check_page(since, 1)
        return self._feed.subscribe(event, callback, include_made_in_client, since, on_gap)

    def changes(self, since: int = 0, limit: int = 1000) -> list[Event]:
        """Committed changes with seq greater than ``since``, in commit order (at most
        ``limit``): the change log as a durable, replayable feed.

        Page through it with ``since=changes[-1].seq``. Seqs are handed out in commit order,
        so a follower that remembers the last seq it saw misses nothing.
        """
        changelog.check_page(since, limit)
        with self._uow.read() as conn:
            changelog.check_position(conn, since)
            return changelog.read_changes(conn, since, limit)

    def compact_changes(
        self, *, before_seq: int | None = None, keep_days: float | None = None
    ) -> changelog.Compaction:
        """Delete old changes from the change log: those with ``seq < before_seq``, or those
        older than ``keep_days`` days (give one). The newest change is always kept.

        A follower, ``subscribe(since=...)`` or ``changes(since=...)`` whose position is below
        the removed changes then gets :class:`FeedGapError` rather than a silent gap.
        """
        older_than = retention.days_ago(keep_days) if keep_days is not None else None
        if before_seq is not None:
            changelog.check_page(before_seq, 1)
        return self._uow.write(
            lambda tx: changelog.compact(tx.conn, before_seq=before_seq, older_than=older_than,
                                         channel=self._uow.channel(tx))
        )  # fmt: skip

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
        root, uri = check_url(wado_root, "wado_root"), check_url(wado_uri, "wado_uri")
        return self._uow.write(commands.add_study(study, data_source, root, uri))

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
        whose series were created or changed, with those summaries.
        """
        work = commands.add_series_metadata(
            summaries,
            data_source,
            check_flag(made_in_client, "made_in_client"),
            check_url(wado_root, "wado_root"),
            check_url(wado_uri, "wado_uri"),
        )
        if work is not None:  # an empty list is a no-op
            self._uow.write(work)

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
        check_data_source(data_source)
        normalized, paths = commands.normalize_inputs(check_items(instances, "instances"))
        return self.add_normalized(normalized, data_source=data_source,
                                   made_in_client=made_in_client, wado_root=wado_root,
                                   wado_uri=wado_uri, paths=paths)  # fmt: skip

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
        if not all(isinstance(i, NormalizedInstance) for i in check_items(instances, "instances")):
            raise InvalidValueError("add_normalized takes NormalizedInstance objects")
        work = commands.add_normalized(
            list(instances),
            data_source,
            check_flag(made_in_client, "made_in_client"),
            check_url(wado_root, "wado_root"),
            check_url(wado_uri, "wado_uri"),
            paths,
        )
        return AddResult(0, 0) if work is None else self._uow.write(work)

    def update_metadata_for_series(
        self, study_uid: str, series_uid: str, metadata: Mapping[str, Any]
    ) -> None:
        """Merge ``metadata`` into every instance of a series (OHIF ``updateMetadataForSeries``).

        Top-level attributes are replaced (a list replaces a list). Applies to the series in
        every data source. Raises :class:`NotFoundError` if the series is not stored.
        Fires SERIES_UPDATED.
        """
        self._uow.write(commands.update_metadata_for_series(study_uid, series_uid, metadata))

    def delete_study(self, study_uid: str, *, data_source: str | None = None) -> DeleteResult:
        """Delete the study with its series and instances (only its series list of
        ``data_source`` if given); fires STUDY_DELETED. :class:`NotFoundError` if absent."""
        return self._uow.write(deletes.delete_study(study_uid, data_source))

    def delete_series(
        self, study_uid: str, series_uid: str, *, data_source: str | None = None
    ) -> DeleteResult:
        """Delete the series with its instances, from every data source or ``data_source``;
        fires SERIES_DELETED (and STUDY_DELETED for a study left empty)."""
        return self._uow.write(deletes.delete_series(study_uid, series_uid, data_source))

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
        work = deletes.delete_instances(study_uid, series_uid, sop_uids, data_source)
        return self._uow.write(work)

    def get_study_instance_uids(self) -> list[str]:
        """All study UIDs, in the order they were added (OHIF ``getStudyInstanceUIDs``)."""
        with self._uow.read() as conn:
            return _reads.study_instance_uids(conn)

    def get_study_summaries(self) -> list[StudySummary]:
        """Every study with its series and their instance counts, in one query (no instances)."""
        with self._uow.read() as conn:
            return study_summaries(conn)

    def get_study(self, study_uid: str) -> Study | None:
        """The study with all its series lists, series and instances (OHIF ``getStudy``)."""
        uid = check_uid(study_uid, "study_uid")
        with self._uow.read() as conn:
            return _reads.get_study(conn, uid)

    def get_series(
        self, study_uid: str | None, series_uid: str, *, data_source: str | None = None
    ) -> Series | None:
        """A series with its instances (OHIF ``getSeries``); ``study_uid=None`` searches all."""
        study = None if study_uid is None else check_uid(study_uid, "study_uid")
        series = check_uid(series_uid, "series_uid")
        source = None if data_source is None else check_data_source(data_source)
        with self._uow.read() as conn:
            return _reads.get_series(conn, study, series, source)

    def get_instance(
        self,
        study_uid: str,
        series_uid: str,
        sop_instance_uid: str,
        *,
        data_source: str | None = None,
    ) -> Instance | None:
        """One instance by its UIDs (OHIF ``getInstance``)."""
        uids = (check_uid(study_uid, "study_uid"), check_uid(series_uid, "series_uid"),
                check_uid(sop_instance_uid, "sop_instance_uid"))  # fmt: skip
        source = None if data_source is None else check_data_source(data_source)
        with self._uow.read() as conn:
            return _reads.get_instance(conn, *uids, source)

    def get_instance_from_image_id(self, image_id: str) -> Instance | None:
        """The instance an imageId (frame-level too) refers to (OHIF ``getInstanceByImageId``)."""
        check_text(image_id, "image_id")
        with self._uow.read() as conn:
            return _reads.get_instance_from_image_id(conn, image_id)

    def get_image_ids(self, study_uid: str, series_uid: str | None = None) -> list[str]:
        """One imageId per frame, in display order, of the study's (or one series') image
        display sets, as OHIF's ``getImageIdsForDisplaySet`` / ``getImageIdsForInstance``
        build them: a multi-frame instance gives ``.../frames/N`` or ``&frame=N`` for each of
        its NumberOfFrames frames, other instances their own imageId. Display sets without
        images (no frame count: SR, SEG, RTSTRUCT...) and unsupported ones give none.
        Raises :class:`NotFoundError` if the study is not stored.
        """
        return [
            image_id
            for display_set in self.get_display_sets(study_uid)
            if series_uid in (None, display_set.series_instance_uid)
            and display_set.num_image_frames is not None
            and not display_set.is_unsupported
            for image_id in instance_frame_ids(display_set.instances)
        ]

    @property
    def handlers(self) -> HandlerRegistry:
        """The SOP class handlers used by default: plug-ins (entry points), then built-ins.

        Loaded on first use; ``store.handlers.register(handler, before="stack")`` adds one.
        """
        if self._handlers is None:
            from .sop_class_handlers import default_registry

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
        check_uid(study_uid, "study_uid")
        if data_source is not None:
            check_data_source(data_source)
        chosen = (tuple(self.handlers) if handlers is None
                  else self.handlers.resolve(check_items(handlers, "handlers")))  # fmt: skip
        with self._uow.read() as conn:
            study = _reads.get_study(conn, study_uid, data_source)
        if study is None or not study.series_lists:
            where = f" from data source {data_source!r}" if data_source else ""
            raise NotFoundError(f"study {study_uid}{where} is not in the store")
        from .sop_class_handlers import build_display_sets

        return build_display_sets(study, chosen, authorization_headers=authorization_headers,
                                  dicom_web_client=dicom_web_client)  # fmt: skip


def _check_callable(value: object, what: str) -> None:
    if not callable(value):
        raise InvalidValueError(f"{what} must be callable, not {value!r:.80}")
