"""The change feed, writes through pgbouncer and libpq multi-host URLs on a primary, its hot
standby and a transaction-pooling pgbouncer (scratch clusters, see tests/replication.py):
followers on the standby and through pgbouncer see each change in order within a second;
STOW-RS, kept JSON, ingest, delete, prune, pull and storage check work through pgbouncer;
multi-host URLs are accepted (credentials never printed); a standby's recovery conflict is
retryable; a server on the standby or through pgbouncer streams every change."""

from __future__ import annotations

import math
import subprocess
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import psycopg
import pytest
import requests
from dicom_factory import ct_slice, write
from pydicom.uid import generate_uid
from replication import CLI, STOW, Cluster, cli, stow_body
from web_server import start

import repository
from repository import EVENTS, Event

pytestmark = pytest.mark.postgresql


@pytest.fixture(scope="module")
def cluster(replica_cluster: Cluster) -> Cluster:
    """The session's primary, standby and pgbouncer (tests/conftest.py)."""
    return replica_cluster


def _collect(store: repository.Store) -> tuple[list[tuple[int, float]], threading.Event]:
    got: list[tuple[int, float]] = []
    done = threading.Event()

    def on_change(event: Event) -> None:
        got.append((event.seq, time.monotonic()))
        done.set()

    store.subscribe("*", on_change)
    return got, done


def _write_changes(writer: repository.Store, adds: int) -> dict[int, float]:
    """Add ``adds`` instances one transaction each; when each change was committed, by seq."""
    last = max((e.seq for e in writer.changes(since=0, limit=100_000)), default=0)
    committed: dict[int, float] = {}
    for number in range(adds):
        writer.add_instances([ct_slice(generate_uid(), number + 1, 0.0)])
        done = time.monotonic()
        for event in writer.changes(since=last, limit=1000):
            committed[event.seq], last = done, event.seq
        time.sleep(0.02)
    return committed


@pytest.mark.parametrize("where", ["standby", "bouncer"])
def test_followers_on_the_standby_and_through_pgbouncer_see_each_change_within_1s(
    cluster: Cluster, where: str
) -> None:
    url = getattr(cluster, where)
    follow = subprocess.Popen([CLI, "--db", url, "changes", "--follow", "--json"],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        with repository.connect(url) as follower, repository.connect(cluster.primary) as writer:
            got, _ = _collect(follower)
            time.sleep(1.0)  # the CLI follower is up
            committed = _write_changes(writer, 40)
            newest = max(committed)
            deadline = time.monotonic() + 5  # the safety poll (10 s) would be too late
            while (not got or got[-1][0] < newest) and time.monotonic() < deadline:
                time.sleep(0.01)
            seqs = [seq for seq, _ in got]
            expected = [e.seq for e in writer.changes(since=min(seqs) - 1, limit=100_000)]
            assert seqs == expected and seqs[-1] == newest  # in order, none missed, once
            latency = sorted(at - committed[seq] for seq, at in got if seq in committed)
            assert latency[math.ceil(0.99 * len(latency)) - 1] < 1.0  # p99, commit to callback
            assert all(e.kind in EVENTS for e in writer.changes(since=0, limit=5))
        lines: list[int] = []  # changes --follow prints the whole log (since 0), then follows
        while not lines or lines[-1] < seqs[-1]:
            line = follow.stdout.readline() if follow.stdout else ""
            assert line, "changes --follow ended"
            lines.append(orjson.loads(line)["seq"])
        assert lines[-len(seqs) :] == seqs and lines == sorted(set(lines))
    finally:
        follow.terminate()
        follow.wait(10)
    if where == "bouncer":  # the feed never set application_name on a pooled connection
        with psycopg.connect(cluster.primary, autocommit=True) as conn:
            leaked = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE "
                "application_name LIKE 'dicom_repo_changes:%'"
            ).fetchone()
        assert leaked == (0,)


def test_stow_kept_json_and_ingest_work_through_pgbouncer(cluster: Cluster, tmp_path: Path) -> None:
    for command in (["db", "upgrade"], ["db", "check"]):
        done = cli("--db", cluster.bouncer, *command)
        assert done.returncode == 0, done.stderr[-2000:]
    server = start(cluster.bouncer, tmp_path / "s", workers=2,
                   args=["--storage", str(tmp_path / "storage")])  # fmt: skip
    try:
        study, series = generate_uid(), generate_uid()
        datasets = [ct_slice(series, n + 1, float(n), study=study) for n in range(10)]
        sops = [ds.SOPInstanceUID for ds in datasets]
        stored = requests.post(f"{server.dicomweb}/studies", data=stow_body(*datasets),
                               headers=STOW, timeout=60)  # fmt: skip
        assert stored.status_code == 200, stored.text
        for _ in range(3):  # built and kept, then read back kept
            answer = requests.get(f"{server.dicomweb}/studies/{study}/metadata", timeout=60)
            assert answer.status_code == 200 and len(answer.json()) == 10
        time.sleep(0.5)
        with psycopg.connect(cluster.primary, autocommit=True) as conn:
            kept = conn.execute("SELECT count(*) FROM instance_dicom_json j JOIN instance i ON "
                                "i.id = j.instance_id WHERE j.json IS NOT NULL AND "
                                "i.sop_instance_uid = ANY(%s)", [sops]).fetchone()  # fmt: skip
        assert kept == (10,)
        log = server.log.read_text()
        assert "not kept" not in log and "prepared statement" not in log and "500" not in log
    finally:
        server.stop()


def test_delete_and_prune_work_through_pgbouncer(cluster: Cluster, tmp_path: Path) -> None:
    studies = [generate_uid() for _ in range(3)]
    for study in studies:
        series = generate_uid()
        for number in range(2):
            ds = ct_slice(series, number + 1, float(number), study=study)
            ds.Modality = "XC"  # no other test's studies: the prune below selects these only
            write(ds, tmp_path / "files")
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    commands = (
        ["ingest", str(tmp_path / "files"), "-q"],
        ["delete", "study", studies[0], "--yes"],
        ["prune", "--modality", "XC", "--received-before", tomorrow, "-q", "--json"],
    )
    for command in commands:  # fmt: skip
        done = cli("--db", cluster.bouncer, *command)
        assert done.returncode == 0, (command, done.stderr[-2000:])
        assert "prepared statement" not in done.stderr
    assert orjson.loads(done.stdout)["studies"] == 2
    with psycopg.connect(cluster.primary, autocommit=True) as conn:
        left = conn.execute("SELECT count(*) FROM study WHERE study_instance_uid = ANY(%s)",
                            [studies]).fetchone()  # fmt: skip
        gone = conn.execute("SELECT study_instance_uid FROM change WHERE kind = %s "
                            "ORDER BY seq", [EVENTS.STUDY_DELETED]).fetchall()  # fmt: skip
    assert left == (0,)
    deleted = [row[0] for row in gone if row[0] in studies]
    # each once; the delete first, then the prune's two in its own order (the order it found them)
    assert deleted[0] == studies[0] and sorted(deleted[1:]) == sorted(studies[1:])


def test_pull_and_storage_check_work_through_pgbouncer(cluster: Cluster, tmp_path: Path) -> None:
    study, folder = generate_uid(), tmp_path / "source-files"
    for _ in range(2):
        series = generate_uid()
        for number in range(3):
            write(ct_slice(series, number + 1, float(number), study=study), folder)
    source = f"sqlite:///{tmp_path / 'source.db'}"
    assert cli("--db", source, "ingest", str(folder), "-q").returncode == 0
    server = start(source, tmp_path / "source", workers=1)
    try:
        pulled = cli("--db", cluster.bouncer, "pull", server.dicomweb, "--study", study, "-q")
    finally:
        server.stop()
    assert pulled.returncode == 0, pulled.stderr[-2000:]
    assert "prepared statement" not in pulled.stderr
    assert pulled.stdout.strip().endswith("6 instances added, 0 already present")
    with psycopg.connect(cluster.primary, autocommit=True) as conn:
        added = conn.execute(
            "SELECT count(*) FROM change WHERE kind = %s AND study_instance_uid = %s",
            [EVENTS.INSTANCES_ADDED, study],
        ).fetchone()
    assert added == (2,)  # one per series, committed once each
    (tmp_path / "storage" / "1.2.3").mkdir(parents=True)
    orphan = tmp_path / "storage" / "1.2.3" / "left.dcm"
    orphan.write_bytes(b"x")
    checked = cli("--db", cluster.bouncer, "storage", "check", str(tmp_path / "storage"),
                  "--grace", "0")  # fmt: skip
    assert checked.returncode == 1 and str(orphan) in checked.stdout, checked.stderr[-2000:]
    assert "prepared statement" not in checked.stderr


def test_libpq_multi_host_urls_are_accepted_and_credentials_never_printed(
    cluster: Cluster,
) -> None:
    dead = cluster.bouncer_port + 1
    url = (f"postgresql://postgres:hunter2@127.0.0.1:{dead},127.0.0.1:{cluster.standby_port},"
           f"127.0.0.1:{cluster.primary_port}/test?target_session_attrs=read-write")  # fmt: skip
    with repository.connect(url) as store:
        assert not store.router.primary_is_read_only()  # the one that writes was chosen
    done = cli("--db", url, "studies", "--json")
    assert done.returncode == 0, done.stderr
    broken = url.replace("/test?", "/no_such_db?")
    done = cli("--db", broken, "studies")
    assert done.returncode == 1 and "hunter2" not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def test_a_report_cancelled_by_a_recovery_conflict_on_the_standby_is_retryable(
    cluster: Cluster,
) -> None:
    table = f"conflict_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(cluster.primary, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (x int)")
    cluster.wait_replayed()
    query = f"SELECT count(*) FROM {table}, pg_sleep(20)"
    command = [CLI, "--db", cluster.standby, "sql", query]
    running = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    with psycopg.connect(cluster.standby, autocommit=True) as conn:
        while not conn.execute(  # the query sleeps (in a FETCH: a server-side cursor)
            "SELECT 1 FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend' AND now() - query_start > interval '0.3 s'"
        ).fetchone():
            assert running.poll() is None, running.communicate()
            time.sleep(0.05)
    with psycopg.connect(cluster.primary, autocommit=True) as conn:
        conn.execute(f"DROP TABLE {table}")  # replayed: a lock the query is in the way of
    _, err = running.communicate(timeout=60)
    assert running.returncode == 1 and "Traceback" not in err
    assert "recovery" in err and "run it again" in err and "query failed" not in err


@pytest.mark.parametrize("where", ["standby", "bouncer"])
def test_the_sse_stream_of_a_server_on_the_standby_or_pgbouncer_delivers_every_change_in_order(
    cluster: Cluster, tmp_path: Path, where: str
) -> None:
    server = start(getattr(cluster, where), tmp_path / "s", workers=1)
    try:
        with repository.connect(cluster.primary) as writer:
            since = max((e.seq for e in writer.changes(since=0, limit=100_000)), default=0)
            stream = requests.get(f"{server.url}/changes/stream?since={since}", stream=True,
                                  timeout=30)  # fmt: skip
            for number in range(20):
                writer.add_instances([ct_slice(generate_uid(), number + 1, 0.0)])
            expected = [e.seq for e in writer.changes(since=since, limit=100_000)]
        seqs: list[int] = []
        for line in stream.iter_lines(decode_unicode=True):
            if line.startswith("id: "):
                seqs.append(int(line[4:]))
            if seqs and seqs[-1] >= expected[-1]:
                break
        stream.close()
        assert seqs == expected
    finally:
        server.stop()
