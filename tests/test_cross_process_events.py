"""Events across processes: a writer process commits, `dicom-repo changes --follow` in another
process receives every committed change once, in commit order, across kills and lost
connections."""

from __future__ import annotations

import multiprocessing
import threading
import uuid
from typing import Any

import psycopg
import pytest
from concurrent_workers import (
    TIMEOUT,
    Listener,
    app_url,
    instance,
    wait_for_commit_or_wait,
    wait_until,
    write_script,
)
from sqlalchemy import event
from sqlalchemy.engine import make_url

import repository
from repository.changelog import notify_channel


def series(n: int, study: str = "1.2.3") -> list[dict[str, Any]]:
    return [instance(study, f"{study}.{n}", f"{study}.{n}.1")]


def test_a_listener_process_gets_every_committed_change_and_none_rolled_back(db_url: str) -> None:
    listener = Listener(db_url, since=0)
    try:
        steps = [{"add": series(1)}, {"rollback": series(9, "1.2.9")}, {"add": series(2)},
                 {"rollback": series(8)}, {"add": series(3, "1.2.4")}]  # fmt: skip
        writer = multiprocessing.get_context("spawn").Process(
            target=write_script, args=(db_url, steps)
        )
        writer.start()
        writer.join(TIMEOUT)
        assert writer.exitcode == 0
        with repository.connect(db_url) as store:
            committed = store.changes()
        assert len(committed) == 5  # 2 studies, 3 series
        listener.wait_for_seq(committed[-1].seq)
        assert listener.seqs == [e.seq for e in committed]
        assert [(e["kind"], e["series_instance_uid"]) for e in listener.events] == [
            ("STUDY_ADDED", None), ("INSTANCES_ADDED", "1.2.3.1"),
            ("INSTANCES_ADDED", "1.2.3.2"), ("STUDY_ADDED", None),
            ("INSTANCES_ADDED", "1.2.4.3")]  # fmt: skip
        assert listener.interrupt() == 0  # Ctrl-C ends it cleanly
        assert "Traceback" not in listener.finish()
    finally:
        listener.finish()


def test_a_killed_listener_restarted_with_its_last_seq_gets_exactly_what_it_missed(
    db_url: str,
) -> None:
    with repository.connect(db_url) as store:
        first = Listener(db_url, since=0)
        try:
            store.add_instances(series(1) + series(2))
            first.wait_for_seq(store.changes()[-1].seq)
            last_seen = first.seqs[-1]
            first.kill()  # crashes: it never hears of what follows
        finally:
            first.finish()
        store.add_instances(series(3))
        store.add_instances(series(4))
        missed = [e.seq for e in store.changes(since=last_seen)]
        second = Listener(db_url, since=last_seen)
        try:
            store.add_instances(series(5))
            newest = store.changes()[-1].seq
            second.wait_for_seq(newest)
            assert second.seqs == [*missed, newest]
        finally:
            second.finish()


def test_commits_made_out_of_seq_order_reach_a_listener_process(db_url: str) -> None:
    """As in test_feed: writer A holds its recorded change uncommitted while writer B commits;
    the listener must still print A's change (before B's)."""
    listener = Listener(db_url, since=0)
    name = f"writer-b-{uuid.uuid4().hex[:8]}"
    a = repository.connect(db_url)
    b = repository.connect(app_url(db_url, name))
    recorded, release = threading.Event(), threading.Event()

    @event.listens_for(a.engine, "commit")
    def hold_before_commit(conn: Any) -> None:
        recorded.set()
        assert release.wait(TIMEOUT)

    try:
        writer_a = threading.Thread(target=lambda: a.add_study({"StudyInstanceUID": "1.2.1"}))
        writer_b = threading.Thread(target=lambda: b.add_study({"StudyInstanceUID": "1.2.2"}))
        writer_a.start()
        assert recorded.wait(TIMEOUT)
        writer_b.start()
        wait_for_commit_or_wait(writer_b, db_url, name)  # were seq order != commit order,
        if not writer_b.is_alive():  # B would commit now and the listener print it before A's
            listener.wait_for_seq(b.changes()[-1].seq)
        release.set()
        writer_a.join(TIMEOUT)
        writer_b.join(TIMEOUT)
        committed = a.changes()
        assert [e.study_instance_uid for e in committed] == ["1.2.1", "1.2.2"]
        listener.wait_for_seq(committed[-1].seq)
        assert listener.seqs == [e.seq for e in committed]
    finally:
        release.set()
        a.close()
        b.close()
        listener.finish()


@pytest.mark.postgresql
def test_a_listener_whose_connection_is_terminated_reconnects_and_misses_nothing(
    pg_empty_url: str,
) -> None:
    from repository import migrate
    from repository.engine import make_engine

    engine = make_engine(pg_empty_url)
    migrate.upgrade(engine)
    engine.dispose()
    url = make_url(pg_empty_url)
    schema = url.query["options"].removeprefix("-csearch_path=")
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    # No safety poll for ten minutes: only reconnecting and catching up can recover.
    listener = Listener(pg_empty_url, since=0, poll_interval=600)
    try:
        with (
            repository.connect(pg_empty_url) as store,
            psycopg.connect(dsn, autocommit=True) as admin,
        ):
            store.add_instances(series(1))
            listener.wait_for_seq(store.changes()[-1].seq)
            terminated = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s", [notify_channel(schema)]
            ).fetchall()  # fmt: skip
            assert terminated == [(True,)]
            for n in range(2, 6):  # notifications sent while it is disconnected are lost
                store.add_instances(series(n))
            committed = [e.seq for e in store.changes()]
            listener.wait_for_seq(committed[-1])
            assert listener.seqs == committed
            wait_until(lambda: "reconnected" in listener.stderr, "the reconnect to be logged")
    finally:
        listener.finish()


def test_listener_names_are_unique_per_schema() -> None:
    assert notify_channel("t_1") != notify_channel("t_2")
    long = "s" * 80
    assert len(notify_channel(long)) <= 63 and notify_channel(long) != notify_channel(long + "x")
