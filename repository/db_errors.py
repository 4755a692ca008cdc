"""Driver errors mapped to ours, in one place, and running a transaction again when it is
worth it.

Driver exceptions are translated here and nowhere else: :func:`translate_errors` maps any
SQLAlchemy, psycopg or sqlite3 error to the hierarchy in :mod:`repository.errors`. psycopg is not
imported here: SQLAlchemy loads it with a PostgreSQL engine, and before that none of its errors
can exist, so its classes are looked up in ``sys.modules`` (a SQLite user never loads it).

Concurrent writers on PostgreSQL can fail with a serialization failure (SQLSTATE 40001), a
deadlock (40P01) or a unique violation on a key another transaction inserted meanwhile (23505);
SQLite reports "database is locked/busy" when its busy timeout runs out. None of these is the
caller's fault, and all of them go away when the whole transaction is run again: they become
:class:`TransactionConflictError`. A lost connection (a restarted server, a terminated backend)
becomes :class:`ConnectionLostError`. A transaction the unit of work started itself is run
again, with backoff, on either; one the caller opened cannot be replayed from here.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import exc

from .config import reconnect_seconds
from .errors import (
    ConnectionLostError,
    DatabaseError,
    RepositoryError,
    ServerReadOnlyError,
    TransactionConflictError,
)

log = logging.getLogger("repository.unit_of_work")

T = TypeVar("T")

RETRYABLE_SQLSTATES = {
    "40001": "serialization failure (on a hot standby: a recovery conflict)",
    "40P01": "deadlock detected",
    "23505": "unique violation",
    "23503": "foreign key violation (a row deleted by a concurrent writer)",
}
LOST_CONNECTION_SQLSTATES = {
    "57P01": "terminated by an administrator",
    "57P02": "server crash",
    "57P03": "server cannot accept connections now",
}
"""SQLSTATEs (besides class 08, connection exceptions) of a connection the server dropped."""
READ_ONLY_SQLSTATE = "25006"
"""read_only_sql_transaction: a write reached a hot standby (or a demoted primary)."""
UNREACHABLE_SERVER = ("refused", "read-only", "writable", "hot standby", "starting up",
                      "shutting down", "recovery mode", "timeout expired", "could not connect",
                      "closed", "terminat", "lost")  # fmt: skip
"""Words of libpq's messages for a server that is down, restarting or not (yet) the primary:
connecting again (a failover, a restart) may succeed."""
CITUS_WORKER_LOST = ("58030", "XX000")
"""SQLSTATEs a Citus coordinator reports a lost connection to a worker with (io_error: "failed
to COPY to shard N on host:port"; internal_error: libpq's own message, "while executing command
on host:port"): the worker crashed or restarted, and a new transaction reconnects to it."""
SQLITE_BUSY, SQLITE_LOCKED = 5, 6

_ALWAYS_DRIVER_ERRORS: tuple[type[BaseException], ...] = (exc.SQLAlchemyError, sqlite3.Error)
RETRYABLE_ERRORS = (TransactionConflictError, ConnectionLostError)
"""Our exceptions after which running the whole transaction again may succeed."""

DEFAULT_ATTEMPTS = 10
BASE_DELAY = 0.01
MAX_DELAY = 1.0

# --------------------------------------------------------------------------- error mapping


def _psycopg_class(name: str) -> type[BaseException] | None:
    """psycopg's exception class ``name``, or None while psycopg is not loaded."""
    module = sys.modules.get("psycopg")
    found = getattr(module, name, None)
    return found if isinstance(found, type) and issubclass(found, BaseException) else None


def driver_errors() -> tuple[type[BaseException], ...]:
    """What :func:`translate_errors` turns into our exceptions: SQLAlchemy's and sqlite3's
    errors, and psycopg's once it is loaded."""
    psycopg_error = _psycopg_class("Error")
    if psycopg_error is None:
        return _ALWAYS_DRIVER_ERRORS
    return (*_ALWAYS_DRIVER_ERRORS, psycopg_error)


def _driver_error(error: BaseException) -> BaseException:
    orig = error.orig if isinstance(error, exc.DBAPIError) else None
    return orig if isinstance(orig, BaseException) else error


def conflict_reason(error: BaseException) -> str | None:
    """Why ``error`` is a transient conflict between writers, or None if it is not one."""
    orig = _driver_error(error)
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate in RETRYABLE_SQLSTATES:
        return f"{RETRYABLE_SQLSTATES[sqlstate]} ({sqlstate})"
    if isinstance(orig, sqlite3.OperationalError):
        code = getattr(orig, "sqlite_errorcode", None)
        text = str(orig).lower()
        if (isinstance(code, int) and code & 0xFF in (SQLITE_BUSY, SQLITE_LOCKED)) or (
            "database is locked" in text or "database is busy" in text
        ):
            return f"SQLite busy ({orig})"
    return None


def lost_connection_reason(error: BaseException) -> str | None:
    """Why ``error`` means the database connection is gone, or None if it does not."""
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return "connection invalidated"
    orig = _driver_error(error)
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate in LOST_CONNECTION_SQLSTATES:
        return f"{LOST_CONNECTION_SQLSTATES[sqlstate]} ({sqlstate})"
    if isinstance(sqlstate, str) and sqlstate.startswith("08"):
        return f"connection exception ({sqlstate})"
    if sqlstate in CITUS_WORKER_LOST and _worker_lost(str(orig).lower()):
        return f"lost the connection to a Citus worker ({sqlstate})"
    operational = _psycopg_class("OperationalError")
    if operational is not None and isinstance(orig, operational):
        text = str(orig).lower()
        if "connection" in text and any(w in text for w in UNREACHABLE_SERVER):
            return "connection closed or server unreachable"
    return None


def _worker_lost(text: str) -> bool:
    """True if a coordinator's error ``text`` is about a worker's connection gone."""
    if text.startswith("failed to copy to shard"):
        return True
    return "while executing command on" in text and any(
        word in text for word in (*UNREACHABLE_SERVER, "eof detected", "could not receive")
    )


def is_read_only_server(error: BaseException) -> bool:
    """True if ``error`` is a write refused because the server is a standby (SQLSTATE 25006)."""
    return getattr(_driver_error(error), "sqlstate", None) == READ_ONLY_SQLSTATE


def is_unique_violation(error: BaseException) -> bool:
    """True if ``error`` (one of ours, or a driver error) comes from a unique violation."""
    seen: BaseException | None = error
    while seen is not None:
        if getattr(_driver_error(seen), "sqlstate", None) == "23505":
            return True
        seen = seen.__cause__
    return False


def translate(error: BaseException, what: str = "database error") -> RepositoryError:
    """Our exception for a driver error (see the module docstring for the mapping)."""
    detail = str(_driver_error(error)).strip() or type(error).__name__
    if is_read_only_server(error):
        return ServerReadOnlyError(
            f"the database server is read-only (a hot standby, or a primary demoted by a "
            f"failover): {detail}; writes need the primary (a multi-host URL with "
            f"target_session_attrs=read-write finds it after a failover)"
        )
    reason = conflict_reason(error)
    if reason is not None:
        return TransactionConflictError(
            f"the transaction conflicted with a concurrent writer and was rolled back: {reason}: "
            f"{detail}; run it again (Store.run_in_transaction retries automatically)"
        )
    reason = lost_connection_reason(error)
    if reason is not None:
        return ConnectionLostError(
            f"the database connection was lost ({reason}) and the transaction abandoned: "
            f"{detail}; run it again (Store.run_in_transaction retries automatically)"
        )
    return DatabaseError(f"{what}: {detail}")


@contextmanager
def translate_errors(what: str = "database error") -> Iterator[None]:
    """Raise our exception (:func:`translate`) for any driver error raised in the block."""
    try:
        yield
    except driver_errors() as error:
        raise translate(error, what) from error


# --------------------------------------------------------------------------- retry


def backoff_delay(attempt: int) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): exponential, jittered."""
    ceiling = min(MAX_DELAY, BASE_DELAY * 2 ** (attempt - 1))
    return random.uniform(ceiling / 2, ceiling)


def run_with_retries(
    fn: Callable[[], T],
    *,
    attempts: int = DEFAULT_ATTEMPTS,
    on_retry: Callable[[], object] | None = None,
) -> T:
    """Call ``fn`` (which must run one whole transaction) until it succeeds.

    ``fn`` is run again after :data:`RETRYABLE_ERRORS` (calling ``on_retry`` first); after
    ``attempts`` tries the last one is raised (same type), saying how many attempts were made.
    A lost connection is retried for at least ``$DICOM_REPO_RECONNECT_SECONDS`` (0: just the
    attempts; set it to the time a failover takes, e.g. Patroni's ``ttl``).
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    window, started, attempt = reconnect_seconds(), time.monotonic(), 0
    while True:
        attempt += 1
        try:
            return fn()
        except RETRYABLE_ERRORS as error:
            waiting = (isinstance(error, ConnectionLostError)
                       and time.monotonic() - started < window)  # fmt: skip
            if attempt >= attempts and not waiting:
                raise type(error)(f"gave up after {attempt} attempts: {error}") from error
            delay = backoff_delay(attempt)
            log.info("retrying a failed transaction in %.3fs (attempt %d): %s",
                     delay, attempt + 1, error)  # fmt: skip
            if on_retry is not None:
                on_retry()
            time.sleep(delay)
