"""File ingest: find DICOM files, parse them in worker processes, write them in batches."""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from .errors import InvalidInputError, NotDicomError
from .normalize import (
    BULK_DATA_THRESHOLD,
    NormalizedInstance,
    check_uid,
    file_bulk_uri,
    naturalize_dataset,
    normalize_instance,
)
from .normalize_fast import naturalize_dataset_fast
from .serialized import SerializedMetadata
from .store import Store

DEFAULT_BATCH_SIZE = 500


@dataclass
class IngestReport:
    """What an ingest did: counts, and each skipped file with the reason."""

    ingested: int = 0
    already_present: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """True if any file could not be ingested."""
        return bool(self.skipped)


def iter_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Every file under ``paths`` (files as given, folders recursively, sorted)."""
    for path in map(Path, paths):
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    yield Path(root) / name
        else:
            yield path


def sample_files() -> list[Path]:
    """The DICOM instances among the test files bundled with pydicom (never downloaded).

    That folder also holds DICOMDIRs, text dumps and deliberately broken files; only files that
    carry valid Study, Series and SOP Instance UIDs are part of the sample.
    """
    folder = Path(pydicom.__file__).parent / "data" / "test_files"
    return [p for p in sorted(folder.rglob("*")) if p.is_file() and _is_instance(p)]


def _is_instance(path: Path) -> bool:
    keywords = ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=keywords, force=True)
        for keyword in keywords:
            check_uid(ds.get(keyword), keyword)
    except Exception:
        return False
    return True


def read_file(path: str | Path, *, fast: bool = True) -> NormalizedInstance:
    """Parse one file (large values are not read) into stored form; errors name the file.

    ``fast`` decodes common raw elements without pydicom's value classes (same result, see
    :mod:`repository.normalize_fast`); ``fast=False`` has pydicom convert every element.
    """
    path = Path(path)
    naturalize = naturalize_dataset_fast if fast else naturalize_dataset
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = pydicom.dcmread(path, defer_size=BULK_DATA_THRESHOLD)
            except InvalidDicomError:
                # Files without the 128-byte preamble are common; read them as bare datasets.
                ds = pydicom.dcmread(path, defer_size=BULK_DATA_THRESHOLD, force=True)
                if "SOPInstanceUID" not in ds:
                    raise NotDicomError(
                        f"{path}: not a DICOM file (no DICM prefix, no SOPInstanceUID)"
                    ) from None
            if len(ds) == 0:
                raise NotDicomError(f"{path}: truncated: no data set after the file header")
            bulk = file_bulk_uri(path)
            return normalize_instance(ds, source=str(path), bulk=bulk, naturalize=naturalize)
    except InvalidInputError:
        raise
    except OSError as error:
        raise NotDicomError(f"{path}: cannot read: {error.strerror or error}") from None
    except Exception as error:  # pydicom raises many types for damaged files
        raise NotDicomError(f"{path}: not readable as DICOM ({error})") from None


def _read_or_report(path: Path) -> tuple[str, NormalizedInstance | None, str | None]:
    """In a worker: the instance, its metadata serialized here rather than by the writer."""
    try:
        inst = read_file(path)
    except InvalidInputError as error:
        return str(path), None, str(error)
    return str(path), dataclasses.replace(inst, metadata=SerializedMetadata.of(inst.metadata)), None


def ingest(
    store: Store,
    paths: Iterable[str | Path],
    *,
    data_source: str = "default",
    workers: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int], object] | None = None,
) -> IngestReport:
    """Ingest files into ``store``: parse in ``workers`` processes, write in batches.

    A file that cannot be read or stored is skipped and reported; the others are committed.
    """
    files = list(iter_files(paths))
    if workers is None:
        workers = os.cpu_count() or 1
    report = IngestReport()
    if workers > 1 and len(files) > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = pool.map(_read_or_report, files, chunksize=16)
            _write_all(store, results, data_source, batch_size, report, progress)
    else:
        results_iter = map(_read_or_report, files)
        _write_all(store, results_iter, data_source, batch_size, report, progress)
    return report


def _write_all(
    store: Store,
    results: Iterable[tuple[str, NormalizedInstance | None, str | None]],
    data_source: str,
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
            _write_batch(store, batch, data_source, report)
            batch = []
        if progress:
            progress(1)
    if batch:
        _write_batch(store, batch, data_source, report)


def _write_batch(
    store: Store,
    batch: list[tuple[str, NormalizedInstance]],
    data_source: str,
    report: IngestReport,
) -> None:
    paths: dict[str, str] = {}
    for path, inst in batch:
        paths.setdefault(inst.sop_instance_uid, path)
    try:
        result = store.add_normalized(
            [inst for _, inst in batch], data_source=data_source, paths=paths
        )
    except InvalidInputError:
        if len(batch) == 1:
            raise
        for item in batch:  # isolate the file that conflicts; commit the rest
            try:
                _write_batch(store, [item], data_source, report)
            except InvalidInputError as error:
                report.skipped.append((item[0], str(error)))
        return
    report.ingested += result.added
    report.already_present += len(batch) - result.added
