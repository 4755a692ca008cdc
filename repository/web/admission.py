"""Bounded database work per worker: a request waits for a slot before it may touch the database.

A worker has ``db_slots`` slots, as many as its connection pool keeps open, and a thread pool
larger than that. A request for the database (every ``GET``/``HEAD``/``DELETE`` under
``/dicom-web`` and ``/changes``; the commit of a STOW-RS) takes a slot first, waiting without
a thread, and keeps it until its answer is sent, streamed answers included. So a request that
has a slot always finds a free connection and a free thread: no thread ever waits for a
connection, and a streamed answer always gets a thread for its next part. (Before, 55 streamed
metadata answers held every connection while the waiting requests held every thread, and the
worker stalled until the pool's timeout answered 500 to all.)

A request that waits longer than ``queue_timeout`` seconds, or arrives when ``max_queue``
requests are already waiting, is answered ``503`` with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import RepositoryError

GATED_PREFIXES = ("/dicom-web/", "/changes")
"""Paths whose requests read the database (``/changes/stream`` is not gated: it holds no
connection while it waits for changes)."""
UNGATED_PATHS = frozenset({"/changes/stream"})


class Busy(RepositoryError):
    """Raised when no database slot came free in time (answered 503 with Retry-After)."""


class Slots:
    """The database slots of one worker, and the requests waiting for one."""

    def __init__(self, slots: int, max_queue: int, queue_timeout: float) -> None:
        self.total = slots
        self.max_queue = max_queue
        self.queue_timeout = queue_timeout
        self.waiting = 0
        self.in_use = 0
        self.refused = 0
        self._semaphore: asyncio.Semaphore | None = None

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot for the block (waits for it; :class:`Busy` after the timeout)."""
        if self._semaphore is None:  # made in the event loop that uses it
            self._semaphore = asyncio.Semaphore(self.total)
        semaphore = self._semaphore
        if semaphore.locked() and self.waiting >= self.max_queue:
            self.refused += 1
            raise Busy(f"{self.waiting} requests are already waiting for the database")
        self.waiting += 1
        try:
            await asyncio.wait_for(semaphore.acquire(), self.queue_timeout)
        except TimeoutError:
            self.refused += 1
            raise Busy(f"no database slot came free in {self.queue_timeout:g} s") from None
        finally:
            self.waiting -= 1
        self.in_use += 1
        try:
            yield
        finally:
            self.in_use -= 1
            semaphore.release()


def slots_of(request: Request) -> Slots:
    """The worker's :class:`Slots`."""
    slots: Slots = request.app.state.slots
    return slots


class Admission:
    """ASGI middleware: a database slot for each gated request, for as long as it runs."""

    def __init__(self, app: ASGIApp, slots: Slots, retry_after: int) -> None:
        self.app = app
        self.slots = slots
        self.retry_after = retry_after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope["method"] not in ("GET", "HEAD", "DELETE")
            or not path.startswith(GATED_PREFIXES)
            or path in UNGATED_PATHS
        ):
            await self.app(scope, receive, send)
            return
        try:
            async with self.slots.slot():
                await self.app(scope, receive, send)
        except Busy as busy:
            response = JSONResponse(
                {"error": f"server busy: {busy}; try again later"},
                status_code=503,
                headers={"Retry-After": str(self.retry_after)},
            )
            await response(scope, receive, send)
