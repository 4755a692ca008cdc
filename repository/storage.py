"""Files the repository owns: the storage folder STOW-RS writes into, and keeping it in step.

``dicom-repo serve --storage DIR`` writes each stored instance to a file of its own,
``DIR/<study>/<series>/<sop>-<token>.dcm`` (:func:`instance_path`: a new random token for every
write), and records it as a ``dicomfile:`` imageId. Those files belong to the repository: a
delete removes them **after** its commit (:func:`remove_after_commit`), never before, so a
rolled-back delete loses nothing. As no two writes share a path, the late unlink of a delete
removes exactly the file its deleted row named, never the file of the same instance stored again
between that commit and the unlink. Files that ``dicom-repo ingest`` read in place are outside
the folder and never touched. A crash between a commit and the unlink leaves orphans;
:func:`check` finds them (and instances whose file is missing), :func:`fix` removes them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, select, true

from .image_id import FILE_PREFIX
from .schema import instance_table

INCOMING = ".incoming"
"""Subfolder of the storage folder where uploads are received before they are placed."""
GRACE_SECONDS = 600.0
"""A file younger than this may belong to a STOW still committing: check leaves it alone."""


PLACE_ATTEMPTS = 5
"""How often :func:`place` makes a folder again that a delete's clean-up removed meanwhile."""


def instance_path(storage: Path, study: str, series: str, sop: str) -> Path:
    """A new path for a file of the instance with these UIDs in ``storage``, unique to this write:
    ``<study>/<series>/<sop>-<token>.dcm`` (UIDs hold only digits and dots)."""
    return storage / study / series / f"{sop}-{secrets.token_hex(8)}.dcm"


def place(source: Path, final: Path, *, replace: bool = True) -> None:
    """Move ``source`` to ``final`` (in the same file system), making its folders; with
    ``replace=False`` a file already at ``final`` stays (``source`` is left for the caller).

    A delete that empties a series removes its folder after its commit
    (:func:`remove_after_commit`); if that lands between making the folder and the move, the
    folder is made again."""
    for attempt in range(PLACE_ATTEMPTS):
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            if replace:
                os.replace(source, final)
            else:
                with contextlib.suppress(FileExistsError):
                    os.link(source, final)
            return
        except FileNotFoundError:
            if attempt == PLACE_ATTEMPTS - 1 or not source.exists():
                raise


def owned(files: Iterable[str], storage: Path) -> list[Path]:
    """Those of ``files`` that lie inside ``storage`` (the only ones a delete may remove)."""
    root = storage.resolve()
    return [Path(f) for f in files if Path(f).resolve().is_relative_to(root)]


def remove_after_commit(files: Iterable[str], storage: Path | None) -> int:
    """Unlink the files of committed deletes that ``storage`` owns (and their emptied series
    and study folders); returns how many were removed. Never raises for a missing file."""
    if storage is None:
        return 0
    removed = 0
    for path in owned(files, storage):
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            continue
        for folder in (path.parent, path.parent.parent):  # series, then study
            try:
                folder.rmdir()
            except OSError:  # not empty (or gone): leave it
                break
    return removed


@dataclass
class StorageReport:
    """What :func:`check` found in a storage folder."""

    orphans: list[Path] = field(default_factory=list)
    """Files (and leftover uploads) that no stored instance refers to."""
    missing: list[tuple[str, Path]] = field(default_factory=list)
    """(SOP Instance UID, file) of stored instances whose file is gone."""
    files: int = 0

    @property
    def clean(self) -> bool:
        """True when nothing is out of step."""
        return not self.orphans and not self.missing


def check(conn: Connection, storage: Path, *, grace: float = GRACE_SECONDS) -> StorageReport:
    """Compare ``storage`` with the instances recorded in it. Files and instances younger than
    ``grace`` seconds are left out: they may belong to a STOW-RS that is committing (its file
    is moved into place just after its commit)."""
    root = storage.resolve()
    prefix = f"{FILE_PREFIX}{root}{os.sep}"
    settled = time.time() - grace
    cutoff = dt.datetime.fromtimestamp(settled, dt.UTC)
    rows = conn.execute(
        select(
            instance_table.c.image_id,
            instance_table.c.sop_instance_uid,
            (true() if grace <= 0 else instance_table.c.created_at < cutoff).label("settled"),
        ).where(instance_table.c.image_id.startswith(prefix, autoescape=True))
    )
    recorded = {Path(image_id.removeprefix(FILE_PREFIX)): (sop, old) for image_id, sop, old in rows}
    report = StorageReport()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        report.files += 1
        if path not in recorded and path.stat().st_mtime < settled:
            report.orphans.append(path)
    report.missing = sorted(
        (sop, path) for path, (sop, old) in recorded.items() if old and not path.exists()
    )
    return report


def fix(report: StorageReport, storage: Path) -> int:
    """Remove the orphans of ``report``; returns how many went. Instances whose file is missing
    are left to the operator (``dicom-repo delete instance``), as their metadata may be all
    that is left of them."""
    return remove_after_commit([str(p) for p in report.orphans], storage)
