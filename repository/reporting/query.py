"""Running one read-only SQL statement and streaming its rows.

The database enforces read-only: a ``READ ONLY`` transaction on PostgreSQL, ``PRAGMA
query_only`` on SQLite. A statement that plainly writes (or several statements) is refused
before it reaches the database, with a message saying so; one that writes in disguise (a
data-modifying CTE, ``nextval()``, a ``PRAGMA`` that sets something) is refused by the database
and reported the same way. Either way nothing is changed.

Rows are fetched in batches (a server-side cursor on PostgreSQL, SQLite's lazy cursor), so a
result of any size streams through in bounded memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlparse
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from ..db_errors import conflict_reason, lost_connection_reason, translate, translate_errors
from ..errors import QueryError, QueryRefusedError, RepositoryError

BATCH = 1000
"""Rows fetched from the database at a time."""

_READ_KINDS = ("SELECT", "UNKNOWN")  # UNKNOWN: VALUES, EXPLAIN, SHOW, PRAGMA (checked by the DB)
_OUTSIDE = frozenset({"ATTACH", "DETACH", "COPY", "VACUUM", "LOAD", "DO", "CALL"})
"""Statements that reach outside the database (files, programs, libraries) although a
read-only transaction lets them run: SQLite's ``ATTACH`` makes the file it names, PostgreSQL's
``COPY ... TO`` writes one."""
_READ_ONLY_SQLSTATE = "25006"  # PostgreSQL: read_only_sql_transaction


@dataclass(frozen=True)
class QueryResult:
    """The column names of a result and an iterator over its rows (consumed once)."""

    columns: list[str]
    rows: Iterator[Sequence[Any]]


def check_statement(sql: str) -> str:
    """The kind of the one statement in ``sql`` (``SELECT``, ``UNKNOWN``, ...).

    Raises :class:`QueryRefusedError` for several statements or a statement that writes.
    """
    statements = [s for s in sqlparse.split(sql) if s.strip().rstrip(";").strip()]
    if len(statements) != 1:
        raise QueryRefusedError(
            f"refused: expected exactly one SQL statement, got {len(statements)}; nothing was run"
        )
    parsed = sqlparse.parse(statements[0])[0]
    kind = str(parsed.get_type())  # type: ignore[no-untyped-call]
    if kind not in _READ_KINDS:
        raise QueryRefusedError(_refusal(kind))
    first = parsed.token_first(skip_cm=True)  # type: ignore[no-untyped-call]
    if first is not None and str(first.normalized).upper() in _OUTSIDE:
        raise QueryRefusedError(
            f"refused: {str(first.normalized).upper()} reaches outside the database (files, "
            "programs); only read-only statements run here, nothing was run"
        )
    return kind


def _refusal(what: str) -> str:
    return f"refused: {what} would write; only read-only statements run here, nothing was changed"


@contextmanager
def read_only_query(
    engine: Engine, sql: str, params: Mapping[str, Any] | None = None, batch: int = BATCH
) -> Iterator[QueryResult]:
    """Run one read-only statement; the rows stream while the context is open.

    Raises :class:`QueryRefusedError` if the statement would write (the database is left as it
    was) and :class:`QueryError` if the database rejects it for another reason.
    """
    kind = check_statement(sql)
    # Connecting and ending the transaction fail like any database access (unit_of_work);
    # the statement's own errors are the user's, reported by _translate as QueryError.
    with translate_errors("cannot run the query"), engine.connect() as conn:
        _begin_read_only(conn)
        try:
            if kind == "SELECT" and conn.dialect.name == "postgresql":
                # A server-side cursor: PostgreSQL sends the rows batch by batch.
                conn = conn.execution_options(yield_per=batch)
            result = _execute(conn, sql, params or {})
            if not result.returns_rows:  # e.g. SET: nothing to show
                yield QueryResult([], iter(()))
            else:
                yield QueryResult(list(result.keys()), _stream(result, batch))
        finally:
            conn.rollback()
            _end_read_only(conn)


def _begin_read_only(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA query_only = ON")
    else:
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")


def _end_read_only(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        # query_only (and anything the statement set, e.g. an ATTACH) belongs to the SQLite
        # connection, which the pool would hand to a writer next: close it instead. PostgreSQL
        # needs nothing: the rollback undoes even a SET made inside the transaction.
        conn.invalidate()


def _execute(conn: Connection, sql: str, params: Mapping[str, Any]) -> Any:
    try:
        return conn.execute(text(sql), dict(params))
    except SQLAlchemyError as error:
        raise _translate(error) from None


def _stream(result: Any, batch: int) -> Iterator[Sequence[Any]]:
    try:
        while rows := result.fetchmany(batch):
            yield from rows
    except SQLAlchemyError as error:
        raise _translate(error) from None


def _translate(error: SQLAlchemyError) -> RepositoryError:
    if conflict_reason(error) or lost_connection_reason(error):
        # Not the statement's fault: a standby's recovery conflict (40001), a deadlock, a lost
        # connection. Running it again may succeed, as with any transaction.
        return translate(error, "query failed")
    orig = getattr(error, "orig", None) or error
    detail = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    sqlstate = getattr(orig, "sqlstate", None)
    # A data-modifying WITH in a server-side cursor is rejected before the read-only check.
    writes = "readonly database" in detail or "data-modifying" in detail
    if sqlstate == _READ_ONLY_SQLSTATE or writes:
        return QueryRefusedError(f"{_refusal('the statement')} ({detail})")
    return QueryError(f"query failed: {detail}")
