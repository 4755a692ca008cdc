"""The whole-request timeout (``dicom-repo serve --request-timeout``): no request runs for ever.

A request's time runs from its arrival to the end of its answer: waiting for a database slot,
receiving its body, its database work and sending its answer all count. When it is up, unless
the request has begun to commit a write (then it is left to finish: a write is never answered
503 after it was committed):

- the request is answered ``503 {"error": ...}`` with ``Retry-After`` and ``Connection:
  close``, at once, even if its thread is still busy; if its answer had already started (a
  streamed metadata answer, a file to a client that reads slowly), the answer is cut off and
  the connection closed, so the client sees it incomplete;
- its database work is cancelled: its statements running are cancelled (PostgreSQL: a cancel
  request; SQLite: ``interrupt()``, which cannot end a wait for another writer's lock: that
  wait ends within the busy timeout), and it can no longer commit: a commit it attempts raises
  :class:`RequestTimedOut` and closes its connection, so what it wrote is rolled back;
- the request is cancelled; its database slot is given back once its thread is done;
- one warning is logged, no traceback.

``/changes/stream`` is exempt: it is meant to stay open (it holds no database connection).
The body timeout (:mod:`.limits`) stays: it ends a body that sends nothing long before this.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

import anyio
from anyio import to_thread
from sqlalchemy import Engine, event
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import RepositoryError

log = logging.getLogger("repository.web")

UNTIMED_PATHS = frozenset({"/changes/stream"})
"""Paths whose requests have no time limit."""
CANCEL_SECONDS = 5.0
"""How long cancelling one PostgreSQL statement may take (the cancel request's own timeout)."""
_INFO_KEY = "dicom_repo_deadline"

Handler = Callable[[Request, Exception], Awaitable[Response]]


class RequestTimedOut(RepositoryError):
    """Raised when a request past its time limit tries to commit (its transaction rolls back)."""


class Deadline:
    """The database side of one request's time limit: the connections it has checked out, and
    whether it expired (then it may not commit) or began committing (then it never expires)."""

    def __init__(self) -> None:
        self.expired = False
        self.committing = False
        self._connections: set[Any] = set()
        self._lock = threading.Lock()

    def checked_out(self, dbapi_connection: Any) -> None:
        """The request took ``dbapi_connection`` from the pool."""
        with self._lock:
            self._connections.add(dbapi_connection)

    def checked_in(self, dbapi_connection: Any) -> None:
        """The request gave it back (waits while :meth:`interrupt` cancels its statement, so
        that a cancel never reaches the connection's next user)."""
        with self._lock:
            self._connections.discard(dbapi_connection)

    def commit(self, write: bool) -> None:
        """A transaction of the request commits: refused once expired; a write never expires."""
        with self._lock:
            if self.expired:
                raise RequestTimedOut("the request ran past its time limit: not committed")
            self.committing = self.committing or write

    def expire(self) -> bool:
        """Time is up: True if the request is to be ended (False: a write is committing)."""
        with self._lock:
            self.expired = not self.committing
            return self.expired

    def interrupt(self) -> None:
        """Cancel the statements running on the request's connections (blocking: run it in a
        thread)."""
        with self._lock:
            for connection in self._connections:
                _interrupt(connection)


def _interrupt(connection: Any) -> None:
    try:
        if hasattr(connection, "interrupt"):  # sqlite3
            connection.interrupt()
        elif hasattr(connection, "cancel_safe"):  # psycopg 3.2+
            connection.cancel_safe(timeout=CANCEL_SECONDS)
        else:
            connection.cancel()
    except Exception as error:  # a connection closed meanwhile: nothing left to cancel
        log.debug("cancelling a timed-out request's statement failed: %s", error)


_current: ContextVar[Deadline | None] = ContextVar("dicom_repo_deadline", default=None)
"""The deadline of the request being served (seen by its threads: anyio copies the context)."""


def watch(engine: Engine) -> None:
    """Tie ``engine``'s connections to the deadline of the request that uses them, and refuse
    the commits of requests past it."""

    def checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        deadline = _current.get()
        if deadline is not None:
            record.info[_INFO_KEY] = deadline
            deadline.checked_out(dbapi_connection)

    def checkin(dbapi_connection: Any, record: Any) -> None:
        deadline = record.info.pop(_INFO_KEY, None) if record is not None else None
        if deadline is not None:
            deadline.checked_in(dbapi_connection)

    def commit(conn: Any) -> None:
        deadline = _current.get()
        if deadline is None:
            return
        try:
            deadline.commit(bool(conn.get_execution_options().get("dicom_repo_write")))
        except RequestTimedOut:
            # SQLAlchemy does not roll back a transaction whose commit an event refused:
            # closing the connection does (the pool opens another).
            conn.invalidate()
            raise

    event.listen(engine, "checkout", checkout)
    event.listen(engine, "checkin", checkin)
    event.listen(engine, "commit", commit)


def timed_out() -> bool:
    """True while serving a request whose time is up."""
    deadline = _current.get()
    return deadline is not None and deadline.expired


def unless_timed_out(handler: Handler) -> Handler:
    """``handler``, except for a request whose time is up: its errors (statements cancelled,
    commits refused) are the timeout's doing, neither logged nor reported as outages."""

    async def handle(request: Request, exc: Exception) -> Response:
        if timed_out():
            return Response(status_code=503)  # never sent: the timeout answered already
        return await handler(request, exc)

    return handle


class _Served:
    """One timed request: its deadline, its ``send`` (which notes how far the answer got and
    sends nothing once the deadline expired) and the scope its application runs in."""

    def __init__(self, send: Send) -> None:
        self.raw = send
        self.deadline = Deadline()
        self.serving = anyio.CancelScope()
        self.started = self.complete = self.finished = False
        self.ending: list[asyncio.Task[None]] = []

    async def send(self, message: Message) -> None:
        if self.deadline.expired:
            return
        if message["type"] == "http.response.start":
            self.started = True
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            self.complete = True
        await self.raw(message)


class RequestTimeout:
    """ASGI middleware ending requests that run longer than ``seconds`` (0: never).

    A timer per request (no task: the deadline costs next to nothing until it expires)."""

    def __init__(self, app: ASGIApp, seconds: float, retry_after: int) -> None:
        self.app = app
        self.seconds = seconds
        self.retry_after = retry_after
        self.limiter = anyio.CapacityLimiter(4)  # cancels never wait for the busy thread pool

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.seconds or scope["path"] in UNTIMED_PATHS:
            await self.app(scope, receive, send)
            return
        served = _Served(send)
        loop = asyncio.get_running_loop()
        timer = loop.call_later(self.seconds, lambda: served.ending.append(
            loop.create_task(self._end(scope, served))))  # fmt: skip
        token = _current.set(served.deadline)
        try:
            with served.serving:
                try:
                    await self.app(scope, receive, served.send)
                except Exception:
                    if not served.deadline.expired:
                        raise  # else the timeout's doing, told already
        finally:
            timer.cancel()
            served.finished = True
            _current.reset(token)
            if served.ending:  # let the timeout finish its answer first
                with anyio.CancelScope(shield=True):
                    await served.ending[0]

    async def _end(self, scope: Scope, served: _Served) -> None:
        """Time is up: answer 503 or cut the answer off, cancel the database work, then the
        request (unless it finished meanwhile or began committing a write)."""
        if served.finished or not served.deadline.expire():
            return
        what = ("work after its answer cancelled" if served.complete
                else "answer cut off" if served.started else "answered 503")  # fmt: skip
        log.warning("request timed out after %g s (%s): %s %s", self.seconds, what,
                    scope["method"], scope["path"])  # fmt: skip
        if not served.started:
            await self._refuse(scope, served.raw)
        await to_thread.run_sync(served.deadline.interrupt, limiter=self.limiter)
        served.serving.cancel()

    async def _refuse(self, scope: Scope, send: Send) -> None:
        response = JSONResponse(
            {"error": f"the request took longer than this server's limit of {self.seconds:g} s "
             "(--request-timeout); try again later"},
            status_code=503,
            headers={"Retry-After": str(self.retry_after), "Connection": "close"},
        )  # fmt: skip

        async def nothing() -> Message:
            return {"type": "http.disconnect"}

        with contextlib.suppress(OSError):
            await response(scope, nothing, send)
