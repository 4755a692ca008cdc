"""The unit of work: driver errors become ours, and lost connections and locks are retried."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import event, insert, text
from sqlalchemy.engine import make_url

import repository
from repository import (
    EVENTS,
    ConnectionLostError,
    DatabaseError,
    Store,
    TransactionConflictError,
)
from repository.db_errors import is_unique_violation, translate_errors
from repository.schema import study_table


def instance(study: str, series: str, sop: str) -> dict[str, Any]:
    return {"StudyInstanceUID": study, "SeriesInstanceUID": series, "SOPInstanceUID": sop,
            "SOPClassUID": "1.2.840.10008.5.1.4.1.1.2", "Modality": "CT"}  # fmt: skip


def stored_studies(store: Store) -> list[str]:
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT study_instance_uid FROM study ORDER BY id")).all()
    return [uid for (uid,) in rows]


def dsn(url: str) -> str:
    """libpq DSN (with the test schema's search path) for a second, independent connection."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


# ---------------------------------------------------------------------------- error mapping


def test_a_duplicate_key_is_a_conflict_on_postgresql_and_a_database_error_on_sqlite(
    store: Store,
) -> None:
    store.add_study({"StudyInstanceUID": "1.2.3"})
    with (
        store.engine.begin() as conn,
        pytest.raises(DatabaseError) as caught,
        translate_errors("insert failed"),
    ):
        conn.execute(insert(study_table).values(study_instance_uid="1.2.3", metadata={}))
    assert not isinstance(caught.value.__cause__, repository.RepositoryError)
    if store.dialect == "postgresql":  # a unique key taken meanwhile: a retry resolves it
        assert isinstance(caught.value, TransactionConflictError)
        assert is_unique_violation(caught.value)
        assert "unique violation (23505)" in str(caught.value)
    else:  # SQLite writers are serialized: a duplicate is not a race, so not retried
        assert type(caught.value) is DatabaseError
        assert "insert failed" in str(caught.value) and "UNIQUE" in str(caught.value)
    assert stored_studies(store) == ["1.2.3"]


def test_any_driver_error_in_a_store_call_reaches_the_caller_as_ours(store: Store) -> None:
    with store.engine.begin() as conn:
        conn.execute(text("DROP TABLE change"))  # a database this version cannot write to
    with pytest.raises(DatabaseError) as caught:
        store.add_study({"StudyInstanceUID": "1.2.3"})
    assert "change" in str(caught.value)
    with pytest.raises(DatabaseError):
        store.changes()
    assert stored_studies(store) == []  # the study insert was rolled back with the change


@pytest.mark.postgresql
def test_psycopg_errors_raised_without_sqlalchemy_are_ours_too(pg_empty_url: str) -> None:
    conn = psycopg.connect(dsn(pg_empty_url))  # as the change feed's LISTEN connection is
    with (
        pytest.raises(DatabaseError, match=r"listing failed: .*no_such_table") as caught,
        translate_errors("listing failed"),
    ):
        conn.execute("SELECT * FROM no_such_table")
    assert type(caught.value) is DatabaseError
    assert isinstance(caught.value.__cause__, psycopg.errors.UndefinedTable)
    conn.close()
    with pytest.raises(ConnectionLostError, match="connection closed") as lost, translate_errors():
        conn.execute("SELECT 1")
    assert isinstance(lost.value.__cause__, psycopg.OperationalError)


@pytest.fixture
def locked_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A SQLite store with a short busy timeout, and a second connection that can lock it."""
    monkeypatch.setattr("repository.engine.SQLITE_BUSY_TIMEOUT_MS", 50)
    monkeypatch.setattr("repository.db_errors.MAX_DELAY", 0.5)  # retries span >1 s
    path = tmp_path / "locked.db"
    store = repository.connect(f"sqlite:///{path}")
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    yield store, holder
    holder.close()
    store.close()


def test_a_locked_sqlite_database_is_a_conflict_inside_a_transaction(locked_sqlite: Any) -> None:
    store, holder = locked_sqlite
    holder.execute("BEGIN IMMEDIATE")
    with (
        pytest.raises(TransactionConflictError, match=r"SQLite busy.*database is locked"),
        store.transaction(),
    ):
        store.add_study({"StudyInstanceUID": "1.2.3"})
    holder.rollback()
    assert stored_studies(store) == []


def test_a_single_add_waits_out_a_lock_by_retrying(locked_sqlite: Any) -> None:
    store, holder = locked_sqlite
    holder.execute("BEGIN IMMEDIATE")
    threading.Timer(0.3, holder.rollback).start()  # the other writer finishes
    started = time.monotonic()
    assert store.add_study({"StudyInstanceUID": "1.2.3"}) is True
    assert time.monotonic() - started >= 0.25  # it really was locked out at first
    assert stored_studies(store) == ["1.2.3"]
    assert [e.kind for e in store.changes()] == [EVENTS.STUDY_ADDED]


# ---------------------------------------------------------------------------- lost connections


@pytest.fixture
def pg_store(server_db_url: str) -> Any:
    """A store on PostgreSQL, and on Citus (where a terminated backend is the coordinator's,
    inside a transaction that wrote to a worker)."""
    with repository.connect(server_db_url) as store:
        yield store


def _terminate(store_url: str, pid: int) -> None:
    """Kill backend ``pid`` from another connection, and wait until it is gone."""
    with psycopg.connect(dsn(store_url), autocommit=True) as killer:
        assert killer.execute(
            "SELECT pg_terminate_backend(CAST(%s AS integer))", [pid]
        ).fetchone() == (True,)
        deadline = time.monotonic() + 10
        while killer.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
            assert time.monotonic() < deadline, "backend did not exit"
            time.sleep(0.02)


def _transaction_pid(store: Store) -> int:
    tx = store._uow.current
    assert tx is not None
    return int(tx.conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_connection_terminated_mid_transaction_is_retried_by_run_in_transaction(
    pg_store: Store,
) -> None:
    url = pg_store.engine.url.render_as_string(hide_password=False)
    got: list[str] = []
    pg_store.subscribe(EVENTS.STUDY_ADDED, lambda e: got.append(e.study_instance_uid))
    calls: list[int] = []

    def block() -> None:
        calls.append(1)
        pg_store.add_study({"StudyInstanceUID": "1.2.5"})
        if len(calls) == 1:
            _terminate(url, _transaction_pid(pg_store))
        pg_store.add_study({"StudyInstanceUID": "1.2.6"})

    pg_store.run_in_transaction(block)
    assert len(calls) == 2
    assert stored_studies(pg_store) == ["1.2.5", "1.2.6"]
    assert got == ["1.2.5", "1.2.6"]  # the abandoned attempt delivered nothing


def test_a_connection_terminated_inside_an_explicit_transaction_is_reported(
    pg_store: Store,
) -> None:
    url = pg_store.engine.url.render_as_string(hide_password=False)
    with pytest.raises(ConnectionLostError, match="connection was lost"), pg_store.transaction():
        pg_store.add_study({"StudyInstanceUID": "1.2.5"})
        _terminate(url, _transaction_pid(pg_store))
        pg_store.add_study({"StudyInstanceUID": "1.2.6"})
    assert stored_studies(pg_store) == []
    assert pg_store.add_study({"StudyInstanceUID": "1.2.7"}) is True  # the store recovers
    assert stored_studies(pg_store) == ["1.2.7"]


def test_a_single_add_whose_connection_is_terminated_runs_again(pg_store: Store) -> None:
    url = pg_store.engine.url.render_as_string(hide_password=False)
    killed: list[int] = []

    @event.listens_for(pg_store.engine, "before_cursor_execute")
    def kill_once(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("INSERT INTO instance") and not killed:
            pid = conn.connection.driver_connection.info.backend_pid
            killed.append(pid)
            _terminate(url, pid)

    result = pg_store.add_instances([instance("1.2.3", "1.2.3.1", "1.2.3.1.1")])
    assert killed and result.added == 1
    assert [e.kind for e in pg_store.changes()] == [EVENTS.STUDY_ADDED, EVENTS.INSTANCES_ADDED]
