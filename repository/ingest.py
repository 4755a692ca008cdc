"""File ingest: find DICOM files, parse them in worker processes, write them in batches."""

from __future__ import annotations

import dataclasses
import os
import stat
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .completeness import check_depth, truncation
from .errors import DatabaseError, InvalidInputError, InvalidValueError, NotDicomError
from .models import AddResult
from .normalize import (
    BULK_DATA_THRESHOLD,
    NormalizedInstance,
    file_bulk_uri,
    naturalize_dataset,
    normalize_instance,
)
from .normalize.instance import stored_instance
from .normalize.reader import read_metadata
from .pipeline import BackgroundWriter, ordered_results
from .serialized import SerializedMetadata
from .store import Store
from .validation import check_items

DEFAULT_BATCH_SIZE = 500
CHUNK = 16
"""Files per worker task."""
WINDOW = 4
"""Worker tasks in flight per worker: enough to keep it busy, few enough to bound memory."""
PARENT_POLL_SECONDS = 0.5


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


def iter_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Every file under ``paths`` (files as given, folders recursively, sorted)."""
    for item in paths:
        if not isinstance(item, str | os.PathLike):
            raise InvalidValueError(f"paths must hold file or folder names, not {item!r:.80}")
        path = Path(item)
        try:
            is_dir = path.is_dir()
        except (OSError, ValueError):  # a NUL or an unencodable name: reported when read
            is_dir = False
        if is_dir:
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    yield Path(root) / name
        else:
            yield path


def sample_files() -> list[Path]:
    """The DICOM instances among the test files bundled with pydicom (never downloaded).

    That folder also holds DICOMDIRs, text dumps and deliberately broken or truncated files;
    only the files that ingest would store are part of the sample.
    """
    import pydicom

    folder = Path(pydicom.__file__).parent / "data" / "test_files"
    return [p for p in sorted(folder.rglob("*")) if p.is_file() and _is_instance(p)]


def _is_instance(path: Path) -> bool:
    try:
        read_file(path)
    except InvalidInputError:
        return False
    return True


Via = Literal["reader", "fast", "pydicom"]
"""How :func:`read_file` reads a file; each way stores the same (see test_normalize_fast.py)."""


def read_file(
    path: str | Path, *, via: Via = "reader", bulk_path: Path | None = None
) -> NormalizedInstance:
    """Parse one file (large values are not read) into stored form; errors name the file.

    ``via="reader"`` reads common files straight from their bytes
    (:mod:`repository.normalize.reader`) and the others as ``"fast"`` does: ``dcmread``, then
    common raw elements decoded without pydicom's value classes
    (:mod:`repository.normalize.fast`); ``"pydicom"`` has pydicom convert every element.
    ``bulk_path``: the file its BulkDataURIs point into, when not ``path`` (STOW-RS reads a
    received file before it is moved to its final name, after the commit).
    """
    path = Path(path)
    bulk_file = path if bulk_path is None else bulk_path
    name = display_name(path)
    _check_openable(path, name)
    if via == "reader":
        inst = _read_directly(path, name, bulk_file)
        if inst is not None:
            return inst
    inst = _read_with_pydicom(path, name, bulk_file, via)
    check_depth(inst.metadata, name)
    return inst


def _read_with_pydicom(path: Path, name: str, bulk_file: Path, via: Via) -> NormalizedInstance:
    """The file read by ``dcmread`` (pydicom is imported here, on the first such file)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    from .normalize.fast import naturalize_dataset_fast

    naturalize = naturalize_dataset if via == "pydicom" else naturalize_dataset_fast
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
                        f"{name}: not a DICOM file (no DICM prefix, no SOPInstanceUID)"
                    ) from None
            if len(ds) == 0:
                raise NotDicomError(f"{name}: truncated: no data set after the file header")
            cut = truncation(ds, path.stat().st_size)
            if cut:
                raise NotDicomError(f"{name}: truncated: {cut}")
            bulk = file_bulk_uri(bulk_file)
            return normalize_instance(ds, source=name, bulk=bulk, naturalize=naturalize)
    except InvalidInputError:
        raise
    except OSError as error:
        raise NotDicomError(f"{name}: cannot read: {error.strerror or error}") from None
    except RecursionError:
        raise NotDicomError(f"{name}: sequences nested too deep to read") from None
    except Exception as error:  # pydicom raises many types for damaged files
        raise NotDicomError(f"{name}: not readable as DICOM ({error})") from None


def _read_directly(path: Path, name: str, bulk_file: Path) -> NormalizedInstance | None:
    """The file read without dcmread, or None when it is one to leave to pydicom."""
    try:
        md = read_metadata(path, file_bulk_uri(bulk_file))
    except Exception:  # making its bulk data URIs failed: pydicom's path reports it
        return None
    if md is None:
        return None
    inst = stored_instance(md, source=name)
    check_depth(inst.metadata, name)
    return inst


def display_name(path: Path) -> str:
    """``path`` as printable text: bytes that are not UTF-8 shown as ``\\xNN``."""
    try:
        raw = os.fsencode(path)
    except UnicodeEncodeError:  # a lone surrogate given by a caller: no file can have it
        return str(path).encode("utf-8", "backslashreplace").decode("ascii")
    return raw.decode("utf-8", "backslashreplace")


def _check_openable(path: Path, name: str) -> None:
    """Refuse what would hang or cannot be stored before opening it."""
    if name != str(path):
        raise NotDicomError(f"{name}: the file name is not valid UTF-8")
    try:
        mode = path.stat().st_mode
    except OSError as error:
        raise NotDicomError(f"{name}: cannot read: {error.strerror or error}") from None
    if not stat.S_ISREG(mode):
        raise NotDicomError(f"{name}: not a regular file ({_file_kind(mode)})")


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISDIR, "a directory"))  # fmt: skip
    return next((kind for test, kind in kinds if test(mode)), "not a file")


def _read_or_report(path: Path) -> tuple[str, NormalizedInstance | None, str | None]:
    """One file's outcome (in a worker: metadata serialized here, not by the writer);
    nothing that goes wrong with one file ends the run."""
    name = display_name(path)
    try:
        inst = read_file(path)
    except InvalidInputError as error:
        return name, None, str(error)
    except Exception as error:  # an unforeseen failure is that file's, not the run's
        return name, None, f"{name}: unexpected {type(error).__name__}: {error}"
    return name, dataclasses.replace(inst, metadata=SerializedMetadata.of(inst.metadata)), None


def _watch_parent() -> None:
    """Worker initializer: exit when the parent process dies (even by ``kill -9``)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


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
    if workers is None:
        workers = os.cpu_count() or 1
    report = IngestReport()
    retries_before = store.retries

    def write(batch: list[tuple[str, NormalizedInstance]]) -> None:
        _write_batch(store, batch, data_source, report, keep_json)

    try:
        if workers > 1 and len(files) > 1:
            with ProcessPoolExecutor(workers, initializer=_watch_parent) as pool:
                results = ordered_results(
                    pool, _read_or_report, files, chunk=CHUNK, window=WINDOW * workers
                )
                try:  # inside the caller's transaction, writes stay in the caller's thread
                    if store.in_transaction:
                        _write_all(results, write, batch_size, report, progress)
                    else:
                        with BackgroundWriter(write) as writer:
                            _write_all(results, writer.put, batch_size, report, progress)
                except DatabaseError:
                    pool.shutdown(cancel_futures=True)
                    raise
        else:
            _write_all(map(_read_or_report, files), write, batch_size, report, progress)
    except DatabaseError as error:
        report.stopped = str(error)
        report.not_committed = len(files) - report.done
    report.retries = store.retries - retries_before
    return report


def _check_counts(**counts: int | None) -> None:
    for name, value in counts.items():
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise InvalidValueError(f"{name} must be an int >= 1, not {value!r}")


def _write_all(
    results: Iterable[tuple[str, NormalizedInstance | None, str | None]],
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
