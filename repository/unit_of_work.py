"""The unit of work: connection, transaction, savepoints, event publication.

A :class:`UnitOfWork` (one per store) owns the connection of the current thread's transaction.
Writes run in it under a savepoint (so a failed write inside a caller's transaction can be
caught and the transaction goes on); the changes they make are appended to the change log last,
just before commit, and published (handed to the feed) only after the commit returned; a
rollback discards them.

Driver errors are mapped to ours, and transactions retried, by :mod:`repository.db_errors`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy import Connection, Engine, RootTransaction

from . import changelog, citus
from .db_errors import (
    DEFAULT_ATTEMPTS,
    driver_errors,
    run_with_retries,
    translate_errors,
)
from .errors import (
    ConnectionLostError,
    ServerReadOnlyError,
)
from .events import PendingChange
from .replicas import SYNCHRONOUS_COMMIT, ReadRouter
from .validation import check_attempts, check_callable

log = logging.getLogger("repository.unit_of_work")

T = TypeVar("T")

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
        self._lost_commit = False  # the next transaction first recovers prepared ones (Citus)

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
        if self._lost_commit:
            self._lost_commit = False
            citus.recover_prepared(conn)
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
            try:
                with translate_errors("commit failed"):
                    trans.commit()
            except ConnectionLostError:
                self._lost_commit = True
                raise
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
