"""Which database server a request reads from, and whether the primary can take writes.

A server started with read replicas (``serve --read-db URL``) reads from a usable standby
(:mod:`repository.replicas`); every write (STOW-RS, the kept DICOM JSON) goes to the primary.
A server whose ``--db`` is itself a hot standby serves reads, refuses STOW-RS with 503 and does
not try to keep DICOM JSON there; it checks again every :data:`WRITABLE_CHECK_SECONDS` (a
standby may be promoted).
"""

from __future__ import annotations

import time

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from ..errors import RepositoryError
from ..store import Store

WRITABLE_CHECK_SECONDS = 5.0


async def read_engine(request: Request) -> Engine:
    """The engine this request reads with (a standby's, else the primary's)."""
    store: Store = request.app.state.store
    if not store.router.routes:
        return store.engine
    return await run_in_threadpool(store.router.engine)


async def database_writable(request: Request) -> bool:
    """False while the primary URL leads to a hot standby (checked every few seconds)."""
    state = request.app.state
    checked, writable = getattr(state, "writable_checked", (float("-inf"), True))
    if time.monotonic() - checked >= WRITABLE_CHECK_SECONDS:
        try:
            writable = not await run_in_threadpool(state.store.router.primary_is_read_only)
        except RepositoryError:
            writable = True  # unreachable: let the write fail and say so
        state.writable_checked = (time.monotonic(), writable)
    return bool(writable)
