"""File ingest: DICOM files read in worker processes (:mod:`repository.reading`), written in
batches, each batch one transaction of the store."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import DatabaseError, InvalidInputError, InvalidValueError
from .pipeline import BackgroundWriter
from .reading import Outcome, iter_files, read_files
from .validation import check_items

if TYPE_CHECKING:
    from .models import AddResult
    from .normalize import NormalizedInstance
    from .store import Store

DEFAULT_BATCH_SIZE = 500


@dataclass
class IngestReport:
    """What an ingest did, one count per file, and each skipped file with the reason.

    Every file lands in exactly one count: ``ingested`` (its instance was new and is now
    stored), ``already_present`` (the store held its instance before this ingest), ``duplicates``
    (an earlier file of this ingest holds the same instance) or ``skipped``.
    """

    ingested: int = 0
    already_present: int = 0
    duplicates: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    not_committed: int = 0
    """Files not written because the database failed (``stopped`` says how): run again."""
    stopped: str | None = None
    """Why the ingest stopped early: the database error that outlasted the retries."""
    retries: int = 0
    """Transactions run again after a lost connection or a concurrent writer's conflict."""
    warnings: list[tuple[str, str]] = field(default_factory=list)
    """(file, why) for files stored with a patient that differs from their study's."""
    _added: set[str] = field(default_factory=set, repr=False, compare=False)

    @property
    def failed(self) -> bool:
        """True if any file could not be ingested."""
        return bool(self.skipped) or self.stopped is not None

    def summary(self) -> str:
        """``N ingested, N already present, N skipped`` (then duplicate files, files not
        committed and retries, if any)."""
        line = (
            f"{self.ingested} ingested, {self.already_present} already present, "
            f"{len(self.skipped)} skipped"
        )
        line += f", {self.duplicates} duplicates" if self.duplicates else ""
        line += f", {self.not_committed} not committed" if self.stopped is not None else ""
        line += f", {len(self.warnings)} patient conflicts" if self.warnings else ""
        return line + (f" ({self.retries} retried transactions)" if self.retries else "")

    @property
    def done(self) -> int:
        """Files accounted for so far (each in exactly one count)."""
        return self.ingested + self.already_present + self.duplicates + len(self.skipped)

    def count(self, sop_uids: Iterable[str], result: AddResult) -> None:
        """Count the files of one written batch (their SOP UIDs, in order) from its result."""
        for uid in sop_uids:
            if uid in self._added:
                self.duplicates += 1
            elif uid in result.already_present_uids:
                self.already_present += 1
            else:
                self.ingested += 1
                self._added.add(uid)


def ingest(
    store: Store,
    paths: Iterable[str | Path],
    *,
    data_source: str = "default",
    workers: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int], object] | None = None,
    keep_json: bool = False,
) -> IngestReport:
    """Ingest files into ``store``: parse in ``workers`` processes, write in batches
    (``keep_json``: with each new instance's WADO-RS DICOM JSON, see ``Store.add_normalized``).

    A file that cannot be read or stored is skipped and reported; the others are committed.
    Lost connections and conflicts are retried (:attr:`Store.retries`); a database failure
    that outlasts the retries stops the ingest: ``report.stopped`` says why and
    ``report.not_committed`` how many files are left for a re-run, which finishes the job.
    """
    files = list(iter_files(check_items(paths, "paths")))
    _check_counts(workers=workers, batch_size=batch_size)
    with read_files(files, workers) as results:
        return write_results(
            store, results, len(files), data_source=data_source, batch_size=batch_size,
            progress=progress, keep_json=keep_json,
        )  # fmt: skip


def write_results(
    store: Store,
    results: Iterator[Outcome],
    total: int,
    *,
    data_source: str = "default",
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int], object] | None = None,
    keep_json: bool = False,
) -> IngestReport:
    """Write the ``total`` files read by :func:`~repository.reading.read_files` (the second
    half of :func:`ingest`): batches of ``batch_size``, written by a background thread while the
    next are read (in the caller's thread inside ``store.transaction()``)."""
    _check_counts(batch_size=batch_size)
    report = IngestReport()
    retries_before = store.retries

    def write(batch: list[tuple[str, NormalizedInstance]]) -> None:
        _write_batch(store, batch, data_source, report, keep_json)

    try:
        if store.in_transaction:  # the caller's transaction is bound to the caller's thread
            _write_all(results, write, batch_size, report, progress)
        else:
            with BackgroundWriter(write) as writer:
                _write_all(results, writer.put, batch_size, report, progress)
    except DatabaseError as error:
        report.stopped = str(error)
        report.not_committed = total - report.done
    report.retries = store.retries - retries_before
    return report


def _check_counts(**counts: int | None) -> None:
    for name, value in counts.items():
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise InvalidValueError(f"{name} must be an int >= 1, not {value!r}")


def _write_all(
    results: Iterable[Outcome],
    write: Callable[[list[tuple[str, NormalizedInstance]]], object],
    batch_size: int,
    report: IngestReport,
    progress: Callable[[int], object] | None,
) -> None:
    batch: list[tuple[str, NormalizedInstance]] = []
    for path, inst, error in results:
        if inst is None:
            report.skipped.append((path, error or "unreadable"))
        else:
            batch.append((path, inst))
        if len(batch) >= batch_size:
            write(batch)
            batch = []
        if progress:
            progress(1)
    if batch:
        write(batch)


def _write_batch(
    store: Store,
    batch: list[tuple[str, NormalizedInstance]],
    data_source: str,
    report: IngestReport,
    keep_json: bool = False,
) -> None:
    paths: dict[str, str] = {}
    for path, inst in batch:
        paths.setdefault(inst.sop_instance_uid, path)
    try:
        result = store.add_normalized(
            [inst for _, inst in batch], data_source=data_source, paths=paths, keep_json=keep_json
        )
    except InvalidInputError:
        if len(batch) == 1:
            raise
        for item in batch:  # isolate the file that conflicts; commit the rest
            try:
                _write_batch(store, [item], data_source, report, keep_json)
            except InvalidInputError as error:
                report.skipped.append((item[0], str(error)))
        return
    report.count((inst.sop_instance_uid for _, inst in batch), result)
    report.warnings += [(paths[uid], why) for uid, why in result.patient_conflicts]
