"""The unit of work: driver errors become ours, and lost connections and locks are retried."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from concurrent_workers import TIMEOUT, wait_until
from conftest import migrated, postgres_schema_url
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


# ---------------------------------------------------------------------------- Citus: lost commit

ON_WORKERS = "SELECT sum(result::int) FROM run_command_on_workers('{sql}')"
PREPARED = ON_WORKERS.format(sql="SELECT count(*) FROM pg_prepared_xacts")


class HeldCommits:
    """The coordinator of a distributed schema whose commits can be held at their NOTIFY: a
    transaction that notified waits for a synchronous standby that never comes, holding the
    notify lock. Citus's own recovery of prepared transactions is off meanwhile, so that only
    the store's can clear them."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.admin = psycopg.connect(dsn(url), autocommit=True)
        self.holder = psycopg.connect(dsn(url))
        self.configure(**{"citus.recover_2pc_interval": "-1"})

    def configure(self, **settings: str) -> None:
        """ALTER SYSTEM SET each setting ('' resets it), then reload."""
        for name, value in settings.items():
            reset = f"ALTER SYSTEM RESET {name}"
            self.admin.execute(reset if value == "" else f"ALTER SYSTEM SET {name} = '{value}'")
        self.admin.execute("SELECT pg_reload_conf()")
        time.sleep(1)  # the checkpointer and the other backends read it again meanwhile

    def hold(self) -> None:
        self.configure(synchronous_standby_names="nobody")
        self.holder.execute("CREATE TEMP TABLE dicom_repo_test_hold (x int)")  # WAL to wait on
        self.holder.execute("NOTIFY dicom_repo_test_hold")
        threading.Thread(target=self.holder.commit, daemon=True).start()

    def release(self) -> None:
        self.configure(synchronous_standby_names="")

    def close(self) -> None:
        self.configure(synchronous_standby_names="", **{"citus.recover_2pc_interval": ""})
        self.holder.close()
        self.admin.close()


@pytest.fixture
def held_commits() -> Iterator[HeldCommits]:
    schema = postgres_schema_url(citus=True)
    held = HeldCommits(migrated(next(schema), distributed=True))
    try:
        yield held
    finally:
        held.close()
        schema.close()  # drops it


def _activity(conn: Any, app: str) -> tuple[Any, ...] | None:
    return conn.execute("SELECT pid, wait_event_type, query FROM pg_stat_activity "
                        "WHERE application_name = %s", [app]).fetchone()  # fmt: skip


@pytest.mark.citus
def test_a_commit_lost_after_the_workers_prepared_is_retried_without_waiting_for_recovery(
    held_commits: HeldCommits,
) -> None:
    """The coordinator's backend dies in COMMIT after both workers prepared: the retry rolls
    the orphaned prepared transactions back at once (they hold the rows it writes again)."""
    url = held_commits.url
    app = f"lost-commit-{uuid.uuid4().hex[:8]}"
    store = repository.connect(str(make_url(url).update_query_dict({"application_name": app})))
    batch = [instance(f"1.2.{n}", f"1.2.{n}.1", f"1.2.{n}.1.1") for n in range(1, 9)]
    outcome: list[Any] = []
    held_commits.hold()
    adder = threading.Thread(target=lambda: outcome.append(store.add_instances(batch)))
    adder.start()
    with psycopg.connect(dsn(url), autocommit=True) as watcher:

        def orphaned() -> int:
            return int(watcher.execute(PREPARED).fetchone()[0])  # type: ignore[index]

        def committing() -> bool:
            row = _activity(watcher, app)
            return row is not None and row[1:] == ("Lock", "COMMIT") and orphaned() >= 2

        wait_until(committing, "the store's COMMIT to wait after the workers prepared")
        watcher.execute(
            "SELECT pg_terminate_backend(CAST(%s AS integer))", [_activity(watcher, app)[0]]
        )  # type: ignore[index]
        wait_until(lambda: orphaned() == 0, "the retry to roll back the prepared transactions", 20)
        held_commits.release()
        adder.join(TIMEOUT)
        assert orphaned() == 0
    assert outcome and outcome[0].added == len(batch)
    kinds = [e.kind for e in store.changes()]
    assert kinds.count(EVENTS.STUDY_ADDED) == len(batch) == kinds.count(EVENTS.INSTANCES_ADDED)
    assert store.retries == 1
    store.close()
