"""The database as a dependency that can be away: 503 with ``Retry-After``, logged once per change.

When the database cannot be reached (server stopped or restarting, connections refused or
dropped, SQLite locked past its busy timeout, no pooled connection free in time), a request is
answered ``503 {"error": ...}`` with ``Retry-After``, and the connection stays open. The first
such failure logs one warning ("database unavailable"); the first connection made or checked
out after it logs one line ("database available again"). No traceback is logged for either: an
outage is an operational state, not a bug. A statement cancelled (PostgreSQL's
``statement_timeout``, a cancel request) is a 503 too, as a busy database, not an outage. Any
other database error is a 500, logged with its traceback by :func:`.errors.server_error`.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import psycopg
from sqlalchemy import Engine, event, exc
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..db_errors import conflict_reason, lost_connection_reason
from ..errors import ConnectionLostError, DatabaseError, TransactionConflictError
from .errors import server_error

log = logging.getLogger("repository.web")

UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    exc.DBAPIError, exc.TimeoutError, DatabaseError, psycopg.Error,
)  # fmt: skip
"""The exception classes :func:`unavailable` is installed for (it decides which are outages)."""
QUERY_CANCELED = "57014"
"""PostgreSQL's SQLSTATE for a statement cancelled (``statement_timeout``, a cancel request)."""


class DatabaseState:
    """Whether this worker last found its database reachable; logs each change once."""

    def __init__(self) -> None:
        self.down = False
        self.outages = 0
        self._lock = threading.Lock()

    def failed(self, reason: str) -> None:
        """A request found the database unreachable."""
        with self._lock:
            if self.down:
                return
            self.down = True
            self.outages += 1
        log.warning("database unavailable: %s (answering 503 until it is back)", reason)

    def reached(self) -> None:
        """A connection to the database was made or handed out."""
        if not self.down:  # the common case, without the lock
            return
        with self._lock:
            if not self.down:
                return
            self.down = False
        log.warning("database available again")

    def watch(self, engine: Engine) -> None:
        """Call :meth:`reached` whenever ``engine``'s pool hands out a live connection."""

        def reached(*_args: Any) -> None:
            self.reached()

        event.listen(engine, "checkout", reached)


def outage_reason(error: BaseException) -> tuple[str, bool] | None:
    """Why ``error`` means the database is out of reach for now, and whether it is an outage
    (else the database is only busy); None if it means neither."""
    if isinstance(error, exc.TimeoutError):  # the pool's, not a statement's
        return "no database connection free in time", False
    if isinstance(error, TransactionConflictError):
        return _first_line(error), False
    if isinstance(error, ConnectionLostError):
        return _first_line(error), True
    cause = error.__cause__ if isinstance(error, DatabaseError) else error
    if not isinstance(cause, exc.DBAPIError | psycopg.Error):
        return None
    driver = cause.orig if isinstance(cause, exc.DBAPIError) and cause.orig else cause
    reason = conflict_reason(cause)
    if reason is not None:
        return f"database busy: {reason}", False
    if getattr(driver, "sqlstate", None) == QUERY_CANCELED:  # an OperationalError, no outage
        return f"database busy: statement cancelled ({_first_line(driver)})", False
    reason = lost_connection_reason(cause)
    if reason is not None:
        return f"{reason}: {_first_line(driver)}", True
    if isinstance(driver, psycopg.OperationalError | psycopg.InterfaceError):
        return _first_line(driver), True  # cannot connect, shutting down, connection reset
    return None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


def retry_after(request: Request) -> str:
    """Seconds a client should wait before trying again, as the header value."""
    return str(request.app.state.settings.retry_after)


async def unavailable(request: Request, exc_: Exception) -> Response:
    """Exception handler: a database outage is 503 + Retry-After; anything else a 500."""
    found = outage_reason(exc_)
    if found is None:
        return await server_error(request, exc_)
    reason, outage = found
    if outage:
        state: DatabaseState = request.app.state.database
        state.failed(reason)
    return JSONResponse(
        {"error": f"the database is unavailable ({reason}); try again later"},
        status_code=503,
        headers={"Retry-After": retry_after(request)},
    )
