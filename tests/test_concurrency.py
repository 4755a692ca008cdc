"""Concurrent writers: several processes writing overlapping studies, and retried conflicts."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import uuid
from typing import Any

import psycopg
import pytest
from concurrent_workers import (
    TIMEOUT,
    add_in_open_transaction,
    corpus,
    ingest_share,
    instance,
    wait_until,
)
from sqlalchemy import event, text
from sqlalchemy.engine import make_url

import repository
from repository import EVENTS, Store, TransactionConflictError, citus
from repository.db_errors import conflict_reason


def count(store: Store, table: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(text(f'SELECT count(*) FROM "{table}"')).scalar_one())


def test_four_processes_ingesting_overlapping_halves_store_everything_exactly_once(
    db_url: str,
) -> None:
    items = corpus(studies=3, series=4, instances=25)  # 300 instances in 12 series
    n = len(items)
    q = n // 4
    shares = [items[: n // 2], items[n // 2 :], items[q : 3 * q], items[:q] + items[3 * q :]]
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(shares))
    results = ctx.Queue()
    procs = [ctx.Process(target=ingest_share, args=(db_url, share, seed, barrier, results))
             for seed, share in enumerate(shares)]  # fmt: skip
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=TIMEOUT * 2) for _ in procs]
    for proc in procs:
        proc.join(TIMEOUT)
    errors = [error for _, _, error in outcomes if error]
    assert not errors, "\n".join(errors)
    assert sum(added for _, added, _ in outcomes) == n  # each instance added by exactly one

    with repository.connect(db_url) as store:
        assert count(store, "study") == 3
        assert count(store, "series_list") == 3
        assert count(store, "series") == 12
        assert count(store, "instance") == n
        changes = store.changes(limit=10_000)
        assert [e.seq for e in changes] == sorted({e.seq for e in changes})
        assert sum(e.kind is EVENTS.STUDY_ADDED for e in changes) == 3
        assert sum(e.payload["count"] for e in changes if e.kind is EVENTS.INSTANCES_ADDED) == n
        series = store.get_series("1.2.9.2", "1.2.9.2.3")
        assert series is not None and len(series.instances) == 25


# ---------------------------------------------------------------------------- retries


def _conflict(dialect: str) -> Exception:
    if dialect == "postgresql":
        return psycopg.errors.DeadlockDetected("deadlock detected (injected)")
    return sqlite3.OperationalError("database is locked")


def _fail_first_instance_insert(store: Store, times: int) -> list[int]:
    """Make the next ``times`` INSERTs into ``instance`` fail with a real driver conflict."""
    failures: list[int] = []

    @event.listens_for(store.engine, "before_cursor_execute")
    def inject(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("INSERT INTO instance") and len(failures) < times:
            failures.append(1)
            raise _conflict(store.dialect)

    return failures


def test_a_conflicting_add_is_retried_in_a_new_transaction(store: Store) -> None:
    got: list[str] = []
    store.subscribe(EVENTS.INSTANCES_ADDED, lambda e: got.append(e.series_instance_uid or ""))
    failures = _fail_first_instance_insert(store, times=2)
    result = store.add_instances([instance("1.2.3", "1.2.3.1", "1.2.3.1.1")])
    assert len(failures) == 2
    assert result.added == 1
    assert count(store, "instance") == 1
    assert [e.kind.value for e in store.changes()] == ["STUDY_ADDED", "INSTANCES_ADDED"]
    assert got == ["1.2.3.1"]  # the failed attempts delivered nothing


def test_retries_are_bounded_and_the_error_says_what_happened(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("repository.db_errors.MAX_DELAY", 0.01)
    _fail_first_instance_insert(store, times=1000)
    with pytest.raises(TransactionConflictError, match=r"gave up after \d+ attempts.*concurrent"):
        store.add_instances([instance("1.2.3", "1.2.3.1", "1.2.3.1.1")])
    assert count(store, "study") == 0


def test_a_conflict_inside_an_explicit_transaction_is_raised_not_replayed(store: Store) -> None:
    failures = _fail_first_instance_insert(store, times=1)
    with pytest.raises(TransactionConflictError, match="run_in_transaction"), store.transaction():
        store.add_study({"StudyInstanceUID": "1.2.4"})
        store.add_instances([instance("1.2.3", "1.2.3.1", "1.2.3.1.1")])
    assert failures == [1]
    assert count(store, "study") == 0


def test_run_in_transaction_runs_the_whole_block_again(store: Store) -> None:
    failures = _fail_first_instance_insert(store, times=1)
    calls: list[int] = []

    def block() -> int:
        calls.append(1)
        store.add_study({"StudyInstanceUID": "1.2.4"})
        return store.add_instances([instance("1.2.3", "1.2.3.1", "1.2.3.1.1")]).added

    assert store.run_in_transaction(block) == 1
    assert (len(failures), len(calls)) == (1, 2)
    assert count(store, "study") == 2
    assert [e.kind.value for e in store.changes()] == ["STUDY_ADDED"] * 2 + ["INSTANCES_ADDED"]


def test_sqlite_busy_is_recognised_as_a_conflict(tmp_path: Any) -> None:
    path = tmp_path / "busy.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError) as caught:
        other.execute("BEGIN IMMEDIATE")
    holder.rollback()
    assert conflict_reason(caught.value) is not None
    assert conflict_reason(sqlite3.OperationalError("no such table: t")) is None


NODE_OF = (
    "SELECT nodeport FROM citus_shards WHERE table_name = 'study'::regclass "
    "AND shardid = get_shard_id_for_distribution_column('study', CAST(:uid AS text))"
)


def _deadlock_studies(store: Store, on_citus: bool) -> tuple[str, str]:
    """Studies A < X; on Citus, on two workers, so that the cycle is seen by Citus's distributed
    deadlock detector alone, which cancels the youngest transaction: the store's."""
    if not on_citus:
        return "1.2.1", "1.2.8"
    with store.engine.connect() as conn:
        home = conn.execute(text(NODE_OF), {"uid": "1.2.1"}).scalar_one()
        for n in range(8, 200):
            if conn.execute(text(NODE_OF), {"uid": f"1.2.{n}"}).scalar_one() != home:
                return "1.2.1", f"1.2.{n}"
    raise AssertionError("every candidate study hashed to one worker")


def _waits(dsn: str, name: str, on_citus: bool) -> bool:
    """Whether the store's transaction (application ``name``) waits for a lock."""
    with psycopg.connect(dsn, autocommit=True) as watcher:
        if on_citus:  # the wait is on a worker, for the coordinator's other transaction
            return bool(watcher.execute("SELECT count(*) FROM citus_lock_waits").fetchone()[0])
        row = watcher.execute(
            "SELECT wait_event_type FROM pg_stat_activity WHERE application_name = %s "
            "AND state = 'active'", [name]
        ).fetchone()  # fmt: skip
        return row is not None and row[0] == "Lock"


def test_a_real_deadlock_between_a_store_and_another_writer_is_retried(
    server_db_url: str,
) -> None:
    """Another transaction locks study X and then inserts study A, while the store's add (for
    A and X, in UID order) has inserted A and waits for X: the server aborts the store's
    transaction as the deadlock victim, and the store runs it again."""
    name = f"deadlock-{uuid.uuid4().hex[:8]}"
    # On PostgreSQL the store is the victim: a waiting transaction is checked for a deadlock
    # once, deadlock_timeout after it began to wait. The store's check (2 s) must come after the
    # other transaction's INSERT has closed the cycle, and before the other's own check (30 s).
    url = make_url(server_db_url)
    options = url.query["options"] + " -cdeadlock_timeout=2000"
    store_url = url.update_query_dict({"options": options, "application_name": name})
    store = repository.connect(store_url.render_as_string(hide_password=False))
    on_citus = _is_distributed(store)
    first, locked = _deadlock_studies(store, on_citus)
    store.add_study({"StudyInstanceUID": locked})  # X exists
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    other = psycopg.connect(dsn)
    other.execute("SET deadlock_timeout = '30s'")
    other.execute("SELECT id FROM study WHERE study_instance_uid = %s FOR UPDATE", [locked])
    outcome: list[object] = []

    def add() -> None:
        try:
            store.add_series_metadata(
                [{"StudyInstanceUID": first, "SeriesInstanceUID": f"{first}.1"},
                 {"StudyInstanceUID": locked, "SeriesInstanceUID": f"{locked}.1"}]
            )  # fmt: skip
            outcome.append("ok")
        except Exception as error:
            outcome.append(error)

    writer = threading.Thread(target=add)
    writer.start()
    wait_until(lambda: _waits(dsn, name, on_citus), "the store to wait for the locked study")
    other.execute("INSERT INTO study (study_instance_uid, metadata) VALUES (%s, '{}')", [first])
    other.commit()
    other.close()
    writer.join(TIMEOUT)
    assert outcome == ["ok"]
    assert store.get_series(first, f"{first}.1") is not None
    assert store.get_series(locked, f"{locked}.1") is not None
    store.close()


def _is_distributed(store: Store) -> bool:
    with store.engine.connect() as conn:
        return citus.is_distributed(conn)


# ---------------------------------------------------------------------------- one SOP, one copy


def test_two_processes_adding_one_sop_instance_under_two_studies_store_it_once(
    db_url: str,
) -> None:
    """Both writers probe for the SOP Instance UID before either commits (each holds its
    transaction open until the other's add returned): the database keeps the second copy out
    and its writer gets ConflictError."""
    sop = "1.2.9.77.1.1"
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    added = [ctx.Event(), ctx.Event()]
    procs = [
        ctx.Process(target=add_in_open_transaction,
                    args=(db_url, study, sop, barrier, added[n], added[1 - n], results))
        for n, study in enumerate(["1.2.9.77", "1.2.9.78"])
    ]  # fmt: skip
    for proc in procs:
        proc.start()
    outcomes = sorted(results.get(timeout=TIMEOUT * 2) for _ in procs)
    for proc in procs:
        proc.join(TIMEOUT)
    assert [kind for kind, _ in outcomes] == ["added", "conflict"], outcomes
    assert sop in outcomes[1][1] and "already stored" in outcomes[1][1]
    with repository.connect(db_url) as store:
        assert count(store, "instance") == 1
