"""One pull from a remote data source: its studies, then their series, one commit per series.

:class:`PullRun` holds what a pull has done so far (:class:`PullReport`), reports progress
(:class:`PullProgress`) and decides what a failure does (stop, or record it and go on). The
source (:class:`~repository.sources.dicomweb.DicomWebSource`) does the requests and the writes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from ..errors import DatabaseError, RepositoryError
from ..models import AddResult
from ..store import Store

log = logging.getLogger(__name__)


class PullError(RepositoryError):
    """A pull failed. The message names the server (without credentials) and what was asked
    (study, series); ``report`` counts what had been committed before the failure."""

    def __init__(self, message: str, report: PullReport | None = None) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class PullReport:
    """What a pull did: studies pulled completely, and series and instances committed."""

    data_source: str
    studies: int = 0
    series: int = 0
    instances_added: int = 0
    instances_present: int = 0
    failures: list[str] = field(default_factory=list)
    """With ``keep_going``: the error message of each study or series that failed."""
    retries: int = 0
    """Transactions run again after a lost connection or a concurrent writer's conflict."""

    def summary(self) -> str:
        """One line: studies, series, data source, instances added and already present."""
        line = (
            f"{self.studies} studies, {self.series} series from {self.data_source}: "
            f"{self.instances_added} instances added, {self.instances_present} already present"
        )
        return line + (f" ({self.retries} retried transactions)" if self.retries else "")


@dataclass(frozen=True)
class PullProgress:
    """A snapshot handed to the ``progress`` callback of :meth:`DicomWebSource.pull`.

    ``series_total`` counts the series of the studies searched so far; it grows as the pull
    reaches new studies.
    """

    studies_total: int
    studies_done: int = 0
    series_total: int = 0
    series_done: int = 0
    instances_added: int = 0
    instances_present: int = 0


class SeriesSource(Protocol):
    """What a pull needs from a source: its series per study, and storing one series."""

    @property
    def name(self) -> str:
        """The data source (series list) name the series are filed under."""

    @property
    def server(self) -> str:
        """The server, fit for messages (no credentials)."""

    def search_series(self, study_uid: str) -> list[dict[str, Any]]:
        """The series summaries of a study."""

    def store_series(self, store: Store, study_uid: str, summary: dict[str, Any]) -> AddResult:
        """Fetch and commit one series (summary and instances) in one transaction."""


class PullRun:
    """One pull's progress and report, and the loop over studies and series."""

    def __init__(
        self,
        source: SeriesSource,
        store: Store,
        *,
        progress: Callable[[PullProgress], None] | None = None,
        keep_going: bool = False,
    ) -> None:
        self.source, self.store = source, store
        self.progress, self.keep_going = progress, keep_going
        self.report = PullReport(source.name)
        self.state = PullProgress(studies_total=0)

    def run(self, find_studies: Callable[[], list[str]], *, named: bool) -> PullReport:
        """Pull every study ``find_studies()`` returns; ``named``: the user listed them, so a
        study without series is a failure. A raised :class:`PullError` carries the report."""
        retries = self.store.retries
        try:
            wanted = find_studies()
            self._tell(studies_total=len(wanted))
            for study_uid in wanted:
                self._pull_study(study_uid, named)
        except PullError as error:
            error.report = self.report
            raise
        except DatabaseError as error:  # retries ran out: every later series would fail too
            raise PullError(
                f"the pull stopped, the database failed: {error}; the series counted before "
                "were committed, the others were not: pull again to finish",
                self.report,
            ) from error
        finally:
            self.report.retries = self.store.retries - retries
        return self.report

    def _pull_study(self, study_uid: str, named: bool) -> None:
        summaries, complete = self._series_of(study_uid, named)
        self._tell(series_total=self.state.series_total + len(summaries))
        for summary in summaries:
            complete = self._pull_series(study_uid, summary) and complete
            self._tell(series_done=self.state.series_done + 1)
        self.report.studies += complete
        self._tell(studies_done=self.state.studies_done + 1)

    def _series_of(self, study_uid: str, named: bool) -> tuple[list[dict[str, Any]], bool]:
        """The study's series summaries, and False if searching them failed."""
        try:
            summaries = self.source.search_series(study_uid)
            if not summaries and named:
                raise PullError(f"{self.source.server} has no series of study {study_uid}")
        except PullError as error:
            self._failed(error)
            return [], False
        return summaries, True

    def _pull_series(self, study_uid: str, summary: dict[str, Any]) -> bool:
        """Store one series; False if it failed (and the pull goes on)."""
        try:
            result = self.source.store_series(self.store, study_uid, summary)
        except PullError as error:
            self._failed(error)
            return False
        self.report.series += 1
        self.report.instances_added += result.added
        self.report.instances_present += result.already_present
        return True

    def _tell(self, **changes: int) -> None:
        self.state = replace(
            self.state,
            **changes,
            instances_added=self.report.instances_added,
            instances_present=self.report.instances_present,
        )
        if self.progress is not None:
            self.progress(self.state)

    def _failed(self, error: PullError) -> None:
        if not self.keep_going:
            raise error
        log.warning("%s", error)
        self.report.failures.append(str(error))
