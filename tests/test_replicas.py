"""A primary, its hot standby and a transaction-pooling pgbouncer (scratch clusters, see
tests/replication.py): reads give the same answers everywhere, reads are routed to the standby
(and away from it when it is down or behind), a client reads its own writes, and a standby as
``--db`` serves reads and refuses writes clearly. The change feed, pgbouncer's writes and
multi-host URLs: tests/test_replica_feed.py."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import psycopg
import pytest
import requests
from dicom_factory import ct_slice, write
from pydicom.uid import generate_uid
from replication import STOW, Cluster, cli, replay_paused, stow_body
from starlette.testclient import TestClient
from web_server import start

import repository
from repository import ServerReadOnlyError
from repository.web import create_app

pytestmark = pytest.mark.postgresql

SERIES, PER_SERIES = 3, 4
COUNT = "SELECT count(*) AS n FROM v_instance"


@pytest.fixture(scope="module")
def cluster(replica_cluster: Cluster) -> Cluster:
    """The session's primary, standby and pgbouncer (tests/conftest.py)."""
    return replica_cluster


@pytest.fixture(scope="module")
def corpus(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A study ingested into the primary (half directly, half through pgbouncer); its UID."""
    study = generate_uid()
    folders = [tmp_path_factory.mktemp("direct"), tmp_path_factory.mktemp("pooled")]
    for index in range(SERIES):
        series = generate_uid()
        for number in range(PER_SERIES):
            ds = ct_slice(series, number + 1, float(number), study=study)
            write(ds, folders[index % 2])
    for url, folder in zip((cluster.primary, cluster.bouncer), folders, strict=True):
        done = cli("--db", url, "ingest", str(folder), "--workers", "2", "-q")
        assert done.returncode == 0, done.stderr[-2000:]
    cluster.wait_replayed()
    return study


def _answers(url: str, study: str) -> dict[str, object]:
    """What the read commands, the store and the DICOMweb server answer on ``url``."""
    out: dict[str, object] = {}
    commands = {
        "studies": ["studies", "--json"],
        "study": ["study", study, "--json"],
        "sql": ["sql", f"{COUNT} WHERE study_instance_uid = '{study}'", "--format", "json"],
        "report": ["report", "largest-studies", "--format", "json"],
    }
    for name, args in commands.items():
        done = cli("--db", url, *args)
        assert done.returncode == 0, (url, args, done.stderr[-2000:])
        out[name] = orjson.loads(done.stdout)
    with repository.connect(url) as store:
        out["display_sets"] = [ds.to_json() for ds in store.get_display_sets(study)]
    with TestClient(create_app(url=url)) as client:
        out["qido"] = client.get("/dicom-web/studies").json()
        out["metadata"] = client.get(f"/dicom-web/studies/{study}/metadata").json()
    return out


def test_read_paths_answer_the_same_on_the_standby_and_through_pgbouncer(
    cluster: Cluster, corpus: str
) -> None:
    expected = _answers(cluster.primary, corpus)
    assert expected["sql"] == [{"n": SERIES * PER_SERIES}]
    assert _answers(cluster.standby, corpus) == expected
    assert _answers(cluster.bouncer, corpus) == expected


def test_reads_go_to_a_usable_standby_else_the_primary(cluster: Cluster, corpus: str) -> None:
    with repository.connect(cluster.primary, read_urls=[cluster.standby]) as store:
        assert store.router.engine().url.port == cluster.standby_port
        assert store.get_study(corpus) is not None
    dead = f"postgresql://postgres@127.0.0.1:{cluster.bouncer_port + 1}/test"
    with repository.connect(cluster.primary, read_urls=[dead]) as store:
        assert store.get_study(corpus) is not None  # the dead standby is skipped
        assert store.router.engine() is store.engine
    os.environ["DICOM_REPO_READ_URLS"] = cluster.standby
    try:
        with repository.connect(cluster.primary) as store:
            assert store.router.engine().url.port == cluster.standby_port
    finally:
        del os.environ["DICOM_REPO_READ_URLS"]


def test_read_db_sends_read_commands_to_the_standby_and_kept_json_to_the_primary(
    cluster: Cluster,
) -> None:
    query = ["sql", "SELECT pg_is_in_recovery() AS standby", "--format", "json"]
    for args, env in ((["--read-db", cluster.standby], {}),
                      ([], {"DICOM_REPO_READ_URLS": cluster.standby})):  # fmt: skip
        done = cli("--db", cluster.primary, *args, *query, env=env)
        assert done.returncode == 0, done.stderr[-2000:]
        assert orjson.loads(done.stdout) == [{"standby": True}]
    ds = ct_slice(generate_uid(), 1, 0.0, study=generate_uid())
    with repository.connect(cluster.primary) as writer:
        writer.add_instances([ds])  # its DICOM JSON not kept yet
    cluster.wait_replayed()
    app = create_app(url=cluster.primary, read_urls=(cluster.standby,))
    with TestClient(app) as client:
        answer = client.get(f"/dicom-web/studies/{ds.StudyInstanceUID}/metadata")
        assert answer.status_code == 200 and len(answer.json()) == 1
    with psycopg.connect(cluster.primary, autocommit=True) as conn:
        kept = conn.execute("SELECT count(*) FROM instance_dicom_json j JOIN instance i ON "
                            "i.id = j.instance_id WHERE j.json IS NOT NULL AND "
                            "i.sop_instance_uid = %s", [ds.SOPInstanceUID]).fetchone()  # fmt: skip
    assert kept == (1,)


@pytest.fixture
def paused_standby(cluster: Cluster) -> Iterator[None]:
    """The standby receives WAL but does not replay it (a standby far behind)."""
    with replay_paused(cluster):
        yield
    cluster.wait_replayed()


def test_a_process_reads_its_own_writes_while_the_standby_is_behind(
    cluster: Cluster, paused_standby: None
) -> None:
    series = generate_uid()
    ds = ct_slice(series, 1, 0.0)
    # synchronous_commit=remote_apply would wait for the paused standby: this writer uses the
    # primary alone, the reader below routes to the standby and must not read from it.
    with repository.connect(cluster.primary) as writer:
        writer.add_instances([ds])
    with repository.connect(cluster.primary, read_urls=[cluster.standby]) as reader:
        reader.router.written = _primary_lsn(cluster)  # as if this process had written
        assert reader.get_study(ds.StudyInstanceUID) is not None
        assert reader.router.engine() is reader.engine  # behind: the primary answers
    with repository.connect(cluster.primary, read_urls=[cluster.standby], max_lag=0) as lagging:
        time.sleep(1.5)  # the replay timestamp ages past max_lag while replay is paused
        assert lagging.router.engine() is lagging.engine


@pytest.fixture
def asynchronous(cluster: Cluster) -> Iterator[None]:
    """The primary does not wait for the standby (``synchronous_standby_names = ''``)."""

    def wait_for(names: str) -> None:
        with psycopg.connect(cluster.primary, autocommit=True) as conn:
            conn.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{names}'")
            conn.execute("SELECT pg_reload_conf()")

    wait_for("")
    try:
        yield
    finally:
        wait_for("*")


def test_a_process_reads_its_own_writes_from_its_commit_position(
    cluster: Cluster, asynchronous: None, paused_standby: None
) -> None:
    # Without synchronous replication remote_apply is a local commit: only the WAL position
    # noted after the commit keeps this process's next read off the standby that is behind.
    ds = ct_slice(generate_uid(), 1, 0.0, study=generate_uid())
    with repository.connect(cluster.primary, read_urls=[cluster.standby], max_lag=3600) as store:
        store.add_instances([ds])
        assert store.get_study(ds.StudyInstanceUID) is not None
    with repository.connect(cluster.primary, read_urls=[cluster.standby], max_lag=3600) as other:
        assert other.router.engine() is not other.engine  # a usable standby, for the others...
        assert other.get_study(ds.StudyInstanceUID) is None  # ...which has not replayed it


def _primary_lsn(cluster: Cluster) -> int:
    with psycopg.connect(cluster.primary, autocommit=True) as conn:
        row = conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()
    assert row is not None
    return int(row[0])


def test_a_standby_as_db_serves_reads_and_refuses_writes_clearly(
    cluster: Cluster, corpus: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ds, unkept = (
        ct_slice(generate_uid(), 1, 0.0),
        ct_slice(generate_uid(), 1, 0.0, study=generate_uid()),
    )
    with repository.connect(cluster.primary) as writer:
        writer.add_instances([unkept])  # its DICOM JSON not kept yet
    cluster.wait_replayed()
    with repository.connect(cluster.standby) as store:
        assert store.router.primary_is_read_only()
        with pytest.raises(ServerReadOnlyError, match="hot standby"):
            store.add_instances([ds])
    folder = tmp_path / "in"
    write(ds, folder)
    done = cli("--db", cluster.standby, "ingest", str(folder), "-q")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "read-only" in done.stderr + done.stdout
    storage = tmp_path / "storage"
    with TestClient(create_app(url=cluster.standby, storage=storage)) as client:
        answer = client.post("/dicom-web/studies", content=stow_body(ds), headers=STOW)
        assert answer.status_code == 503 and "hot standby" in answer.json()["error"]
        refused = client.delete(f"/dicom-web/studies/{corpus}")
        assert refused.status_code == 503 and "hot standby" in refused.json()["error"]
        assert client.get(f"/dicom-web/studies/{corpus}/metadata").status_code == 200
        for _ in range(2):  # built each time; keeping it is not tried on the standby
            found = client.get(f"/dicom-web/studies/{unkept.StudyInstanceUID}/metadata")
            assert found.status_code == 200 and len(found.json()) == 1
    assert not [p for p in storage.rglob("*") if p.is_file()]  # no file left behind
    assert "not kept" not in caplog.text


@pytest.mark.parametrize("primary", ["primary", "bouncer"])
def test_stow_on_one_server_then_qido_on_another_reading_the_standby_500_times(
    cluster: Cluster, tmp_path: Path, primary: str
) -> None:
    name = f"reader-{uuid.uuid4().hex[:8]}"
    standby = f"{cluster.standby}?application_name={name}"
    args = ["--read-db", standby, "--storage", str(tmp_path / "storage")]
    url = getattr(cluster, primary)  # the primary, directly or through pgbouncer
    writer = start(url, tmp_path / "w", workers=1, args=args)
    reader = start(url, tmp_path / "r", workers=1, args=args)
    try:
        template = ct_slice(generate_uid(), 1, 0.0)
        misses = []
        with requests.Session() as w, requests.Session() as r:
            for number in range(500):
                template.SOPInstanceUID = generate_uid()
                template.file_meta.MediaStorageSOPInstanceUID = template.SOPInstanceUID
                template.InstanceNumber = number + 1
                stored = w.post(f"{writer.dicomweb}/studies", data=stow_body(template),
                                headers=STOW, timeout=60)  # fmt: skip
                assert stored.status_code == 200, stored.text
                found = r.get(f"{reader.dicomweb}/instances", timeout=60,
                              params={"SOPInstanceUID": template.SOPInstanceUID})  # fmt: skip
                if found.status_code != 200 or not found.json():
                    misses.append(template.SOPInstanceUID)
        assert misses == []
        with psycopg.connect(cluster.standby, autocommit=True) as conn:
            used = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                                [name]).fetchone()  # fmt: skip
        assert used and used[0] > 0, "the reading server never connected to the standby"
    finally:
        writer.stop()
        reader.stop()
