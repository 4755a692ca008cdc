"""Which database errors a retry resolves, and running a transaction again with backoff.

Concurrent writers on PostgreSQL can fail with a serialization failure (SQLSTATE 40001), a
deadlock (40P01) or a unique violation on a key another transaction inserted meanwhile (23505);
SQLite reports "database is locked/busy" when its busy timeout runs out. None of these is the
caller's fault, and all of them go away when the whole transaction is run again.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import exc

from .errors import DatabaseError, RepositoryError, TransactionConflictError

log = logging.getLogger("repository.retry")

T = TypeVar("T")

RETRYABLE_SQLSTATES = {
    "40001": "serialization failure",
    "40P01": "deadlock detected",
    "23505": "unique violation",
}
SQLITE_BUSY, SQLITE_LOCKED = 5, 6

DEFAULT_ATTEMPTS = 10
BASE_DELAY = 0.01
MAX_DELAY = 1.0


def conflict_reason(error: BaseException) -> str | None:
    """Why ``error`` is a transient conflict between writers, or None if it is not one."""
    orig = error.orig if isinstance(error, exc.DBAPIError) else error
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


def translate(error: exc.DBAPIError, what: str = "database error") -> RepositoryError:
    """Our exception for a driver error: TransactionConflictError if a retry would resolve it."""
    reason = conflict_reason(error)
    detail = str(error.orig).strip()
    if reason is not None:
        return TransactionConflictError(
            f"the transaction conflicted with a concurrent writer and was rolled back: {reason}: "
            f"{detail}; run it again (Store.run_in_transaction retries automatically)"
        )
    return DatabaseError(f"{what}: {detail}")


def backoff_delay(attempt: int) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): exponential, jittered."""
    ceiling = min(MAX_DELAY, BASE_DELAY * 2 ** (attempt - 1))
    return random.uniform(ceiling / 2, ceiling)


def run_with_retries(fn: Callable[[], T], *, attempts: int = DEFAULT_ATTEMPTS) -> T:
    """Call ``fn`` (which must run one whole transaction) until it does not conflict.

    ``fn`` signals a conflict by raising :class:`TransactionConflictError`; after ``attempts``
    tries the last one is raised, saying how many attempts were made.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except TransactionConflictError as error:
            if attempt == attempts:
                raise TransactionConflictError(
                    f"gave up after {attempts} attempts: {error}"
                ) from error
            delay = backoff_delay(attempt)
            log.info("retrying a conflicting transaction in %.3fs (attempt %d): %s",
                     delay, attempt + 1, error)  # fmt: skip
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
