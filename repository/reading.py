"""Files to stored form, in worker processes: find them, read each, hand the results back in order.

Each file is read by :mod:`repository.normalize.reader` straight from its bytes when it can be,
else by pydicom (imported on the first such file), and becomes a
:class:`~repository.normalize.NormalizedInstance` or the reason it cannot be stored. This is the
first step of ``file -> normalize -> unit of work``; :mod:`repository.ingest` writes the
results. :func:`read_files` starts its workers at once, so that they parse while the caller
opens the database (``dicom-repo ingest`` overlaps its start-up with the first files).
"""

from __future__ import annotations

import dataclasses
import os
import stat
import threading
import time
import warnings
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from .completeness import check_depth, truncation
from .errors import InvalidInputError, InvalidValueError, NotDicomError
from .normalize import (
    BULK_DATA_THRESHOLD,
    NormalizedInstance,
    file_bulk_uri,
    naturalize_dataset,
    normalize_instance,
)
from .normalize.instance import stored_instance
from .normalize.reader import read_metadata
from .pipeline import ordered_results
from .serialized import SerializedMetadata

CHUNK = 16
"""Files per worker task."""
WINDOW = 4
"""Worker tasks in flight per worker: enough to keep it busy, few enough to bound memory."""
PARENT_POLL_SECONDS = 0.5

Outcome = tuple[str, NormalizedInstance | None, str | None]
"""One file read: its display name, its stored form (None if it cannot be stored) and why not."""


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


@contextmanager
def read_files(files: list[Path], workers: int | None = None) -> Iterator[Iterator[Outcome]]:
    """The :data:`Outcome` of each of ``files``, in order, read by ``workers`` processes (None:
    one per CPU).

    The workers start now and read ahead (a bounded window) while the caller does other work;
    leaving the block cancels what was not read yet. One worker, or one file, reads in this
    process, file by file, as the results are taken.
    """
    workers = workers or os.cpu_count() or 1
    if workers <= 1 or len(files) <= 1:
        yield map(_read_or_report, files)
        return
    pool = ProcessPoolExecutor(workers, initializer=_watch_parent)
    try:
        yield ordered_results(pool, _read_or_report, files, chunk=CHUNK, window=WINDOW * workers)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
