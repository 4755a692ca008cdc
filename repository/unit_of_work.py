"""The unit of work: connection, transaction, retry, driver-error mapping, event publication.

A :class:`UnitOfWork` (one per store) owns the connection of the current thread's transaction.
Writes run in it under a savepoint (so a failed write inside a caller's transaction can be
caught and the transaction goes on); the changes they make are appended to the change log last,
just before commit, and published (handed to the feed) only after the commit returned; a
rollback discards them.

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

import contextlib
import logging
import random
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy import Connection, Engine, RootTransaction, exc

from . import changelog
from .config import reconnect_seconds
from .errors import (
    ConnectionLostError,
    DatabaseError,
    RepositoryError,
    ServerReadOnlyError,
    TransactionConflictError,
)
from .events import PendingChange
from .replicas import SYNCHRONOUS_COMMIT, ReadRouter
from .validation import check_attempts, check_callable

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
    operational = _psycopg_class("OperationalError")
    if operational is not None and isinstance(orig, operational):
        text = str(orig).lower()
        if "connection" in text and any(w in text for w in UNREACHABLE_SERVER):
            return "connection closed or server unreachable"
    return None


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


# --------------------------------------------------------------------------- unit of work


@dataclass
class Transaction:
    """One open transaction: its connection and the changes it will append to the change log."""

    conn: Connection
    changes: list[PendingChange] = field(default_factory=list)


class UnitOfWork:
    """Transactions of one store: one per thread, retried, published after commit.

    ``publish`` is called (in the committing thread) after each commit that recorded changes.
    """

    def __init__(
        self, engine: Engine, publish: Callable[[], None], router: ReadRouter | None = None
    ) -> None:
        self.engine = engine
        self.router = router or ReadRouter(engine, ())
        """Where reads outside a transaction go (a standby, else the primary ``engine``)."""
        self._publish = publish
        self._local = threading.local()
        self._channel: str | None = None
        self.retries = 0
        """How many times a transaction was run again (conflict or lost connection)."""

    def _count_retry(self) -> None:
        self.retries += 1  # a statistic: an unlocked += losing a count to a race is harmless

    @property
    def current(self) -> Transaction | None:
        """This thread's open transaction, if any."""
        tx: Transaction | None = getattr(self._local, "tx", None)
        return tx

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Open a transaction (or join this thread's); commit it, then publish its changes."""
        joined = self.current
        if joined is not None:
            yield joined
            return
        with translate_errors("cannot connect to the database"):
            conn = self.engine.connect().execution_options(dicom_repo_write=True)
        tx = Transaction(conn)
        self._local.tx = tx
        try:
            with translate_errors("cannot begin a transaction"):
                trans = conn.begin()
                if self.router.routes:
                    conn.exec_driver_sql(SYNCHRONOUS_COMMIT)
            try:
                with translate_errors():
                    yield tx
                    self._record(tx)  # last, so the change-log lock is held only until commit
            except BaseException as error:
                _rollback(trans)
                if isinstance(error, ServerReadOnlyError):
                    self._forget_connections(conn)
                raise
            with translate_errors("commit failed"):
                trans.commit()
            self.router.note_write(conn)
        finally:
            self._local.tx = None
            with contextlib.suppress(*driver_errors()):  # a lost connection cannot be closed
                conn.close()
        if tx.changes:
            self._publish()

    def _forget_connections(self, conn: Connection) -> None:
        """Drop ``conn`` and the pool's other connections: they lead to a server that only
        reads now (a demoted primary); the next transaction connects anew."""
        with contextlib.suppress(*driver_errors()):
            conn.invalidate()
        self.engine.dispose(close=False)

    def run(self, fn: Callable[[], T], *, attempts: int = DEFAULT_ATTEMPTS) -> T:
        """Run ``fn()`` in one transaction, again if it conflicts or loses its connection.

        Inside this thread's open transaction ``fn`` just joins it (no retry).
        """
        check_callable(fn, "fn")
        check_attempts(attempts)
        if self.current is not None:
            return fn()

        def attempt() -> T:
            with self.transaction():
                return fn()

        return run_with_retries(attempt, attempts=attempts, on_retry=self._count_retry)

    def write(self, work: Callable[[Transaction], T]) -> T:
        """Run ``work`` under a savepoint of the current transaction, or in a new one (retried).

        If ``work`` fails, what it did, changes included, is rolled back to the savepoint.
        """
        if self.current is None:
            return run_with_retries(lambda: self._write(work), on_retry=self._count_retry)
        return self._write(work)

    def _write(self, work: Callable[[Transaction], T]) -> T:
        joined = self.current is not None
        with self.transaction() as tx:
            if not joined:  # a failure rolls the whole transaction back: no savepoint needed
                return work(tx)
            mark = len(tx.changes)
            try:
                with translate_errors(), tx.conn.begin_nested():
                    return work(tx)
            except BaseException:
                del tx.changes[mark:]
                raise

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection to read with: this thread's transaction's (read your own writes), else
        one of the router's (a standby's, or the primary's)."""
        tx = self.current
        with translate_errors("query failed"):
            if tx is not None:
                yield tx.conn
                return
            with self.router.connect() as conn:
                yield conn

    def channel(self, tx: Transaction) -> str | None:
        """The NOTIFY channel (and append-lock key source) of the schema ``tx`` writes to."""
        if self._channel is None and tx.conn.dialect.name == "postgresql":
            self._channel = changelog.current_channel(tx.conn)
        return self._channel

    def _record(self, tx: Transaction) -> None:
        if tx.changes:
            changelog.record_changes(tx.conn, tx.changes, self.channel(tx))


def _rollback(trans: RootTransaction) -> None:
    # A connection that is gone cannot roll back; the server already discarded the work.
    with contextlib.suppress(*driver_errors()):
        trans.rollback()
