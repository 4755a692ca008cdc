"""Change-log compaction and the gap signal, prune (also killed half-way), the storage check,
and a delete racing an add of the same study from another process."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from concurrent_workers import TIMEOUT, app_url, wait_until
from sqlalchemy import text
from sqlalchemy.engine import make_url
from test_store import count, instance

import repository
from repository import EVENTS, Event, FeedGapError, Store
from repository.cli import main
from repository.retention import PruneRule, prune

DICOM_REPO = str(Path(sys.executable).with_name("dicom-repo"))


def add_studies(store: Store, n: int, per: int = 2, **extra: object) -> list[str]:
    uids = [f"1.2.9.{k}" for k in range(1, n + 1)]
    store.add_instances([instance(u, f"{u}.1", f"{u}.1.{i}", **extra)
                         for u in uids for i in range(per)])  # fmt: skip
    return uids


# --------------------------------------------------------------------------- compaction


def test_a_reader_behind_a_compaction_gets_the_gap_never_a_silent_one(store: Store) -> None:
    for k in range(5):
        store.add_instances([instance(f"1.2.{k}", f"1.2.{k}.1", f"1.2.{k}.1.1")])
    newest = store.changes()[-1].seq
    done = store.compact_changes(before_seq=newest - 2)
    assert done.through_seq == newest - 3 and done.removed >= 1
    with pytest.raises(FeedGapError) as gap:
        store.changes(since=0)
    assert (gap.value.since, gap.value.horizon, gap.value.newest) == (0, newest - 3, newest)
    with pytest.raises(FeedGapError):
        store.subscribe("*", print, since=1)
    assert [e.seq for e in store.changes(since=newest - 3)] == [newest - 2, newest - 1, newest]
    everything = store.compact_changes(before_seq=newest + 100)
    assert everything.through_seq == newest - 1  # the newest change is always kept
    store.add_instances([instance("1.2.9", "1.2.9.1", "1.2.9.1.1")])
    assert [e.seq for e in store.changes(since=newest - 1)][-1] > newest  # seqs go on


def test_keep_days_removes_only_changes_older_than_that(store: Store) -> None:
    add_studies(store, 3)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE change SET created_at = :old WHERE seq < 3"),
                     {"old": dt.datetime(2020, 1, 1, tzinfo=dt.UTC)})  # fmt: skip
    assert store.compact_changes(keep_days=30).through_seq == 2
    assert store.compact_changes(keep_days=30).removed == 0  # nothing more is that old


def test_a_live_subscription_behind_a_compaction_is_told(db_url: str) -> None:
    with (
        repository.connect(db_url, poll_interval=0.05) as writer,
        repository.connect(db_url, poll_interval=0.05) as follower,
    ):
        entered, release = threading.Event(), threading.Event()
        got: list[Event] = []
        gaps: list[FeedGapError] = []

        def slow(event: Event) -> None:
            got.append(event)
            entered.set()
            release.wait(TIMEOUT)  # the follower is busy here while the log is compacted

        follower.subscribe("*", slow, since=writer.changes()[-1].seq if writer.changes() else 0,
                           on_gap=gaps.append)  # fmt: skip
        writer.add_instances([instance("1.2.1", "1.2.1.1", "1.2.1.1.1")])
        assert entered.wait(TIMEOUT)
        for k in (2, 3, 4):
            writer.add_instances([instance(f"1.2.{k}", f"1.2.{k}.1", f"1.2.{k}.1.1")])
        newest = writer.changes()[-1].seq
        writer.compact_changes(before_seq=newest)
        release.set()
        wait_until(lambda: bool(got) and got[-1].seq == newest, "the newest change delivered")
        # the adds of study 1.2.1 (read before the compaction), the gap, then the newest
        assert len(gaps) == 1 and gaps[0].since == got[-2].seq < gaps[0].horizon == newest - 1
        assert {e.study_instance_uid for e in got[:-1]} == {"1.2.1"}


def test_the_cli_compacts_and_a_reader_behind_it_exits_with_the_gap(db_url: str) -> None:
    with repository.connect(db_url) as store:
        add_studies(store, 4)
        newest = store.changes()[-1].seq
    runner = CliRunner()
    done = runner.invoke(main, ["--db", db_url, "changes", "compact", "--before", str(newest)])
    assert done.exit_code == 0 and f"starts after seq {newest - 1}" in done.output
    behind = runner.invoke(main, ["--db", db_url, "changes", "--since", "0"])
    assert behind.exit_code == 1 and "compacted away" in behind.output
    both = runner.invoke(main, ["--db", db_url, "changes", "compact"])
    assert both.exit_code == 2 and "--keep-days" in both.output


# --------------------------------------------------------------------------- prune


def test_prune_selects_by_date_arrival_modality_and_data_source(store: Store) -> None:
    old = add_studies(store, 2, StudyDate="20100101")
    store.add_instances([instance("1.3.1", "1.3.1.1", "1.3.1.1.1", StudyDate="20100101",
                                  Modality="MR")])  # fmt: skip
    store.add_instances([instance("1.3.2", "1.3.2.1", "1.3.2.1.1")], data_source="pacs")
    recent = dt.date.today().strftime("%Y%m%d")
    store.add_instances([instance("1.3.3", "1.3.3.1", "1.3.3.1.1", StudyDate=recent)])
    with store.engine.connect() as conn:
        assert PruneRule(older_than_days=365).studies(conn) == [*old, "1.3.1"]
        assert PruneRule(older_than_days=365, modalities=["MR"]).studies(conn) == ["1.3.1"]
        assert PruneRule(modalities=["CT"], data_source="pacs").studies(conn) == ["1.3.2"]
        future = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        assert len(PruneRule(received_before=future).studies(conn)) == 5
        assert PruneRule(received_before=dt.datetime(2000, 1, 1, tzinfo=dt.UTC)).studies(conn) == []
    dry = prune(store, PruneRule(older_than_days=365), dry_run=True)
    assert dry.studies == [*old, "1.3.1"] and count(store, "study") == 5
    result = prune(store, PruneRule(older_than_days=365))
    assert (len(result.studies), result.instances) == (3, 5)
    assert store.get_study_instance_uids() == ["1.3.2", "1.3.3"]
    with pytest.raises(ValueError, match="needs a rule"):
        PruneRule()


def test_prune_killed_half_way_deletes_whole_studies_and_a_re_run_finishes(db_url: str) -> None:
    with repository.connect(db_url) as store:
        uids = add_studies(store, 300, per=5, StudyDate="20000101")
    args = [DICOM_REPO, "--db", db_url, "prune", "--older-than", "1y", "--quiet"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with repository.connect(db_url) as store:
        try:
            wait_until(lambda: count(store, "study") < 290, "the prune to get going")
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(TIMEOUT)
        left = store.get_study_summaries()
        assert 0 < len(left) < 300, "killed too late to prove anything: make the corpus larger"
        assert {s.study_instance_uid for s in left} <= set(uids)
        assert all(s.number_of_instances == 5 for s in left)  # nothing half-deleted
        assert count(store, "instance") == 5 * len(left)
        finished = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT * 5)
        assert finished.returncode == 0, finished.stderr
        assert f"pruned {len(left)} studies, {5 * len(left)} instances" in finished.stdout
        assert count(store, "study") == count(store, "instance") == 0
        deleted = [e for e in store.changes(limit=10_000) if e.kind is EVENTS.STUDY_DELETED]
        assert sorted(e.study_instance_uid for e in deleted) == sorted(uids)  # once each


# --------------------------------------------------------------------------- storage


def test_storage_check_finds_orphans_and_missing_files_and_fix_removes_orphans(
    db_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "storage"
    kept, gone = folder / "1.2" / "1.2.1" / "1.2.1.1.dcm", folder / "1.2" / "1.2.1" / "1.2.1.2.dcm"
    orphan, leftover = folder / "9.9" / "9.9.1" / "9.9.1.1.dcm", folder / ".incoming" / "x.part"
    for path in (kept, gone, orphan, leftover):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"DICM")
    with repository.connect(db_url) as store:
        from repository.normalize import normalize_instance

        rows = [
            normalize_instance(instance("1.2", "1.2.1", f"1.2.1.{n}"), source="t") for n in (1, 2)
        ]
        store.add_normalized(rows, paths={"1.2.1.1": str(kept), "1.2.1.2": str(gone)})
    gone.unlink()
    runner = CliRunner()
    check = ["--db", db_url, "storage", "check", str(folder), "--grace", "0"]
    found = runner.invoke(main, check)
    assert found.exit_code == 1
    assert f"orphan\t{orphan}" in found.output and f"orphan\t{leftover}" in found.output
    assert f"missing\t{gone}\t1.2.1.2" in found.output and str(kept) not in found.output
    young = runner.invoke(main, [*check[:-2]])  # the default grace leaves fresh files alone
    assert "orphan\t" not in young.output
    assert "missing\t" not in young.output  # and new instances (a STOW moves its file after)
    runner.invoke(main, [*check, "--fix"])
    assert kept.exists() and not orphan.exists() and not leftover.exists()
    assert not orphan.parent.exists()  # emptied series folder goes too


# --------------------------------------------------------------------------- race


def _add_repeatedly(url: str, study: str, rounds: int) -> None:
    with repository.connect(url) as store:
        for r in range(rounds):
            store.add_instances([instance(study, f"{study}.1", f"{study}.1.{r}.{i}")
                                 for i in range(3)])  # fmt: skip


def test_a_delete_racing_adds_from_another_process_ends_consistent(db_url: str) -> None:
    study = "1.2.77"
    with repository.connect(db_url) as store:
        store.add_instances([instance(study, f"{study}.1", f"{study}.1.0.0")])
        adder = multiprocessing.get_context("spawn").Process(
            target=_add_repeatedly, args=(db_url, study, 40)
        )
        adder.start()
        deleted = 0
        while adder.is_alive() and deleted < 20:
            try:
                store.delete_study(study)
                deleted += 1
            except repository.NotFoundError:
                time.sleep(0.005)
        adder.join(TIMEOUT)
        assert adder.exitcode == 0
        # Replaying the change log in seq order gives exactly what is stored.
        expected = 0
        for event in store.changes(limit=100_000):
            if event.kind is EVENTS.INSTANCES_ADDED:
                expected += event.payload["count"]
            elif event.kind is EVENTS.STUDY_DELETED:
                assert event.payload["count"] == expected
                expected = 0
        assert count(store, "instance") == expected
        summary = [s for s in store.get_study_summaries() if s.study_instance_uid == study]
        assert (summary[0].number_of_instances if summary else 0) == expected
        assert count(store, "study") == (1 if expected else 0)
    assert os.environ.get("CI") is None or deleted > 0


def _delete_study(url: str, study: str, ready: Any, results: Any) -> None:
    with repository.connect(url) as store:
        ready.set()
        results.put(("deleted", store.delete_study(study).instances))


def _add_one(url: str, study: str, ready: Any, results: Any) -> None:
    with repository.connect(url) as store:
        ready.set()
        results.put(
            ("added", store.add_instances([instance(study, f"{study}.1", f"{study}.1.3")]).added)
        )


def _waits_for(url: str, name: str) -> bool:
    """True while the session named ``name`` waits for a lock (PostgreSQL; on Citus, where the
    lock is taken on a worker, while any distributed transaction waits for another)."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'citus'").fetchone():
            waits = conn.execute("SELECT count(*) FROM citus_lock_waits").fetchone()
            return waits is not None and waits[0] > 0
        row = conn.execute(
            "SELECT wait_event_type FROM pg_stat_activity "
            "WHERE application_name = %s AND state = 'active'",
            [name],
        ).fetchone()
    return row is not None and row[0] == "Lock"


@pytest.mark.parametrize("first", ["add", "delete"])
def test_a_delete_and_an_add_of_one_study_in_two_processes_run_in_commit_order(
    db_url: str, first: str
) -> None:
    """Whichever of the two commits first, the other waits for it (the study lock), then sees
    it: the delete removes the add it waited for; the add after a delete stores the study anew.
    The change log holds their events in that order."""
    study = "1.2.66"
    ctx = multiprocessing.get_context("spawn")
    ready, results = ctx.Event(), ctx.Queue()
    other = ctx.Process(target=_delete_study if first == "add" else _add_one,
                        args=(app_url(db_url, "second"), study, ready, results))  # fmt: skip
    with repository.connect(db_url) as store:
        store.add_instances([instance(study, f"{study}.1", f"{study}.1.1")])
        start = store.changes()[-1].seq
        with store.transaction():
            if first == "add":
                store.add_instances([instance(study, f"{study}.1", f"{study}.1.2")])
            else:
                store.delete_study(study)
            other.start()
            assert ready.wait(TIMEOUT)
            if store.engine.dialect.name == "postgresql":
                wait_until(lambda: _waits_for(db_url, "second"), "the other process to wait")
            else:  # it waits for the write lock, which SQLite does not show: give it a moment
                other.join(0.5)
            assert other.is_alive()  # it waits for this transaction
        outcome = results.get(timeout=TIMEOUT)
        other.join(TIMEOUT)
        log = [(e.kind, e.payload.get("count")) for e in store.changes(since=start)]
        summaries = store.get_study_summaries()
    if first == "add":
        assert outcome == ("deleted", 2) and summaries == []
        assert log == [(EVENTS.INSTANCES_ADDED, 1), (EVENTS.STUDY_DELETED, 2)]
    else:
        assert outcome == ("added", 1)
        assert [(s.study_instance_uid, s.number_of_instances) for s in summaries] == [(study, 1)]
        assert log[0] == (EVENTS.STUDY_DELETED, 1) and log[-1] == (EVENTS.INSTANCES_ADDED, 1)
        assert EVENTS.STUDY_ADDED in [kind for kind, _ in log[1:]]


# --------------------------------------------------------------------------- delete command


def test_the_delete_command_removes_owned_files_only_and_says_what_it_removed(
    db_url: str, tmp_path: Path
) -> None:
    from repository.normalize import normalize_instance

    storage, elsewhere = tmp_path / "storage", tmp_path / "ingested"
    owned, in_place = storage / "1.2" / "1.2.1" / "1.2.1.1.dcm", elsewhere / "b.dcm"
    for path in (owned, in_place):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"DICM")
    with repository.connect(db_url) as store:
        rows = [
            normalize_instance(instance("1.2", "1.2.1", f"1.2.1.{n}"), source="t") for n in (1, 2)
        ]
        store.add_normalized(rows, paths={"1.2.1.1": str(owned), "1.2.1.2": str(in_place)})
    runner = CliRunner()
    short = runner.invoke(main, ["--db", db_url, "delete", "instance", "1.2", "1.2.1"])
    assert short.exit_code == 2 and "needs 3 UIDs" in short.output
    done = runner.invoke(main, ["--db", db_url, "delete", "study", "1.2", "--storage",
                                str(storage), "--yes"])  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "deleted 1 series, 2 instances; 1 studies removed, 1 files" in done.output
    assert not owned.exists() and in_place.exists()
    again = runner.invoke(main, ["--db", db_url, "delete", "study", "1.2", "--yes"])
    assert again.exit_code == 1 and "study 1.2 is not stored" in again.output
