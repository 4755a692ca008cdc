"""DELETE of a study, a series or an instance, answered as the cloud DICOM services answer it.

``DELETE /studies/{study}``, ``/studies/{study}/series/{series}`` and
``/studies/{study}/series/{series}/instances/{instance}`` (not part of PS3.18; Azure's DICOM
service and Google Cloud Healthcare have them) remove what the path names from every data source
in one transaction (:meth:`Store.delete_study` and the others), whose events reach every
subscriber, the SSE stream of every worker included. The answer is ``204 No Content`` with an
empty body (Azure's answer), ``404`` when nothing is stored under the path, ``400`` for a
malformed UID, ``403`` in read-only mode or when the database refuses the server's role the write,
``503`` while the database URL leads to a hot standby (as STOW-RS).
The bearer token guards it as every other route.

Files the repository owns (written by STOW-RS into the storage folder) are unlinked **after** the
commit (:func:`repository.storage.remove_after_commit`): a delete that fails leaves them all.
Files that ``dicom-repo ingest`` read in place are never touched.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .. import storage
from ..errors import DatabaseError, NotFoundError
from ..models import DeleteResult
from ..store import Store
from .errors import WebError, log, not_found, path_uids
from .routing import database_writable
from .settings import Settings

INSUFFICIENT_PRIVILEGE = "42501"
"""PostgreSQL's SQLSTATE for a statement the role is not granted."""
SQLITE_READONLY = 8
"""SQLite's primary result code for a write to a database it may only read (the low byte of
the extended codes ``SQLITE_READONLY_*``)."""


def _denied(error: BaseException) -> bool:
    """True if ``error`` (or what caused it) is the database refusing a write it is not allowed."""
    cause: BaseException | None = error
    while cause is not None:
        if getattr(cause, "sqlstate", None) == INSUFFICIENT_PRIVILEGE:
            return True
        if isinstance(cause, sqlite3.Error) and cause.sqlite_errorcode & 0xFF == SQLITE_READONLY:
            return True
        cause = cause.__cause__ or getattr(cause, "orig", None)
    return False


def _run(settings: Settings, delete: Callable[[], DeleteResult]) -> DeleteResult:
    """Commit the delete, then unlink the files of the storage folder it removed."""
    result = delete()
    removed = storage.remove_after_commit(result.files, settings.storage)
    log.info("DELETE removed %d instance(s), %d studies, %d file(s) of the storage folder",
             result.instances, len(result.studies), removed)  # fmt: skip
    return result


async def _delete(request: Request, make: Callable[[Store, list[str]], DeleteResult]) -> Response:
    settings: Settings = request.app.state.settings
    if settings.read_only:
        raise WebError(403, "this server is read-only: DELETE is refused")
    if not await database_writable(request):
        raise WebError(503, "the database server is a hot standby (read-only): DELETE needs "
                       "the primary; this server answers reads only")  # fmt: skip
    uids = path_uids(request, *(n for n in ("study", "series", "instance")
                                if n in request.path_params))  # fmt: skip
    store: Store = request.app.state.store
    try:
        await run_in_threadpool(_run, settings, lambda: make(store, uids))
    except NotFoundError as error:
        raise not_found(str(error)) from None
    except DatabaseError as error:
        if _denied(error):
            raise WebError(403, f"the database refuses this server the delete: {error}") from None
        raise
    return Response(status_code=204)


async def delete_study(request: Request) -> Response:
    """``DELETE /studies/{study}``: the study with all its series and instances."""
    return await _delete(request, lambda store, uids: store.delete_study(uids[0]))


async def delete_series(request: Request) -> Response:
    """``DELETE /studies/{study}/series/{series}``: the series with its instances."""
    return await _delete(request, lambda store, uids: store.delete_series(uids[0], uids[1]))


async def delete_instance(request: Request) -> Response:
    """``DELETE /studies/{study}/series/{series}/instances/{instance}``: one instance."""
    return await _delete(
        request, lambda store, uids: store.delete_instances(uids[0], uids[1], [uids[2]])
    )
