"""The metadata store: OHIF's DicomMetadataStore API over a relational database.

:class:`Store` is that API's shape and delegates: writes are built by :mod:`repository.commands`
and :mod:`repository.adds` and run by a :class:`~repository.unit_of_work.UnitOfWork`
(transaction, retry, error mapping, events after commit); reads are in ``_reads``. What is not
OHIF's API comes from the modules that own it: the transaction methods from
:mod:`repository.transactions`, the change feed (subscribe, changes, compaction) from
:mod:`repository.feed`, the deletes from :mod:`repository.deletes`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from . import _reads, adds, commands
from .commands import DEFAULT_DATA_SOURCE, InstanceInput
from .deletes import DeleteMethods
from .feed import ChangeFeedMethods, Feed
from .models import AddResult, Instance, Series, Study
from .normalize import NormalizedInstance
from .replicas import ReadRouter
from .summaries import StudySummary, study_summaries
from .transactions import TransactionMethods
from .unit_of_work import UnitOfWork
from .validation import check_data_source, check_items, check_text, check_uid

if TYPE_CHECKING:  # the handlers are imported when display sets are first asked for
    from pydicom.dataset import Dataset

    from .sop_class_handlers import DisplaySet, HandlerRegistry
    from .sop_class_handlers.registry import HandlerLike

__all__ = ["DEFAULT_DATA_SOURCE", "InstanceInput", "Store"]


class Store(TransactionMethods, ChangeFeedMethods, DeleteMethods):
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
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

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
        return self._uow.write(commands.add_study(study, data_source, wado_root, wado_uri))

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
        work = commands.add_series_metadata(summaries, data_source, made_in_client, wado_root,
                                            wado_uri)  # fmt: skip
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
        work = adds.add_instances(instances, data_source, made_in_client, wado_root, wado_uri)
        return AddResult(0, 0) if work is None else self._uow.write(work)

    def add_normalized(
        self,
        instances: list[NormalizedInstance],
        *,
        data_source: str = DEFAULT_DATA_SOURCE,
        made_in_client: bool = False,
        wado_root: str | None = None,
        wado_uri: str | None = None,
        paths: Mapping[str, str] | None = None,
        keep_json: bool = False,
    ) -> AddResult:
        """:meth:`add_instances` for already normalized instances (used by file ingest).

        ``paths`` maps SOP Instance UID to the file it was read from, for ``dicomfile:`` ids;
        ``keep_json`` keeps the new instances' WADO-RS DICOM JSON in the same transaction.
        """
        work = adds.add_normalized(instances, data_source, made_in_client, wado_root, wado_uri,
                                   paths, keep_json)  # fmt: skip
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
        from .sop_class_handlers import display_set_image_ids

        return display_set_image_ids(self.get_display_sets(study_uid), series_uid)

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
        from .sop_class_handlers import study_display_sets

        return study_display_sets(study, study_uid, data_source, chosen,
                                  authorization_headers=authorization_headers,
                                  dicom_web_client=dicom_web_client)  # fmt: skip
